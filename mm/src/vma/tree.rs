//! [`VmaTree`]: one address space's VMAs, ordered by start, never overlapping and
//! always merged (no two neighbours could be one VMA). Every change goes through
//! [`VmaTree::rewrite`], which checks `max_map_count` and the commit charge before
//! touching anything.
//!
//! A tree bound to a [`Commitment`] keeps the count of its accounted pages (VMAs with
//! `VM_ACCOUNT`) charged there: each change charges its growth (refused with `ENOMEM`
//! as the overcommit policy says) and uncharges its shrinkage; dropping the tree
//! uncharges the rest.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::merge::coalesce;
use super::{VmFlags, Vma};
use crate::commit::Commitment;
use crate::errno::MmError;

/// The VMAs of one address space, keyed by start address.
#[derive(Default)]
pub struct VmaTree {
    map: BTreeMap<u64, Vma>,
    commit: Option<Arc<Commitment>>,
    accounted_pages: u64,
    /// Shared-memory files mapped here, by address: how many VMAs map each (so a
    /// hole punch's walk asks one lookup per address space, not a scan of its VMAs).
    shmem_files: BTreeMap<usize, usize>,
}

/// The key of `v`'s file in [`VmaTree::shmem_files`], if it maps shared memory.
fn shmem_key(v: &Vma) -> Option<usize> {
    v.backing
        .file()
        .filter(|f| f.kind() == crate::pagecache::FileKind::Shmem)
        .map(|f| Arc::as_ptr(f) as usize)
}

/// `shmem_files` for `vmas`.
fn shmem_files_of<'a>(vmas: impl IntoIterator<Item = &'a Vma>) -> BTreeMap<usize, usize> {
    let mut files = BTreeMap::new();
    for key in vmas.into_iter().filter_map(shmem_key) {
        *files.entry(key).or_insert(0) += 1;
    }
    files
}

/// Pages of `vmas` that are charged to the commit.
fn accounted<'a>(vmas: impl IntoIterator<Item = &'a Vma>) -> u64 {
    vmas.into_iter()
        .filter(|v| v.flags.contains(VmFlags::ACCOUNT))
        .map(Vma::pages)
        .sum()
}

/// The file a VMA may write through a shared mapping (counted by the file as one of its
/// writable mappings while the VMA is in a tree), if any.
fn shared_writable_file(v: &Vma) -> Option<&Arc<crate::pagecache::FileObject>> {
    v.backing
        .file()
        .filter(|_| v.flags.contains(VmFlags::SHARED))
}

/// Tells the files of `vmas` that their VMAs entered a tree (every file VMA counts
/// in [`FileObject::mapped_vmas`], the shared ones in its writable mappings too).
///
/// [`FileObject::mapped_vmas`]: crate::pagecache::FileObject::mapped_vmas
fn count_mappings_in<'a>(vmas: impl IntoIterator<Item = &'a Vma>) {
    for v in vmas {
        if let Some(f) = v.backing.file() {
            f.mapping_added();
        }
        if let Some(f) = shared_writable_file(v) {
            f.writable_mapping_added();
        }
    }
}

/// Tells the files of `vmas` that their VMAs left a tree (see [`count_mappings_in`]).
fn count_mappings_out<'a>(vmas: impl IntoIterator<Item = &'a Vma>) {
    for v in vmas {
        if let Some(f) = v.backing.file() {
            f.mapping_removed();
        }
        if let Some(f) = shared_writable_file(v) {
            f.writable_mapping_removed();
        }
    }
}

impl Clone for VmaTree {
    /// A copy whose accounted pages are charged again, whatever the policy (the
    /// original already passed it).
    fn clone(&self) -> VmaTree {
        if let Some(c) = &self.commit {
            c.force_charge(self.accounted_pages);
        }
        count_mappings_in(self.map.values());
        VmaTree {
            map: self.map.clone(),
            commit: self.commit.clone(),
            accounted_pages: self.accounted_pages,
            shmem_files: self.shmem_files.clone(),
        }
    }
}

impl Drop for VmaTree {
    fn drop(&mut self) {
        if let Some(c) = &self.commit {
            c.uncharge(self.accounted_pages);
        }
        count_mappings_out(self.map.values());
    }
}

impl VmaTree {
    /// An empty tree that charges nothing.
    pub fn new() -> VmaTree {
        VmaTree::default()
    }

    /// An empty tree whose accounted VMAs are charged to `commit`.
    pub fn charged_to(commit: Arc<Commitment>) -> VmaTree {
        VmaTree {
            map: BTreeMap::new(),
            commit: Some(commit),
            accounted_pages: 0,
            shmem_files: BTreeMap::new(),
        }
    }

    /// Pages of `VM_ACCOUNT` VMAs (this tree's share of `Committed_AS`).
    pub fn accounted_pages(&self) -> u64 {
        self.accounted_pages
    }

    /// The commitment this tree charges, if any.
    pub fn commitment(&self) -> Option<&Arc<Commitment>> {
        self.commit.as_ref()
    }

    /// Whether a VMA here maps `file`, a shared-memory file (one lookup).
    pub fn maps_shmem_file(&self, file: &crate::pagecache::FileObject) -> bool {
        self.shmem_files
            .contains_key(&(file as *const crate::pagecache::FileObject as usize))
    }

    /// Number of VMAs (what `max_map_count` limits).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no VMAs.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every VMA in address order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Vma> + '_ {
        self.map.values()
    }

    /// The VMA containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&Vma> {
        self.map
            .range(..=addr)
            .next_back()
            .map(|(_, v)| v)
            .filter(|v| v.end > addr)
    }

    /// The VMAs overlapping `[start, end)`, in address order.
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &Vma> + '_ {
        let first = self
            .map
            .range(..start)
            .next_back()
            .filter(|(_, v)| v.end > start)
            .map(|(k, _)| *k)
            .unwrap_or(start);
        self.map
            .range(first..end.max(first))
            .map(|(_, v)| v)
            .filter(move |v| v.end > start && v.start < end)
    }

    /// The last VMA starting below `addr`.
    pub fn prev(&self, addr: u64) -> Option<&Vma> {
        self.map.range(..addr).next_back().map(|(_, v)| v)
    }

    /// The first VMA starting at or above `addr`.
    pub fn next_from(&self, addr: u64) -> Option<&Vma> {
        self.map.range(addr..).next().map(|(_, v)| v)
    }

    /// Whether no VMA overlaps `[start, end)`.
    pub fn is_free(&self, start: u64, end: u64) -> bool {
        self.overlapping(start, end).next().is_none()
    }

    /// Whether `[start, end)` is wholly covered by VMAs (no holes).
    pub fn is_covered(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        for v in self.overlapping(start, end) {
            if v.start > at {
                return false;
            }
            at = v.end;
        }
        at >= end
    }

    /// `EINVAL` if `start` or `end` falls inside a hugetlb VMA off its page boundary
    /// (a hugetlb page is never split, so its VMA is cut only between pages).
    pub(crate) fn hugetlb_edges_aligned(&self, start: u64, end: u64) -> Result<(), MmError> {
        for v in self.overlapping(start, end) {
            if let Some(map) = &v.hugetlb {
                let bytes = map.page_bytes();
                for at in [start, end] {
                    if at > v.start && at < v.end && !at.is_multiple_of(bytes) {
                        return Err(MmError::InvalidArgument);
                    }
                }
            }
        }
        Ok(())
    }

    /// Changes, in place, the part inside `[start, end)` of every VMA overlapping it
    /// (splitting at the edges, merging after); `rewrite` with an edit that keeps
    /// every piece. Returns the old parts inside the range.
    pub(crate) fn edit_each(
        &mut self,
        start: u64,
        end: u64,
        max_count: usize,
        edit: &mut dyn FnMut(&mut Vma),
    ) -> Result<Vec<Vma>, MmError> {
        let mut keep = |v: &Vma| {
            let mut n = v.clone();
            edit(&mut n);
            Some(n)
        };
        self.rewrite(start, end, max_count, &mut keep, None)
    }

    /// Rewrites `[start, end)`: every VMA overlapping it keeps its parts outside the
    /// range, its part inside is passed to `edit` (which returns the replacement, or
    /// `None` to unmap it), and `insert` (which must lie in freed space) is added.
    /// Neighbours are then merged. If the result would hold more than `max_count`
    /// VMAs, or its accounted growth is refused by the commitment, nothing changes and
    /// the error is `ENOMEM`. Returns the old parts inside the range, in address order.
    pub(crate) fn rewrite(
        &mut self,
        start: u64,
        end: u64,
        max_count: usize,
        edit: &mut dyn FnMut(&Vma) -> Option<Vma>,
        insert: Option<Vma>,
    ) -> Result<Vec<Vma>, MmError> {
        // Linux's may_split: a hugetlb VMA is cut only between its pages, whatever
        // the operation (munmap, mprotect, mlock, mbind, mseal, MAP_FIXED, ...).
        self.hugetlb_edges_aligned(start, end)?;
        let hit: Vec<Vma> = self.overlapping(start, end).cloned().collect();
        let lo = hit.first().map_or(start, |v| v.start.min(start));
        let hi = hit.last().map_or(end, |v| v.end.max(end));
        let lo = insert.as_ref().map_or(lo, |v| lo.min(v.start));
        let hi = insert.as_ref().map_or(hi, |v| hi.max(v.end));
        let left = self.prev(lo).filter(|v| v.end == lo).cloned();
        let right = self.map.get(&hi).cloned();

        let mut old_parts = Vec::with_capacity(hit.len());
        let mut pieces: Vec<Vma> = Vec::with_capacity(hit.len() + 4);
        pieces.extend(left.iter().cloned());
        for v in &hit {
            let (below, above) = v.outside(start, end);
            pieces.extend(below);
            let middle = v.clip(start, end);
            if let Some(new) = edit(&middle) {
                debug_assert!(new.start == middle.start && new.end == middle.end);
                pieces.push(new);
            }
            old_parts.push(middle);
            pieces.extend(above);
        }
        if let Some(v) = insert {
            debug_assert!(pieces.iter().all(|p| p.end <= v.start || p.start >= v.end));
            pieces.push(v);
        }
        pieces.extend(right.iter().cloned());
        pieces.sort_by_key(|v| v.start);
        let pieces = coalesce(pieces);

        let removed = hit.len() + usize::from(left.is_some()) + usize::from(right.is_some());
        if self.map.len() - removed + pieces.len() > max_count {
            return Err(MmError::NoMemory);
        }
        // More VMAs while the kernel's own memory runs short: refused, as above.
        if pieces.len() > removed && crate::kmem::short() {
            return Err(MmError::NoMemory);
        }
        let was = accounted(left.iter().chain(hit.iter()).chain(right.iter()));
        let now = accounted(&pieces);
        if let Some(c) = &self.commit {
            c.try_charge(now.saturating_sub(was))?;
        }
        for v in left.iter().chain(hit.iter()).chain(right.iter()) {
            self.map.remove(&v.start);
        }
        // The new pieces counted before the old ones go: a file's count of mapping
        // VMAs never dips to zero while one of them still maps it.
        count_mappings_in(&pieces);
        count_mappings_out(left.iter().chain(hit.iter()).chain(right.iter()));
        for key in pieces.iter().filter_map(shmem_key) {
            *self.shmem_files.entry(key).or_insert(0) += 1;
        }
        for v in left.iter().chain(hit.iter()).chain(right.iter()) {
            if let Some(key) = shmem_key(v) {
                if let Some(n) = self.shmem_files.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        self.shmem_files.remove(&key);
                    }
                }
            }
        }
        for v in pieces {
            self.map.insert(v.start, v);
        }
        self.accounted_pages = self.accounted_pages + now - was;
        if let Some(c) = &self.commit {
            c.uncharge(was.saturating_sub(now));
        }
        Ok(old_parts)
    }

    /// A tree of `vmas` (sorted, disjoint), merging neighbours that can merge, charged
    /// to `commit` (`ENOMEM` if the policy refuses).
    pub(crate) fn from_sorted(
        vmas: Vec<Vma>,
        commit: Option<Arc<Commitment>>,
    ) -> Result<VmaTree, MmError> {
        if crate::kmem::short() {
            return Err(MmError::NoMemory); // a fork's copy while kernel memory is short
        }
        let accounted_pages = accounted(&vmas);
        if let Some(c) = &commit {
            c.try_charge(accounted_pages)?;
        }
        let vmas = coalesce(vmas);
        count_mappings_in(&vmas);
        Ok(VmaTree {
            shmem_files: shmem_files_of(&vmas),
            map: vmas.into_iter().map(|v| (v.start, v)).collect(),
            commit,
            accounted_pages,
        })
    }

    /// Checks the tree's invariants (sorted, non-overlapping, merged, non-empty,
    /// page-aligned); the reason for the first violation.
    pub fn check(&self) -> Result<(), &'static str> {
        let mut prev: Option<&Vma> = None;
        for (k, v) in &self.map {
            if *k != v.start {
                return Err("key differs from start");
            }
            if v.start >= v.end {
                return Err("empty VMA");
            }
            if v.start % crate::frame::PAGE_SIZE != 0 || v.end % crate::frame::PAGE_SIZE != 0 {
                return Err("unaligned VMA");
            }
            if let Some(p) = prev {
                if p.end > v.start {
                    return Err("overlapping VMAs");
                }
                if super::merge::can_merge(p, v) {
                    return Err("mergeable neighbours left apart");
                }
            }
            prev = Some(v);
        }
        if accounted(self.map.values()) != self.accounted_pages {
            return Err("accounted pages miscounted");
        }
        if shmem_files_of(self.map.values()) != self.shmem_files {
            return Err("shared-memory files miscounted");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Backing, VmFlags};
    use super::*;

    const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);

    fn anon(s: u64, e: u64, f: VmFlags) -> Vma {
        Vma::new(s, e, f, Backing::Anon, 0)
    }

    fn ranges(t: &VmaTree) -> Vec<(u64, u64, VmFlags)> {
        t.iter().map(|v| (v.start, v.end, v.flags)).collect()
    }

    fn map(t: &mut VmaTree, s: u64, e: u64, f: VmFlags) {
        t.rewrite(s, e, usize::MAX, &mut |_| None, Some(anon(s, e, f)))
            .unwrap();
    }

    #[test]
    fn insert_merges_and_lookup() {
        let mut t = VmaTree::new();
        map(&mut t, 0x10000, 0x20000, RW);
        map(&mut t, 0x20000, 0x30000, RW);
        map(&mut t, 0x40000, 0x50000, RW);
        assert_eq!(ranges(&t), [(0x10000, 0x30000, RW), (0x40000, 0x50000, RW)]);
        assert_eq!(t.find(0x2ffff).map(|v| v.start), Some(0x10000));
        assert!(t.find(0x30000).is_none());
        assert!(t.is_free(0x30000, 0x40000));
        assert!(!t.is_free(0x30000, 0x40001));
        assert!(t.is_covered(0x10000, 0x30000) && !t.is_covered(0x10000, 0x40000));
        // Filling the hole joins all three.
        map(&mut t, 0x30000, 0x40000, RW);
        assert_eq!(ranges(&t), [(0x10000, 0x50000, RW)]);
        t.check().unwrap();
    }

    #[test]
    fn unmap_middle_splits_and_returns_old_part() {
        let mut t = VmaTree::new();
        map(&mut t, 0x10000, 0x20000, RW);
        let old = t
            .rewrite(0x14000, 0x15000, 10, &mut |_| None, None)
            .unwrap();
        assert_eq!(
            old.iter().map(|v| (v.start, v.end)).collect::<Vec<_>>(),
            [(0x14000, 0x15000)]
        );
        assert_eq!(ranges(&t), [(0x10000, 0x14000, RW), (0x15000, 0x20000, RW)]);
        t.check().unwrap();
    }

    #[test]
    fn protect_middle_then_back_remerges() {
        let mut t = VmaTree::new();
        map(&mut t, 0x10000, 0x20000, RW);
        let to = |f: VmFlags| {
            move |v: &Vma| {
                let mut n = v.clone();
                n.flags = f;
                Some(n)
            }
        };
        t.rewrite(0x12000, 0x13000, 10, &mut to(VmFlags::READ), None)
            .unwrap();
        assert_eq!(t.len(), 3);
        t.rewrite(0x12000, 0x13000, 10, &mut to(RW), None).unwrap();
        assert_eq!(ranges(&t), [(0x10000, 0x20000, RW)]);
        t.check().unwrap();
    }

    #[test]
    fn max_count_refuses_without_change() {
        let mut t = VmaTree::new();
        map(&mut t, 0x10000, 0x20000, RW);
        let before = ranges(&t);
        // A middle unmap needs 2 VMAs.
        assert_eq!(
            t.rewrite(0x14000, 0x15000, 1, &mut |_| None, None)
                .unwrap_err(),
            MmError::NoMemory
        );
        assert_eq!(ranges(&t), before);
        // Unmapping an end does not add one.
        t.rewrite(0x10000, 0x11000, 1, &mut |_| None, None).unwrap();
        assert_eq!(ranges(&t), [(0x11000, 0x20000, RW)]);
    }

    #[test]
    fn overlapping_and_neighbours() {
        let mut t = VmaTree::new();
        map(&mut t, 0x10000, 0x20000, RW);
        map(&mut t, 0x30000, 0x40000, VmFlags::READ);
        let o: Vec<u64> = t.overlapping(0x1f000, 0x31000).map(|v| v.start).collect();
        assert_eq!(o, [0x10000, 0x30000]);
        assert_eq!(t.overlapping(0x20000, 0x30000).count(), 0);
        assert_eq!(t.prev(0x30000).map(|v| v.start), Some(0x10000));
        assert_eq!(t.next_from(0x10001).map(|v| v.start), Some(0x30000));
        // Unmap across both, touching the gap.
        let old = t
            .rewrite(0x18000, 0x38000, 10, &mut |_| None, None)
            .unwrap();
        assert_eq!(old.len(), 2);
        assert_eq!(
            ranges(&t),
            [(0x10000, 0x18000, RW), (0x38000, 0x40000, VmFlags::READ)]
        );
    }
}
