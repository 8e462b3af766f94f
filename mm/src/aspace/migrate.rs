//! Page migration between NUMA nodes (`move_pages`, `migrate_pages`,
//! `mbind(MPOL_MF_MOVE)`): one private page at a time, under the tree's read side, so
//! faults elsewhere go on.
//!
//! A page moves in five steps: its entry is locked (`BUSY`) and made read-only by
//! compare-and-swap, the TLB is flushed (from then on no CPU can write the old
//! frame: a write faults, sees `BUSY` and retries), the frame is copied to a new one
//! on the target node, the entry is switched to the new frame with its old
//! permissions, and after a second flush (readers may still hold the old
//! translation) the old frame is released. A write racing the move therefore lands
//! either before the copy (and is copied) or after the switch (in the new frame):
//! none is lost.
//!
//! Only frames this entry alone owns move: a frame shared with a fork child, the page
//! cache or KSM reports `EACCES` without `MPOL_MF_MOVE_ALL` (Linux's answer for a page
//! mapped by several processes) and `EBUSY` with it (this kernel does not move shared
//! frames yet).

use alloc::vec::Vec;

use super::mempolicy::interleave_index;
use super::AddressSpace;
use crate::frame::{NodeId, NodeMask, Policy, PAGE_SIZE};
use crate::pagetable::{PageTable, Pte, PteFlags};
use crate::tlb::TlbBatch;

/// What `move_pages` reports for one page (its `status` entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageStatus {
    /// The page is (now) on this node.
    Node(NodeId),
    /// `-ENOENT`: nothing resident there.
    NotPresent,
    /// `-EFAULT`: no mapping there.
    Unmapped,
    /// `-EACCES`: the frame is shared and `MPOL_MF_MOVE_ALL` was not given.
    Shared,
    /// `-EBUSY`: the page could not be moved now.
    Busy,
    /// `-ENOMEM`: no frame on the target node.
    NoMemory,
}

impl PageStatus {
    /// The `int` `move_pages` stores: the node, or a negative errno.
    pub fn as_status(self) -> i32 {
        match self {
            PageStatus::Node(n) => n.0 as i32,
            PageStatus::NotPresent => -2,
            PageStatus::Unmapped => -14,
            PageStatus::Shared => -13,
            PageStatus::Busy => -16,
            PageStatus::NoMemory => -12,
        }
    }
}

/// How many times a move retries an entry the hardware or a fault changed under it.
const CAS_RETRIES: u32 = 8;

impl<P: PageTable> AddressSpace<P> {
    /// The node of the page at `va` (`move_pages` without nodes).
    pub fn page_node(&self, va: u64) -> PageStatus {
        let st = self.state().read();
        if st.tree.find(va).is_none() {
            return PageStatus::Unmapped;
        }
        match self.page_table().query(va & !(PAGE_SIZE - 1)) {
            Some(pte) => self
                .frames()
                .node_of(pte.pfn)
                .map_or(PageStatus::NotPresent, PageStatus::Node),
            _ => PageStatus::NotPresent,
        }
    }

    /// Moves the page at `va` to `node` (`move_pages` with nodes).
    pub fn migrate_page(&self, va: u64, node: NodeId, move_all: bool) -> PageStatus {
        let _st = self.state().read();
        if _st.tree.find(va).is_none() {
            return PageStatus::Unmapped;
        }
        self.move_locked(va & !(PAGE_SIZE - 1), node, move_all)
    }

    /// The move itself; the caller holds the tree's read side and `page` is mapped.
    fn move_locked(&self, page: u64, node: NodeId, move_all: bool) -> PageStatus {
        let pt = self.page_table();
        let frames = self.frames();
        let mut tries = 0;
        let (pte, locked) = loop {
            let Some(pte) = pt.query(page) else {
                return PageStatus::NotPresent;
            };
            let Some(on) = frames.node_of(pte.pfn) else {
                return PageStatus::Busy;
            };
            if on == node {
                return PageStatus::Node(node);
            }
            if pte.flags.contains(PteFlags::BUSY) {
                return PageStatus::Busy;
            }
            if frames.count(pte.pfn) != 1 {
                return if move_all {
                    PageStatus::Busy
                } else {
                    PageStatus::Shared
                };
            }
            let locked = pte.with_flags((pte.flags | PteFlags::BUSY) - PteFlags::WRITE);
            if pt.replace(page, pte, locked).is_ok() {
                break (pte, locked);
            }
            tries += 1;
            if tries == CAS_RETRIES {
                return PageStatus::Busy;
            }
        };
        // No CPU may keep writing the old frame through a cached translation.
        let mut batch = TlbBatch::new();
        batch.add_page(page);
        batch.flush(&**self.tlb());
        let new =
            match frames.alloc_copy_placed(pte.pfn, page, Policy::Bind(NodeMask::single(node))) {
                Ok(pfn) => pfn,
                Err(_) => {
                    self.unlock_entry(page, pte);
                    return PageStatus::NoMemory;
                }
            };
        if frames.node_of(new) != Some(node) {
            frames.put(new);
            self.unlock_entry(page, pte);
            return PageStatus::Busy;
        }
        // The hardware may have set ACCESSED meanwhile; the page's contents are the
        // copy's. Keep the old permissions (and dirtiness) on the new frame.
        let moved = Pte::new(
            new,
            (pte.flags | (locked.flags & PteFlags::HW)) - PteFlags::BUSY,
        );
        self.unlock_entry(page, moved);
        let mut batch = TlbBatch::new();
        batch.add_page(page);
        batch.flush(&**self.tlb());
        frames.put(pte.pfn);
        PageStatus::Node(node)
    }

    /// `mbind(MPOL_MF_MOVE)`: moves the resident pages of `[start, end)` that their
    /// VMA's policy does not allow where they are. Returns how many could not move.
    pub fn migrate_misplaced(&self, start: u64, end: u64, move_all: bool) -> u64 {
        let st = self.state().read();
        let mut pages: Vec<(u64, NodeId)> = Vec::new();
        for v in st.tree.overlapping(start, end) {
            let Some(policy) = self.policy_for(v) else {
                continue;
            };
            let (s, e) = (v.start.max(start), v.end.min(end));
            self.page_table().scan(s, e, &mut |va, pte| {
                let index = interleave_index(v, va);
                let here = self.frames().node_of(pte.pfn);
                if let (Some(here), Some(target)) = (here, policy.target(index)) {
                    if !policy.allows(here, index) && pages.try_reserve(1).is_ok() {
                        pages.push((va, target));
                    }
                }
            });
        }
        pages
            .into_iter()
            .filter(|&(va, node)| {
                !matches!(self.move_locked(va, node, move_all), PageStatus::Node(_))
            })
            .count() as u64
    }

    /// `migrate_pages`: moves every resident private page on a node of `from` to the
    /// node at the same position in `to` (wrapping), as Linux pairs them. Returns how
    /// many could not move.
    pub fn migrate_nodes(&self, from: NodeMask, to: NodeMask) -> u64 {
        if to.is_empty() {
            return 0;
        }
        let targets: Vec<NodeId> = to.iter().collect();
        let target_of = |node: NodeId| {
            from.iter()
                .position(|n| n == node)
                .map(|i| targets[i % targets.len()])
        };
        let st = self.state().read();
        let mut pages: Vec<(u64, NodeId)> = Vec::new();
        self.page_table()
            .scan(0, self.layout().task_size, &mut |va, pte| {
                let target = self
                    .frames()
                    .node_of(pte.pfn)
                    .and_then(|n| target_of(n).filter(|t| *t != n));
                if let Some(t) = target {
                    if pages.try_reserve(1).is_ok() {
                        pages.push((va, t));
                    }
                }
            });
        let _ = &st;
        pages
            .into_iter()
            .filter(|&(va, node)| !matches!(self.move_locked(va, node, false), PageStatus::Node(_)))
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, fork, harness_on};
    use crate::fault::Access;

    #[test]
    fn moves_private_pages_and_keeps_contents() {
        let h = harness_on(2);
        let a = anon_rw(&h.aspace, 4);
        h.aspace.write_bytes(a, &[7u8; 4 * 4096]).unwrap();
        let first = h.aspace.page_node(a);
        let other = match first {
            PageStatus::Node(NodeId(0)) => NodeId(1),
            _ => NodeId(0),
        };
        assert_eq!(
            h.aspace.migrate_page(a + 10, other, false),
            PageStatus::Node(other)
        );
        assert_eq!(h.aspace.page_node(a), PageStatus::Node(other));
        let mut buf = [0u8; 4096];
        h.aspace.read_bytes(a, &mut buf).unwrap();
        assert!(buf.iter().all(|b| *b == 7));
        // Still writable, without a copy-on-write.
        h.aspace.write_bytes(a, &[9u8; 1]).unwrap();
        assert_eq!(h.aspace.page_node(a), PageStatus::Node(other));
        assert_eq!(h.soft.live(), 4, "the old frame was released");
        // Not resident, not mapped.
        let b = anon_rw(&h.aspace, 1);
        assert_eq!(
            h.aspace.migrate_page(b, other, false),
            PageStatus::NotPresent
        );
        assert_eq!(h.aspace.page_node(0x1000), PageStatus::Unmapped);
        // A frame shared with a fork child: EACCES, or EBUSY with MOVE_ALL.
        let _child = fork(&h);
        let c = a + 4096;
        let away = match h.aspace.page_node(c) {
            PageStatus::Node(NodeId(0)) => NodeId(1),
            _ => NodeId(0),
        };
        assert_eq!(h.aspace.migrate_page(c, away, false), PageStatus::Shared);
        assert_eq!(h.aspace.migrate_page(c, away, true), PageStatus::Busy);
        h.aspace.check_invariants().unwrap();
        let _ = Access::Read;
    }

    #[test]
    fn migrate_nodes_moves_everything_off_a_node() {
        let h = harness_on(2);
        let a = anon_rw(&h.aspace, 8);
        h.aspace.write_bytes(a, &[3u8; 8 * 4096]).unwrap();
        let left = h
            .aspace
            .migrate_nodes(NodeMask::from_bits(0b11), NodeMask::from_bits(0b10));
        assert_eq!(left, 0);
        for i in 0..8 {
            assert_eq!(
                h.aspace.page_node(a + i * 4096),
                PageStatus::Node(NodeId(1))
            );
        }
        let mut buf = [0u8; 8 * 4096];
        h.aspace.read_bytes(a, &mut buf).unwrap();
        assert!(buf.iter().all(|b| *b == 3));
        assert_eq!(h.soft.live(), 8);
    }

    #[test]
    fn racing_writes_survive_moves_back_and_forth() {
        use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        let h = harness_on(2);
        let a = anon_rw(&h.aspace, 2);
        h.aspace.write_bytes(a, &0u64.to_le_bytes()).unwrap();
        let done = AtomicBool::new(false);
        let moved = AtomicU32::new(0);
        // The writer keeps going until the pages have moved 200 times under it.
        let last = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let mut i = 0u64;
                while (moved.load(Ordering::SeqCst) < 200 || i < 2000) && i < 5_000_000 {
                    i += 1;
                    h.aspace.write_bytes(a, &i.to_le_bytes()).unwrap();
                    h.aspace
                        .write_bytes(a + 4096 + 8 * (i % 8), &i.to_le_bytes())
                        .unwrap();
                }
                done.store(true, Ordering::SeqCst);
                i
            });
            let mut node = 0u32;
            while !done.load(Ordering::SeqCst) {
                node ^= 1;
                for page in [a, a + 4096] {
                    if h.aspace.migrate_page(page, NodeId(node), false)
                        == PageStatus::Node(NodeId(node))
                    {
                        moved.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            writer.join().unwrap()
        });
        assert!(
            moved.load(Ordering::SeqCst) >= 200,
            "the pages moved under the writer"
        );
        let mut word = [0u8; 8];
        h.aspace.read_bytes(a, &mut word).unwrap();
        assert_eq!(u64::from_le_bytes(word), last, "the last write is there");
        for k in 0..8u64 {
            h.aspace.read_bytes(a + 4096 + 8 * k, &mut word).unwrap();
            let want = (1..=last).rev().find(|i| i % 8 == k).unwrap();
            assert_eq!(u64::from_le_bytes(word), want);
        }
        assert_eq!(h.soft.live(), 2, "every replaced frame was released once");
        h.aspace.check_invariants().unwrap();
    }
}
