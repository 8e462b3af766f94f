//! A process's address space: its VMA tree, its page table, and the operations of the
//! mmap family, fork and teardown, all hardware-independent. The kernel supplies a
//! [`PageTable`] over its x86_64 tables, a [`FrameSource`](crate::phys::FrameSource)
//! (wrapped in [`Frames`]) and a [`TlbFlush`]; host tests use the software ones.
//!
//! ```
//! use std::sync::Arc;
//! use mm::aspace::{AddressSpace, Layout, MmapRequest, Tunables};
//! use mm::fault::{Access, FaultResolved};
//! use mm::pagetable::SoftPageTable;
//! use mm::phys::{soft::SoftFrames, Frames};
//! use mm::tlb::CountingTlb;
//!
//! // Once at boot: the frames (the kernel wraps its FrameAllocator) and the knobs.
//! let frames = Frames::new(SoftFrames::new());
//! let tunables = Tunables::new();
//! // Per process: its page table and its TLB shootdown hook.
//! let tlb = Arc::new(CountingTlb::new());
//! let parent = AddressSpace::new(SoftPageTable::new(), frames, tlb.clone(), tunables, Layout::default());
//!
//! // mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)
//! let req = MmapRequest::from_raw(0, 8192, 0x3, 0x22, None, 0).unwrap();
//! let addr = parent.mmap(&req, /* may_map_low: SeTcbPrivilege */ false).unwrap();
//!
//! // The trap handler: #PF on a write to addr.
//! assert_eq!(parent.fault(addr, Access::Write, true).unwrap(), FaultResolved::DemandZero);
//!
//! // fork: frames shared copy-on-write; the first write in the child copies.
//! let child = parent.fork(SoftPageTable::new(), tlb).unwrap();
//! assert_eq!(child.fault(addr, Access::Write, true).unwrap(), FaultResolved::CowCopied);
//! assert!(mm::procfs::maps(&child).contains(" rw-p "));
//! ```
//!
//! # Locking
//!
//! * The VMA tree (with brk and layout state) sits behind one writer-preferring
//!   reader-writer spin lock per address space. Faults, `mincore`, populate, remote
//!   access and `/proc` reports take the **read** side; operations that change VMAs
//!   or must see a quiescent page table (mmap, munmap, mprotect, mremap, brk,
//!   splitting madvise, msync, stack growth, fork) take the **write** side.
//! * Under the read side a fault touches nothing shared but: the one page-table entry
//!   (installed by compare-and-swap from empty; replaced by compare-and-swap; a
//!   copy-on-write holds the entry's software `BUSY` bit while it copies, so the old
//!   frame cannot be released under it), the frame's reference-count stripe (only for
//!   frames with several owners), and the page-cache stripe of the file page. VMAs
//!   carry no per-page state, so faults in different VMAs — or on different pages of
//!   one VMA — never serialise on a lock; two faults on the same page race on the
//!   entry's compare-and-swap and the loser frees its frame.
//! * There is no global lock on the fault path: frames come from the kernel's per-CPU
//!   caches through `FrameSource`, reference counts and page caches are striped.
//! * Operations flush the TLB once per batch ([`TlbBatch`](crate::tlb::TlbBatch)),
//!   after updating entries and before releasing frames.

mod access;
pub mod anon_name;
mod brk;
mod collapse;
mod fork;
mod hugetlb_trunc;
mod intercept;
mod ksm;
mod lock;
mod madvise;
mod madvise_remove;
pub(crate) mod mempolicy;
mod migrate;
mod migrate_cache;
mod migrate_ksm;
mod migrate_status;
mod mincore;
mod mlock;
pub mod mmap;
mod mprotect;
pub(crate) mod mremap;
mod mseal;
mod msync;
mod munmap;
mod pkey;
mod populate;
mod sample;
mod shmem_hole;
mod zap;

#[cfg(test)]
mod commit_tests;
#[cfg(test)]
mod concurrency_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod tests;

pub use access::AccessError;
pub use collapse::CollapseScan;
pub use madvise::Advice;
pub use mempolicy::{
    interleave_weight, set_interleave_weight, set_task_policy_hook, MemPolicy, PolicyMode,
};
pub use migrate_status::PageStatus;
pub use mincore::MINCORE_BATCH_PAGES;
pub use mlock::{LockLimit, MlockallFlags, MLOCK_ONFAULT};
pub use mmap::{FileMapping, MmapRequest, Prefault};
pub use mremap::MremapFlags;
pub use msync::MsyncFlags;
pub use pkey::{pkeys_supported, set_pkeys_supported, PKEY_DISABLE_ACCESS, PKEY_DISABLE_WRITE};
pub use populate::PopulateStep;

use crate::addr::VirtAddr;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::commit::Commitment;
use crate::fault::vma_pte_perms;
use crate::frame::PAGE_SIZE;
use crate::ksm::Ksm;
use crate::pagetable::{PageTable, PteFlags, Taken, HUGE_PAGES, HUGE_SIZE};
use crate::phys::Frames;
use crate::swap::Swap;
use crate::thp::Thp;
use crate::tlb::TlbFlush;
use crate::vma::{Vma, VmaTree};
use lock::TreeLock;
use zap::Zap;

/// Default `vm.mmap_min_addr`.
pub const DEFAULT_MMAP_MIN_ADDR: u64 = 65536;
/// Default `vm.max_map_count`.
pub const DEFAULT_MAX_MAP_COUNT: usize = 65530;
/// The stack guard gap in pages (Linux's `stack_guard_gap` default).
pub const STACK_GUARD_GAP_PAGES: u64 = 256;
/// One past the highest user address (Linux's x86_64 `TASK_SIZE_MAX`, 4-level).
pub const TASK_SIZE: u64 = (1 << 47) - PAGE_SIZE;
/// Default top of the mmap area (mappings are placed downwards from here).
pub const DEFAULT_MMAP_BASE: u64 = 0x0000_7f00_0000_0000;
/// Default `RLIMIT_STACK`.
pub const DEFAULT_STACK_RLIMIT: u64 = 8 << 20;
/// `MAP_32BIT` mappings go in `[MAP_32BIT_START, MAP_32BIT_END)` (below 2 GiB).
pub const MAP_32BIT_START: u64 = 0x4000_0000;
/// See [`MAP_32BIT_START`].
pub const MAP_32BIT_END: u64 = 0x8000_0000;

/// The system-wide knobs (`/proc/sys/vm`), shared by every address space and updated
/// live by the kernel (ksyncd applies registry values here).
pub struct Tunables {
    mmap_min_addr: AtomicU64,
    max_map_count: AtomicUsize,
    stack_guard_gap_pages: AtomicU64,
    commitment: Arc<Commitment>,
    ksm: Arc<Ksm>,
    thp: Thp,
    hugetlb: spin::Once<Arc<dyn crate::hugetlb::HugetlbSource>>,
    swap: Arc<Swap>,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            mmap_min_addr: AtomicU64::new(DEFAULT_MMAP_MIN_ADDR),
            max_map_count: AtomicUsize::new(DEFAULT_MAX_MAP_COUNT),
            stack_guard_gap_pages: AtomicU64::new(STACK_GUARD_GAP_PAGES),
            commitment: Arc::new(Commitment::new()),
            ksm: Arc::new(Ksm::new()),
            thp: Thp::default(),
            hugetlb: spin::Once::new(),
            swap: Swap::new(),
        }
    }
}

impl Tunables {
    /// Linux's defaults.
    pub fn new() -> Arc<Tunables> {
        Arc::new(Tunables::default())
    }

    /// `vm.mmap_min_addr`.
    pub fn mmap_min_addr(&self) -> u64 {
        self.mmap_min_addr.load(Ordering::Relaxed)
    }

    /// Sets `vm.mmap_min_addr` (rounded up to a page).
    pub fn set_mmap_min_addr(&self, bytes: u64) {
        self.mmap_min_addr
            .store(bytes.next_multiple_of(PAGE_SIZE), Ordering::Relaxed);
    }

    /// `vm.max_map_count`.
    pub fn max_map_count(&self) -> usize {
        self.max_map_count.load(Ordering::Relaxed)
    }

    /// Sets `vm.max_map_count`.
    pub fn set_max_map_count(&self, count: usize) {
        self.max_map_count.store(count, Ordering::Relaxed);
    }

    /// The stack guard gap in bytes.
    pub fn stack_guard_gap_bytes(&self) -> u64 {
        self.stack_guard_gap_pages.load(Ordering::Relaxed) * PAGE_SIZE
    }

    /// Sets the stack guard gap (`stack_guard_gap=` on the command line), in pages.
    pub fn set_stack_guard_gap_pages(&self, pages: u64) {
        self.stack_guard_gap_pages.store(pages, Ordering::Relaxed);
    }

    /// The KSM trees every address space merges into.
    pub fn ksm(&self) -> &Arc<Ksm> {
        &self.ksm
    }

    /// Sets where hugetlb mappings get their pages (once, at boot; without it
    /// `MAP_HUGETLB` fails with `ENOMEM`, as on Linux with no pool).
    pub fn set_hugetlb_source(&self, source: Arc<dyn crate::hugetlb::HugetlbSource>) {
        self.hugetlb.call_once(|| source);
    }

    /// The hugetlb page source, if set.
    pub fn hugetlb_source(&self) -> Option<&Arc<dyn crate::hugetlb::HugetlbSource>> {
        self.hugetlb.get()
    }

    /// The transparent-huge-page settings and counters.
    pub fn thp(&self) -> &Thp {
        &self.thp
    }

    /// The swap areas and swap cache every address space swaps to.
    pub fn swap(&self) -> &Arc<Swap> {
        &self.swap
    }

    /// The overcommit policy and commit charge every address space draws on.
    pub fn commitment(&self) -> &Arc<Commitment> {
        &self.commitment
    }
}

/// Per-process layout (fixed at exec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// One past the highest user address.
    pub task_size: u64,
    /// Top of the top-down mmap area (below the stack and its gap; randomised by
    /// the kernel under KASLR).
    pub mmap_base: u64,
    /// `RLIMIT_STACK`: the most a growsdown stack may grow to.
    pub stack_rlimit_bytes: u64,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            task_size: TASK_SIZE,
            mmap_base: DEFAULT_MMAP_BASE,
            stack_rlimit_bytes: DEFAULT_STACK_RLIMIT,
        }
    }
}

/// What the tree lock protects.
#[derive(Default)]
pub(crate) struct MmState {
    pub(crate) tree: VmaTree,
    pub(crate) start_brk: u64,
    pub(crate) brk: u64,
    pub(crate) start_stack: u64,
    pub(crate) start_code: u64,
    pub(crate) end_code: u64,
    /// Where the argument strings lie on the initial stack (`/proc/<pid>/cmdline`).
    pub(crate) arg_range: (u64, u64),
    pub(crate) hiwater_vm_pages: u64,
    /// Flags every new mapping gets (`mlockall(MCL_FUTURE)`: Linux's `def_flags`).
    pub(crate) def_flags: crate::vma::VmFlags,
    /// Protection keys handed out by `pkey_alloc` (bit N: key N; key 0 is always
    /// allocated and never in the map).
    pub(crate) pkeys: u16,
}

impl MmState {
    /// An empty state whose tree charges `tunables`' commitment.
    fn empty(tunables: &Tunables) -> MmState {
        MmState {
            tree: VmaTree::charged_to(tunables.commitment().clone()),
            pkeys: 1,
            ..MmState::default()
        }
    }

    pub(crate) fn total_vm_pages(&self) -> u64 {
        self.tree.iter().map(Vma::pages).sum()
    }

    pub(crate) fn note_vm_size(&mut self) {
        self.hiwater_vm_pages = self.hiwater_vm_pages.max(self.total_vm_pages());
    }
}

/// One process's address space over page table `P`.
pub struct AddressSpace<P: PageTable> {
    pt: P,
    frames: Arc<Frames>,
    tlb: Arc<dyn TlbFlush>,
    tunables: Arc<Tunables>,
    layout: Layout,
    state: TreeLock<MmState>,
    hiwater_rss_pages: AtomicU64,
    /// `set_mempolicy`'s policy (its own lock: the fault path reads it while it holds
    /// the tree's read side).
    task_policy: spin::RwLock<Option<MemPolicy>>,
    /// Some VMA was advised `MADV_HUGEPAGE` (khugepaged looks here in `madvise` mode).
    thp_advised: core::sync::atomic::AtomicBool,
    /// `PR_SET_THP_DISABLE`: no huge page for this process, whatever the knobs say.
    thp_disabled: core::sync::atomic::AtomicBool,
}

impl<P: PageTable> AddressSpace<P> {
    /// An empty address space over the empty table `pt`.
    pub fn new(
        pt: P,
        frames: Arc<Frames>,
        tlb: Arc<dyn TlbFlush>,
        tunables: Arc<Tunables>,
        layout: Layout,
    ) -> AddressSpace<P> {
        let state = TreeLock::new(MmState::empty(&tunables));
        AddressSpace {
            pt,
            frames,
            tlb,
            tunables,
            layout,
            state,
            hiwater_rss_pages: AtomicU64::new(0),
            task_policy: spin::RwLock::new(None),
            thp_advised: core::sync::atomic::AtomicBool::new(false),
            thp_disabled: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The page table (the kernel loads its root into CR3).
    pub fn page_table(&self) -> &P {
        &self.pt
    }

    /// The frames.
    pub fn frames(&self) -> &Arc<Frames> {
        &self.frames
    }

    /// The TLB shootdown hook.
    pub fn tlb(&self) -> &Arc<dyn TlbFlush> {
        &self.tlb
    }

    /// The system-wide knobs.
    pub fn tunables(&self) -> &Arc<Tunables> {
        &self.tunables
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Number of VMAs.
    pub fn vma_count(&self) -> usize {
        self.state.read().tree.len()
    }

    /// A copy of every VMA, in address order.
    pub fn vmas(&self) -> Vec<Vma> {
        self.state.read().tree.iter().cloned().collect()
    }

    /// The VMA containing `addr`.
    pub fn vma_at(&self, addr: u64) -> Option<Vma> {
        self.state.read().tree.find(addr).cloned()
    }

    /// Sets the initial program break (page after the highest loaded segment); the
    /// break starts there.
    pub fn set_brk_start(&self, addr: u64) {
        let mut st = self.state.write();
        st.start_brk = addr;
        st.brk = addr;
    }

    /// Records where the main thread's stack starts (`[stack]` in maps).
    pub fn set_stack_start(&self, addr: u64) {
        self.state.write().start_stack = addr;
    }

    /// Records the executable's code range (`VmExe` in status).
    pub fn set_code_range(&self, start: u64, end: u64) {
        let mut st = self.state.write();
        st.start_code = start;
        st.end_code = end;
    }

    /// Records where exec put the argument strings (Linux's `arg_start`/`arg_end`).
    pub fn set_arg_range(&self, start: u64, end: u64) {
        self.state.write().arg_range = (start, end);
    }

    /// `(arg_start, arg_end)`: the bytes `/proc/<pid>/cmdline` shows, read from the
    /// process's own memory as Linux does (a program that rewrites its argv shows it).
    pub fn arg_range(&self) -> (u64, u64) {
        self.state.read().arg_range
    }

    /// `(start_brk, brk)`.
    pub fn brk_range(&self) -> (u64, u64) {
        let st = self.state.read();
        (st.start_brk, st.brk)
    }

    /// Resident pages (present entries in user space).
    pub fn resident_pages(&self) -> u64 {
        let st = self.state.read();
        self.pt
            .count(VirtAddr::ZERO, VirtAddr::new(self.layout.task_size))
            - self.hugetlb_pages(&st)
    }

    /// The peak resident size in pages (getrusage's `ru_maxrss`): the high-water mark,
    /// or the current size when that is above it (the mark is folded in at unmaps).
    pub fn peak_resident_pages(&self) -> u64 {
        self.hiwater_rss_pages().max(self.resident_pages())
    }

    /// The high-water mark alone, without walking the tables: after [`Self::teardown`]
    /// (which folds the last size in) it is the peak.
    pub fn recorded_peak_resident_pages(&self) -> u64 {
        self.hiwater_rss_pages()
    }

    /// 4 KiB pages mapped by hugetlb leaves (not resident memory, as on Linux: their
    /// pages belong to the pool).
    fn hugetlb_pages(&self, st: &MmState) -> u64 {
        let mut pages = 0;
        for v in st.tree.iter().filter(|v| v.hugetlb.is_some()) {
            self.pt.scan_leaves(
                VirtAddr::new(v.start),
                VirtAddr::new(v.end),
                &mut |_, _, huge| {
                    if huge {
                        pages += crate::pagetable::HUGE_PAGES;
                    }
                },
            );
        }
        pages
    }

    /// Calls `f` with the first frame of every huge leaf mapped in a private
    /// anonymous VMA (`AnonHugePages`: the kernel counts each page once across
    /// processes).
    pub fn anon_huge_pages(&self, f: &mut dyn FnMut(crate::frame::Pfn)) {
        if self.pt.huge_leaves() == 0 {
            return;
        }
        let st = self.state.read();
        for v in st.tree.iter().filter(|v| v.file().is_none()) {
            self.pt.scan_leaves(
                VirtAddr::new(v.start),
                VirtAddr::new(v.end),
                &mut |_, pte, huge| {
                    if huge {
                        f(pte.pfn);
                    }
                },
            );
        }
    }

    /// Kernel memory this address space holds for its owner: its page-table pages
    /// (`VmPTE`) and its VMAs. The OOM killer counts it with the resident pages, as
    /// Linux counts `mm_pgtables_bytes`, so a process that makes the kernel hold much
    /// (65,000 VMAs, sparse touches over a wide range) is seen as big.
    pub fn kernel_bytes(&self) -> u64 {
        let vmas = self.state.read().tree.len() as u64;
        self.pt.table_bytes() + vmas * core::mem::size_of::<Vma>() as u64
    }

    /// Checks every invariant the operations keep: the tree's (sorted, disjoint,
    /// merged), `max_map_count`, no page-table entry outside a VMA, and every entry's
    /// permissions within its VMA's protection. The first violation, described.
    pub fn check_invariants(&self) -> Result<(), String> {
        use alloc::format;
        let st = self.state.write();
        st.tree.check().map_err(String::from)?;
        if st.tree.len() > self.tunables.max_map_count() {
            return Err(format!("{} VMAs over max_map_count", st.tree.len()));
        }
        let mut err = None;
        self.pt.scan(
            VirtAddr::ZERO,
            VirtAddr::new(self.layout.task_size),
            &mut |va, pte| {
                if err.is_some() {
                    return;
                }
                match st.tree.find(va.as_u64()) {
                    None => err = Some(format!("entry at {va:#x} outside every VMA")),
                    Some(v) => {
                        let mut allowed = vma_pte_perms(v.flags) | PteFlags::HW;
                        if v.hugetlb.is_some() {
                            allowed |= PteFlags::HUGETLB;
                        }
                        if !allowed.contains(pte.flags) {
                            err = Some(format!(
                                "entry at {va:#x} has {:?}, VMA allows {:?}",
                                pte.flags, allowed
                            ));
                        }
                    }
                }
            },
        );
        err.map_or(Ok(()), Err)
    }

    /// Unmaps everything (exit, exec, the OOM reaper): every VMA goes and every frame
    /// reference is dropped. The address space stays usable (empty).
    ///
    /// One pass over the page table ([`PageTable::take_all`]) after the hugetlb VMAs
    /// (whose pages go back to their pools): mappings, huge leaves and swap entries
    /// go together, and the frames are released per batch in one call per batch.
    pub fn teardown(&self) {
        let mut st = self.state.write();
        let resident = self.take_everything(&st);
        // The resident size it had (hugetlb pages are not RSS), for VmHWM.
        self.hiwater_rss_pages
            .fetch_max(resident, Ordering::Relaxed);
        let brk = (st.start_brk, st.brk);
        *st = MmState::empty(&self.tunables);
        (st.start_brk, st.brk) = brk;
    }

    /// Removes every entry and drops every frame reference (teardown and drop): the
    /// hugetlb VMAs' pages back to their pools, then one [`PageTable::take_all`] pass
    /// for mappings, huge leaves and swap entries. Returns the resident pages it
    /// took (hugetlb pages are not RSS).
    fn take_everything(&self, st: &MmState) -> u64 {
        let hugetlb_vmas = st.tree.iter().filter(|v| v.hugetlb.is_some());
        let mut zap = Zap::whole_space(&self.frames, &*self.tlb, self.teardown_batch());
        zap.vmas(&self.pt, hugetlb_vmas);
        let swap = self.tunables.swap();
        let end = self.layout.task_size.next_multiple_of(HUGE_SIZE);
        let mut resident = 0;
        self.pt.take_all(
            VirtAddr::ZERO,
            VirtAddr::new(end),
            &mut |va, taken| match taken {
                Taken::Page(pte) => {
                    resident += 1;
                    zap.entry_removed(va.as_u64(), pte.pfn);
                }
                Taken::Huge(pte) => {
                    resident += HUGE_PAGES;
                    zap.huge_removed(va.as_u64(), pte.pfn);
                }
                Taken::Swap(entry) => swap.release(entry, &self.frames),
            },
        );
        zap.finish();
        resident
    }

    /// Pages a teardown releases per TLB flush: a 64th of the free memory, between
    /// 512 and 8192 (Linux's mmu_gather size). A fixed 8192 held so many frames back
    /// from a small guest under reclaim that it went out of memory; a big free
    /// memory gets big batches, fewer flushes and fewer trips to the allocator.
    pub(super) fn teardown_batch(&self) -> usize {
        let free = self.frames.source().free_pages().unwrap_or(0);
        usize::try_from(free / 64).map_or(8192, |n| n.clamp(512, 8192))
    }

    pub(crate) fn hiwater_rss_pages(&self) -> u64 {
        self.hiwater_rss_pages.load(Ordering::Relaxed)
    }

    pub(crate) fn state(&self) -> &TreeLock<MmState> {
        &self.state
    }

    /// Whether khugepaged should look at this address space: THP is `always`, or
    /// some VMA here was advised `MADV_HUGEPAGE`.
    pub fn thp_candidate(&self) -> bool {
        if self.thp_disabled() {
            return false;
        }
        match self.tunables.thp().enabled() {
            crate::thp::ThpEnabled::Always => true,
            crate::thp::ThpEnabled::Madvise => self.thp_advised.load(Ordering::Relaxed),
            crate::thp::ThpEnabled::Never => false,
        }
    }

    /// Whether faults in `vma` may map a transparent huge page: the knobs allow it and
    /// the process did not turn THP off.
    pub(crate) fn thp_allowed(&self, vma: &crate::vma::Vma) -> bool {
        !self.thp_disabled() && self.tunables.thp().vma_eligible(vma.flags)
    }

    /// `PR_SET_THP_DISABLE` (kept by fork; exec carries it over explicitly).
    pub fn set_thp_disabled(&self, disabled: bool) {
        self.thp_disabled.store(disabled, Ordering::Relaxed);
    }

    /// `PR_GET_THP_DISABLE`.
    pub fn thp_disabled(&self) -> bool {
        self.thp_disabled.load(Ordering::Relaxed)
    }

    pub(crate) fn note_thp_advised(&self) {
        self.thp_advised.store(true, Ordering::Relaxed);
    }

    pub(crate) fn gap_bytes(&self) -> u64 {
        self.tunables.stack_guard_gap_bytes()
    }
}

impl<P: PageTable> Drop for AddressSpace<P> {
    fn drop(&mut self) {
        let st = self.state.read();
        self.take_everything(&st);
    }
}
