//! NUMA memory policy: the [`MemPolicy`] of `set_mempolicy`, `mbind` and
//! `get_mempolicy` (Linux's modes, mode flags and errno), kept per VMA (`mbind`) and
//! per thread (`set_mempolicy`; the kernel answers "which policy has the faulting
//! thread?" through [`set_task_policy_hook`]), and the [`Policy`] the fault path hands
//! the frame allocator for a page.
//!
//! A VMA's policy wins over the faulting thread's; with neither, pages come from the
//! faulting CPU's node (`MPOL_LOCAL`). Without a hook (host tests, kernel tasks) the
//! address space's own task policy stands in for the thread's; the kernel keeps the
//! main thread's there, which is what `numa_maps` shows, as Linux shows the policy of
//! the task the `/proc` directory names. Interleaving picks the node from the page's
//! index in its VMA (Linux's `interleave_nid`), so consecutive pages alternate.

use core::sync::atomic::{AtomicU8, Ordering};

use super::AddressSpace;
use crate::errno::MmError;
use crate::frame::{NodeId, NodeMask, Policy, MAX_NUMNODES, PAGE_SIZE};
use crate::pagetable::PageTable;
use crate::vma::Vma;

/// `MPOL_*` modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyMode {
    /// `MPOL_DEFAULT` (0): no policy of its own.
    Default,
    /// `MPOL_PREFERRED` (1): one node first, then the others.
    Preferred,
    /// `MPOL_BIND` (2): only the nodes of the mask.
    Bind,
    /// `MPOL_INTERLEAVE` (3): page by page over the mask.
    Interleave,
    /// `MPOL_LOCAL` (4): the faulting CPU's node.
    Local,
    /// `MPOL_PREFERRED_MANY` (5): the mask's nodes first, then the others.
    PreferredMany,
    /// `MPOL_WEIGHTED_INTERLEAVE` (6): interleave by node weights
    /// ([`set_interleave_weight`]).
    WeightedInterleave,
}

impl PolicyMode {
    /// Linux's number.
    pub fn linux(self) -> u64 {
        match self {
            PolicyMode::Default => 0,
            PolicyMode::Preferred => 1,
            PolicyMode::Bind => 2,
            PolicyMode::Interleave => 3,
            PolicyMode::Local => 4,
            PolicyMode::PreferredMany => 5,
            PolicyMode::WeightedInterleave => 6,
        }
    }

    fn from_linux(mode: u64) -> Result<PolicyMode, MmError> {
        Ok(match mode {
            0 => PolicyMode::Default,
            1 => PolicyMode::Preferred,
            2 => PolicyMode::Bind,
            3 => PolicyMode::Interleave,
            4 => PolicyMode::Local,
            5 => PolicyMode::PreferredMany,
            6 => PolicyMode::WeightedInterleave,
            _ => return Err(MmError::InvalidArgument),
        })
    }

    /// The name `numa_maps` prints.
    pub fn name(self) -> &'static str {
        match self {
            PolicyMode::Default => "default",
            PolicyMode::Preferred => "prefer",
            PolicyMode::Bind => "bind",
            PolicyMode::Interleave => "interleave",
            PolicyMode::Local => "local",
            PolicyMode::PreferredMany => "prefer (many)",
            PolicyMode::WeightedInterleave => "weighted interleave",
        }
    }
}

/// The kernel's answer to "what is the current thread's policy?": `None` outside a
/// thread (then the address space's applies), `Some(None)` for the default.
static TASK_POLICY_HOOK: spin::Once<fn() -> Option<Option<MemPolicy>>> = spin::Once::new();

/// Installs the hook that tells the fault path the faulting thread's policy (once, at
/// boot; later calls are ignored).
pub fn set_task_policy_hook(hook: fn() -> Option<Option<MemPolicy>>) {
    TASK_POLICY_HOOK.call_once(|| hook);
}

/// Each node's weight in `MPOL_WEIGHTED_INTERLEAVE`
/// (`/sys/kernel/mm/mempolicy/weighted_interleave/nodeN`); 0 stands for the default, 1.
static INTERLEAVE_WEIGHTS: [AtomicU8; MAX_NUMNODES] = [const { AtomicU8::new(0) }; MAX_NUMNODES];

/// Sets `node`'s weighted-interleave weight (0: back to the default, 1), as a write of
/// Linux's `weighted_interleave/nodeN` does. Returns the weight now in force; a node
/// past [`MAX_NUMNODES`] is refused.
pub fn set_interleave_weight(node: NodeId, weight: u8) -> Result<u8, MmError> {
    let slot = INTERLEAVE_WEIGHTS
        .get(node.0 as usize)
        .ok_or(MmError::InvalidArgument)?;
    slot.store(weight, Ordering::Relaxed);
    Ok(interleave_weight(node))
}

/// `node`'s weighted-interleave weight (1 unless set).
pub fn interleave_weight(node: NodeId) -> u8 {
    INTERLEAVE_WEIGHTS
        .get(node.0 as usize)
        .map_or(1, |w| w.load(Ordering::Relaxed).max(1))
}

/// `MPOL_F_STATIC_NODES`.
pub const MPOL_F_STATIC_NODES: u64 = 1 << 15;
/// `MPOL_F_RELATIVE_NODES`.
pub const MPOL_F_RELATIVE_NODES: u64 = 1 << 14;
/// `MPOL_F_NUMA_BALANCING`.
pub const MPOL_F_NUMA_BALANCING: u64 = 1 << 13;
const MODE_FLAGS: u64 = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING;

/// A memory policy other than the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemPolicy {
    /// The mode (never [`PolicyMode::Default`]).
    pub mode: PolicyMode,
    /// The mode flags as given (`MPOL_F_*`).
    pub flags: u64,
    /// The nodes (empty for `MPOL_LOCAL`; one node for `MPOL_PREFERRED`).
    pub nodes: NodeMask,
}

impl MemPolicy {
    /// Decodes `mode` (with its flags) and `nodes` as `set_mempolicy` and `mbind` do;
    /// `online` are the nodes with memory. `Ok(None)` is the default policy. `EINVAL`
    /// for an unknown mode, conflicting flags, a mask the mode does not take, or one
    /// with no online node.
    pub fn decode(
        mode: u64,
        nodes: NodeMask,
        online: NodeMask,
    ) -> Result<Option<MemPolicy>, MmError> {
        let flags = mode & MODE_FLAGS;
        let mut mode = PolicyMode::from_linux(mode & !MODE_FLAGS)?;
        if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 {
            return Err(MmError::InvalidArgument);
        }
        if flags & MPOL_F_NUMA_BALANCING != 0
            && !matches!(mode, PolicyMode::Bind | PolicyMode::PreferredMany)
        {
            return Err(MmError::InvalidArgument);
        }
        let relative = flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0;
        match mode {
            PolicyMode::Default if nodes.is_empty() => return Ok(None),
            PolicyMode::Default => return Err(MmError::InvalidArgument),
            PolicyMode::Preferred if nodes.is_empty() => {
                if relative {
                    return Err(MmError::InvalidArgument);
                }
                mode = PolicyMode::Local;
            }
            PolicyMode::Local if !nodes.is_empty() || relative => {
                return Err(MmError::InvalidArgument)
            }
            PolicyMode::Local => {}
            _ if nodes.is_empty() => return Err(MmError::InvalidArgument),
            _ => {}
        }
        let nodes = match mode {
            PolicyMode::Local => NodeMask::EMPTY,
            _ => {
                let usable = nodes.intersect(online);
                if usable.is_empty() {
                    return Err(MmError::InvalidArgument);
                }
                if mode == PolicyMode::Preferred {
                    usable.first().map_or(NodeMask::EMPTY, NodeMask::single)
                } else {
                    usable
                }
            }
        };
        Ok(Some(MemPolicy { mode, flags, nodes }))
    }

    /// What `get_mempolicy` reports as the mode: its number with its flags.
    pub fn linux_mode(&self) -> u64 {
        self.mode.linux() | (self.flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES))
    }

    /// The node the `index`th page of an interleaved range goes to: round-robin over
    /// the mask, or for `MPOL_WEIGHTED_INTERLEAVE` each node's weight of pages in turn
    /// (Linux's `weighted_interleave_nid`: weights 3 and 1 give 0, 0, 0, 1, 0, ...).
    pub fn interleave_node(&self, index: u64) -> Option<NodeId> {
        if self.mode == PolicyMode::WeightedInterleave {
            let total: u64 = self
                .nodes
                .iter()
                .map(|n| u64::from(interleave_weight(n)))
                .sum();
            if total == 0 {
                return None;
            }
            let mut target = index % total;
            for node in self.nodes.iter() {
                let weight = u64::from(interleave_weight(node));
                if target < weight {
                    return Some(node);
                }
                target -= weight;
            }
            // A weight changed under us: any node of the mask is right.
            return self.nodes.first();
        }
        let count = u64::from(self.nodes.count());
        if count == 0 {
            return None;
        }
        self.nodes.iter().nth((index % count) as usize)
    }

    /// The allocator policy for the `index`th page of its range.
    pub fn placement(&self, index: u64) -> Policy {
        match self.mode {
            PolicyMode::Default | PolicyMode::Local => Policy::Local,
            PolicyMode::Preferred => self.nodes.first().map_or(Policy::Local, Policy::Preferred),
            PolicyMode::PreferredMany => Policy::PreferredMany(self.nodes),
            PolicyMode::Bind => Policy::Bind(self.nodes),
            PolicyMode::Interleave | PolicyMode::WeightedInterleave => self
                .interleave_node(index)
                .map_or(Policy::Local, Policy::Preferred),
        }
    }

    /// Whether a page on `node` satisfies the policy (what `MPOL_MF_MOVE` leaves
    /// alone and `MPOL_MF_STRICT` accepts); for interleave, at page `index`.
    pub fn allows(&self, node: NodeId, index: u64) -> bool {
        match self.mode {
            PolicyMode::Default | PolicyMode::Local => true,
            PolicyMode::Interleave | PolicyMode::WeightedInterleave => {
                self.interleave_node(index) == Some(node)
            }
            _ => self.nodes.contains(node),
        }
    }

    /// The node a misplaced page should move to (`None`: any node will do).
    pub fn target(&self, index: u64) -> Option<NodeId> {
        match self.mode {
            PolicyMode::Default | PolicyMode::Local => None,
            PolicyMode::Interleave | PolicyMode::WeightedInterleave => self.interleave_node(index),
            _ => self.nodes.first(),
        }
    }
}

/// The index that places page `va` of `vma` in an interleave (Linux: the file offset
/// for a file, the page's offset in the VMA plus its `pgoff` otherwise).
pub(crate) fn interleave_index(vma: &Vma, va: u64) -> u64 {
    vma.pgoff + (va - vma.start) / PAGE_SIZE
}

impl<P: PageTable> AddressSpace<P> {
    /// The policy governing page `va` of `vma`: the VMA's, else the address space's.
    pub(crate) fn policy_for(&self, vma: &Vma) -> Option<MemPolicy> {
        vma.policy.or_else(|| *self.task_policy.read())
    }

    /// The allocator policy for a new page at `va` in `vma`: the VMA's policy, else
    /// the faulting thread's.
    pub(crate) fn placement(&self, vma: &Vma, va: u64) -> Policy {
        self.governing_policy(vma)
            .map_or(Policy::Local, |p| p.placement(interleave_index(vma, va)))
    }

    /// The policy that places new pages of `vma`: its own, else the faulting
    /// thread's (`set_mempolicy`), else the address space's.
    fn governing_policy(&self, vma: &Vma) -> Option<MemPolicy> {
        let task = || match TASK_POLICY_HOOK.get().and_then(|hook| hook()) {
            Some(thread_policy) => thread_policy,
            None => *self.task_policy.read(),
        };
        vma.policy.or_else(task)
    }

    /// The allocator policy for a huge page of `bytes` at `head` in `vma`: as
    /// [`placement`](Self::placement), interleaving by huge page (as Linux does by
    /// folio order), not by 4 KiB page.
    pub(crate) fn huge_placement(&self, vma: &Vma, head: u64, bytes: u64) -> Policy {
        let index = interleave_index(vma, head) / (bytes / PAGE_SIZE).max(1);
        self.governing_policy(vma)
            .map_or(Policy::Local, |p| p.placement(index))
    }

    /// `set_mempolicy`: the policy of every later allocation outside VMAs that have
    /// their own (`None`: the default).
    pub fn set_task_policy(&self, policy: Option<MemPolicy>) {
        *self.task_policy.write() = policy;
    }

    /// The address space's policy (`get_mempolicy` without `MPOL_F_ADDR`).
    pub fn task_policy(&self) -> Option<MemPolicy> {
        *self.task_policy.read()
    }

    /// The policy of the VMA holding `addr` (`get_mempolicy(MPOL_F_ADDR)`): `EFAULT`
    /// when nothing is mapped there; `None` when the VMA has no policy of its own.
    pub fn vma_policy(&self, addr: u64) -> Result<Option<MemPolicy>, MmError> {
        let st = self.state().read();
        st.tree
            .find(addr)
            .map(|v| v.policy)
            .ok_or(MmError::BadAddress)
    }

    /// `mbind(start, len, ...)`'s change: sets `policy` on every VMA part of the
    /// range (splitting at its edges). `EINVAL` for an unaligned start or a wrapping
    /// range, `EFAULT` for a hole (nothing changed). Moving misplaced pages is
    /// [`AddressSpace::migrate_misplaced`]'s.
    pub fn set_range_policy(
        &self,
        start: u64,
        len: u64,
        policy: Option<MemPolicy>,
    ) -> Result<(), MmError> {
        if !start.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::InvalidArgument);
        }
        let len = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MmError::InvalidArgument)?;
        let end = start.checked_add(len).ok_or(MmError::InvalidArgument)?;
        if end == start {
            return Ok(());
        }
        let mut st = self.state().write();
        if end > self.layout().task_size || !st.tree.is_covered(start, end) {
            return Err(MmError::BadAddress);
        }
        let max = self.tunables().max_map_count();
        st.tree
            .edit_each(start, end, max, &mut |v: &mut Vma| v.policy = policy)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, harness};
    use alloc::vec::Vec;

    const TWO: NodeMask = NodeMask::from_bits(0b11);

    fn decode(mode: u64, nodes: u64) -> Result<Option<MemPolicy>, MmError> {
        MemPolicy::decode(mode, NodeMask::from_bits(nodes), TWO)
    }

    #[test]
    fn weighted_interleave_gives_each_node_its_weight_of_pages() {
        // Nodes 5 and 6: no other test sets their (global) weights.
        let policy = MemPolicy {
            mode: PolicyMode::WeightedInterleave,
            flags: 0,
            nodes: NodeMask::from_bits(0b110_0000),
        };
        let nodes = |p: &MemPolicy| {
            (0..8)
                .map(|i| p.interleave_node(i).unwrap().0)
                .collect::<Vec<_>>()
        };
        assert_eq!(nodes(&policy), [5, 6, 5, 6, 5, 6, 5, 6]);
        assert_eq!(set_interleave_weight(NodeId(5), 3), Ok(3));
        assert_eq!(nodes(&policy), [5, 5, 5, 6, 5, 5, 5, 6]);
        assert!(policy.allows(NodeId(5), 2) && policy.allows(NodeId(6), 7));
        assert!(!policy.allows(NodeId(6), 4));
        // Plain interleave ignores the weights.
        let plain = MemPolicy {
            mode: PolicyMode::Interleave,
            ..policy
        };
        assert_eq!(nodes(&plain), [5, 6, 5, 6, 5, 6, 5, 6]);
        // 0 restores the default weight, 1.
        assert_eq!(set_interleave_weight(NodeId(5), 0), Ok(1));
        assert_eq!(nodes(&policy), [5, 6, 5, 6, 5, 6, 5, 6]);
        assert_eq!(
            set_interleave_weight(NodeId(MAX_NUMNODES as u32), 2),
            Err(MmError::InvalidArgument)
        );
    }

    #[test]
    fn decode_follows_linux() {
        let einval = Err(MmError::InvalidArgument);
        assert_eq!(decode(0, 0), Ok(None));
        assert_eq!(decode(0, 1), einval);
        assert_eq!(decode(7, 1), einval);
        assert_eq!(decode(2, 0), einval, "BIND needs nodes");
        assert_eq!(decode(3, 0), einval);
        assert_eq!(decode(4, 1), einval, "LOCAL takes none");
        assert_eq!(decode(2, 0b100), einval, "offline only");
        assert_eq!(
            decode(2 | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES, 1),
            einval
        );
        assert_eq!(decode(3 | MPOL_F_NUMA_BALANCING, 1), einval);
        assert_eq!(decode(1, 0).unwrap().unwrap().mode, PolicyMode::Local);
        let p = decode(1, 0b110).unwrap().unwrap();
        assert_eq!(
            (p.mode, p.nodes),
            (PolicyMode::Preferred, NodeMask::from_bits(0b10))
        );
        let b = decode(2 | MPOL_F_STATIC_NODES, 0b111).unwrap().unwrap();
        assert_eq!(b.nodes, TWO);
        assert_eq!(b.linux_mode(), 2 | MPOL_F_STATIC_NODES);
    }

    #[test]
    fn interleave_alternates_and_bind_binds() {
        let il = decode(3, 0b11).unwrap().unwrap();
        let picks: alloc::vec::Vec<Policy> = (0..4).map(|i| il.placement(i)).collect();
        assert_eq!(
            picks,
            [
                Policy::Preferred(NodeId(0)),
                Policy::Preferred(NodeId(1)),
                Policy::Preferred(NodeId(0)),
                Policy::Preferred(NodeId(1))
            ]
        );
        assert!(il.allows(NodeId(1), 3) && !il.allows(NodeId(0), 3));
        let bind = decode(2, 0b10).unwrap().unwrap();
        assert_eq!(bind.placement(9), Policy::Bind(NodeMask::from_bits(0b10)));
        assert_eq!(bind.target(0), Some(NodeId(1)));
    }

    #[test]
    fn range_policy_splits_and_task_policy_is_the_fallback() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        let bind1 = decode(2, 0b10).unwrap();
        assert_eq!(
            h.aspace.set_range_policy(a + 1, PAGE_SIZE, bind1),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            h.aspace.set_range_policy(a, 5 * PAGE_SIZE, bind1),
            Err(MmError::BadAddress)
        );
        h.aspace
            .set_range_policy(a + PAGE_SIZE, PAGE_SIZE, bind1)
            .unwrap();
        assert_eq!(h.aspace.vma_count(), 3);
        assert_eq!(h.aspace.vma_policy(a + PAGE_SIZE), Ok(bind1));
        assert_eq!(h.aspace.vma_policy(a), Ok(None));
        let v = h.aspace.vma_at(a).unwrap();
        assert_eq!(h.aspace.placement(&v, a), Policy::Local);
        let il = decode(3, 0b11).unwrap();
        h.aspace.set_task_policy(il);
        assert_eq!(h.aspace.placement(&v, a), Policy::Preferred(NodeId(0)));
        let w = h.aspace.vma_at(a + PAGE_SIZE).unwrap();
        assert_eq!(
            h.aspace.placement(&w, a + PAGE_SIZE),
            Policy::Bind(NodeMask::from_bits(0b10))
        );
        h.aspace.set_range_policy(a, 4 * PAGE_SIZE, None).unwrap();
        assert_eq!(h.aspace.vma_count(), 1, "policies gone: merged again");
    }
}
