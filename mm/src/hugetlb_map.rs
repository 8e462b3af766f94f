//! One hugetlb mapping's side of the huge-page pools (`hugetlb.rs`): the pages it
//! reserved and, for a shared mapping, the pages themselves; a mapping of a hugetlb
//! file (`hugetlb_file.rs`) leaves both to the file.

use alloc::collections::BTreeSet;
use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::Mutex;

use crate::frame::{Pfn, Policy};
use crate::hugetlb::{HugeFaultPage, HugeSize, HugetlbSource, NoHugePage};
use crate::hugetlb_file::HugetlbFile;
use crate::phys::Frames;

/// One hugetlb mapping (what `mmap(MAP_HUGETLB)` made; its VMAs, split or forked
/// for a shared mapping, point at it): its page size and the page indexes it still
/// holds reservations for; a shared mapping (of a hugetlb file, or of the file shared
/// anonymous memory gets) leaves pages and reservations to the file. Each mapped huge
/// leaf holds a reference on its page's first frame; the last one gives the page back
/// to the pool.
pub struct HugetlbMap {
    size: HugeSize,
    source: Arc<dyn HugetlbSource>,
    frames: Arc<Frames>,
    /// The address of page index 0 (hugetlb mappings never move).
    base: u64,
    shared: bool,
    /// A private mapping that reserved its range at mmap (not `MAP_NORESERVE`, not a
    /// fork child's copy): a private page of it that a file's truncation or hole
    /// punch unmaps gets its reservation back, as Linux 6.12 restores it.
    owns_reservations: bool,
    state: Mutex<HugetlbState>,
    /// For a shared mapping of a hugetlb file: the file, which holds the pages and
    /// the reservations (`state` then stays empty).
    file: Option<Arc<HugetlbFile>>,
    /// Serialises the faults of a 1 GiB mapping, whose pages are mapped by 512
    /// leaves each (installed, copied or changed all together).
    pub(crate) fault_lock: Mutex<()>,
}

#[derive(Default)]
struct HugetlbState {
    /// Page indexes whose reservation is still held.
    reserved: BTreeSet<u64>,
}

impl HugetlbMap {
    /// A private anonymous mapping of `pages` pages of `size` at `base`; reserves them
    /// all unless `noreserve`. `None` if the reservation fails (mmap's `ENOMEM`). (A
    /// shared anonymous one maps a hugetlb file of its own: [`for_file`](Self::for_file).)
    pub fn new(
        size: HugeSize,
        source: Arc<dyn HugetlbSource>,
        frames: Arc<Frames>,
        base: u64,
        pages: u64,
        noreserve: bool,
    ) -> Option<Arc<HugetlbMap>> {
        let mut state = HugetlbState::default();
        if !noreserve {
            if !source.reserve(size, pages) {
                return None;
            }
            state.reserved = (0..pages).collect();
        }
        Some(Arc::new(HugetlbMap {
            size,
            source,
            frames,
            base,
            shared: false,
            owns_reservations: !noreserve,
            state: Mutex::new(state),
            file: None,
            fault_lock: Mutex::new(()),
        }))
    }

    /// A shared mapping of the hugetlb file `file` whose page index 0 would sit at
    /// `base` (the VMA's start less its file offset), covering `pages` pages from
    /// index `first`; reserves those the file has not yet covered unless
    /// `noreserve`. `None` if the reservation fails (mmap's `ENOMEM`).
    pub fn for_file(
        file: Arc<HugetlbFile>,
        base: u64,
        first: u64,
        pages: u64,
        noreserve: bool,
    ) -> Option<Arc<HugetlbMap>> {
        if !noreserve && !file.reserve(first, pages) {
            return None;
        }
        Some(Arc::new(HugetlbMap {
            size: file.huge_size(),
            source: file.source.clone(),
            frames: file.frames.clone(),
            base,
            shared: true,
            owns_reservations: false,
            state: Mutex::new(HugetlbState::default()),
            file: Some(file),
            fault_lock: Mutex::new(()),
        }))
    }

    /// A private (`MAP_PRIVATE`) mapping of the hugetlb file `file` whose page index 0
    /// would sit at `base`, covering `pages` pages from index `first`. As on Linux,
    /// it reserves every page of its range unless `noreserve` (whatever the file
    /// holds: a page it only reads costs nothing, but its first write copies it), and
    /// each page it allocates, a hole's zeroed page or a copy of the file's, uses up
    /// the reservation of its index. `None` if the reservation fails (mmap's `ENOMEM`).
    pub fn for_file_private(
        file: Arc<HugetlbFile>,
        base: u64,
        first: u64,
        pages: u64,
        noreserve: bool,
    ) -> Option<Arc<HugetlbMap>> {
        let end = first.checked_add(pages)?;
        let mut state = HugetlbState::default();
        if !noreserve {
            if !file.source.reserve(file.huge_size(), pages) {
                return None;
            }
            state.reserved = (first..end).collect();
        }
        Some(Arc::new(HugetlbMap {
            size: file.huge_size(),
            source: file.source.clone(),
            frames: file.frames.clone(),
            base,
            shared: false,
            owns_reservations: !noreserve,
            state: Mutex::new(state),
            file: Some(file),
            fault_lock: Mutex::new(()),
        }))
    }

    /// Page reservations this mapping still holds (for a shared file mapping, none:
    /// the file holds them).
    pub fn reservations_held(&self) -> u64 {
        self.state.lock().reserved.len() as u64
    }

    /// The hugetlb file this mapping maps, if any.
    pub fn file(&self) -> Option<&Arc<HugetlbFile>> {
        self.file.as_ref()
    }

    /// The page size.
    pub fn size(&self) -> HugeSize {
        self.size
    }

    /// Page size in bytes.
    pub fn page_bytes(&self) -> u64 {
        self.size.order().bytes()
    }

    /// The first address of the page holding `va`.
    pub fn page_start(&self, va: u64) -> u64 {
        va & !(self.page_bytes() - 1)
    }

    /// Whether the pages are shared (`MAP_SHARED`).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// A private mapping's copy for a fork child: no reservations (as on Linux, a
    /// child's faults on pages it does not share may find the pool empty: SIGBUS),
    /// still reading the file of a private file mapping.
    ///
    /// Unlike Linux, a parent whose copy-on-write copy finds the pool empty is not
    /// given the page by unmapping it from its children: the copy uses the
    /// reservation of its index if the parent still holds it (a file page it only
    /// read), else it takes an unreserved free page or gets `SIGBUS`.
    pub fn for_fork_child(self: &Arc<Self>) -> Arc<HugetlbMap> {
        if self.shared {
            return self.clone();
        }
        Arc::new(HugetlbMap {
            size: self.size,
            source: self.source.clone(),
            frames: self.frames.clone(),
            base: self.base,
            shared: false,
            owns_reservations: false,
            state: Mutex::new(HugetlbState::default()),
            file: self.file.clone(),
            fault_lock: Mutex::new(()),
        })
    }

    /// The addresses in `[vma_start, vma_end)` (a VMA of this mapping) that map file
    /// indexes `[first, end)`, if any.
    pub fn span_of(
        &self,
        first: u64,
        end: u64,
        vma_start: u64,
        vma_end: u64,
    ) -> Option<(u64, u64)> {
        let (v_first, v_end) = (self.index(vma_start), self.index(vma_end));
        let (lo, hi) = (first.max(v_first), end.min(v_end));
        if lo >= hi {
            return None;
        }
        let at = |i: u64| vma_start + (i - v_first) * self.page_bytes();
        Some((at(lo), at(hi)))
    }

    /// Whether the leaf mapping page `head` at `va` (a page's first address) maps
    /// what the file no longer has: an index past its end, or for a shared mapping
    /// a page the file no longer holds there. False for a mapping of no file.
    pub fn leaf_is_stale(&self, va: u64, head: Pfn) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let idx = self.index(va);
        if idx >= file.size_bytes() / file.page_bytes() {
            return true;
        }
        self.shared && file.page_at(idx) != Some(head)
    }

    fn index(&self, va: u64) -> u64 {
        // `base` wraps below 0 for a mapping at a low address of a far file offset.
        va.wrapping_sub(self.base) / self.page_bytes()
    }

    /// The page for a fault at `va`, with a reference for the leaf that will map it:
    /// a shared mapping's existing page, a file page a private mapping reads, or a new
    /// zeroed one (a private mapping's own, taken with the reservation of its index if
    /// still held). `NoHugePage` when the pool has none or the page lies past the end
    /// of the file (SIGBUS). The new page comes from a node `policy` allows.
    pub fn page_for_fault(&self, va: u64, policy: Policy) -> Result<HugeFaultPage, NoHugePage> {
        let idx = self.index(va);
        if let Some(file) = &self.file {
            if self.shared {
                return file.page_for_fault(idx, policy).map(HugeFaultPage::Shared);
            }
            if let Some(head) = file.existing_page(idx)? {
                return Ok(HugeFaultPage::FilePage(head));
            }
        }
        let mut st = self.state.lock();
        let reserved = st.reserved.remove(&idx);
        let Some(pfn) = self.source.take(self.size, reserved, policy) else {
            if reserved {
                st.reserved.insert(idx);
            }
            return Err(NoHugePage);
        };
        self.zero(pfn);
        Ok(HugeFaultPage::Private(pfn))
    }

    /// A page for a private copy-on-write copy of the page at `va`, contents
    /// undefined: it uses up the reservation of that index if the mapping still holds
    /// it (the first write to a file page), else takes an unreserved free page.
    /// (Its 2 MiB pieces are copied over by the caller.)
    pub fn page_for_copy(&self, va: u64, policy: Policy) -> Result<Pfn, NoHugePage> {
        let idx = self.index(va);
        let mut st = self.state.lock();
        let reserved = !self.shared && st.reserved.remove(&idx);
        match self.source.take(self.size, reserved, policy) {
            Some(pfn) => Ok(pfn),
            None => {
                if reserved {
                    st.reserved.insert(idx);
                }
                Err(NoHugePage)
            }
        }
    }

    fn zero(&self, head: Pfn) {
        let huge = crate::pagetable::HUGE_PAGES;
        for chunk in 0..self.size.order().pages() / huge {
            self.frames.source().zero_huge(Pfn(head.0 + chunk * huge));
        }
    }

    /// Drops a leaf's reference on page `head`; the last goes back to the pool.
    pub fn release(&self, head: Pfn) {
        if self.frames.put_ref(head) {
            self.source.give_back(self.size, head);
        }
    }

    /// The file index of the page at `va`.
    pub fn index_of(&self, va: u64) -> u64 {
        self.index(va)
    }

    /// A private page of this mapping at file index `idx` was unmapped by its file's
    /// truncation or hole punch: a mapping that reserved its range gets the index's
    /// reservation back (if the pool still has an unreserved free page for it), so a
    /// later fault there does not find the pool taken, as Linux 6.12 restores it.
    pub fn restore_reservation(&self, idx: u64) {
        if !self.owns_reservations {
            return;
        }
        let mut st = self.state.lock();
        if !st.reserved.contains(&idx) && self.source.reserve(self.size, 1) {
            st.reserved.insert(idx);
        }
    }

    /// `[start, end)` is unmapped for good: a private mapping gives up the
    /// reservations of its pages there.
    pub fn unmapped(&self, start: u64, end: u64) {
        if self.shared {
            return;
        }
        let (lo, hi) = (self.index(start), self.index(end));
        let mut st = self.state.lock();
        let gone: Vec<u64> = st.reserved.range(lo..hi).copied().collect();
        for idx in &gone {
            st.reserved.remove(idx);
        }
        self.source.unreserve(self.size, gone.len() as u64);
    }
}

impl Drop for HugetlbMap {
    fn drop(&mut self) {
        let st = core::mem::take(&mut *self.state.lock());
        self.source.unreserve(self.size, st.reserved.len() as u64);
    }
}
