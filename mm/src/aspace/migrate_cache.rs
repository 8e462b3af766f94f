//! Page migration of page-cache pages (`move_pages`, `migrate_pages`,
//! `mbind(MPOL_MF_MOVE/MOVE_ALL)` on a shared or not-yet-written private mapping of a
//! tmpfs file, a memfd, shared anonymous memory or a disk file): the frame the file's
//! page cache holds moves to another node for the cache and every mapping at once.
//!
//! There is no reverse map. The page's cache slot is locked first
//! ([`PageCache::lock_for_migration`]): a fault, `read` or `write` that looks the page
//! up from then on waits (as on a fill) instead of taking a reference, so the frame's
//! count can only fall. The mappings are found as the hugetlb truncation finds them
//! (see `hugetlb_trunc.rs`): in every VMA of the address spaces named (this one and,
//! with `MPOL_MF_MOVE_ALL`, the caller's list of the others) that maps the file over
//! the page's index, at the file-index position. Each entry still mapping the frame is
//! locked (`BUSY`) and made read-only, and the TLBs are flushed: no CPU writes the
//! frame any more, a write faults and waits on the entry. The move goes on only when
//! those entries, the cache and the lock hold every reference the frame has; anything
//! else (a `read`/`write` copying, a pin, a mapping in an address space not named, a
//! swap-cache reference) puts everything back and answers `EBUSY`. Then the frame is
//! copied to the target node, the cache slot names the copy, each entry is switched to
//! it with its old permissions, and after a second flush the old frame is released. A
//! write racing the move lands before the entries are locked (and is copied) or after
//! they are switched (in the new frame): none is lost.
//!
//! Without `MPOL_MF_MOVE_ALL` a page mapped more than once answers `EACCES`, Linux's
//! answer for a page whose map count is above one; the map count is told from the
//! frame's references (the cache's and one per mapping), so a page another task is
//! copying at that moment answers `EACCES` too.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::lock::ReadGuard;
use super::migrate_status::PageStatus;
use super::{AddressSpace, MmState};
use crate::addr::VirtAddr;
use crate::frame::{NodeId, NodeMask, Pfn, Policy, PAGE_SIZE};
use crate::pagecache::{FileObject, MigrationLock};
use crate::pagetable::{PageTable, Pte, PteFlags};
use crate::tlb::TlbBatch;
use crate::vma::Vma;

/// One entry locked for the move: where, and what it held.
pub(super) struct Locked<'s, P: PageTable> {
    pub(super) space: &'s AddressSpace<P>,
    pub(super) va: u64,
    pub(super) old: Pte,
}

/// What holds a shared frame besides its mappings (the page cache's slot, KSM's
/// stable tree), locked for a move so that it hands out no new reference: dropping it
/// unused puts the old frame back.
pub(super) trait FrameOwner {
    /// The references on the frame besides the owner's own (mappings, copies, pins).
    fn other_refs(&self) -> u64;
    /// Ends the move: the owner holds `new` (its reference passes to the owner) and
    /// drops its references on the old frame. `Err(new)`, changing nothing, if the
    /// owner let go of the page meanwhile.
    fn replace(self, new: Pfn) -> Result<(), Pfn>;
}

impl FrameOwner for MigrationLock<'_> {
    fn other_refs(&self) -> u64 {
        MigrationLock::other_refs(self)
    }

    fn replace(self, new: Pfn) -> Result<(), Pfn> {
        MigrationLock::replace(self, new)
    }
}

/// The file page a VMA's entry at `page` maps from the page cache, if `pfn` is the
/// cache's frame for it (not a private copy, not hugetlb memory).
pub(super) fn cached_page_of(vma: &Vma, page: u64, pfn: Pfn) -> Option<(Arc<FileObject>, u64)> {
    let file = vma.file()?;
    if vma.hugetlb.is_some() || file.hugetlb().is_some() {
        return None;
    }
    let index = vma.file_index(page);
    (file.cache().peek(index) == Some(pfn)).then(|| (file.clone(), index))
}

impl<P: PageTable> AddressSpace<P> {
    /// Moves page `index` of `file`, cached in the frame `pte` maps at `page` here, to
    /// `node`, for the cache and every mapping of it in this space and (with
    /// `move_all`) in `sharers` (see the module). The caller holds this tree's read
    /// side (`st`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn move_cached(
        &self,
        st: &MmState,
        page: u64,
        pte: Pte,
        file: &FileObject,
        index: u64,
        node: NodeId,
        move_all: bool,
        sharers: &[&Self],
    ) -> PageStatus {
        let frames = self.frames();
        // The cache's reference and this mapping's: more is another mapping.
        if !move_all && frames.count(pte.pfn) > 2 {
            return PageStatus::Shared;
        }
        let Some(lock) = file.cache().lock_for_migration(index, pte.pfn) else {
            return PageStatus::Busy;
        };
        let mut guards: Vec<ReadGuard<'_, MmState>> = Vec::new();
        let mut locked: Vec<Locked<'_, P>> = Vec::new();
        if guards.try_reserve(sharers.len()).is_err() || locked.try_reserve(4).is_err() {
            return PageStatus::NoMemory;
        }
        let result = self.lock_sharers(
            st,
            move_all,
            sharers,
            &mut guards,
            &mut locked,
            &|space, tree, locked| space.lock_mappings(tree, file, index, pte.pfn, locked),
        );
        finish_move(&locked, result, lock, node, page)
    }

    /// Locks the entries `lock_in` finds in this space (its tree `st`) and, with
    /// `move_all`, in every other space of `sharers`, whose read guards go on `guards`
    /// (held until the move ends). Another tree is only tried: waiting for it with
    /// this one held could close a cycle with another mover (`Err(Busy)` then).
    #[allow(clippy::type_complexity)]
    pub(super) fn lock_sharers<'s>(
        &'s self,
        st: &MmState,
        move_all: bool,
        sharers: &[&'s Self],
        guards: &mut Vec<ReadGuard<'s, MmState>>,
        locked: &mut Vec<Locked<'s, P>>,
        lock_in: &dyn Fn(&'s Self, &MmState, &mut Vec<Locked<'s, P>>) -> Result<(), PageStatus>,
    ) -> Result<(), PageStatus> {
        let mut result = lock_in(self, st, locked);
        if move_all {
            for &other in sharers.iter().filter(|s| !core::ptr::eq(**s, self)) {
                if result.is_err() {
                    break;
                }
                let Some(theirs) = other.state().try_read() else {
                    return Err(PageStatus::Busy);
                };
                result = lock_in(other, &theirs, locked);
                guards.push(theirs);
            }
        }
        result
    }

    /// Locks (`BUSY`, read-only) every entry of this space mapping `pfn` as page
    /// `index` of `file` (the tree is `st`), pushing them on `locked`. `Err(Busy)` if
    /// one is locked by someone else or changes under the lock.
    pub(super) fn lock_mappings<'s>(
        &'s self,
        st: &MmState,
        file: &FileObject,
        index: u64,
        pfn: Pfn,
        locked: &mut Vec<Locked<'s, P>>,
    ) -> Result<(), PageStatus> {
        let pt = self.page_table();
        for v in st.tree.iter() {
            let Some(f) = v.file() else { continue };
            if !core::ptr::eq(Arc::as_ptr(f), file) || index < v.pgoff || v.hugetlb.is_some() {
                continue;
            }
            let Some(va) = (index - v.pgoff)
                .checked_mul(PAGE_SIZE)
                .and_then(|off| v.start.checked_add(off))
                .filter(|va| *va < v.end)
            else {
                continue;
            };
            if pt.query_huge(VirtAddr::new(va)).is_some() {
                continue;
            }
            let Some(old) = pt.query(VirtAddr::new(va)) else {
                continue;
            };
            if old.pfn == pfn {
                self.lock_entry(va, old, locked)?;
            }
        }
        Ok(())
    }

    /// Locks the entry `old` at `va` (`BUSY`, read-only) and pushes it on `locked`.
    pub(super) fn lock_entry<'s>(
        &'s self,
        va: u64,
        old: Pte,
        locked: &mut Vec<Locked<'s, P>>,
    ) -> Result<(), PageStatus> {
        if old.flags.contains(PteFlags::BUSY) {
            return Err(PageStatus::Busy);
        }
        if locked.try_reserve(1).is_err() {
            return Err(PageStatus::NoMemory);
        }
        let busy = old.with_flags((old.flags | PteFlags::BUSY) - PteFlags::WRITE);
        if self
            .page_table()
            .replace(VirtAddr::new(va), old, busy)
            .is_err()
        {
            return Err(PageStatus::Busy);
        }
        locked.push(Locked {
            space: self,
            va,
            old,
        });
        Ok(())
    }
}

/// Moves the frame `owner` holds once `locked` holds its mappings (`result`: whether
/// they were all locked), or puts everything back; unlocks the entries either way.
pub(super) fn finish_move<P: PageTable, O: FrameOwner>(
    locked: &[Locked<'_, P>],
    result: Result<(), PageStatus>,
    owner: O,
    node: NodeId,
    hint_va: u64,
) -> PageStatus {
    let status = match result {
        Ok(()) => move_locked_mappings(locked, owner, node, hint_va),
        Err(status) => Err(status),
    };
    match status {
        Ok(()) => PageStatus::Node(node),
        Err(status) => {
            for l in locked {
                l.space.unlock_entry(l.va, l.old);
            }
            status
        }
    }
}

/// Flushes the TLB entries of every locked entry, one batch per address space.
fn flush_all<P: PageTable>(locked: &[Locked<'_, P>]) {
    let mut done: Vec<*const AddressSpace<P>> = Vec::new();
    for l in locked {
        let space: *const AddressSpace<P> = l.space;
        if done.contains(&space) {
            continue;
        }
        let mut batch = TlbBatch::new();
        for m in locked.iter().filter(|m| core::ptr::eq(m.space, space)) {
            batch.add_page(VirtAddr::new(m.va));
        }
        batch.flush(&**l.space.tlb());
        if done.try_reserve(1).is_ok() {
            done.push(space);
        }
    }
}

/// The move once every mapping is locked: checks the frame's references, copies it
/// to `node`, switches the owner and each entry, releases the old frame. On `Err` the
/// owner is back as it was and the caller unlocks the entries.
fn move_locked_mappings<P: PageTable, O: FrameOwner>(
    locked: &[Locked<'_, P>],
    lock: O,
    node: NodeId,
    hint_va: u64,
) -> Result<(), PageStatus> {
    let Some(frames) = locked.first().map(|l| l.space.frames()) else {
        // Mapped nowhere now (unmapped since it was looked up): nothing to move it for.
        return Err(PageStatus::Busy);
    };
    // Read-only everywhere: nothing writes the frame while it is copied.
    flush_all(locked);
    if lock.other_refs() != locked.len() as u64 {
        return Err(PageStatus::Busy);
    }
    let old = locked[0].old.pfn;
    let new = match frames.alloc_copy_placed(
        old,
        VirtAddr::new(hint_va),
        Policy::Bind(NodeMask::single(node)),
    ) {
        Ok(pfn) if frames.node_of(pfn) == Some(node) => pfn,
        Ok(pfn) => {
            frames.put(pfn);
            return Err(PageStatus::Busy);
        }
        Err(_) => return Err(PageStatus::NoMemory),
    };
    for _ in locked {
        frames.get(new);
    }
    if let Err(new) = lock.replace(new) {
        // Truncated or punched meanwhile: the mappings keep the old frame.
        for _ in 0..=locked.len() {
            frames.put(new);
        }
        return Err(PageStatus::Busy);
    }
    for l in locked {
        // The hardware may have set ACCESSED meanwhile; keep it, with the old
        // permissions (and dirtiness).
        let hw = l
            .space
            .page_table()
            .query(VirtAddr::new(l.va))
            .map_or(PteFlags::empty(), |cur| cur.flags & PteFlags::HW);
        l.space
            .unlock_entry(l.va, Pte::new(new, (l.old.flags | hw) - PteFlags::BUSY));
    }
    // Readers may still hold the old translation.
    flush_all(locked);
    for _ in locked {
        frames.put(old);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use crate::addr::VirtAddr;
    use crate::aspace::migrate_status::PageStatus;
    use crate::aspace::tests::{file_bytes, fork, harness_on, map_file, Harness};
    use crate::aspace::AddressSpace;
    use crate::fault::FaultError;
    use crate::frame::{NodeId, Pfn, PAGE_SIZE};
    use crate::pagecache::{FileObject, PageError};
    use crate::pagetable::{PageTable, PteFlags, SoftPageTable};
    use crate::vma::{MapFlags, Prot};

    type Space = AddressSpace<SoftPageTable>;

    fn memfd(h: &Harness, pages: u64) -> Arc<FileObject> {
        let f = FileObject::new_memfd("t", h.frames.clone());
        f.set_size(pages * PAGE_SIZE);
        f
    }

    fn shared(space: &Space, file: &Arc<FileObject>, pages: u64) -> u64 {
        let rw = Prot::READ | Prot::WRITE;
        map_file(space, file, pages, rw, MapFlags::SHARED, 0)
    }

    fn other(status: PageStatus) -> NodeId {
        match status {
            PageStatus::Node(NodeId(0)) => NodeId(1),
            _ => NodeId(0),
        }
    }

    fn pfn_at(space: &Space, va: u64) -> Option<Pfn> {
        space.page_table().query(VirtAddr::new(va)).map(|p| p.pfn)
    }

    /// Writes as a user thread would, waiting out a page that is being moved.
    fn write_waiting(space: &Space, va: u64, data: &[u8]) {
        loop {
            match space.write_bytes(va, data) {
                Ok(()) => return,
                Err(FaultError::NeedsWait(w)) => {
                    while !w.is_ready() {
                        core::hint::spin_loop();
                    }
                }
                Err(e) => panic!("write failed: {e:?}"),
            }
        }
    }

    #[test]
    fn a_memfd_page_moves_for_every_mapper_and_the_cache() {
        let h = harness_on(2);
        let file = memfd(&h, 2);
        let a = shared(&h.aspace, &file, 2);
        h.aspace.write_bytes(a, &[4u8; 2 * 4096]).unwrap();
        // A fork child and an unrelated process (at another address) map it too.
        let child = fork(&h);
        let stranger = h.sibling();
        let b = shared(&stranger, &file, 2);
        let mut byte = [0u8; 1];
        stranger.read_bytes(b, &mut byte).unwrap();
        child.read_bytes(a, &mut byte).unwrap();
        let away = other(h.aspace.page_node(a));
        let second = h.aspace.page_node(a + 4096);
        let old = file.cache().peek(0).unwrap();
        let live = h.soft.live();
        // Mapped three times: EACCES without MOVE_ALL, EBUSY when a mapper is unnamed.
        assert_eq!(h.aspace.migrate_page(a, away, false), PageStatus::Shared);
        assert_eq!(
            h.aspace.migrate_page_among(a, away, &[&child]),
            PageStatus::Busy
        );
        assert_eq!(file.cache().peek(0), Some(old), "nothing changed");
        assert_eq!(
            h.aspace
                .migrate_page_among(a, away, &[&h.aspace, &child, &stranger]),
            PageStatus::Node(away)
        );
        let new = file.cache().peek(0).unwrap();
        assert_ne!(new, old);
        assert_eq!(
            h.frames.node_of(new),
            Some(away),
            "the cache holds the copy"
        );
        for (space, va) in [(&h.aspace, a), (&child, a), (&stranger, b)] {
            assert_eq!(space.page_node(va), PageStatus::Node(away));
            assert_eq!(pfn_at(space, va), Some(new), "remapped, not unmapped");
        }
        assert_eq!(h.soft.live(), live, "the old frame was released");
        // Still one shared page, writable where it was, with the bytes it had.
        stranger.write_bytes(b + 100, &[9u8; 4]).unwrap();
        let mut page = [0u8; 4096];
        child.read_bytes(a, &mut page).unwrap();
        assert_eq!(&page[100..104], &[9u8; 4]);
        assert!(page[..100].iter().chain(&page[104..]).all(|x| *x == 4));
        let mut via_read = [0u8; 4];
        file.read_at(100, &mut via_read).unwrap();
        assert_eq!(via_read, [9u8; 4]);
        assert_eq!(pfn_at(&h.aspace, a), Some(new), "no copy-on-write happened");
        // The other page never moved.
        assert_eq!(h.aspace.page_node(a + 4096), second);
        for space in [&h.aspace, &child, &stranger] {
            space.check_invariants().unwrap();
        }
        drop((child, stranger));
        h.aspace.munmap(a, 2 * 4096).unwrap();
        drop(file);
        assert_eq!(h.soft.live(), 0, "every frame released once");
    }

    #[test]
    fn a_page_mapped_once_moves_without_move_all() {
        let h = harness_on(2);
        // Shared memory mapped once, and a disk-like file mapped private and read.
        let shm = memfd(&h, 1);
        let s = shared(&h.aspace, &shm, 1);
        h.aspace.write_bytes(s, b"shm").unwrap();
        let data = file_bytes(2 * 4096);
        let reg = h.file(&data);
        let p = map_file(
            &h.aspace,
            &reg,
            2,
            Prot::READ | Prot::WRITE,
            MapFlags::PRIVATE,
            0,
        );
        let mut page = [0u8; 4096];
        h.aspace.read_bytes(p, &mut page).unwrap();
        for (va, file) in [(s, &shm), (p, &reg)] {
            let away = other(h.aspace.page_node(va));
            assert_eq!(
                h.aspace.migrate_page(va, away, false),
                PageStatus::Node(away)
            );
            assert_eq!(h.aspace.page_node(va), PageStatus::Node(away));
            assert_eq!(file.cache().peek(0), pfn_at(&h.aspace, va));
        }
        let mut word = [0u8; 3];
        h.aspace.read_bytes(s, &mut word).unwrap();
        assert_eq!(&word, b"shm");
        h.aspace.read_bytes(p, &mut page).unwrap();
        assert_eq!(&page[..], &data[..4096]);
        // The private mapping still copies on write; the file keeps its bytes.
        let cached = pfn_at(&h.aspace, p);
        let flags = h.aspace.page_table().query(VirtAddr::new(p)).unwrap().flags;
        assert!(!flags.contains(PteFlags::WRITE), "still copy-on-write");
        h.aspace.write_bytes(p, b"mine").unwrap();
        assert_ne!(pfn_at(&h.aspace, p), cached);
        let mut head = [0u8; 4];
        reg.read_at(0, &mut head).unwrap();
        assert_eq!(&head, &data[..4]);
        // A private copy moves as anonymous memory, alone.
        let away = other(h.aspace.page_node(p));
        assert_eq!(
            h.aspace.migrate_page(p, away, false),
            PageStatus::Node(away)
        );
        assert_eq!(reg.cache().peek(0), cached, "the cache keeps its page");
        h.aspace.check_invariants().unwrap();
    }

    /// A disk file's pages: page `i` holds bytes `i + 1`, read by a task run at once.
    struct PatternDisk;

    impl crate::pagecache::PageReader for PatternDisk {
        fn run_pages(&self, _first: u64, max: u64) -> u64 {
            max.min(2)
        }

        fn read_pages(&self, first: u64, count: u64) -> crate::pagecache::PagesFuture {
            let bytes: alloc::vec::Vec<u8> = (0..count * PAGE_SIZE)
                .map(|i| (first + i / PAGE_SIZE + 1) as u8)
                .collect();
            alloc::boxed::Box::pin(async move { Ok(bytes.into_boxed_slice()) })
        }
    }

    struct RunNow;

    impl crate::swap::Spawner for RunNow {
        fn spawn(
            &self,
            task: core::pin::Pin<alloc::boxed::Box<dyn core::future::Future<Output = ()> + Send>>,
        ) {
            crate::aspace::tests::block_on(task);
        }
    }

    #[test]
    fn a_disk_file_page_moves_for_private_and_shared_readers() {
        let h = harness_on(2);
        let info = crate::pagecache::FileInfo {
            path: alloc::string::String::from("/mnt/f"),
            dev_major: 254,
            dev_minor: 16,
            inode: 12,
        };
        let file = FileObject::new_async(
            crate::pagecache::FileId(12),
            info,
            3 * PAGE_SIZE,
            Arc::new(PatternDisk),
            Arc::new(RunNow),
            h.frames.clone(),
        );
        let p = map_file(&h.aspace, &file, 3, Prot::READ, MapFlags::PRIVATE, 0);
        let reader = h.sibling();
        let s = map_file(&reader, &file, 3, Prot::READ, MapFlags::SHARED, 0);
        let mut page = [0u8; 4096];
        let read = |space: &Space, va: u64, page: &mut [u8; 4096]| loop {
            match space.read_bytes(va, page) {
                Ok(()) => return,
                Err(FaultError::NeedsWait(w)) => assert!(w.is_ready(), "the read ran at once"),
                Err(e) => panic!("read failed: {e:?}"),
            }
        };
        read(&h.aspace, p + 4096, &mut page);
        read(&reader, s + 4096, &mut page);
        let old = file.cache().peek(1).unwrap();
        assert_eq!(pfn_at(&h.aspace, p + 4096), Some(old));
        assert_eq!(pfn_at(&reader, s + 4096), Some(old));
        let away = other(h.aspace.page_node(p + 4096));
        assert_eq!(
            h.aspace.migrate_page(p + 4096, away, false),
            PageStatus::Shared
        );
        assert_eq!(
            h.aspace.migrate_page_among(p + 4096, away, &[&reader]),
            PageStatus::Node(away)
        );
        let new = file.cache().peek(1).unwrap();
        assert_eq!(h.frames.node_of(new), Some(away));
        for (space, va) in [(&h.aspace, p + 4096), (&reader, s + 4096)] {
            assert_eq!(pfn_at(space, va), Some(new));
            read(space, va, &mut page);
            assert!(page.iter().all(|x| *x == 2), "the disk's bytes");
        }
        // Once unmapped, the moved page is a clean cached page reclaim can drop.
        drop(reader);
        h.aspace.munmap(p, 3 * PAGE_SIZE).unwrap();
        let cached = file.cache().len();
        assert_eq!(file.drop_clean(), cached);
        assert_eq!(h.soft.live(), 0);
    }

    #[test]
    fn migrate_pages_moves_a_shared_page_only_with_move_all() {
        use crate::frame::NodeMask;
        let h = harness_on(2);
        let file = memfd(&h, 1);
        let a = shared(&h.aspace, &file, 1);
        h.aspace.write_bytes(a, &[6u8; 8]).unwrap();
        let here = h.aspace.page_node(a);
        let PageStatus::Node(from) = here else {
            panic!("resident: {here:?}")
        };
        let to = other(here);
        let child = fork(&h);
        let mut byte = [0u8; 1];
        child.read_bytes(a, &mut byte).unwrap();
        let (from, to_mask) = (NodeMask::single(from), NodeMask::single(to));
        assert_eq!(h.aspace.migrate_nodes(from, to_mask), 1, "shared: left");
        assert_eq!(h.aspace.page_node(a), here);
        assert_eq!(
            h.aspace.migrate_nodes_among(from, to_mask, true, &[&child]),
            0
        );
        assert_eq!(h.aspace.page_node(a), PageStatus::Node(to));
        assert_eq!(child.page_node(a), PageStatus::Node(to));
        child.read_bytes(a, &mut byte).unwrap();
        assert_eq!(byte, [6]);
    }

    #[test]
    fn an_extra_reference_keeps_the_page_where_it_is() {
        let h = harness_on(2);
        let file = memfd(&h, 1);
        let a = shared(&h.aspace, &file, 1);
        h.aspace.write_bytes(a, &[1u8; 16]).unwrap();
        let old = file.cache().peek(0).unwrap();
        let before = h.aspace.page_table().query(VirtAddr::new(a)).unwrap();
        let away = other(h.aspace.page_node(a));
        // A pin (a read or write copying, an I/O into it) holds the frame.
        h.frames.get(old);
        assert_eq!(h.aspace.migrate_page_among(a, away, &[]), PageStatus::Busy);
        assert_eq!(file.cache().peek(0), Some(old), "the cache keeps the frame");
        let after = h.aspace.page_table().query(VirtAddr::new(a)).unwrap();
        assert_eq!(after.pfn, old);
        assert_eq!(after.flags - PteFlags::HW, before.flags - PteFlags::HW);
        assert!(after.flags.contains(PteFlags::WRITE), "writable again");
        // Lookups are not left waiting.
        assert!(file.cache().is_ready(0));
        file.write_at(0, &[2u8; 4]).unwrap();
        h.frames.put(old);
        assert_eq!(
            h.aspace.migrate_page_among(a, away, &[]),
            PageStatus::Node(away)
        );
        let mut got = [0u8; 16];
        h.aspace.read_bytes(a, &mut got).unwrap();
        assert_eq!(&got[..4], &[2u8; 4]);
        assert!(got[4..].iter().all(|x| *x == 1));
    }

    #[test]
    fn lookups_wait_while_the_slot_is_locked() {
        let h = harness_on(2);
        let file = memfd(&h, 2);
        file.write_at(0, b"abcdef").unwrap();
        let old = file.cache().peek(0).unwrap();
        let lock = file.cache().lock_for_migration(0, old).unwrap();
        assert!(file.cache().lock_for_migration(0, old).is_none());
        assert!(matches!(file.write_at(0, b"x"), Err(PageError::Wait(_))));
        let Err(PageError::Wait(wait)) = file.get_page(0) else {
            panic!("a lookup must wait")
        };
        assert!(!wait.is_ready());
        assert_eq!(file.cache().peek(0), Some(old));
        assert_eq!(file.cache().len(), 1);
        // A shrink into the page cuts the copy too.
        file.set_size(3);
        let new = h.frames.alloc_copy(old, VirtAddr::ZERO).unwrap();
        lock.replace(new)
            .unwrap_or_else(|_| panic!("the slot is still locked"));
        assert!(wait.is_ready());
        assert_eq!(file.cache().peek(0), Some(new));
        file.set_size(6);
        let mut got = [0xffu8; 6];
        file.read_at(0, &mut got).unwrap();
        assert_eq!(&got, b"abc\0\0\0");
        assert_eq!(h.soft.live(), 1, "the old frame was released");
        // A truncation meanwhile drops the page; the move then leaves it.
        let lock = file.cache().lock_for_migration(0, new).unwrap();
        file.set_size(0);
        let copy = h.frames.alloc_copy(new, VirtAddr::ZERO).unwrap();
        let back = lock.replace(copy).unwrap_err();
        h.frames.put(back);
        assert_eq!(file.cache().len(), 0);
        assert_eq!(h.soft.live(), 0);
    }

    #[test]
    fn a_writer_racing_moves_of_a_shared_page_loses_nothing() {
        let h = harness_on(2);
        let file = memfd(&h, 2);
        let a = shared(&h.aspace, &file, 2);
        h.aspace.write_bytes(a, &0u64.to_le_bytes()).unwrap();
        h.aspace.write_bytes(a + 4096, &[0u8; 64]).unwrap();
        let child = fork(&h);
        let done = AtomicBool::new(false);
        let moved = AtomicU32::new(0);
        // The child writes until the pages have moved 2000 times under it.
        let last = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let mut i = 0u64;
                while (moved.load(Ordering::SeqCst) < 2000 || i < 20_000) && i < 5_000_000 {
                    i += 1;
                    write_waiting(&child, a, &i.to_le_bytes());
                    write_waiting(&child, a + 4096 + 8 * (i % 8), &i.to_le_bytes());
                    // write(2) on the memfd too, alternating between the pages.
                    let at = (i % 2) * 4096 + 512 + 8 * (i % 16);
                    while let Err(PageError::Wait(w)) = file.write_at(at, &i.to_le_bytes()) {
                        while !w.is_ready() {
                            core::hint::spin_loop();
                        }
                    }
                }
                done.store(true, Ordering::SeqCst);
                i
            });
            let mut node = 0u32;
            while !done.load(Ordering::SeqCst) {
                node ^= 1;
                for page in [a, a + 4096] {
                    if h.aspace.migrate_page_among(page, NodeId(node), &[&child])
                        == PageStatus::Node(NodeId(node))
                    {
                        moved.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            writer.join().unwrap()
        });
        assert!(
            moved.load(Ordering::SeqCst) >= 2000,
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
        for k in 0..16u64 {
            file.read_at((k % 2) * 4096 + 512 + 8 * k, &mut word)
                .unwrap();
            let want = (1..=last).rev().find(|i| i % 16 == k).unwrap();
            assert_eq!(u64::from_le_bytes(word), want, "a write(2) was lost");
        }
        for va in [a, a + 4096] {
            let cached = file.cache().peek((va - a) / 4096);
            assert_eq!(pfn_at(&h.aspace, va), cached);
            assert!(pfn_at(&child, va).is_none_or(|p| Some(p) == cached));
        }
        assert_eq!(h.soft.live(), 2, "every replaced frame was released once");
        h.aspace.check_invariants().unwrap();
        child.check_invariants().unwrap();
    }
}
