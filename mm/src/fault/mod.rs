//! The page-fault path: [`AddressSpace::fault`] resolves a fault at once when it can
//! (demand-zero, copy-on-write, page-cache hit, permission upgrade) and otherwise
//! returns [`FaultError::NeedsWait`] with a [`FaultFuture`] the kernel `.await`s
//! before retrying. It runs under the VMA tree's read lock only (see the locking notes
//! in [`crate::aspace`]).
//!
//! ```ignore
//! // The kernel's trap handler, in the faulting thread's task:
//! loop {
//!     match aspace.fault(cr2, access, from_user) {
//!         Ok(_) => break,                               // return to userland
//!         Err(FaultError::NeedsWait(wait)) => wait.await, // park, then retry
//!         Err(e) => return deliver(e.signal()),         // SIGSEGV / SIGBUS / OOM
//!     }
//! }
//! ```

pub(crate) mod access;
mod anon;
mod cow;
mod file;
pub(crate) mod huge;
pub(crate) mod hugetlb;
pub(crate) mod intercept;
mod stack;
pub(crate) mod wait;

pub use access::Access;
pub use intercept::{intercept_mode, FaultInterceptor, Intercept, InterceptEvent};
pub use wait::{Completion, FaultFuture, WaitReason, WakerSet};

use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::frame::PAGE_SIZE;
use crate::pagetable::{InstallError, Lookup, PageTable, Pte, PteFlags};
use crate::phys::AllocFailure;
use crate::vma::{Backing, VmFlags, Vma};

/// How a fault was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultResolved {
    /// Nothing to do: another thread resolved it first, or a stale TLB entry.
    Spurious,
    /// A zeroed frame was mapped (anonymous memory).
    DemandZero,
    /// A zeroed 2 MiB page was mapped with one huge leaf (anonymous memory).
    DemandZeroHuge,
    /// A shared frame was copied for a private write.
    CowCopied,
    /// A private write found the frame exclusive and made the entry writable.
    CowReused,
    /// A page-cache page was mapped without I/O.
    FileMinor,
    /// A page-cache page was read from the backing and mapped.
    FileMajor,
    /// The entry gained a permission the VMA already allowed.
    Upgraded,
    /// A swapped-out page was mapped from the swap cache (after its read, or while
    /// another fault's read or a write-out held it there).
    SwapIn,
}

impl FaultResolved {
    /// Whether the fault did I/O (`majflt`); all others count as `minflt`.
    pub fn is_major(self) -> bool {
        matches!(self, FaultResolved::FileMajor | FaultResolved::SwapIn)
    }
}

/// `si_code` of a `SIGSEGV` for an address with no mapping.
pub const SEGV_MAPERR: i32 = 1;
/// `si_code` of a `SIGSEGV` for a mapping that forbids the access.
pub const SEGV_ACCERR: i32 = 2;
/// `si_code` of a `SIGBUS` for an address past the end of the mapped object.
pub const BUS_ADRERR: i32 = 2;
/// `SIGBUS`.
pub const SIGBUS: i32 = 7;
/// `SIGSEGV`.
pub const SIGSEGV: i32 = 11;

/// Why a fault was not resolved.
#[derive(Debug)]
pub enum FaultError {
    /// No VMA covers the address (`SIGSEGV`, `SEGV_MAPERR`).
    MapErr,
    /// The VMA forbids the access (`SIGSEGV`, `SEGV_ACCERR`).
    AccErr,
    /// The page lies beyond the end of the mapped file, or its read failed
    /// (`SIGBUS`, `BUS_ADRERR`).
    SigBus,
    /// No memory, and waiting would not help (the kernel's OOM path decides).
    Oom,
    /// The fault must wait: `.await` the future, then retry the fault.
    NeedsWait(FaultFuture),
}

impl FaultError {
    /// The signal and `si_code` to deliver for a failed user fault (`None` for OOM
    /// and waits, which the kernel handles otherwise).
    pub fn signal(&self) -> Option<(i32, i32)> {
        match self {
            FaultError::MapErr => Some((SIGSEGV, SEGV_MAPERR)),
            FaultError::AccErr => Some((SIGSEGV, SEGV_ACCERR)),
            FaultError::SigBus => Some((SIGBUS, BUS_ADRERR)),
            FaultError::Oom | FaultError::NeedsWait(_) => None,
        }
    }
}

impl From<AllocFailure> for FaultError {
    fn from(e: AllocFailure) -> FaultError {
        match e {
            AllocFailure::OutOfMemory => FaultError::Oom,
            AllocFailure::Wait(f) => FaultError::NeedsWait(f),
        }
    }
}

impl From<Intercept> for FaultError {
    fn from(i: Intercept) -> FaultError {
        match i {
            Intercept::Wait(w) => FaultError::NeedsWait(w),
            Intercept::SigBus => FaultError::SigBus,
        }
    }
}

/// The entry permissions a VMA's flags allow (write and exec imply read on x86).
pub(crate) fn vma_pte_perms(flags: VmFlags) -> PteFlags {
    let mut f = PteFlags::empty();
    f.set(PteFlags::READ, flags.accessible());
    f.set(PteFlags::WRITE, flags.contains(VmFlags::WRITE));
    f.set(PteFlags::EXEC, flags.contains(VmFlags::EXEC));
    f | PteFlags::for_pkey(flags.pkey())
}

/// Whether the VMA allows the access.
fn vma_allows(flags: VmFlags, access: Access) -> bool {
    match access {
        Access::Read => flags.accessible(),
        Access::Write => flags.contains(VmFlags::WRITE),
        Access::Exec => flags.contains(VmFlags::EXEC),
    }
}

/// The hardware bits a fresh entry starts with.
pub(crate) fn fresh_hw_bits(access: Access) -> PteFlags {
    match access {
        Access::Write => PteFlags::ACCESSED | PteFlags::DIRTY,
        _ => PteFlags::ACCESSED,
    }
}

impl<P: PageTable> AddressSpace<P> {
    /// Installs `pte` (whose frame reference the caller holds) and reports `kind`, or
    /// releases the reference when another fault got there first (`Spurious`, unless
    /// this fault did the I/O: it stays major, as Linux counts `majflt` for the reader
    /// whoever maps the page) or the page table could not grow (`Oom`).
    fn install_or_release(
        &self,
        page: u64,
        pte: Pte,
        kind: FaultResolved,
    ) -> Result<FaultResolved, FaultError> {
        match self.page_table().install(VirtAddr::new(page), pte) {
            Ok(()) => Ok(kind),
            Err(InstallError::Occupied(_)) => {
                self.frames().put(pte.pfn);
                Ok(if kind.is_major() {
                    kind
                } else {
                    FaultResolved::Spurious
                })
            }
            Err(InstallError::NoMemory) => {
                self.frames().put(pte.pfn);
                Err(FaultError::Oom)
            }
        }
    }

    /// Resolves a page fault at `addr` for `access`, `user` telling whether it came
    /// from user mode. Resolves at once or returns [`FaultError::NeedsWait`]; never
    /// blocks except on the VMA tree lock behind a writer.
    pub fn fault(
        &self,
        addr: u64,
        access: Access,
        user: bool,
    ) -> Result<FaultResolved, FaultError> {
        if addr >= self.layout().task_size {
            return Err(FaultError::MapErr);
        }
        let page = addr & !(PAGE_SIZE - 1);
        {
            let st = self.state().read();
            if let Some(vma) = st.tree.find(addr) {
                return self.fault_in_vma(vma, page, access, user);
            }
            if !stack::below_stack(&st.tree, addr) {
                return Err(FaultError::MapErr);
            }
        }
        self.grow_stack(page)?;
        let st = self.state().read();
        let vma = st.tree.find(addr).ok_or(FaultError::MapErr)?;
        self.fault_in_vma(vma, page, access, user)
    }

    /// [`fault`](Self::fault) for a task that may wait: every
    /// [`FaultError::NeedsWait`] is awaited and the fault retried, so the result is
    /// never `NeedsWait`. A fault that resolves at once completes on the first poll.
    pub async fn handle_fault(
        &self,
        addr: u64,
        access: Access,
        user: bool,
    ) -> Result<FaultResolved, FaultError> {
        loop {
            match self.fault(addr, access, user) {
                Err(FaultError::NeedsWait(wait)) => wait.await,
                other => return other,
            }
        }
    }

    /// A fault on `page` inside `vma` (tree read lock held).
    pub(crate) fn fault_in_vma(
        &self,
        vma: &Vma,
        page: u64,
        access: Access,
        user: bool,
    ) -> Result<FaultResolved, FaultError> {
        if !vma_allows(vma.flags, access) {
            return Err(FaultError::AccErr);
        }
        if let Some(map) = &vma.hugetlb {
            return self.hugetlb_fault(vma, map, page, access);
        }
        match self.page_table().lookup(VirtAddr::new(page)) {
            Lookup::Mapped(pte) => {
                if access == Access::Write && vma.intercept_modes & intercept_mode::WP != 0 {
                    if let Some(taken) = vma
                        .interceptor
                        .as_ref()
                        .and_then(|hook| hook.write_protected(page, user))
                    {
                        return Err(taken.into());
                    }
                }
                return self.fault_present(vma, page, pte, access);
            }
            Lookup::Swapped(entry) => return self.swap_fault(vma, page, entry, access),
            Lookup::Empty => {}
        }
        if let Some(taken) = self.intercept_empty(vma, page, access, user) {
            return Err(taken.into());
        }
        match &vma.backing {
            Backing::Anon => {
                if let Some(result) = self.huge_demand_zero(vma, page, access) {
                    return result;
                }
                self.demand_zero(vma, page, access)
            }
            Backing::File(file) => self.file_fault(vma, file, page, access),
        }
    }

    /// The interceptor's say on a fault at an empty `page`: missing mode for anonymous
    /// memory, minor mode for a shared-memory page the page cache holds.
    fn intercept_empty(
        &self,
        vma: &Vma,
        page: u64,
        access: Access,
        user: bool,
    ) -> Option<Intercept> {
        let hook = vma.interceptor.as_ref()?;
        match &vma.backing {
            Backing::Anon if vma.intercept_modes & intercept_mode::MISSING != 0 => {
                hook.missing(page, access, user)
            }
            Backing::File(file) if vma.intercept_modes & intercept_mode::MINOR != 0 => {
                // A page in swap is in the cache too (as Linux's shmem sees it).
                let index = vma.file_index(page);
                let cached = file.cache().peek(index).is_some() || file.cache().is_swapped(index);
                if cached {
                    hook.minor(page, access, user)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// A fault on a present entry: spurious, copy-on-write, or a permission upgrade.
    fn fault_present(
        &self,
        vma: &Vma,
        page: u64,
        pte: Pte,
        access: Access,
    ) -> Result<FaultResolved, FaultError> {
        if pte.flags.contains(PteFlags::BUSY) {
            // Another fault is copying this page: retry when it is done.
            return Ok(FaultResolved::Spurious);
        }
        if pte.flags.contains(access.pte_flag()) && pte.flags.contains(PteFlags::READ) {
            return Ok(FaultResolved::Spurious);
        }
        if access == Access::Write && vma.is_private() {
            return self.cow_fault(vma, page, pte);
        }
        let want = vma_pte_perms(vma.flags);
        let new = pte.with_flags((pte.flags - PteFlags::PERMS) | want | fresh_hw_bits(access));
        let new = if vma.is_private() {
            // A private entry becomes writable only through copy-on-write.
            new.with_flags((new.flags - PteFlags::WRITE) | (pte.flags & PteFlags::WRITE))
        } else {
            new
        };
        match self.page_table().replace(VirtAddr::new(page), pte, new) {
            Ok(()) => Ok(FaultResolved::Upgraded),
            Err(_) => Ok(FaultResolved::Spurious),
        }
    }
}
