//! KSM (kernel samepage merging): private anonymous pages of `MADV_MERGEABLE` VMAs
//! whose contents are equal are merged into one read-only frame, shared
//! copy-on-write. Dormant by default (`/sys/kernel/mm/ksm/run` = 0): merging is a
//! timing side channel (a write to a merged page takes a copy-on-write fault), so a
//! deployment opts in.
//!
//! The scan ([`AddressSpace::ksm_scan`](crate::aspace::AddressSpace::ksm_scan)) pins
//! and write-protects candidate pages, then hashes each and either maps it onto a
//! *stable* frame with the same contents (compared byte for byte) or, the second time
//! a content hash is seen in a pass, makes the page itself a stable frame. Stable
//! frames hold one reference of KSM's own, so they always have two or more owners
//! while mapped: a write to one copies it, never reuses it, and a stable frame's
//! contents never change. A stable frame nobody maps any more is freed at the end of
//! a pass. Simplifications against Linux: one pass scans every mergeable page (no
//! `pages_to_scan` budget), the "unstable tree" is a set of content hashes, and pages
//! shared by fork are left alone.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::frame::Pfn;
use crate::phys::{Frames, PAGE_BYTES};

/// `/sys/kernel/mm/ksm` figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KsmStats {
    /// `pages_shared`: stable frames in use.
    pub pages_shared: u64,
    /// `pages_sharing`: further mappings of them (the pages saved).
    pub pages_sharing: u64,
    /// `full_scans`: passes completed.
    pub full_scans: u64,
}

#[derive(Default)]
struct Trees {
    /// Content hash → stable frames with that hash.
    stable: BTreeMap<u64, Vec<Pfn>>,
    /// Content hashes met once in the current pass.
    seen: BTreeSet<u64>,
    /// Stable frames out of `stable` while they move to another node: still stable
    /// (an unmerge finds them), but no page merges into them.
    migrating: Vec<Pfn>,
}

/// The system's KSM state, shared by every address space.
#[derive(Default)]
pub struct Ksm {
    trees: Mutex<Trees>,
    full_scans: AtomicU64,
    /// Entries an unmerge found locked or changing and waited for.
    unmerge_waits: AtomicU64,
}

/// FNV-1a over a page (a cheap hash; equality is always checked byte for byte).
pub(crate) fn page_hash(page: &[u8]) -> u64 {
    page.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What the scan does with one pinned, write-protected page.
pub(crate) enum Verdict {
    /// Map the page onto this stable frame (a reference is taken for the mapping).
    MergeInto(Pfn),
    /// The page's frame became a stable frame (KSM keeps the scan's pin).
    Promoted,
    /// Nothing to do (the scan drops its pin).
    Keep,
}

impl Ksm {
    /// Empty trees.
    pub fn new() -> Ksm {
        Ksm::default()
    }

    /// Starts a pass over every address space.
    pub fn begin_pass(&self) {
        self.trees.lock().seen.clear();
    }

    /// Ends a pass: frees stable frames nobody maps any more and counts the pass.
    pub fn end_pass(&self, frames: &Frames) {
        self.release_unused(frames);
        self.full_scans.fetch_add(1, Ordering::Relaxed);
    }

    /// Frees the stable frames nobody maps any more (after an unmerge, or a pass).
    pub fn release_unused(&self, frames: &Frames) {
        let unused: Vec<Pfn> = {
            let mut t = self.trees.lock();
            let mut out = Vec::new();
            t.stable.retain(|_, list| {
                list.retain(|&k| {
                    let idle = frames.count(k) == 1;
                    if idle {
                        out.push(k);
                    }
                    !idle
                });
                !list.is_empty()
            });
            out
        };
        for k in unused {
            frames.put(k);
        }
    }

    /// Decides for a pinned page `pfn` (write-protected everywhere, so its contents are
    /// fixed) holding `contents`.
    pub(crate) fn classify(&self, frames: &Frames, pfn: Pfn, contents: &[u8]) -> Verdict {
        let hash = page_hash(contents);
        let mut t = self.trees.lock();
        if let Some(list) = t.stable.get(&hash) {
            let mut other = alloc::vec![0u8; PAGE_BYTES];
            for &k in list {
                if k == pfn {
                    return Verdict::Keep;
                }
                frames.read(k, 0, &mut other);
                if other == contents {
                    frames.get(k);
                    return Verdict::MergeInto(k);
                }
            }
        }
        if t.seen.insert(hash) {
            return Verdict::Keep;
        }
        t.stable.entry(hash).or_default().push(pfn);
        Verdict::Promoted
    }

    /// Whether `pfn` is a stable frame.
    pub fn is_stable(&self, pfn: Pfn) -> bool {
        let t = self.trees.lock();
        t.migrating.contains(&pfn) || t.stable.values().any(|l| l.contains(&pfn))
    }

    /// An unmerge met an entry in flight (locked for a move or a copy) and waits for it.
    pub(crate) fn note_unmerge_wait(&self) {
        self.unmerge_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// Entries unmerges have waited for so far.
    pub fn unmerge_waits(&self) -> u64 {
        self.unmerge_waits.load(Ordering::Relaxed)
    }

    /// Every stable frame (those moving to another node too), sorted: for callers
    /// that ask [`is_stable`](Self::is_stable) of many frames at once. `None` if the
    /// list cannot be allocated.
    pub fn stable_frames(&self) -> Option<Vec<Pfn>> {
        let t = self.trees.lock();
        let n = t.stable.values().map(Vec::len).sum::<usize>() + t.migrating.len();
        let mut out = Vec::new();
        out.try_reserve_exact(n).ok()?;
        out.extend(t.stable.values().flatten().chain(&t.migrating).copied());
        drop(t);
        out.sort_unstable();
        Some(out)
    }

    /// The figures, counting mappings from the frames' reference counts.
    pub fn stats(&self, frames: &Frames) -> KsmStats {
        let t = self.trees.lock();
        let mut s = KsmStats {
            full_scans: self.full_scans.load(Ordering::Relaxed),
            ..KsmStats::default()
        };
        for &k in t.stable.values().flatten().chain(&t.migrating) {
            let mappings = u64::from(frames.count(k)).saturating_sub(1);
            if mappings > 0 {
                s.pages_shared += 1;
                s.pages_sharing += mappings - 1;
            }
        }
        s
    }
}

/// Page migration of stable frames (`mm::aspace::migrate_ksm`): a stable frame is
/// taken out of the stable tree while it moves, so no page merges into it.
impl Ksm {
    /// Takes the stable frame `pfn` out of the stable tree for a move: no scan merges
    /// a page into it from now on, so its count can only fall (KSM's reference passes
    /// to the lock); it is still stable to an unmerge. `None` if `pfn` is not a stable
    /// frame in the tree.
    pub(crate) fn lock_for_migration<'a>(
        &'a self,
        frames: &'a Frames,
        pfn: Pfn,
    ) -> Option<KsmMigration<'a>> {
        let mut t = self.trees.lock();
        let hash = t
            .stable
            .iter()
            .find(|(_, list)| list.contains(&pfn))
            .map(|(h, _)| *h)?;
        if t.migrating.try_reserve(1).is_err() {
            return None;
        }
        if let Some(list) = t.stable.get_mut(&hash) {
            list.retain(|&k| k != pfn);
            if list.is_empty() {
                t.stable.remove(&hash);
            }
        }
        t.migrating.push(pfn);
        Some(KsmMigration {
            ksm: self,
            frames,
            hash,
            pfn,
            ended: false,
        })
    }

    /// Ends the move of stable frame `old`: `pfn` (contents hashing to `hash`; `old`
    /// itself when the move was given up) goes back in the stable tree.
    fn end_migration(&self, old: Pfn, hash: u64, pfn: Pfn) {
        let mut t = self.trees.lock();
        t.migrating.retain(|&k| k != old);
        t.stable.entry(hash).or_default().push(pfn);
    }
}

/// A stable frame out of the stable tree while it moves
/// ([`Ksm::lock_for_migration`]); dropped unused, it goes back.
pub(crate) struct KsmMigration<'a> {
    ksm: &'a Ksm,
    frames: &'a Frames,
    hash: u64,
    pfn: Pfn,
    ended: bool,
}

impl KsmMigration<'_> {
    /// The references on the frame besides KSM's (its mappings, pins).
    pub(crate) fn other_refs(&self) -> u64 {
        u64::from(self.frames.count(self.pfn)).saturating_sub(1)
    }

    /// Ends the move: `new` (same contents; its reference becomes KSM's) is the
    /// stable frame instead, and KSM's reference on the old one is dropped.
    pub(crate) fn replace(mut self, new: Pfn) {
        self.ksm.end_migration(self.pfn, self.hash, new);
        self.ended = true;
        self.frames.put(self.pfn);
    }
}

impl Drop for KsmMigration<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.ksm.end_migration(self.pfn, self.hash, self.pfn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{anon_rw, fork, harness};
    use crate::aspace::Advice;
    use crate::fault::{Access, FaultResolved};
    use crate::frame::PAGE_SIZE;
    use crate::pagetable::PageTable;

    fn fill(h: &crate::aspace::tests::Harness, addr: u64, pages: u64, byte: impl Fn(u64) -> u8) {
        for p in 0..pages {
            h.aspace
                .write_bytes(addr + p * PAGE_SIZE, &[byte(p); PAGE_SIZE as usize])
                .unwrap();
        }
    }

    fn pass(h: &crate::aspace::tests::Harness, ksm: &Ksm) {
        ksm.begin_pass();
        h.aspace.ksm_scan();
        ksm.end_pass(&h.frames);
    }

    #[test]
    fn equal_pages_merge_and_writes_copy() {
        let h = harness();
        let ksm = h.aspace.tunables().ksm().clone();
        let a = anon_rw(&h.aspace, 6);
        // Pages 0-3 hold 7s, 4 holds 9s, 5 holds 7s but is not mergeable.
        fill(&h, a, 6, |p| if p == 4 { 9 } else { 7 });
        h.aspace
            .madvise(a, 5 * PAGE_SIZE, Advice::Mergeable)
            .unwrap();
        let live = h.soft.live();
        pass(&h, &ksm);
        pass(&h, &ksm);
        let s = ksm.stats(&h.frames);
        assert_eq!((s.pages_shared, s.pages_sharing, s.full_scans), (1, 3, 2));
        assert_eq!(h.soft.live(), live - 3, "three frames freed");
        let pfn = |va: u64| h.aspace.page_table().query(VirtAddr::new(va)).unwrap().pfn;
        assert_eq!(pfn(a), pfn(a + 3 * PAGE_SIZE));
        assert_ne!(pfn(a), pfn(a + 5 * PAGE_SIZE), "not mergeable");
        // A write copies: the others keep the old contents.
        assert_eq!(
            h.aspace.fault(a + PAGE_SIZE, Access::Write, true).unwrap(),
            FaultResolved::CowCopied
        );
        h.aspace.write_bytes(a + PAGE_SIZE, &[1]).unwrap();
        let mut b = [0u8; 2];
        h.aspace.read_bytes(a, &mut b).unwrap();
        assert_eq!(b, [7, 7]);
        h.aspace.read_bytes(a + PAGE_SIZE, &mut b).unwrap();
        assert_eq!(b, [1, 7]);
        assert_eq!(ksm.stats(&h.frames).pages_sharing, 2);
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn unmerge_gives_every_mapping_its_own_frame_and_frees_stable_frames() {
        let h = harness();
        let ksm = h.aspace.tunables().ksm().clone();
        let a = anon_rw(&h.aspace, 4);
        fill(&h, a, 4, |_| 3);
        h.aspace
            .madvise(a, 4 * PAGE_SIZE, Advice::Mergeable)
            .unwrap();
        let live = h.soft.live();
        pass(&h, &ksm);
        pass(&h, &ksm);
        assert_eq!(h.soft.live(), live - 3);
        h.aspace.ksm_unmerge(0, u64::MAX);
        ksm.release_unused(&h.frames);
        assert_eq!(
            ksm.stats(&h.frames),
            KsmStats {
                full_scans: 2,
                ..KsmStats::default()
            }
        );
        assert_eq!(
            h.soft.live(),
            live,
            "four private frames again, the stable one freed"
        );
        let mut b = [0u8; 1];
        for p in 0..4 {
            h.aspace.read_bytes(a + p * PAGE_SIZE, &mut b).unwrap();
            assert_eq!(b, [3]);
        }
        // Writable at once: no fault is needed to write.
        h.aspace.write_bytes(a, &[4]).unwrap();
    }

    #[test]
    fn unmergeable_range_and_forked_pages() {
        let h = harness();
        let ksm = h.aspace.tunables().ksm().clone();
        let a = anon_rw(&h.aspace, 4);
        fill(&h, a, 4, |_| 5);
        h.aspace
            .madvise(a, 4 * PAGE_SIZE, Advice::Mergeable)
            .unwrap();
        let child = fork(&h);
        pass(&h, &ksm);
        assert_eq!(
            ksm.stats(&h.frames).pages_shared,
            0,
            "fork-shared pages are left alone"
        );
        drop(child);
        pass(&h, &ksm);
        pass(&h, &ksm);
        assert_eq!(ksm.stats(&h.frames).pages_sharing, 3);
        h.aspace
            .madvise(a, 2 * PAGE_SIZE, Advice::Unmergeable)
            .unwrap();
        assert_eq!(ksm.stats(&h.frames).pages_sharing, 1);
        pass(&h, &ksm);
        assert_eq!(
            ksm.stats(&h.frames).pages_sharing,
            1,
            "unmergeable pages stay apart"
        );
        h.aspace.check_invariants().unwrap();
    }
}
