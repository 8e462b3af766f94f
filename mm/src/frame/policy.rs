//! Placement policies (local, preferred, preferred-many, bind, interleave) and how they
//! turn into an ordered list of candidate nodes, falling back by SLIT distance.

use super::error::AllocError;
use super::nodemask::NodeMask;
use super::topology::Topology;
use super::types::{NodeId, MAX_NUMNODES};

/// Where an allocation should come from (the mechanism behind `set_mempolicy`/`mbind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// The calling CPU's node (`MPOL_LOCAL`), then the others nearest first.
    #[default]
    Local,
    /// The given node (`MPOL_PREFERRED`), then the others nearest to it first.
    Preferred(NodeId),
    /// The mask's nodes nearest to the calling CPU first (`MPOL_PREFERRED_MANY`), then
    /// every other node nearest first.
    PreferredMany(NodeMask),
    /// Only nodes of the mask (`MPOL_BIND`), nearest to the calling CPU first.
    Bind(NodeMask),
    /// Round-robin over the mask (`MPOL_INTERLEAVE`) using the caller's cursor; the
    /// chosen node first, then the others nearest to it.
    Interleave(NodeMask),
}

/// A rotating interleave position (Linux's per-task `il_prev`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterleaveCursor(NodeId);

impl Default for InterleaveCursor {
    /// Starts so that the first pick is the lowest node of the mask.
    fn default() -> InterleaveCursor {
        InterleaveCursor(NodeId(MAX_NUMNODES as u32 - 1))
    }
}

impl InterleaveCursor {
    /// A cursor whose next pick is the first member after `prev`.
    pub const fn after(prev: NodeId) -> InterleaveCursor {
        InterleaveCursor(prev)
    }

    /// Advances to the next node of `mask` and returns it.
    pub fn next(&mut self, mask: NodeMask) -> Option<NodeId> {
        let node = mask.next_after(self.0)?;
        self.0 = node;
        Some(node)
    }
}

/// A policy resolved for one allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The node the policy intends (Linux's preferred zone, for NUMA counters).
    pub(crate) intended: NodeId,
    /// The node whose fallback list orders the candidates.
    pub(crate) from: NodeId,
    /// The nodes the allocation may use.
    pub(crate) allowed: NodeMask,
    /// The allowed nodes tried before the other allowed ones (all of them but for
    /// `MPOL_PREFERRED_MANY`).
    pub(crate) first: NodeMask,
    /// Whether an interleave policy chose `intended`.
    pub(crate) interleave: bool,
}

impl Plan {
    /// Resolves `policy` for a caller whose local memory node is `local`.
    pub(crate) fn resolve(
        policy: Policy,
        topo: &Topology,
        local: NodeId,
        cursor: &mut InterleaveCursor,
    ) -> Result<Plan, AllocError> {
        let all = NodeMask::first_n(topo.nr_nodes());
        let plan = |intended, from, allowed, interleave| Plan {
            intended,
            from,
            allowed,
            first: allowed,
            interleave,
        };
        let nearest_in = |mask: NodeMask| {
            topo.fallback(local)
                .iter()
                .copied()
                .find(|n| mask.contains(*n))
                .or(mask.first())
        };
        match policy {
            Policy::Local => Ok(plan(local, local, all, false)),
            Policy::Preferred(node) if all.contains(node) => Ok(plan(node, node, all, false)),
            Policy::Preferred(_) => Err(AllocError::InvalidPolicy),
            Policy::PreferredMany(mask) => {
                let mask = mask.intersect(all);
                let intended = nearest_in(mask).ok_or(AllocError::InvalidPolicy)?;
                Ok(Plan {
                    first: mask,
                    ..plan(intended, local, all, false)
                })
            }
            Policy::Bind(mask) => {
                let mask = mask.intersect(all);
                let intended = nearest_in(mask).ok_or(AllocError::InvalidPolicy)?;
                Ok(plan(intended, local, mask, false))
            }
            Policy::Interleave(mask) => {
                let target = cursor
                    .next(mask.intersect(all))
                    .ok_or(AllocError::InvalidPolicy)?;
                Ok(plan(target, target, all, true))
            }
        }
    }

    /// The nodes with memory to try, in order: the `first` ones by distance, then the
    /// other allowed ones by distance.
    pub(crate) fn candidates<'t>(&self, topo: &'t Topology) -> impl Iterator<Item = NodeId> + 't {
        let (allowed, first) = (self.allowed, self.first.intersect(self.allowed));
        let order = topo.fallback(self.from).iter().copied();
        order
            .clone()
            .filter(move |n| first.contains(*n))
            .chain(order.filter(move |n| allowed.contains(*n) && !first.contains(*n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::topology::{DistanceMatrix, NodeRange};
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// Four nodes with 1 MiB each except node 2 (memoryless); a ring-ish SLIT.
    fn topo() -> Topology {
        #[rustfmt::skip]
        let d = DistanceMatrix::new(4, vec![
            10, 20, 30, 40,
            20, 10, 20, 30,
            30, 20, 10, 20,
            40, 30, 20, 10,
        ]).unwrap();
        let ranges: Vec<_> = [0u64, 1, 3]
            .iter()
            .map(|&n| NodeRange {
                node: NodeId(n as u32),
                phys_start: n << 20,
                phys_end: (n + 1) << 20,
            })
            .collect();
        Topology::new(&ranges, d, &[NodeId(0), NodeId(1), NodeId(2), NodeId(3)]).unwrap()
    }

    fn cands(p: &Plan, t: &Topology) -> Vec<u32> {
        p.candidates(t).map(|n| n.0).collect()
    }

    #[test]
    fn preferred_many_tries_its_nodes_nearest_first_then_the_rest() {
        let t = topo();
        let mut c = InterleaveCursor::default();
        // From node 0, mask {1, 3}: 1 (distance 20) before 3 (40), then node 0.
        let mask = NodeMask::from_bits(0b1010);
        let p = Plan::resolve(Policy::PreferredMany(mask), &t, NodeId(0), &mut c).unwrap();
        assert_eq!((p.intended, cands(&p, &t)), (NodeId(1), vec![1, 3, 0]));
        // From node 3 the same mask starts at 3, its own node.
        let p = Plan::resolve(Policy::PreferredMany(mask), &t, NodeId(3), &mut c).unwrap();
        assert_eq!((p.intended, cands(&p, &t)), (NodeId(3), vec![3, 1, 0]));
        // Unlike MPOL_PREFERRED (the mask's first node), the local node wins when listed.
        let p = Plan::resolve(
            Policy::PreferredMany(NodeMask::from_bits(0b11)),
            &t,
            NodeId(1),
            &mut c,
        )
        .unwrap();
        assert_eq!((p.intended, cands(&p, &t)), (NodeId(1), vec![1, 0, 3]));
        assert_eq!(
            Plan::resolve(
                Policy::PreferredMany(NodeMask::EMPTY),
                &t,
                NodeId(0),
                &mut c
            ),
            Err(AllocError::InvalidPolicy)
        );
    }

    #[test]
    fn local_and_preferred_fall_back_by_distance() {
        let t = topo();
        let mut c = InterleaveCursor::default();
        let p = Plan::resolve(Policy::Local, &t, NodeId(1), &mut c).unwrap();
        assert_eq!(p.intended, NodeId(1));
        assert_eq!(cands(&p, &t), [1, 0, 3]);
        let p = Plan::resolve(Policy::Preferred(NodeId(3)), &t, NodeId(0), &mut c).unwrap();
        assert_eq!(cands(&p, &t), [3, 1, 0]);
        // A memoryless preferred node is intended but not a candidate.
        let p = Plan::resolve(Policy::Preferred(NodeId(2)), &t, NodeId(0), &mut c).unwrap();
        assert_eq!((p.intended, cands(&p, &t)), (NodeId(2), vec![1, 3, 0]));
        assert_eq!(
            Plan::resolve(Policy::Preferred(NodeId(4)), &t, NodeId(0), &mut c),
            Err(AllocError::InvalidPolicy)
        );
    }

    #[test]
    fn bind_stays_in_mask_nearest_to_caller() {
        let t = topo();
        let mut c = InterleaveCursor::default();
        let mask = NodeMask::from_bits(0b1001);
        let p = Plan::resolve(Policy::Bind(mask), &t, NodeId(1), &mut c).unwrap();
        assert_eq!((p.intended, cands(&p, &t)), (NodeId(0), vec![0, 3]));
        let p = Plan::resolve(
            Policy::Bind(NodeMask::single(NodeId(2))),
            &t,
            NodeId(1),
            &mut c,
        )
        .unwrap();
        assert_eq!((p.intended, cands(&p, &t)), (NodeId(2), vec![]));
        assert_eq!(
            Plan::resolve(
                Policy::Bind(NodeMask::from_bits(1 << 9)),
                &t,
                NodeId(1),
                &mut c
            ),
            Err(AllocError::InvalidPolicy)
        );
    }

    #[test]
    fn interleave_rotates_over_the_mask() {
        let t = topo();
        let mut c = InterleaveCursor::default();
        let mask = NodeMask::from_bits(0b1011);
        let picks: Vec<u32> = (0..6)
            .map(|_| {
                Plan::resolve(Policy::Interleave(mask), &t, NodeId(0), &mut c)
                    .unwrap()
                    .intended
                    .0
            })
            .collect();
        assert_eq!(picks, [0, 1, 3, 0, 1, 3]);
        let p = Plan::resolve(Policy::Interleave(mask), &t, NodeId(0), &mut c).unwrap();
        assert!(p.interleave);
        assert_eq!((p.intended, cands(&p, &t)), (NodeId(0), vec![0, 1, 3]));
        let p = Plan::resolve(Policy::Interleave(mask), &t, NodeId(0), &mut c).unwrap();
        assert_eq!((p.intended, cands(&p, &t)), (NodeId(1), vec![1, 0, 3]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Every policy yields candidates inside its mask, with memory, without
        /// repeats, sorted by distance from the fallback origin.
        #[test]
        fn candidates_respect_mask_and_distance(bits in 0u64..16, node in 0u32..4, kind in 0u8..4) {
            let t = topo();
            let mask = NodeMask::from_bits(bits);
            let policy = match kind {
                0 => Policy::Local,
                1 => Policy::Preferred(NodeId(node)),
                2 => Policy::Bind(mask),
                _ => Policy::Interleave(mask),
            };
            let mut c = InterleaveCursor::default();
            match Plan::resolve(policy, &t, NodeId(node), &mut c) {
                Err(AllocError::InvalidPolicy) => prop_assert!(mask.is_empty() && kind >= 2),
                Err(e) => prop_assert!(false, "unexpected {:?}", e),
                Ok(p) => {
                    let list: Vec<NodeId> = p.candidates(&t).collect();
                    let mut seen = NodeMask::EMPTY;
                    let mut last = 0;
                    for n in &list {
                        prop_assert!(!seen.contains(*n));
                        seen.insert(*n);
                        prop_assert!(n.0 != 2);
                        let d = t.distances().distance(p.from, *n);
                        prop_assert!(d >= last);
                        last = d;
                        if kind == 2 { prop_assert!(mask.contains(*n)); }
                    }
                    if kind == 3 { prop_assert!(mask.contains(p.intended)); }
                }
            }
        }
    }
}
