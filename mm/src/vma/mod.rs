//! Virtual memory areas: the [`Vma`] (a page-aligned range with flags and a backing),
//! the ordered [`VmaTree`] of one address space, splitting, merging and free-range
//! placement.
//!
//! A VMA holds no per-page state: which pages are resident, and which frames back
//! them, lives only in the page table (and the page cache for file pages). That is
//! what lets faults run under the tree's read lock with nothing but per-entry
//! atomics, and makes split and merge pure range arithmetic.

pub(crate) mod flags;
mod merge;
pub(crate) mod placement;
mod split;
mod tree;

pub use flags::{MapFlags, MapType, Prot, VmFlags, PROT_NONE};
pub use tree::VmaTree;

use alloc::sync::Arc;

use crate::fault::intercept::FaultInterceptor;
use crate::frame::PAGE_SIZE;
use crate::pagecache::fault_readahead::FaultReadahead;
use crate::pagecache::{FileKind, FileObject};

/// What backs a VMA's pages.
#[derive(Clone)]
pub enum Backing {
    /// Anonymous memory: demand-zero pages (private only; shared anonymous memory is
    /// a shmem [`FileObject`]).
    Anon,
    /// A file object (a regular file, or shmem); `Vma::pgoff` is the page offset of
    /// the VMA's start in it.
    File(Arc<FileObject>),
}

impl Backing {
    /// The file, if any.
    pub fn file(&self) -> Option<&Arc<FileObject>> {
        match self {
            Backing::Anon => None,
            Backing::File(f) => Some(f),
        }
    }

    /// Whether two backings are the same object.
    pub fn same_object(&self, other: &Backing) -> bool {
        match (self, other) {
            (Backing::Anon, Backing::Anon) => true,
            (Backing::File(a), Backing::File(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl core::fmt::Debug for Backing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Backing::Anon => f.write_str("Anon"),
            Backing::File(file) => write!(f, "File({:?})", file.id()),
        }
    }
}

/// One mapping `[start, end)`.
#[derive(Clone)]
pub struct Vma {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) flags: VmFlags,
    pub(crate) backing: Backing,
    pub(crate) pgoff: u64,
    pub(crate) interceptor: Option<Arc<dyn FaultInterceptor>>,
    /// The faults the interceptor sees (`fault::intercept_mode` bits; 0 without one).
    pub(crate) intercept_modes: u8,
    /// The VMA's NUMA policy (`mbind`); `None`: the address space's.
    pub(crate) policy: Option<crate::aspace::MemPolicy>,
    /// The hugetlb mapping this VMA is part of (`MAP_HUGETLB`), if any.
    pub(crate) hugetlb: Option<Arc<crate::hugetlb_map::HugetlbMap>>,
    /// The name `prctl(PR_SET_VMA_ANON_NAME)` gave this anonymous memory (maps shows
    /// `[anon:NAME]`); VMAs with different names never merge.
    pub(crate) anon_name: Option<Arc<str>>,
    /// The fault readahead window of a mapping of a disk file (shared by the pieces a
    /// split makes and by a fork's copy); `None` for other backings.
    pub(crate) fault_readahead: Option<Arc<FaultReadahead>>,
}

impl Vma {
    /// A VMA over `[start, end)` (page-aligned, non-empty).
    pub fn new(start: u64, end: u64, flags: VmFlags, backing: Backing, pgoff: u64) -> Vma {
        debug_assert!(
            start < end && start.is_multiple_of(PAGE_SIZE) && end.is_multiple_of(PAGE_SIZE)
        );
        Vma {
            start,
            end,
            flags,
            pgoff,
            interceptor: None,
            intercept_modes: 0,
            policy: None,
            hugetlb: None,
            anon_name: None,
            fault_readahead: backing
                .file()
                .filter(|f| f.is_async())
                .map(|_| Arc::new(FaultReadahead::default())),
            backing,
        }
    }

    /// First byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Length in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.end - self.start
    }

    /// Length in pages.
    pub fn pages(&self) -> u64 {
        self.len_bytes() / PAGE_SIZE
    }

    /// The `VM_*` flags.
    pub fn flags(&self) -> VmFlags {
        self.flags
    }

    /// The protection.
    pub fn prot(&self) -> Prot {
        self.flags.prot()
    }

    /// The backing.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The backing file, if any.
    pub fn file(&self) -> Option<&Arc<FileObject>> {
        self.backing.file()
    }

    /// The name given to this anonymous memory, if any.
    pub fn anon_name(&self) -> Option<&str> {
        self.anon_name.as_deref()
    }

    /// The hugetlb mapping, if this is one.
    pub fn hugetlb(&self) -> Option<&Arc<crate::hugetlb_map::HugetlbMap>> {
        self.hugetlb.as_ref()
    }

    /// Page offset of `start` in the backing file (0 for anonymous memory).
    pub fn pgoff(&self) -> u64 {
        self.pgoff
    }

    /// Whether writes reach a shared object (`VM_SHARED`).
    pub fn is_shared(&self) -> bool {
        self.flags.contains(VmFlags::SHARED)
    }

    /// Whether `addr` lies in the VMA.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The file page index backing `va` (meaningless for anonymous memory).
    pub fn file_index(&self, va: u64) -> u64 {
        self.pgoff + (va - self.start) / PAGE_SIZE
    }

    /// Whether the VMA maps shared memory (a shmem file object).
    pub fn is_shmem(&self) -> bool {
        self.file().is_some_and(|f| f.kind() == FileKind::Shmem)
    }

    /// Whether the VMA's pages that are not page-cache pages are anonymous (private).
    pub fn is_private(&self) -> bool {
        !self.flags.contains(VmFlags::MAYSHARE)
    }

    /// The VMA's own NUMA policy (`mbind`), if any.
    pub fn policy(&self) -> Option<crate::aspace::MemPolicy> {
        self.policy
    }

    /// The fault interceptor (userfaultfd) registered on the VMA.
    pub fn interceptor(&self) -> Option<&Arc<dyn FaultInterceptor>> {
        self.interceptor.as_ref()
    }
}

impl core::fmt::Debug for Vma {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vma")
            .field("start", &format_args!("{:#x}", self.start))
            .field("end", &format_args!("{:#x}", self.end))
            .field("flags", &self.flags)
            .field("backing", &self.backing)
            .field("pgoff", &self.pgoff)
            .field("intercepted", &self.interceptor.is_some())
            .finish()
    }
}
