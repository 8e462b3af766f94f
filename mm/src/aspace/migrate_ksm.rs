//! Page migration of KSM pages (`move_pages`, `migrate_pages`,
//! `mbind(MPOL_MF_MOVE/MOVE_ALL)` on a page merged by KSM): the stable frame moves to
//! another node for every mapping of it at once, as a page-cache frame does (see
//! `migrate_cache.rs`, whose steps this shares).
//!
//! The stable frame is taken out of KSM's stable tree first
//! ([`Ksm::lock_for_migration`](crate::ksm::Ksm::lock_for_migration)), so no page
//! merges into it meanwhile. Its mappings can be at any address of any mergeable
//! VMA (merging joins unrelated pages), so each address space named (this one and,
//! with `MPOL_MF_MOVE_ALL`, the caller's list of the others) has its mergeable
//! anonymous VMAs scanned for entries mapping it; they are locked, and the frame
//! moves only when they and KSM hold every reference it has. The copy goes back in
//! the stable tree in its place. Without `MPOL_MF_MOVE_ALL` a stable frame mapped more
//! than once answers `EACCES`, as Linux answers for a KSM page whose map count is
//! above one.

use alloc::vec::Vec;

use super::lock::ReadGuard;
use super::migrate_cache::{finish_move, FrameOwner, Locked};
use super::migrate_status::PageStatus;
use super::{AddressSpace, MmState};
use crate::addr::VirtAddr;
use crate::frame::{NodeId, Pfn};
use crate::ksm::KsmMigration;
use crate::pagetable::{PageTable, Pte};
use crate::vma::{Backing, VmFlags};

impl FrameOwner for KsmMigration<'_> {
    fn other_refs(&self) -> u64 {
        KsmMigration::other_refs(self)
    }

    fn replace(self, new: Pfn) -> Result<(), Pfn> {
        KsmMigration::replace(self, new);
        Ok(())
    }
}

impl<P: PageTable> AddressSpace<P> {
    /// Moves the KSM stable frame `pte` maps at `page` here to `node`, for every
    /// mapping of it in this space and (with `move_all`) in `sharers`. `None` if the
    /// frame is not a stable frame. The caller holds this tree's read side (`st`).
    pub(super) fn move_ksm(
        &self,
        st: &MmState,
        page: u64,
        pte: Pte,
        node: NodeId,
        move_all: bool,
        sharers: &[&Self],
    ) -> Option<PageStatus> {
        let frames = self.frames();
        let ksm = self.tunables().ksm();
        let lock = ksm.lock_for_migration(frames, pte.pfn)?;
        // KSM's reference and this mapping's: more is another mapping.
        if !move_all && frames.count(pte.pfn) > 2 {
            return Some(PageStatus::Shared);
        }
        let mut guards: Vec<ReadGuard<'_, MmState>> = Vec::new();
        let mut locked: Vec<Locked<'_, P>> = Vec::new();
        if guards.try_reserve(sharers.len()).is_err() {
            return Some(PageStatus::NoMemory);
        }
        let result = self.lock_sharers(
            st,
            move_all,
            sharers,
            &mut guards,
            &mut locked,
            &|space, tree, locked| space.lock_ksm_mappings(tree, pte.pfn, locked),
        );
        Some(finish_move(&locked, result, lock, node, page))
    }

    /// Locks every entry of this space's mergeable anonymous VMAs (the tree is `st`)
    /// that maps `pfn`, pushing them on `locked`.
    fn lock_ksm_mappings<'s>(
        &'s self,
        st: &MmState,
        pfn: Pfn,
        locked: &mut Vec<Locked<'s, P>>,
    ) -> Result<(), PageStatus> {
        let mut found: Vec<(u64, Pte)> = Vec::new();
        for v in st.tree.iter().filter(|v| {
            v.flags.contains(VmFlags::MERGEABLE)
                && matches!(v.backing, Backing::Anon)
                && v.hugetlb.is_none()
        }) {
            self.page_table().scan(
                VirtAddr::new(v.start),
                VirtAddr::new(v.end),
                &mut |va, pte| {
                    if pte.pfn == pfn && found.try_reserve(1).is_ok() {
                        found.push((va.as_u64(), pte));
                    }
                },
            );
        }
        for (va, pte) in found {
            self.lock_entry(va, pte, locked)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::addr::VirtAddr;
    use crate::aspace::migrate_status::PageStatus;
    use crate::aspace::tests::{anon_rw, harness_on, Harness};
    use crate::aspace::{AddressSpace, Advice};
    use crate::frame::{NodeId, Pfn, PAGE_SIZE};
    use crate::pagetable::{PageTable, PteFlags, SoftPageTable};

    type Space = AddressSpace<SoftPageTable>;

    fn mergeable(space: &Space, pages: u64, byte: u8) -> u64 {
        let a = anon_rw(space, pages);
        space
            .write_bytes(a, &alloc::vec![byte; (pages * PAGE_SIZE) as usize])
            .unwrap();
        space
            .madvise(a, pages * PAGE_SIZE, Advice::Mergeable)
            .unwrap();
        a
    }

    /// Two KSM passes over both spaces: equal pages end on one stable frame.
    fn merge(h: &Harness, spaces: &[&Space]) {
        let ksm = h.aspace.tunables().ksm().clone();
        for _ in 0..2 {
            ksm.begin_pass();
            for s in spaces {
                s.ksm_scan();
            }
            ksm.end_pass(&h.frames);
        }
    }

    fn pfn_at(space: &Space, va: u64) -> Pfn {
        space.page_table().query(VirtAddr::new(va)).unwrap().pfn
    }

    fn away_from(space: &Space, va: u64) -> NodeId {
        match space.page_node(va) {
            PageStatus::Node(NodeId(0)) => NodeId(1),
            _ => NodeId(0),
        }
    }

    #[test]
    fn a_stable_frame_moves_for_every_mapper_and_stays_merged() {
        let h = harness_on(2);
        let other = h.sibling();
        let a = mergeable(&h.aspace, 2, 0x5a);
        let b = mergeable(&other, 2, 0x5a);
        merge(&h, &[&h.aspace, &other]);
        let ksm = h.aspace.tunables().ksm().clone();
        let old = pfn_at(&h.aspace, a);
        assert!(ksm.is_stable(old));
        for (s, va) in [
            (&h.aspace, a + PAGE_SIZE),
            (&other, b),
            (&other, b + PAGE_SIZE),
        ] {
            assert_eq!(pfn_at(s, va), old, "merged");
        }
        let live = h.soft.live();
        let away = away_from(&h.aspace, a);
        assert_eq!(h.aspace.migrate_page(a, away, false), PageStatus::Shared);
        assert_eq!(
            h.aspace.migrate_page_among(a, away, &[]),
            PageStatus::Busy,
            "the other process's mappings were not named"
        );
        assert!(ksm.is_stable(old), "put back");
        {
            // While it moves, the frame is still stable (an unmerge finds it) but
            // takes no new merges.
            let lock = ksm.lock_for_migration(&h.frames, old).unwrap();
            assert!(ksm.is_stable(old));
            assert!(ksm.lock_for_migration(&h.frames, old).is_none());
            assert_eq!(ksm.stats(&h.frames).pages_shared, 1);
            drop(lock);
        }
        assert_eq!(
            h.aspace.migrate_page_among(a, away, &[&other]),
            PageStatus::Node(away)
        );
        let new = pfn_at(&h.aspace, a);
        assert_ne!(new, old);
        assert!(ksm.is_stable(new) && !ksm.is_stable(old));
        for (s, va) in [
            (&h.aspace, a + PAGE_SIZE),
            (&other, b),
            (&other, b + PAGE_SIZE),
        ] {
            assert_eq!(pfn_at(s, va), new, "every mapping follows");
            assert_eq!(s.page_node(va), PageStatus::Node(away));
            let pte = s.page_table().query(VirtAddr::new(va)).unwrap();
            assert!(!pte.flags.intersects(PteFlags::WRITE | PteFlags::BUSY));
        }
        assert_eq!(h.soft.live(), live, "the old frame was released");
        let s = ksm.stats(&h.frames);
        assert_eq!((s.pages_shared, s.pages_sharing), (1, 3));
        // Still copy-on-write: a write is the writer's alone.
        other.write_bytes(b, &[1u8; 4]).unwrap();
        let mut page = [0u8; 4096];
        h.aspace.read_bytes(a, &mut page).unwrap();
        assert!(page.iter().all(|x| *x == 0x5a));
        other.read_bytes(b, &mut page).unwrap();
        assert_eq!(&page[..5], &[1, 1, 1, 1, 0x5a]);
        h.aspace.check_invariants().unwrap();
        other.check_invariants().unwrap();
    }

    #[test]
    fn a_stable_frame_mapped_once_moves_alone_and_a_pin_keeps_it() {
        let h = harness_on(2);
        let a = mergeable(&h.aspace, 2, 0x11);
        merge(&h, &[&h.aspace]);
        let ksm = h.aspace.tunables().ksm().clone();
        let old = pfn_at(&h.aspace, a);
        assert_eq!(pfn_at(&h.aspace, a + PAGE_SIZE), old);
        // The second page gets its own copy: the stable frame is mapped once.
        h.aspace.write_bytes(a + PAGE_SIZE, &[2u8]).unwrap();
        let away = away_from(&h.aspace, a);
        h.frames.get(old);
        assert_eq!(h.aspace.migrate_page_among(a, away, &[]), PageStatus::Busy);
        assert_eq!(pfn_at(&h.aspace, a), old);
        assert!(
            ksm.is_stable(old),
            "a pinned frame stays stable where it is"
        );
        h.frames.put(old);
        assert_eq!(
            h.aspace.migrate_page(a, away, false),
            PageStatus::Node(away)
        );
        let new = pfn_at(&h.aspace, a);
        assert!(ksm.is_stable(new));
        let mut page = [0u8; 4096];
        h.aspace.read_bytes(a, &mut page).unwrap();
        assert!(page.iter().all(|x| *x == 0x11));
        // Unmerging after the move gives the mapping a private copy, and the stable
        // frame is freed.
        h.aspace.ksm_unmerge(0, u64::MAX);
        ksm.release_unused(&h.frames);
        assert!(!ksm.is_stable(pfn_at(&h.aspace, a)));
        assert_eq!(h.soft.live(), 2);
        h.aspace.check_invariants().unwrap();
    }

    /// An unmerge (`MADV_UNMERGEABLE`, `run` = 2) that meets a stable frame in the
    /// middle of a move waits for it and unmerges every entry, those the move locked
    /// included. The interleaving is fixed: the move's locks are taken here, the
    /// unmerge runs on another thread until it reports waiting, and only then is the
    /// move finished.
    #[test]
    fn an_unmerge_meeting_a_moving_stable_frame_waits_and_unmerges_every_entry() {
        use super::super::migrate_cache::finish_move;
        use core::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};
        let h = harness_on(2);
        let a = mergeable(&h.aspace, 3, 0x3c);
        // An unrelated, never merged page beside them keeps its frame.
        let lone = anon_rw(&h.aspace, 1);
        h.aspace.write_bytes(lone, &[0x77u8; 4096]).unwrap();
        merge(&h, &[&h.aspace]);
        let ksm = h.aspace.tunables().ksm().clone();
        let old = pfn_at(&h.aspace, a);
        for p in 1..3 {
            assert_eq!(pfn_at(&h.aspace, a + p * PAGE_SIZE), old, "merged");
        }
        let away = away_from(&h.aspace, a);
        let waits_before = ksm.unmerge_waits();
        let st = h.aspace.state().read();
        // The move's first steps, as `move_ksm` takes them: out of the stable tree,
        // every mapping locked.
        let lock = ksm.lock_for_migration(&h.frames, old).unwrap();
        let mut locked = alloc::vec::Vec::new();
        h.aspace.lock_ksm_mappings(&st, old, &mut locked).unwrap();
        assert_eq!(locked.len(), 3);
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let unmerger = s.spawn(|| {
                h.aspace.ksm_unmerge(0, u64::MAX);
                done.store(true, Ordering::SeqCst);
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            while ksm.unmerge_waits() == waits_before
                && !done.load(Ordering::SeqCst)
                && Instant::now() < deadline
            {
                std::thread::yield_now();
            }
            assert!(
                !done.load(Ordering::SeqCst),
                "the unmerge returned while the move held its entries"
            );
            assert!(ksm.unmerge_waits() > waits_before, "the unmerge waits");
            assert_eq!(
                finish_move(&locked, Ok(()), lock, away, a),
                PageStatus::Node(away)
            );
            unmerger.join().unwrap();
        });
        drop(st);
        assert!(done.load(Ordering::SeqCst));
        let mut page = [0u8; 4096];
        for p in 0..3 {
            let va = a + p * PAGE_SIZE;
            let pte = h.aspace.page_table().query(VirtAddr::new(va)).unwrap();
            assert!(!ksm.is_stable(pte.pfn), "page {p} still merged");
            assert!(pte.flags.contains(PteFlags::WRITE), "page {p} writable");
            assert!(!pte.flags.contains(PteFlags::BUSY));
            h.aspace.read_bytes(va, &mut page).unwrap();
            assert!(page.iter().all(|b| *b == 0x3c), "page {p} kept its bytes");
        }
        ksm.release_unused(&h.frames);
        assert_eq!(ksm.stats(&h.frames).pages_shared, 0);
        assert_eq!(
            h.soft.live(),
            4,
            "three private copies and the lone page, nothing leaked"
        );
        h.aspace.check_invariants().unwrap();
    }
}
