//! The mlock family: `mlock`, `mlock2` (`MLOCK_ONFAULT`), `munlock`, `mlockall`
//! (`MCL_CURRENT`/`MCL_FUTURE`/`MCL_ONFAULT`), `munlockall`, and the limit
//! `MAP_LOCKED` and `MCL_FUTURE` mappings are held to.
//!
//! Locking is a VMA flag (`VM_LOCKED`, with `VM_LOCKONFAULT` for the on-fault
//! kind): reclaim and swap skip `VM_LOCKED` VMAs, so a locked page that is resident
//! stays resident. `mlock` then populates the range (unless on-fault) through the same
//! faults userland would take; a fault that must wait hands back a
//! [`PopulateStep::Wait`] the kernel awaits before resuming with
//! [`AddressSpace::populate_locked`].
//!
//! The caller's allowance is a [`LockLimit`]: the kernel passes
//! `RLIMIT_MEMLOCK`, or [`LockLimit::Unlimited`] for a token holding
//! SeLockMemoryPrivilege (Linux's `CAP_IPC_LOCK`). Errno follow Linux 6.12:
//! `EPERM` when the limit is zero and the caller unprivileged, `ENOMEM` past the
//! limit or over a hole, `EINVAL` for bad flags or a wrapping range; a populate that
//! cannot get memory is `EAGAIN`.

use bitflags::bitflags;

use super::{AddressSpace, MmState, PopulateStep};
use crate::errno::MmError;
use crate::fault::Access;
use crate::frame::PAGE_SIZE;
use crate::pagetable::PageTable;
use crate::vma::{VmFlags, Vma};

/// `MLOCK_ONFAULT`: the one `mlock2` flag.
pub const MLOCK_ONFAULT: u64 = 0x1;

bitflags! {
    /// `MCL_*`: the flags of `mlockall`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MlockallFlags: u64 {
        /// `MCL_CURRENT`: lock every current mapping.
        const CURRENT = 0x1;
        /// `MCL_FUTURE`: lock every mapping made from now on.
        const FUTURE = 0x2;
        /// `MCL_ONFAULT`: lock pages as they fault in, not at once.
        const ONFAULT = 0x4;
    }
}

/// How much a caller may lock: `RLIMIT_MEMLOCK`'s soft value, or no limit for a
/// holder of SeLockMemoryPrivilege.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockLimit {
    /// SeLockMemoryPrivilege: no limit.
    Unlimited,
    /// At most this many bytes locked in the address space.
    Bytes(u64),
}

impl LockLimit {
    /// The limit in whole pages.
    fn pages(self) -> u64 {
        match self {
            LockLimit::Unlimited => u64::MAX,
            LockLimit::Bytes(b) => b / PAGE_SIZE,
        }
    }

    /// Linux's `can_do_mlock`: a zero limit without the privilege forbids locking.
    fn may_lock(self) -> bool {
        self != LockLimit::Bytes(0)
    }

    /// Whether `pages` locked pages are within the limit.
    fn allows(self, pages: u64) -> bool {
        pages <= self.pages()
    }
}

impl MmState {
    /// Pages of `VM_LOCKED` VMAs (Linux's `mm->locked_vm`, `VmLck`).
    pub(crate) fn locked_pages(&self) -> u64 {
        self.tree
            .iter()
            .filter(|v| v.flags.contains(VmFlags::LOCKED))
            .map(Vma::pages)
            .sum()
    }

    /// Pages of `[start, end)` already in `VM_LOCKED` VMAs.
    fn locked_pages_in(&self, start: u64, end: u64) -> u64 {
        self.tree
            .overlapping(start, end)
            .filter(|v| v.flags.contains(VmFlags::LOCKED))
            .map(|v| (v.end.min(end) - v.start.max(start)) / PAGE_SIZE)
            .sum()
    }
}

/// The page-aligned `[start, end)` mlock and munlock act on: the start rounded down,
/// the length grown by the start's offset and rounded up (Linux's arithmetic).
/// `EINVAL` when it wraps.
fn lock_range(addr: u64, len: u64) -> Result<(u64, u64), MmError> {
    let start = addr & !(PAGE_SIZE - 1);
    let len = len
        .checked_add(addr - start)
        .and_then(|l| l.checked_next_multiple_of(PAGE_SIZE))
        .ok_or(MmError::InvalidArgument)?;
    let end = start.checked_add(len).ok_or(MmError::InvalidArgument)?;
    Ok((start, end))
}

/// The fault a locked VMA is populated with: a write for private writable memory (so
/// copy-on-write is broken now, as Linux does), a read otherwise.
fn populate_access(flags: VmFlags) -> Access {
    if flags.contains(VmFlags::WRITE) && !flags.contains(VmFlags::MAYSHARE) {
        Access::Write
    } else if flags.intersects(VmFlags::READ | VmFlags::WRITE) {
        Access::Read
    } else {
        Access::Exec
    }
}

impl<P: PageTable> AddressSpace<P> {
    /// Pages locked in memory (`VmLck`).
    pub fn locked_pages(&self) -> u64 {
        self.state().read().locked_pages()
    }

    /// The flags `mlockall(MCL_FUTURE)` adds to every new mapping (Linux's
    /// `mm->def_flags`): empty, `VM_LOCKED`, or `VM_LOCKED | VM_LOCKONFAULT`.
    pub fn default_lock_flags(&self) -> VmFlags {
        self.state().read().def_flags
    }

    /// `mlock2(addr, len, flags)`: [`mlock`](Self::mlock) with the flags decoded
    /// (`EINVAL` for any but `MLOCK_ONFAULT`).
    pub fn mlock2(
        &self,
        addr: u64,
        len: u64,
        flag_bits: u64,
        limit: LockLimit,
    ) -> Result<PopulateStep, MmError> {
        if flag_bits & !MLOCK_ONFAULT != 0 {
            return Err(MmError::InvalidArgument);
        }
        self.mlock(addr, len, flag_bits & MLOCK_ONFAULT != 0, limit)
    }

    /// `mlock(addr, len)` (`on_fault`: `mlock2(MLOCK_ONFAULT)`): marks every VMA
    /// part in the range locked, then populates it unless `on_fault`. The range must
    /// be wholly mapped (`ENOMEM`, nothing changed); the locked total may not exceed
    /// `limit` (`ENOMEM`; pages already locked in the range count once). On
    /// [`PopulateStep::Wait`], await it and call
    /// [`populate_locked`](Self::populate_locked) from `resume_at`.
    pub fn mlock(
        &self,
        addr: u64,
        len: u64,
        on_fault: bool,
        limit: LockLimit,
    ) -> Result<PopulateStep, MmError> {
        if !limit.may_lock() {
            return Err(MmError::PermissionDenied);
        }
        let (start, end) = lock_range(addr, len)?;
        if start == end {
            return Ok(PopulateStep::Done);
        }
        {
            let mut st = self.state().write();
            let wanted = (end - start) / PAGE_SIZE;
            let after = st.locked_pages().saturating_add(wanted);
            if !limit.allows(after) && !limit.allows(after - st.locked_pages_in(start, end)) {
                return Err(MmError::NoMemory);
            }
            if !st.tree.is_covered(start, end) {
                return Err(MmError::NoMemory);
            }
            let add = if on_fault {
                VmFlags::LOCKED_MASK
            } else {
                VmFlags::LOCKED
            };
            let max = self.tunables().max_map_count();
            st.tree.edit_each(start, end, max, &mut |v: &mut Vma| {
                v.flags = (v.flags - VmFlags::LOCKED_MASK) | add;
            })?;
        }
        if on_fault {
            return Ok(PopulateStep::Done);
        }
        self.populate_locked(start, end, false)
    }

    /// `munlock(addr, len)`: clears `VM_LOCKED`/`VM_LOCKONFAULT` over the range. The
    /// range must be wholly mapped (`ENOMEM`, nothing changed).
    pub fn munlock(&self, addr: u64, len: u64) -> Result<(), MmError> {
        let (start, end) = lock_range(addr, len)?;
        if start == end {
            return Ok(());
        }
        let mut st = self.state().write();
        if !st.tree.is_covered(start, end) {
            return Err(MmError::NoMemory);
        }
        let max = self.tunables().max_map_count();
        st.tree.edit_each(start, end, max, &mut |v: &mut Vma| {
            v.flags -= VmFlags::LOCKED_MASK;
        })?;
        Ok(())
    }

    /// `mlockall(flags)`: `MCL_CURRENT` locks every VMA (refused with `ENOMEM` when
    /// the whole address space is over `limit`), `MCL_FUTURE` makes every later
    /// mapping locked, `MCL_ONFAULT` makes either lock on fault. `EINVAL` for no flag,
    /// an unknown one or `MCL_ONFAULT` alone. Populating (`MCL_CURRENT` without
    /// `MCL_ONFAULT`) is best effort, as on Linux.
    pub fn mlockall(&self, flag_bits: u64, limit: LockLimit) -> Result<PopulateStep, MmError> {
        let flags = MlockallFlags::from_bits(flag_bits).ok_or(MmError::InvalidArgument)?;
        if flags.is_empty() || flags == MlockallFlags::ONFAULT {
            return Err(MmError::InvalidArgument);
        }
        if !limit.may_lock() {
            return Err(MmError::PermissionDenied);
        }
        let lock_bits = if flags.contains(MlockallFlags::ONFAULT) {
            VmFlags::LOCKED_MASK
        } else {
            VmFlags::LOCKED
        };
        let current = flags.contains(MlockallFlags::CURRENT);
        {
            let mut st = self.state().write();
            if current && !limit.allows(st.total_vm_pages()) {
                return Err(MmError::NoMemory);
            }
            st.def_flags = if flags.contains(MlockallFlags::FUTURE) {
                lock_bits
            } else {
                VmFlags::empty()
            };
            if current {
                let max = self.tunables().max_map_count();
                let task_size = self.layout().task_size;
                st.tree.edit_each(0, task_size, max, &mut |v: &mut Vma| {
                    v.flags = (v.flags - VmFlags::LOCKED_MASK) | lock_bits;
                })?;
            }
        }
        if !current || flags.contains(MlockallFlags::ONFAULT) {
            return Ok(PopulateStep::Done);
        }
        self.populate_locked(0, self.layout().task_size, true)
    }

    /// `munlockall()`: unlocks every VMA and stops locking future mappings.
    pub fn munlockall(&self) {
        let mut st = self.state().write();
        st.def_flags = VmFlags::empty();
        let task_size = self.layout().task_size;
        // Clearing a flag on whole VMAs splits nothing, so the map count cannot grow.
        let _ = st
            .tree
            .edit_each(0, task_size, usize::MAX, &mut |v: &mut Vma| {
                v.flags -= VmFlags::LOCKED_MASK;
            });
    }

    /// Faults in the locked, populate-at-once VMAs of `[from, end)` (page-aligned),
    /// VMA by VMA, returning at the first page that must wait. Inaccessible and
    /// on-fault VMAs are skipped. Errors (unless `best_effort`, which skips the rest of
    /// a VMA that fails) are Linux's mlock ones: no memory is `EAGAIN`, a page that
    /// cannot be mapped `ENOMEM`.
    pub fn populate_locked(
        &self,
        from: u64,
        end: u64,
        best_effort: bool,
    ) -> Result<PopulateStep, MmError> {
        let mut at = from;
        while at < end {
            let next = {
                let st = self.state().read();
                let first = st
                    .tree
                    .overlapping(at, end)
                    .next()
                    .map(|v| (v.start.max(at), v.end.min(end), v.flags));
                first
            };
            let Some((start, stop, flags)) = next else {
                break;
            };
            let wanted = flags.contains(VmFlags::LOCKED)
                && !flags.contains(VmFlags::LOCKONFAULT)
                && flags.accessible();
            if wanted {
                match self.populate_range(start, stop, populate_access(flags)) {
                    Ok(PopulateStep::Done) => {}
                    Ok(wait) => return Ok(wait),
                    Err(_) if best_effort => {}
                    Err(MmError::NoMemory) => return Err(MmError::Again),
                    Err(_) => return Err(MmError::NoMemory),
                }
            }
            at = stop;
        }
        Ok(PopulateStep::Done)
    }

    /// Linux's `mlock_future_ok` for a new mapping of `len_bytes` with `vm_flags`
    /// (already including the default lock flags): `EAGAIN` when a locked mapping
    /// would take the address space past `limit`.
    pub(crate) fn check_lock_future(
        st: &MmState,
        vm_flags: VmFlags,
        len_bytes: u64,
        limit: LockLimit,
    ) -> Result<(), MmError> {
        if !vm_flags.contains(VmFlags::LOCKED) {
            return Ok(());
        }
        let after = st.locked_pages().saturating_add(len_bytes / PAGE_SIZE);
        if limit.allows(after) {
            Ok(())
        } else {
            Err(MmError::Again)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{anon_rw, fork, harness};
    use crate::aspace::MmapRequest;
    use crate::vma::{MapFlags, Prot};

    const LIMIT_4: LockLimit = LockLimit::Bytes(4 * PAGE_SIZE);

    fn done(step: Result<PopulateStep, MmError>) -> Result<(), MmError> {
        step.map(|s| assert!(matches!(s, PopulateStep::Done)))
    }

    #[test]
    fn mlock_populates_sets_flag_and_counts() {
        let h = harness();
        let a = anon_rw(&h.aspace, 8);
        // An unaligned start takes its whole page, and the length grows by the offset.
        done(h.aspace.mlock(a + 100, 2 * PAGE_SIZE, false, LIMIT_4)).unwrap();
        assert_eq!(h.aspace.locked_pages(), 3);
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(a), VirtAddr::new(a + 8 * PAGE_SIZE)),
            3
        );
        let v = h.aspace.vma_at(a).unwrap();
        assert_eq!((v.start(), v.end()), (a, a + 3 * PAGE_SIZE));
        assert!(v.flags().contains(VmFlags::LOCKED));
        // Relocking what is locked counts once: 3 + 1 new page fits in 4.
        done(h.aspace.mlock(a, 4 * PAGE_SIZE, false, LIMIT_4)).unwrap();
        assert_eq!(h.aspace.locked_pages(), 4);
        // One more page is past the limit, and nothing changes.
        assert_eq!(
            done(h.aspace.mlock(a + 4 * PAGE_SIZE, PAGE_SIZE, false, LIMIT_4)),
            Err(MmError::NoMemory)
        );
        assert_eq!(h.aspace.locked_pages(), 4);
        // The privilege lifts it.
        done(
            h.aspace
                .mlock(a, 8 * PAGE_SIZE, false, LockLimit::Unlimited),
        )
        .unwrap();
        assert_eq!(h.aspace.locked_pages(), 8);
        assert_eq!(h.aspace.vma_count(), 1);
        h.aspace.munlock(a + PAGE_SIZE, PAGE_SIZE).unwrap();
        assert_eq!(h.aspace.locked_pages(), 7);
        assert_eq!(h.aspace.vma_count(), 3);
        h.aspace.munlock(a, 8 * PAGE_SIZE).unwrap();
        assert_eq!(h.aspace.locked_pages(), 0);
        assert_eq!(h.aspace.vma_count(), 1, "unlocked parts merge again");
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn onfault_populates_nothing() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        done(h.aspace.mlock2(a, 4 * PAGE_SIZE, MLOCK_ONFAULT, LIMIT_4)).unwrap();
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(a), VirtAddr::new(a + 4 * PAGE_SIZE)),
            0
        );
        let f = h.aspace.vma_at(a).unwrap().flags();
        assert!(f.contains(VmFlags::LOCKED | VmFlags::LOCKONFAULT));
        assert_eq!(h.aspace.locked_pages(), 4);
        // A plain mlock over it turns it into a populated lock.
        done(h.aspace.mlock(a, 4 * PAGE_SIZE, false, LIMIT_4)).unwrap();
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(a), VirtAddr::new(a + 4 * PAGE_SIZE)),
            4
        );
        assert!(!h
            .aspace
            .vma_at(a)
            .unwrap()
            .flags()
            .contains(VmFlags::LOCKONFAULT));
    }

    #[test]
    fn errno_table() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        let zero = LockLimit::Bytes(0);
        assert_eq!(
            done(h.aspace.mlock(a, PAGE_SIZE, false, zero)),
            Err(MmError::PermissionDenied)
        );
        assert_eq!(
            done(h.aspace.mlock2(a, PAGE_SIZE, 2, LIMIT_4)),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            done(h.aspace.mlock(a, u64::MAX, false, LockLimit::Unlimited)),
            Err(MmError::InvalidArgument)
        );
        // A hole: ENOMEM and nothing locked.
        assert_eq!(
            done(h.aspace.mlock(a, 3 * PAGE_SIZE, false, LIMIT_4)),
            Err(MmError::NoMemory)
        );
        assert_eq!(h.aspace.locked_pages(), 0);
        assert_eq!(
            h.aspace.munlock(a + PAGE_SIZE, 2 * PAGE_SIZE),
            Err(MmError::NoMemory)
        );
        done(h.aspace.mlock(a, 0, false, LIMIT_4)).unwrap();
        for bad in [0, 4, 8, 9] {
            assert_eq!(
                done(h.aspace.mlockall(bad, LIMIT_4)),
                Err(MmError::InvalidArgument),
                "flags {bad}"
            );
        }
        assert_eq!(
            done(h.aspace.mlockall(1, zero)),
            Err(MmError::PermissionDenied)
        );
    }

    #[test]
    fn mlockall_current_future_and_munlockall() {
        let h = harness();
        let a = anon_rw(&h.aspace, 8);
        assert_eq!(
            done(h.aspace.mlockall(1, LIMIT_4)),
            Err(MmError::NoMemory),
            "8 pages mapped, limit 4"
        );
        done(h.aspace.mlockall(1 | 2, LockLimit::Bytes(64 * PAGE_SIZE))).unwrap();
        assert_eq!(h.aspace.locked_pages(), 8);
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(a), VirtAddr::new(a + 8 * PAGE_SIZE)),
            8
        );
        assert_eq!(h.aspace.default_lock_flags(), VmFlags::LOCKED);
        // A future mapping is locked and populated.
        let req = MmapRequest::anon(
            0,
            4 * PAGE_SIZE,
            Prot::READ | Prot::WRITE,
            MapFlags::PRIVATE,
        );
        let b = h
            .aspace
            .mmap_limited(&req, false, LockLimit::Bytes(64 * PAGE_SIZE))
            .unwrap();
        assert!(h
            .aspace
            .vma_at(b)
            .unwrap()
            .flags()
            .contains(VmFlags::LOCKED));
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(b), VirtAddr::new(b + 4 * PAGE_SIZE)),
            4
        );
        // ... within the limit: 12 locked, 4 more is past 14 pages.
        assert_eq!(
            h.aspace
                .mmap_limited(&req, false, LockLimit::Bytes(14 * PAGE_SIZE))
                .map(|_| ()),
            Err(MmError::Again)
        );
        h.aspace.munlockall();
        assert_eq!(h.aspace.locked_pages(), 0);
        assert_eq!(h.aspace.default_lock_flags(), VmFlags::empty());
        // MCL_FUTURE | MCL_ONFAULT: later mappings lock on fault, populate nothing.
        done(h.aspace.mlockall(2 | 4, LIMIT_4)).unwrap();
        assert_eq!(h.aspace.locked_pages(), 0, "FUTURE alone locks nothing now");
        let c = h.aspace.mmap_limited(&req, false, LIMIT_4).unwrap();
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(c), VirtAddr::new(c + 4 * PAGE_SIZE)),
            0
        );
        assert!(h
            .aspace
            .vma_at(c)
            .unwrap()
            .flags()
            .contains(VmFlags::LOCKED_MASK));
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn brk_after_mcl_future_is_locked_and_limited() {
        let h = harness();
        h.aspace.set_brk_start(0x1000_0000);
        done(h.aspace.mlockall(2, LIMIT_4)).unwrap();
        let top = h.aspace.brk_limited(0x1000_0000 + 3 * PAGE_SIZE, LIMIT_4);
        assert_eq!(top, 0x1000_0000 + 3 * PAGE_SIZE);
        assert_eq!(h.aspace.locked_pages(), 3);
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(0x1000_0000), VirtAddr::new(top)),
            3,
            "populated"
        );
        // Two more pages would make 5 locked: the break stays.
        assert_eq!(h.aspace.brk_limited(top + 2 * PAGE_SIZE, LIMIT_4), top);
        assert_eq!(
            h.aspace.brk_limited(top + PAGE_SIZE, LIMIT_4),
            top + PAGE_SIZE
        );
    }

    #[test]
    fn map_locked_is_limited_and_not_inherited() {
        let h = harness();
        let req = MmapRequest::anon(
            0,
            4 * PAGE_SIZE,
            Prot::READ | Prot::WRITE,
            MapFlags::PRIVATE | MapFlags::LOCKED,
        );
        let a = h.aspace.mmap_limited(&req, false, LIMIT_4).unwrap();
        assert_eq!(h.aspace.locked_pages(), 4);
        assert_eq!(
            h.aspace.mmap_limited(&req, false, LIMIT_4).map(|_| ()),
            Err(MmError::Again)
        );
        assert_eq!(
            h.aspace
                .mmap_limited(&req, false, LockLimit::Bytes(0))
                .map(|_| ()),
            Err(MmError::PermissionDenied)
        );
        // Growing the locked mapping past the limit: EAGAIN, as for mmap.
        assert_eq!(
            h.aspace
                .mremap_limited(a, 4 * PAGE_SIZE, 5 * PAGE_SIZE, 1, 0, false, LIMIT_4),
            Err(MmError::Again)
        );
        done(h.aspace.mlockall(2, LIMIT_4)).unwrap();
        let child = fork(&h);
        assert_eq!(child.locked_pages(), 0, "fork does not inherit locks");
        assert_eq!(child.default_lock_flags(), VmFlags::empty());
        assert_eq!(
            child
                .page_table()
                .count(VirtAddr::new(a), VirtAddr::new(a + 4 * PAGE_SIZE)),
            4
        );
    }
}
