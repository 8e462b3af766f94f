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
//! A frame shared with a fork child reports `EACCES` without
//! `MPOL_MF_MOVE_ALL` (Linux's answer for a page mapped by several processes). With it,
//! a copy-on-write frame moves for every address space mapping it
//! ([`AddressSpace::migrate_page_among`]): there is no reverse map, so the caller names
//! the address spaces that may share it (the kernel: every other process) and the
//! frame moves only when the entries found at the same address (fork keeps addresses)
//! hold every reference it has; a swap-cache or pinned frame has more and stays
//! (`EBUSY`), as does one whose sharer is busy behind a writer.
//!
//! A page-cache frame (a shared mapping of a file, or a private one's page not yet
//! written) moves for the cache and every mapping of the file page at once: see
//! `migrate_cache.rs`; a KSM stable frame likewise for KSM and its mappings:
//! `migrate_ksm.rs`.

use alloc::vec::Vec;

use super::mempolicy::interleave_index;
use super::migrate_cache::cached_page_of;
use super::migrate_status::PageStatus;
use super::{AddressSpace, MmState};
use crate::addr::VirtAddr;
use crate::frame::{NodeId, NodeMask, Policy, PAGE_SIZE};
use crate::pagetable::{PageTable, Pte, PteFlags};
use crate::tlb::TlbBatch;

/// How many times a move retries an entry the hardware or a fault changed under it.
const CAS_RETRIES: u32 = 8;

impl<P: PageTable> AddressSpace<P> {
    /// The node of the page at `va` (`move_pages` without nodes).
    pub fn page_node(&self, va: u64) -> PageStatus {
        let st = self.state().read();
        if st.tree.find(va).is_none() {
            return PageStatus::Unmapped;
        }
        match self
            .page_table()
            .query(VirtAddr::new(va & !(PAGE_SIZE - 1)))
        {
            Some(pte) => self
                .frames()
                .node_of(pte.pfn)
                .map_or(PageStatus::NotPresent, PageStatus::Node),
            _ => PageStatus::NotPresent,
        }
    }

    /// Moves the page at `va` to `node` (`move_pages` with nodes).
    pub fn migrate_page(&self, va: u64, node: NodeId, move_all: bool) -> PageStatus {
        let st = self.state().read();
        if st.tree.find(va).is_none() {
            return PageStatus::Unmapped;
        }
        self.move_locked(&st, va & !(PAGE_SIZE - 1), node, move_all, &[])
    }

    /// `MPOL_MF_MOVE_ALL`: moves the page at `va` to `node` even when its frame is
    /// shared copy-on-write with some of `sharers` (the others that may map it; `self`
    /// among them is skipped): every entry mapping it moves together.
    pub fn migrate_page_among(&self, va: u64, node: NodeId, sharers: &[&Self]) -> PageStatus {
        let st = self.state().read();
        if st.tree.find(va).is_none() {
            return PageStatus::Unmapped;
        }
        self.move_locked(&st, va & !(PAGE_SIZE - 1), node, true, sharers)
    }

    /// The move itself; the caller holds the tree's read side (`st`) and `page` is
    /// mapped.
    fn move_locked(
        &self,
        st: &MmState,
        page: u64,
        node: NodeId,
        move_all: bool,
        sharers: &[&Self],
    ) -> PageStatus {
        let pt = self.page_table();
        let frames = self.frames();
        let mut tries = 0;
        let (pte, locked) = loop {
            let Some(pte) = pt.query(VirtAddr::new(page)) else {
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
            let vma = st.tree.find(page);
            if let Some((file, index)) = vma.and_then(|v| cached_page_of(v, page, pte.pfn)) {
                return self.move_cached(st, page, pte, &file, index, node, move_all, sharers);
            }
            if frames.count(pte.pfn) != 1 {
                // A KSM stable frame (always shared: KSM holds a reference).
                if vma.is_some_and(|v| v.is_private() && v.file().is_none()) {
                    if let Some(status) = self.move_ksm(st, page, pte, node, move_all, sharers) {
                        return status;
                    }
                }
                return match (move_all, sharers.is_empty()) {
                    (false, _) => PageStatus::Shared,
                    (true, true) => PageStatus::Busy,
                    (true, false) => self.move_shared(page, node, pte, sharers),
                };
            }
            let locked = pte.with_flags((pte.flags | PteFlags::BUSY) - PteFlags::WRITE);
            if pt.replace(VirtAddr::new(page), pte, locked).is_ok() {
                break (pte, locked);
            }
            tries += 1;
            if tries == CAS_RETRIES {
                return PageStatus::Busy;
            }
        };
        // No CPU may keep writing the old frame through a cached translation.
        let mut batch = TlbBatch::new();
        batch.add_page(VirtAddr::new(page));
        batch.flush(&**self.tlb());
        let new = match frames.alloc_copy_placed(
            pte.pfn,
            VirtAddr::new(page),
            Policy::Bind(NodeMask::single(node)),
        ) {
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
        batch.add_page(VirtAddr::new(page));
        batch.flush(&**self.tlb());
        frames.put(pte.pfn);
        PageStatus::Node(node)
    }

    /// Moves a copy-on-write frame mapped at `page` here (entry `pte`) and at `page` in
    /// some of `sharers`, when those entries hold every reference the frame has. The
    /// caller holds this tree's read side; the sharers' are only tried (a wait here,
    /// with this lock held, could close a cycle with another mover).
    fn move_shared(&self, page: u64, node: NodeId, pte: Pte, sharers: &[&Self]) -> PageStatus {
        let frames = self.frames();
        if pte.flags.contains(PteFlags::WRITE) {
            // Writable and shared: not a copy-on-write share.
            return PageStatus::Busy;
        }
        let mut guards = Vec::new();
        let mut mappers: Vec<(&Self, Pte)> = Vec::new();
        if mappers.try_reserve(sharers.len() + 1).is_err()
            || guards.try_reserve(sharers.len()).is_err()
        {
            return PageStatus::NoMemory;
        }
        mappers.push((self, pte));
        for &other in sharers.iter().filter(|s| !core::ptr::eq(**s, self)) {
            let Some(st) = other.state().try_read() else {
                return PageStatus::Busy;
            };
            if st.tree.find(page).is_some_and(|v| v.is_private()) {
                if let Some(theirs) = other.page_table().query(VirtAddr::new(page)) {
                    if theirs.pfn == pte.pfn {
                        if theirs.flags.intersects(PteFlags::WRITE | PteFlags::BUSY) {
                            return PageStatus::Busy;
                        }
                        mappers.push((other, theirs));
                    }
                }
            }
            guards.push(st);
        }
        if u64::from(frames.count(pte.pfn)) != mappers.len() as u64 {
            return PageStatus::Busy;
        }
        // Lock every entry (a fault or a fork that meets BUSY waits), then make sure no
        // reference appeared before the last lock went on.
        let mut locked: Vec<(&Self, Pte)> = Vec::new();
        if locked.try_reserve(mappers.len()).is_err() {
            return PageStatus::NoMemory;
        }
        let unlock_all = |locked: &[(&Self, Pte)]| {
            for &(space, old) in locked {
                space.unlock_entry(page, old);
            }
        };
        for &(space, old) in &mappers {
            let busy = old.with_flags(old.flags | PteFlags::BUSY);
            if space
                .page_table()
                .replace(VirtAddr::new(page), old, busy)
                .is_err()
            {
                unlock_all(&locked);
                return PageStatus::Busy;
            }
            locked.push((space, old));
        }
        if u64::from(frames.count(pte.pfn)) != locked.len() as u64 {
            unlock_all(&locked);
            return PageStatus::Busy;
        }
        let flush_all = || {
            for &(space, _) in &locked {
                let mut batch = TlbBatch::new();
                batch.add_page(VirtAddr::new(page));
                batch.flush(&**space.tlb());
            }
        };
        // Read-only everywhere, so nothing writes the frame while it is copied.
        flush_all();
        let new = match frames.alloc_copy_placed(
            pte.pfn,
            VirtAddr::new(page),
            Policy::Bind(NodeMask::single(node)),
        ) {
            Ok(pfn) if frames.node_of(pfn) == Some(node) => pfn,
            Ok(pfn) => {
                frames.put(pfn);
                unlock_all(&locked);
                return PageStatus::Busy;
            }
            Err(_) => {
                unlock_all(&locked);
                return PageStatus::NoMemory;
            }
        };
        for _ in 1..locked.len() {
            frames.get(new);
        }
        for &(space, old) in &locked {
            space.unlock_entry(page, Pte::new(new, old.flags));
        }
        flush_all();
        for _ in &locked {
            frames.put(pte.pfn);
        }
        drop(guards);
        PageStatus::Node(node)
    }

    /// `mbind(MPOL_MF_MOVE)`: moves the resident pages of `[start, end)` that their
    /// VMA's policy does not allow where they are; with `MPOL_MF_MOVE_ALL`, frames
    /// shared copy-on-write with `sharers` too (see
    /// [`migrate_page_among`](Self::migrate_page_among)). Returns how many could not
    /// move.
    pub fn migrate_misplaced(
        &self,
        start: u64,
        end: u64,
        move_all: bool,
        sharers: &[&Self],
    ) -> u64 {
        let st = self.state().read();
        let mut pages: Vec<(u64, NodeId)> = Vec::new();
        for v in st.tree.overlapping(start, end) {
            let Some(policy) = self.policy_for(v) else {
                continue;
            };
            let (s, e) = (v.start.max(start), v.end.min(end));
            self.page_table()
                .scan(VirtAddr::new(s), VirtAddr::new(e), &mut |va, pte| {
                    let index = interleave_index(v, va.as_u64());
                    let here = self.frames().node_of(pte.pfn);
                    if let (Some(here), Some(target)) = (here, policy.target(index)) {
                        if !policy.allows(here, index) && pages.try_reserve(1).is_ok() {
                            pages.push((va.as_u64(), target));
                        }
                    }
                });
        }
        pages
            .into_iter()
            .filter(|&(va, node)| {
                !matches!(
                    self.move_locked(&st, va, node, move_all, sharers),
                    PageStatus::Node(_)
                )
            })
            .count() as u64
    }

    /// `migrate_pages`: moves every resident page on a node of `from` that only this
    /// process maps to the node at the same position in `to` (wrapping), as Linux
    /// pairs them. Returns how many could not move.
    pub fn migrate_nodes(&self, from: NodeMask, to: NodeMask) -> u64 {
        self.migrate_nodes_among(from, to, false, &[])
    }

    /// [`migrate_nodes`](Self::migrate_nodes) for a caller who may move shared pages
    /// (Linux's `migrate_pages` with `CAP_SYS_NICE` moves with `MPOL_MF_MOVE_ALL`):
    /// with `move_all`, a frame this process shares with some of `sharers` moves for
    /// all of them (see [`migrate_page_among`](Self::migrate_page_among)).
    pub fn migrate_nodes_among(
        &self,
        from: NodeMask,
        to: NodeMask,
        move_all: bool,
        sharers: &[&Self],
    ) -> u64 {
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
        self.page_table().scan(
            VirtAddr::ZERO,
            VirtAddr::new(self.layout().task_size),
            &mut |va, pte| {
                let target = self
                    .frames()
                    .node_of(pte.pfn)
                    .and_then(|n| target_of(n).filter(|t| *t != n));
                if let Some(t) = target {
                    if pages.try_reserve(1).is_ok() {
                        pages.push((va.as_u64(), t));
                    }
                }
            },
        );
        pages
            .into_iter()
            .filter(|&(va, node)| {
                !matches!(
                    self.move_locked(&st, va, node, move_all, sharers),
                    PageStatus::Node(_)
                )
            })
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
    fn move_all_moves_a_fork_shared_frame_for_both_mappers() {
        let h = harness_on(2);
        let a = anon_rw(&h.aspace, 2);
        h.aspace.write_bytes(a, &[5u8; 2 * 4096]).unwrap();
        let child = fork(&h);
        let here = h.aspace.page_node(a);
        let away = match here {
            PageStatus::Node(NodeId(0)) => NodeId(1),
            _ => NodeId(0),
        };
        let live = h.soft.live();
        // Without the sharer named, the frame cannot be accounted for.
        assert_eq!(h.aspace.migrate_page_among(a, away, &[]), PageStatus::Busy);
        assert_eq!(
            h.aspace.migrate_page_among(a, away, &[&h.aspace, &child]),
            PageStatus::Node(away)
        );
        assert_eq!(h.aspace.page_node(a), PageStatus::Node(away));
        assert_eq!(child.page_node(a), PageStatus::Node(away));
        assert_eq!(h.soft.live(), live, "one frame moved, still shared");
        // Still copy-on-write: the child's write is its own.
        child.write_bytes(a, &[6u8; 8]).unwrap();
        let (mut mine, mut theirs) = ([0u8; 4096], [0u8; 4096]);
        h.aspace.read_bytes(a, &mut mine).unwrap();
        child.read_bytes(a, &mut theirs).unwrap();
        assert!(mine.iter().all(|b| *b == 5));
        assert_eq!(&theirs[..8], &[6u8; 8]);
        assert!(theirs[8..].iter().all(|b| *b == 5));
        // The second page, still shared, moves back; the first, now private, alone.
        assert_eq!(
            h.aspace.migrate_page_among(a + 4096, away, &[&child]),
            PageStatus::Node(away)
        );
        let childs = child.page_node(a);
        if let PageStatus::Node(n) = here {
            assert_eq!(
                h.aspace.migrate_page_among(a, n, &[&child]),
                PageStatus::Node(n)
            );
            assert_eq!(child.page_node(a), childs, "the child's own copy stays");
        }
        h.aspace.check_invariants().unwrap();
        child.check_invariants().unwrap();
        drop(child);
        assert_eq!(h.soft.live(), 2, "every replaced frame was released once");
    }

    #[test]
    fn a_child_write_racing_shared_moves_loses_nothing() {
        use core::sync::atomic::{AtomicBool, Ordering};
        for round in 0..20u8 {
            let h = harness_on(2);
            let a = anon_rw(&h.aspace, 1);
            h.aspace.write_bytes(a, &[round; 4096]).unwrap();
            let child = fork(&h);
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut node = 0;
                    while !stop.load(Ordering::SeqCst) {
                        node ^= 1;
                        let _ = h.aspace.migrate_page_among(a, NodeId(node), &[&child]);
                    }
                });
                for _ in 0..(round as usize * 50) {
                    core::hint::spin_loop();
                }
                child.write_bytes(a + 8, &[0xee; 8]).unwrap();
                stop.store(true, Ordering::SeqCst);
            });
            let (mut mine, mut theirs) = ([0u8; 4096], [0u8; 4096]);
            h.aspace.read_bytes(a, &mut mine).unwrap();
            child.read_bytes(a, &mut theirs).unwrap();
            assert!(
                mine.iter().all(|b| *b == round),
                "round {round}: parent changed"
            );
            assert_eq!(
                &theirs[8..16],
                &[0xee; 8],
                "round {round}: child's write lost"
            );
            assert!(theirs[..8].iter().chain(&theirs[16..]).all(|b| *b == round));
            drop(child);
            assert_eq!(
                h.soft.live(),
                1,
                "round {round}: a frame leaked or was freed twice"
            );
        }
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
