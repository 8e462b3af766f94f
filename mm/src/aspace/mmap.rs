//! `mmap`: the typed [`MmapRequest`], its validation into an [`MmapPlan`] with Linux's
//! errno for each malformed request, placement (fixed, hint, top-down, `MAP_32BIT`),
//! and the mapping itself, followed by the optional populate.

use alloc::sync::Arc;

use super::mlock::LockLimit;
use super::mseal::check_unsealed;
use super::{AddressSpace, Layout, Tunables, MAP_32BIT_END, MAP_32BIT_START};
use crate::commit::Overcommit;
use crate::errno::MmError;
use crate::frame::PAGE_SIZE;
use crate::hugetlb_map::HugetlbMap;
use crate::pagecache::FileObject;
use crate::pagetable::PageTable;
use crate::vma::placement::{find_bottom_up, hint_fits, place};
use crate::vma::{Backing, MapFlags, MapType, Prot, VmFlags, Vma};

/// The file side of a file mapping: the object and the open file's access mode.
#[derive(Clone)]
pub struct FileMapping {
    /// The file.
    pub file: Arc<FileObject>,
    /// Opened for reading.
    pub readable: bool,
    /// Opened for writing.
    pub writable: bool,
}

/// A decoded `mmap` call.
#[derive(Clone)]
pub struct MmapRequest {
    /// The address (a hint, or the fixed address).
    pub addr: u64,
    /// Length in bytes (rounded up to pages).
    pub len: u64,
    /// Protection.
    pub prot: Prot,
    /// Flags.
    pub flags: MapFlags,
    /// The file, unless `MAP_ANONYMOUS`.
    pub file: Option<FileMapping>,
    /// Offset in the file in bytes (page-aligned).
    pub offset: u64,
}

/// Where a validated mapping goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Exactly here; `replace` unmaps what is there (`MAP_FIXED`), otherwise an
    /// existing mapping is `EEXIST` (`MAP_FIXED_NOREPLACE`).
    Fixed {
        /// The address.
        addr: u64,
        /// Whether existing mappings are replaced.
        replace: bool,
    },
    /// Anywhere, preferring this address if the range is free.
    Hint(u64),
    /// Anywhere (top-down below the mmap base).
    Anywhere,
}

/// What backs a validated mapping.
#[derive(Clone)]
pub enum PlannedBacking {
    /// Anonymous private memory.
    Anon,
    /// A new shmem object (anonymous shared memory).
    NewShmem,
    /// A file at a page offset.
    File(Arc<FileObject>, u64),
    /// Anonymous hugetlb memory (`MAP_HUGETLB`) of this page size, shared or
    /// private by the flags; `noreserve`: no pages are reserved at mmap.
    Hugetlb {
        /// The page size.
        size: crate::hugetlb::HugeSize,
        /// `MAP_NORESERVE`.
        noreserve: bool,
    },
}

/// `MAP_HUGE_SHIFT`: where `MAP_HUGETLB`'s page-size log2 sits in the flags.
pub const MAP_HUGE_SHIFT: u32 = 26;
/// `MAP_HUGE_MASK`.
pub const MAP_HUGE_MASK: u64 = 0x3f;

/// The hugetlb page size `MAP_HUGETLB` flags name (0: the default, 2 MiB;
/// `MAP_HUGE_2MB`, `MAP_HUGE_1GB`); `EINVAL` for a size with no pool.
fn huge_size_of(flag_bits: u64) -> Result<crate::hugetlb::HugeSize, MmError> {
    match (flag_bits >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK {
        0 | 21 => Ok(crate::hugetlb::HugeSize::Mib2),
        30 => Ok(crate::hugetlb::HugeSize::Gib1),
        _ => Err(MmError::InvalidArgument),
    }
}

/// A validated `mmap` request.
#[derive(Clone)]
pub struct MmapPlan {
    /// Where it goes.
    pub placement: Placement,
    /// Length in bytes, page-aligned, non-zero.
    pub len: u64,
    /// The new VMA's flags.
    pub vm_flags: VmFlags,
    /// Its backing.
    pub backing: PlannedBacking,
    /// Place below 2 GiB.
    pub low_32bit: bool,
    /// Pre-fault after mapping: `Some(true)` with write faults.
    pub populate: Option<bool>,
    /// How much the caller may lock (a locked mapping past it is `EAGAIN`).
    pub lock_limit: LockLimit,
}

impl MmapRequest {
    /// An anonymous request.
    pub fn anon(addr: u64, len: u64, prot: Prot, flags: MapFlags) -> MmapRequest {
        MmapRequest {
            addr,
            len,
            prot,
            flags: flags | MapFlags::ANONYMOUS,
            file: None,
            offset: 0,
        }
    }

    /// Decodes raw syscall arguments: unknown `PROT_*` bits are `EINVAL`. `file` is
    /// the mapped file (ignored with `MAP_ANONYMOUS`; `EBADF` for a missing one is the
    /// kernel's to return before calling).
    pub fn from_raw(
        addr: u64,
        len: u64,
        prot_bits: u64,
        flag_bits: u64,
        file: Option<FileMapping>,
        offset: u64,
    ) -> Result<MmapRequest, MmError> {
        let prot = Prot::from_mmap_bits(prot_bits)?;
        let flags = MapFlags::from_bits_retain(flag_bits);
        let file = if flags.contains(MapFlags::ANONYMOUS) {
            None
        } else {
            file
        };
        Ok(MmapRequest {
            addr,
            len,
            prot,
            flags,
            file,
            offset,
        })
    }

    /// Validates the request (Linux's checks and errno, plus Peios's refusal of
    /// `MAP_UNINITIALIZED`); `may_map_low` says the caller holds the privilege to map
    /// below `mmap_min_addr` (SeTcbPrivilege).
    pub fn validate(
        &self,
        tunables: &Tunables,
        layout: &Layout,
        may_map_low: bool,
    ) -> Result<MmapPlan, MmError> {
        let flags = self.flags;
        if flags.contains(MapFlags::UNINITIALIZED) && !flags.contains(MapFlags::HUGETLB) {
            return Err(MmError::InvalidArgument);
        }
        let map_type = flags.map_type()?;
        // Linux: anonymous mappings take only MAP_SHARED or MAP_PRIVATE (EINVAL), before
        // SHARED_VALIDATE's flag check (which is for files: EOPNOTSUPP).
        if map_type == MapType::SharedValidate
            && (self.file.is_none() || flags.contains(MapFlags::ANONYMOUS))
        {
            return Err(MmError::InvalidArgument);
        }
        if map_type == MapType::SharedValidate
            && (!MapFlags::KNOWN.contains(flags) || flags.contains(MapFlags::SYNC))
        {
            return Err(MmError::NotSupported);
        }
        let shared = map_type != MapType::Private;
        if !Prot::MMAP_VALID.contains(self.prot) {
            return Err(MmError::InvalidArgument);
        }
        if self.len == 0 || !self.offset.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::InvalidArgument);
        }
        let len = self
            .len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MmError::NoMemory)?;
        if len > layout.task_size {
            return Err(MmError::NoMemory);
        }
        let anonymous = flags.contains(MapFlags::ANONYMOUS);
        if !anonymous && self.file.is_none() {
            return Err(MmError::InvalidArgument);
        }
        let pgoff = self.offset / PAGE_SIZE;
        // Linux's file_mmap_ok: the mapped bytes must stay within MAX_LFS_FILESIZE.
        if !anonymous
            && self
                .offset
                .checked_add(len)
                .is_none_or(|e| e > i64::MAX as u64)
        {
            return Err(MmError::Overflow);
        }
        let placement = if flags.is_fixed() {
            if !self.addr.is_multiple_of(PAGE_SIZE) {
                return Err(MmError::InvalidArgument);
            }
            if self
                .addr
                .checked_add(len)
                .is_none_or(|end| end > layout.task_size)
            {
                return Err(MmError::NoMemory);
            }
            if self.addr < tunables.mmap_min_addr() && !may_map_low {
                return Err(MmError::PermissionDenied);
            }
            Placement::Fixed {
                addr: self.addr,
                replace: flags.contains(MapFlags::FIXED),
            }
        } else if self.addr != 0 {
            let hint = self.addr.max(tunables.mmap_min_addr());
            match hint.checked_next_multiple_of(PAGE_SIZE) {
                Some(h) => Placement::Hint(h),
                None => Placement::Anywhere,
            }
        } else {
            Placement::Anywhere
        };
        // A hugetlb file (hugetlbfs, MFD_HUGETLB) maps its own huge pages whatever
        // the flags say (a private mapping copies them on write), at an offset of
        // whole pages.
        let huge_file = self
            .file
            .as_ref()
            .filter(|_| !anonymous)
            .and_then(|fm| fm.file.hugetlb());
        let hugetlb = if let Some(pages) = huge_file {
            let bytes = pages.page_bytes();
            if !self.offset.is_multiple_of(bytes) {
                return Err(MmError::InvalidArgument);
            }
            if let Placement::Fixed { addr, .. } = placement {
                if !addr.is_multiple_of(bytes) {
                    return Err(MmError::InvalidArgument);
                }
            }
            Some(pages.huge_size())
        } else if flags.contains(MapFlags::HUGETLB) {
            // Anonymous only here (hugetlb files are handled above).
            if !anonymous || flags.contains(MapFlags::GROWSDOWN) {
                return Err(MmError::InvalidArgument);
            }
            let size = huge_size_of(flags.bits())?;
            let bytes = size.order().bytes();
            if let Placement::Fixed { addr, .. } = placement {
                if !addr.is_multiple_of(bytes) {
                    return Err(MmError::InvalidArgument);
                }
            }
            Some(size)
        } else {
            None
        };
        let len = match hugetlb {
            Some(size) => len
                .checked_next_multiple_of(size.order().bytes())
                .filter(|&l| l <= layout.task_size)
                .ok_or(MmError::NoMemory)?,
            None => len,
        };
        if flags.contains(MapFlags::GROWSDOWN) && shared {
            return Err(MmError::InvalidArgument);
        }

        let mut vm =
            VmFlags::from_prot(self.prot) | VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC;
        let backing = match (&self.file, anonymous) {
            (_, true) if hugetlb.is_some() => PlannedBacking::Hugetlb {
                size: hugetlb.unwrap_or(crate::hugetlb::HugeSize::Mib2),
                noreserve: flags.contains(MapFlags::NORESERVE),
            },
            (_, true) if shared => PlannedBacking::NewShmem,
            (_, true) => PlannedBacking::Anon,
            (Some(fm), false) => {
                if !fm.readable {
                    return Err(MmError::AccessDenied);
                }
                if shared && !fm.writable {
                    if self.prot.contains(Prot::WRITE) {
                        return Err(MmError::AccessDenied);
                    }
                    vm -= VmFlags::MAYWRITE;
                }
                PlannedBacking::File(fm.file.clone(), pgoff)
            }
            (None, false) => return Err(MmError::InvalidArgument),
        };
        if shared {
            vm |= VmFlags::MAYSHARE;
            if vm.contains(VmFlags::MAYWRITE) {
                vm |= VmFlags::SHARED;
            }
        }
        if flags.contains(MapFlags::GROWSDOWN) {
            vm |= VmFlags::GROWSDOWN;
        }
        if flags.contains(MapFlags::LOCKED) {
            vm |= VmFlags::LOCKED;
        }
        if hugetlb.is_some() {
            // Hugetlb pages are reserved from their pool, not charged to the commit;
            // MAP_NORESERVE reserves none (whatever the overcommit mode, as Linux).
            vm |= VmFlags::HUGETLB;
            if flags.contains(MapFlags::NORESERVE) {
                vm |= VmFlags::NORESERVE;
            }
        } else
        // Strict accounting (overcommit mode 2) ignores MAP_NORESERVE, as on Linux.
        if flags.contains(MapFlags::NORESERVE)
            && tunables.commitment().mode() != Overcommit::Never
        {
            vm |= VmFlags::NORESERVE;
        } else if !shared && self.prot.contains(Prot::WRITE) {
            vm |= VmFlags::ACCOUNT;
        }
        let populate = (flags.contains(MapFlags::LOCKED)
            || (flags.contains(MapFlags::POPULATE) && !flags.contains(MapFlags::NONBLOCK)))
        .then(|| !shared && self.prot.contains(Prot::WRITE));
        Ok(MmapPlan {
            placement,
            len,
            vm_flags: vm,
            backing,
            low_32bit: flags.contains(MapFlags::MAP_32BIT),
            populate,
            lock_limit: LockLimit::Unlimited,
        })
    }
}

/// The pre-fault an `mmap` asks for (`MAP_POPULATE`, `MAP_LOCKED`): `[start, end)`, for
/// writing or reading (see [`AddressSpace::mmap_deferring_prefault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefault {
    /// First byte.
    pub start: u64,
    /// End (exclusive), page-aligned.
    pub end: u64,
    /// Fault for writing (a private writable mapping), else for reading.
    pub write: bool,
}

impl<P: PageTable> AddressSpace<P> {
    /// `mmap`: validates, places and maps the request; pre-faults it for
    /// `MAP_POPULATE`/`MAP_LOCKED` (best effort, as on Linux). Returns the address.
    pub fn mmap(&self, req: &MmapRequest, may_map_low: bool) -> Result<u64, MmError> {
        self.mmap_limited(req, may_map_low, LockLimit::Unlimited)
    }

    /// [`mmap`](Self::mmap) for a caller that may lock at most `limit`: a locked
    /// mapping (`MAP_LOCKED`, or any after `mlockall(MCL_FUTURE)`) past it is `EAGAIN`,
    /// and `MAP_LOCKED` with a zero limit is `EPERM`, as on Linux.
    pub fn mmap_limited(
        &self,
        req: &MmapRequest,
        may_map_low: bool,
        limit: LockLimit,
    ) -> Result<u64, MmError> {
        let (start, prefault) = self.mmap_deferring_prefault(req, may_map_low, limit)?;
        if let Some(p) = prefault {
            let _ = self.prefault_best_effort(p.start, p.end, p.write);
        }
        Ok(start)
    }

    /// [`mmap_limited`](Self::mmap_limited) without its pre-fault: returns the address
    /// and the pre-fault `MAP_POPULATE`/`MAP_LOCKED` asks for, which the caller runs
    /// with [`prefault_best_effort`](Self::prefault_best_effort) (the kernel does it in
    /// pieces, giving the CPU away between them, so a populate of a large mapping
    /// does not hold the CPU for the whole of it).
    pub fn mmap_deferring_prefault(
        &self,
        req: &MmapRequest,
        may_map_low: bool,
        limit: LockLimit,
    ) -> Result<(u64, Option<Prefault>), MmError> {
        let mut plan = req.validate(self.tunables(), &self.layout(), may_map_low)?;
        if req.flags.contains(MapFlags::LOCKED) && limit == LockLimit::Bytes(0) {
            return Err(MmError::PermissionDenied);
        }
        plan.lock_limit = limit;
        let start = self.map_plan(&plan)?;
        let locked_now = self.vma_at(start).is_some_and(|v| {
            v.flags().contains(VmFlags::LOCKED) && !v.flags().contains(VmFlags::LOCKONFAULT)
        });
        let write_populate =
            plan.vm_flags.contains(VmFlags::WRITE) && !plan.vm_flags.contains(VmFlags::MAYSHARE);
        let write = match plan.populate {
            Some(write) => Some(write),
            None if locked_now => Some(write_populate),
            None => None,
        };
        Ok((
            start,
            write.map(|write| Prefault {
                start,
                end: start + plan.len,
                write,
            }),
        ))
    }

    /// A free, unmapped range of `len` bytes (rounded up to pages) where `mmap` would
    /// place it: at `hint` if that is free, else top-down below the mmap base.
    /// `ENOMEM` when there is no room.
    pub fn find_free(&self, len: u64, hint: Option<u64>) -> Result<u64, MmError> {
        let len = len
            .checked_next_multiple_of(PAGE_SIZE)
            .filter(|&l| l != 0)
            .ok_or(MmError::NoMemory)?;
        let st = self.state().read();
        let gap = self.gap_bytes();
        let low = self.tunables().mmap_min_addr().max(PAGE_SIZE);
        let layout = self.layout();
        let hint = hint.and_then(|h| h.checked_next_multiple_of(PAGE_SIZE));
        place(
            &st.tree,
            len,
            hint,
            (low, layout.task_size),
            layout.mmap_base,
            gap,
        )
        .ok_or(MmError::NoMemory)
    }

    /// Maps a validated plan; returns the address.
    pub fn map_plan(&self, plan: &MmapPlan) -> Result<u64, MmError> {
        let len = plan.len;
        let mut st = self.state().write();
        let gap = self.gap_bytes();
        let min_addr = self.tunables().mmap_min_addr().max(PAGE_SIZE);
        let layout = self.layout();
        let (low, high) = if plan.low_32bit {
            (min_addr.max(MAP_32BIT_START), MAP_32BIT_END)
        } else {
            (min_addr, layout.task_size)
        };
        let hugetlb = match &plan.backing {
            PlannedBacking::Hugetlb { size, .. } => Some(size.order().bytes()),
            PlannedBacking::File(f, _) => f.hugetlb().map(|h| h.page_bytes()),
            _ => None,
        };
        // A hugetlb mapping starts on a huge page: look for room for one more page
        // and round up.
        let (len, align) = match hugetlb {
            Some(bytes) => (len + bytes - PAGE_SIZE, bytes),
            None => (len, PAGE_SIZE),
        };
        let start = match plan.placement {
            Placement::Fixed { addr, replace } => {
                if !replace && !st.tree.is_free(addr, addr + len) {
                    return Err(MmError::Exists);
                }
                check_unsealed(&st.tree, addr, addr + len)?;
                addr
            }
            Placement::Hint(hint) if hint_fits(&st.tree, hint, len, (low, high), gap) => hint,
            _ if plan.low_32bit => {
                find_bottom_up(&st.tree, len, low, high, gap).ok_or(MmError::NoMemory)?
            }
            _ => place(&st.tree, len, None, (low, high), layout.mmap_base, gap)
                .ok_or(MmError::NoMemory)?,
        };
        let (start, len) = match plan.placement {
            Placement::Fixed { .. } => (start, plan.len),
            _ => (start.next_multiple_of(align), plan.len),
        };
        let end = start + len;
        let shared = plan.vm_flags.contains(VmFlags::MAYSHARE);
        let (backing, pgoff) = match &plan.backing {
            PlannedBacking::Anon => (Backing::Anon, 0),
            PlannedBacking::NewShmem => (
                Backing::File(FileObject::new_shmem(len, self.frames().clone())),
                0,
            ),
            PlannedBacking::File(f, pgoff) => (Backing::File(f.clone()), *pgoff),
            // Shared anonymous hugetlb memory is a hugetlb file of its own, as Linux's
            // `hugetlb_file_setup` makes one: fork children share it, `MADV_REMOVE`
            // punches it.
            PlannedBacking::Hugetlb { size, .. } if shared => {
                (Backing::File(self.anon_hugetlb_file(*size, len)?), 0)
            }
            PlannedBacking::Hugetlb { .. } => (Backing::Anon, 0),
        };
        let vm_flags = plan.vm_flags | st.def_flags;
        Self::check_lock_future(&st, vm_flags, len, plan.lock_limit)?;
        let mut vma = Vma::new(start, end, vm_flags, backing, pgoff);
        if let PlannedBacking::Hugetlb { size, noreserve } = plan.backing {
            let pages = len / size.order().bytes();
            let map = match vma.file().and_then(|f| f.hugetlb()) {
                Some(file) => HugetlbMap::for_file(file.clone(), start, 0, pages, noreserve),
                None => {
                    let source = self.hugetlb_pool()?;
                    HugetlbMap::new(size, source, self.frames().clone(), start, pages, noreserve)
                }
            };
            vma.hugetlb = Some(map.ok_or(MmError::NoMemory)?);
        }
        if let PlannedBacking::File(f, pgoff) = &plan.backing {
            if let Some(pages) = f.hugetlb() {
                vma.hugetlb = Some(Self::hugetlb_file_map(f, pages, plan, start, *pgoff)?);
            }
        }
        let max = self.tunables().max_map_count();
        let old = st.tree.rewrite(start, end, max, &mut |_| None, Some(vma))?;
        self.zap_vmas(&old);
        st.note_vm_size();
        Ok(start)
    }
}

impl<P: PageTable> AddressSpace<P> {
    /// The huge-page pools hugetlb mappings draw from (`ENOMEM` where none is installed).
    fn hugetlb_pool(&self) -> Result<Arc<dyn crate::hugetlb::HugetlbSource>, MmError> {
        self.tunables()
            .hugetlb_source()
            .cloned()
            .ok_or(MmError::NoMemory)
    }

    /// The file behind a shared anonymous hugetlb mapping of `len` bytes in pages of
    /// `size`, named in /proc as Linux names it.
    fn anon_hugetlb_file(
        &self,
        size: crate::hugetlb::HugeSize,
        len: u64,
    ) -> Result<Arc<FileObject>, MmError> {
        let pages = crate::hugetlb_file::HugetlbFile::new(
            size,
            self.hugetlb_pool()?,
            self.frames().clone(),
            None,
        );
        let file = FileObject::new_hugetlb(
            crate::hugetlb_file::ANON_HUGETLB_PATH,
            pages,
            self.frames().clone(),
        );
        file.set_size(len);
        Ok(file)
    }

    /// The hugetlb side of a mapping of the hugetlb file `f` (whose pages are
    /// `pages`) at `start`, file page offset `pgoff`: a shared one reserves the pages
    /// of the range the file has not covered yet, a private one every page of its
    /// range (none with `MAP_NORESERVE`; `ENOMEM` when the pool cannot), and a
    /// writable mapping past the end grows the file to cover it, as Linux's hugetlbfs
    /// does (a private one too).
    fn hugetlb_file_map(
        f: &Arc<FileObject>,
        pages: &Arc<crate::hugetlb_file::HugetlbFile>,
        plan: &MmapPlan,
        start: u64,
        pgoff: u64,
    ) -> Result<Arc<HugetlbMap>, MmError> {
        let offset = pgoff * PAGE_SIZE;
        let first = offset / pages.page_bytes();
        let count = plan.len / pages.page_bytes();
        let noreserve = plan.vm_flags.contains(VmFlags::NORESERVE);
        let base = start.wrapping_sub(offset);
        let map = if plan.vm_flags.contains(VmFlags::MAYSHARE) {
            HugetlbMap::for_file(pages.clone(), base, first, count, noreserve)
        } else {
            HugetlbMap::for_file_private(pages.clone(), base, first, count, noreserve)
        }
        .ok_or(MmError::NoMemory)?;
        let end = offset + plan.len;
        if plan.vm_flags.contains(VmFlags::WRITE) && f.size_bytes() < end {
            f.grow_size(end);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{file_bytes, harness};
    use crate::aspace::{DEFAULT_MMAP_BASE, TASK_SIZE};
    use crate::fault::Access;
    use crate::pagetable::PageTable;

    const RW: u64 = 0x3;
    const PRIV_ANON: u64 = 0x22;

    fn raw(
        h: &crate::aspace::tests::Harness,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
    ) -> Result<u64, MmError> {
        let req = MmapRequest::from_raw(addr, len, prot, flags, None, 0)?;
        h.aspace.mmap(&req, false)
    }

    #[test]
    fn errno_of_malformed_requests() {
        let h = harness();
        assert_eq!(raw(&h, 0, 0, RW, PRIV_ANON), Err(MmError::InvalidArgument));
        assert_eq!(
            raw(&h, 0, 4096, 0x10, PRIV_ANON),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            raw(&h, 0, 4096, RW, 0x20),
            Err(MmError::InvalidArgument),
            "neither shared nor private"
        );
        assert_eq!(
            raw(&h, 0, 4096, RW, PRIV_ANON | 0x400_0000),
            Err(MmError::InvalidArgument),
            "MAP_UNINITIALIZED"
        );
        assert_eq!(
            raw(&h, 0x10_0001, 4096, RW, PRIV_ANON | 0x10),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            raw(&h, 0x1000, 4096, RW, PRIV_ANON | 0x10),
            Err(MmError::PermissionDenied)
        );
        assert_eq!(
            raw(&h, 0, u64::MAX - 10, RW, PRIV_ANON),
            Err(MmError::NoMemory)
        );
        assert_eq!(
            raw(&h, 0, TASK_SIZE + 4096, RW, PRIV_ANON),
            Err(MmError::NoMemory)
        );
        assert_eq!(
            raw(&h, TASK_SIZE - 4096, 8192, RW, PRIV_ANON | 0x10),
            Err(MmError::NoMemory)
        );
        assert_eq!(
            raw(&h, 0, 4096, RW, 0x23 | 0x80_0000),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            raw(&h, 0, 4096, RW, 0x21 | 0x100),
            Err(MmError::InvalidArgument),
            "shared growsdown"
        );
        assert_eq!(
            raw(&h, 0, 4096, RW, PRIV_ANON | 0x4_0000),
            Err(MmError::NoMemory),
            "no hugetlb pool"
        );
        // Unknown flags are ignored without SHARED_VALIDATE.
        assert!(raw(&h, 0, 4096, RW, PRIV_ANON | 0x80_0000).is_ok());
        let req = MmapRequest::from_raw(0, 4096, RW, PRIV_ANON, None, 100).unwrap();
        assert_eq!(
            h.aspace.mmap(&req, false),
            Err(MmError::InvalidArgument),
            "unaligned offset"
        );
        // The privilege lifts mmap_min_addr.
        let req = MmapRequest::from_raw(0x1000, 4096, RW, PRIV_ANON | 0x10, None, 0).unwrap();
        assert_eq!(h.aspace.mmap(&req, true), Ok(0x1000));
    }

    #[test]
    fn placement_top_down_hint_noreplace_32bit() {
        let h = harness();
        let a = raw(&h, 0, 8192, RW, PRIV_ANON).unwrap();
        assert_eq!(a, DEFAULT_MMAP_BASE - 8192);
        let b = raw(&h, 0, 4096, 0x1, PRIV_ANON).unwrap();
        assert_eq!(b, a - 4096);
        let hint = raw(&h, 0x5000_0123, 4096, RW, PRIV_ANON).unwrap();
        assert_eq!(hint, 0x5000_1000, "hint rounded up");
        let taken = raw(&h, 0x5000_1000, 4096, RW, PRIV_ANON).unwrap();
        assert_ne!(taken, 0x5000_1000);
        assert_eq!(
            raw(&h, 0x5000_1000, 4096, RW, PRIV_ANON | 0x10_0000),
            Err(MmError::Exists)
        );
        assert_eq!(
            raw(&h, 0x5000_0000, 0x2000, RW, PRIV_ANON | 0x10_0000),
            Err(MmError::Exists)
        );
        let low = raw(&h, 0, 4096, RW, PRIV_ANON | 0x40).unwrap();
        assert!(low + 4096 <= 1 << 31 && low >= MAP_32BIT_START);
        // MAP_FIXED replaces, freeing the old pages.
        h.aspace.fault(a, Access::Write, true).unwrap();
        assert_eq!(h.soft.live(), 1);
        let again = raw(&h, a, 4096, 0x1, PRIV_ANON | 0x10).unwrap();
        assert_eq!(again, a);
        assert_eq!(h.soft.live(), 0);
        assert_eq!(h.aspace.vma_at(a).unwrap().prot(), Prot::READ);
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn max_map_count_is_enomem() {
        let h = harness();
        h.aspace.tunables().set_max_map_count(3);
        // Alternate protections so nothing merges.
        for i in 0..3u64 {
            raw(
                &h,
                0x100_0000 + i * 0x2000,
                4096,
                1 + (i % 2) * 2,
                PRIV_ANON | 0x10,
            )
            .unwrap();
        }
        assert_eq!(
            raw(&h, 0x200_0000, 4096, RW, PRIV_ANON | 0x10),
            Err(MmError::NoMemory)
        );
        // One that merges with a neighbour still fits.
        assert!(raw(&h, 0x100_1000, 4096, 0x1, PRIV_ANON | 0x10).is_ok());
        assert_eq!(h.aspace.vma_count(), 3);
        assert_eq!(h.aspace.vma_at(0x100_0000).unwrap().end(), 0x100_2000);
    }

    #[test]
    fn file_modes_and_flags() {
        let h = harness();
        let f = h.file(&file_bytes(8192));
        let ro = FileMapping {
            file: f.clone(),
            readable: true,
            writable: false,
        };
        let req = MmapRequest::from_raw(0, 8192, RW, 0x01, Some(ro.clone()), 0).unwrap();
        assert_eq!(h.aspace.mmap(&req, false), Err(MmError::AccessDenied));
        let req = MmapRequest::from_raw(0, 8192, 0x1, 0x01, Some(ro.clone()), 0).unwrap();
        let a = h.aspace.mmap(&req, false).unwrap();
        let v = h.aspace.vma_at(a).unwrap();
        assert!(
            v.flags().contains(VmFlags::MAYSHARE)
                && !v.flags().contains(VmFlags::SHARED | VmFlags::MAYWRITE)
        );
        let req = MmapRequest::from_raw(0, 8192, RW, 0x02, Some(ro.clone()), 0).unwrap();
        let p = h.aspace.mmap(&req, false).unwrap();
        assert!(h
            .aspace
            .vma_at(p)
            .unwrap()
            .flags()
            .contains(VmFlags::ACCOUNT));
        let wo = FileMapping {
            readable: false,
            ..ro.clone()
        };
        let req = MmapRequest::from_raw(0, 8192, 0x1, 0x02, Some(wo), 0).unwrap();
        assert_eq!(h.aspace.mmap(&req, false), Err(MmError::AccessDenied));
        let req = MmapRequest::from_raw(0, 8192, 0x1, 0x02, Some(ro), !0xfff).unwrap();
        assert_eq!(h.aspace.mmap(&req, false), Err(MmError::Overflow));
    }

    #[test]
    fn populate_prefaults() {
        let h = harness();
        let a = raw(&h, 0, 4 * 4096, RW, PRIV_ANON | 0x8000).unwrap();
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(a), VirtAddr::new(a + 4 * 4096)),
            4
        );
        let b = raw(&h, 0, 4 * 4096, RW, PRIV_ANON | 0x8000 | 0x1_0000).unwrap();
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(b), VirtAddr::new(b + 4 * 4096)),
            0,
            "MAP_NONBLOCK"
        );
        let c = raw(&h, 0, 2 * 4096, RW, PRIV_ANON | 0x2000).unwrap();
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(c), VirtAddr::new(c + 2 * 4096)),
            2,
            "MAP_LOCKED"
        );
        assert!(h
            .aspace
            .vma_at(c)
            .unwrap()
            .flags()
            .contains(VmFlags::LOCKED));
    }
}
