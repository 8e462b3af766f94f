//! Memory protection keys: the per-address-space allocation of the 16 x86 keys
//! (`pkey_alloc`, `pkey_free`) and `pkey_mprotect`, which tags a range's VMAs (the
//! `VM_PKEY_BIT*` flags) and so every page-table entry the fault path installs there.
//!
//! The rights themselves live in each thread's PKRU register, which userland changes
//! without a system call; the kernel only sets a new key's initial rights in the
//! allocating thread (its part, in `kernel/`). Errno follow Linux 6.12: `EINVAL` for
//! flags, rights or a key that is not allocated, `ENOSPC` when every key is taken (or
//! the CPU has no keys: then only key 0 exists).

use core::sync::atomic::{AtomicBool, Ordering};

use super::AddressSpace;
use crate::errno::MmError;
use crate::pagetable::PageTable;
use crate::vma::Prot;

/// `PKEY_DISABLE_ACCESS`: the PKRU bit that forbids every data access with a key.
pub const PKEY_DISABLE_ACCESS: u64 = 0x1;
/// `PKEY_DISABLE_WRITE`: the PKRU bit that forbids writes with a key.
pub const PKEY_DISABLE_WRITE: u64 = 0x2;
/// Number of keys x86 has.
const NR_PKEYS: u16 = 16;

static PKEYS_SUPPORTED: AtomicBool = AtomicBool::new(false);

/// Says whether the CPUs enforce protection keys (the kernel sets it at boot once
/// CR4.PKE is on): without them only key 0 exists, and smaps shows no
/// `ProtectionKey` line, as on Linux.
pub fn set_pkeys_supported(on: bool) {
    PKEYS_SUPPORTED.store(on, Ordering::Relaxed);
}

/// Whether protection keys are enforced.
pub fn pkeys_supported() -> bool {
    PKEYS_SUPPORTED.load(Ordering::Relaxed)
}

/// How many keys exist (Linux's `arch_max_pkey`).
fn max_pkey() -> u16 {
    if pkeys_supported() {
        NR_PKEYS
    } else {
        1
    }
}

/// Whether `pkey` is allocated in the map `pkeys`.
fn allocated(pkeys: u16, pkey: i64) -> bool {
    (0..i64::from(max_pkey())).contains(&pkey) && pkeys & (1 << pkey) != 0
}

impl<P: PageTable> AddressSpace<P> {
    /// `pkey_alloc(flags, access_rights)`, the address-space part: a free key, now
    /// allocated. The kernel then gives the calling thread `access_rights` for it.
    pub fn pkey_alloc(&self, flags: u64, access_rights: u64) -> Result<u16, MmError> {
        if flags != 0 || access_rights & !(PKEY_DISABLE_ACCESS | PKEY_DISABLE_WRITE) != 0 {
            return Err(MmError::InvalidArgument);
        }
        let mut st = self.state().write();
        let free = (0..max_pkey()).find(|k| st.pkeys & (1 << k) == 0);
        let key = free.ok_or(MmError::NoSpace)?;
        st.pkeys |= 1 << key;
        Ok(key)
    }

    /// `pkey_free(pkey)`: `EINVAL` unless the key is allocated. (As on Linux, nothing
    /// checks that no VMA still carries the key.)
    pub fn pkey_free(&self, pkey: i64) -> Result<(), MmError> {
        let mut st = self.state().write();
        if !allocated(st.pkeys, pkey) {
            return Err(MmError::InvalidArgument);
        }
        st.pkeys &= !(1 << pkey);
        Ok(())
    }

    /// `pkey_mprotect(addr, len, prot, pkey)`: `mprotect` that also tags the range
    /// with `pkey`; `-1` leaves the keys as they are (plain `mprotect`). `EINVAL` for
    /// a key that is not allocated; a sealed range is `EPERM` as for `mprotect`.
    pub fn pkey_mprotect(&self, addr: u64, len: u64, prot: Prot, pkey: i64) -> Result<(), MmError> {
        if pkey == -1 {
            return self.mprotect_pkey(addr, len, prot, None);
        }
        if !allocated(self.state().read().pkeys, pkey) {
            return Err(MmError::InvalidArgument);
        }
        // The key stays allocated meanwhile unless this process frees it in a race
        // with itself; the range then carries a freed key, as it may on Linux.
        self.mprotect_pkey(addr, len, prot, Some(pkey as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{anon_rw, fork, harness};
    use crate::fault::Access;
    use crate::frame::PAGE_SIZE;
    use crate::vma::VmFlags;

    /// The supported flag is global: every test here wants keys on.
    fn keys_on() {
        set_pkeys_supported(true);
    }

    #[test]
    fn alloc_free_and_errno() {
        keys_on();
        let h = harness();
        let einval = Err(MmError::InvalidArgument);
        assert_eq!(h.aspace.pkey_alloc(1, 0), einval);
        assert_eq!(h.aspace.pkey_alloc(0, 4), einval);
        let keys: alloc::vec::Vec<u16> = (0..15)
            .map(|_| h.aspace.pkey_alloc(0, 0).unwrap())
            .collect();
        assert_eq!(keys, (1..16).collect::<alloc::vec::Vec<u16>>());
        assert_eq!(h.aspace.pkey_alloc(0, 0), Err(MmError::NoSpace));
        h.aspace.pkey_free(5).unwrap();
        assert_eq!(h.aspace.pkey_free(5), Err(MmError::InvalidArgument));
        assert_eq!(h.aspace.pkey_free(16), Err(MmError::InvalidArgument));
        assert_eq!(h.aspace.pkey_free(-1), Err(MmError::InvalidArgument));
        assert_eq!(h.aspace.pkey_alloc(0, 3), Ok(5));
        // The child inherits the allocation.
        let child = fork(&h);
        assert_eq!(child.pkey_alloc(0, 0), Err(MmError::NoSpace));
    }

    #[test]
    fn pkey_mprotect_tags_vmas_and_entries() {
        keys_on();
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        h.aspace.fault(a, Access::Write, true).unwrap();
        let rw = Prot::READ | Prot::WRITE;
        assert_eq!(
            h.aspace.pkey_mprotect(a, PAGE_SIZE, rw, 3),
            Err(MmError::InvalidArgument),
            "not allocated"
        );
        let k = h.aspace.pkey_alloc(0, 0).unwrap();
        let flushes = h.tlb.flushes();
        h.aspace
            .pkey_mprotect(a, 2 * PAGE_SIZE, rw, i64::from(k))
            .unwrap();
        // Retagging a resident entry must reach the TLB (the key only adds bits).
        assert_eq!(h.tlb.flushes(), flushes + 1);
        assert_eq!(h.aspace.vma_at(a).unwrap().flags().pkey(), k);
        assert_eq!(
            h.aspace.vma_at(a + 2 * PAGE_SIZE).unwrap().flags().pkey(),
            0
        );
        // The resident entry was retagged; a new one is installed with the key.
        assert_eq!(
            h.aspace
                .page_table()
                .query(VirtAddr::new(a))
                .unwrap()
                .flags
                .pkey(),
            k
        );
        h.aspace.fault(a + PAGE_SIZE, Access::Read, true).unwrap();
        assert_eq!(
            h.aspace
                .page_table()
                .query(VirtAddr::new(a + PAGE_SIZE))
                .unwrap()
                .flags
                .pkey(),
            k
        );
        // Plain mprotect (-1) keeps the key; a split keeps it on each part.
        h.aspace
            .pkey_mprotect(a, PAGE_SIZE, Prot::READ, -1)
            .unwrap();
        assert_eq!(h.aspace.vma_at(a).unwrap().flags().pkey(), k);
        assert!(
            crate::procfs::smaps(&h.aspace).contains(&alloc::format!("ProtectionKey:  {:>8}", k))
        );
        // Back to key 0.
        h.aspace.pkey_mprotect(a, 2 * PAGE_SIZE, rw, 0).unwrap();
        assert_eq!(
            h.aspace
                .page_table()
                .query(VirtAddr::new(a))
                .unwrap()
                .flags
                .pkey(),
            0
        );
        assert!(!h
            .aspace
            .vma_at(a)
            .unwrap()
            .flags()
            .intersects(VmFlags::PKEY_MASK));
        h.aspace.check_invariants().unwrap();
        // Sealed: EPERM as for mprotect.
        h.aspace.mseal(a, PAGE_SIZE, 0).unwrap();
        assert_eq!(
            h.aspace.pkey_mprotect(a, PAGE_SIZE, rw, i64::from(k)),
            Err(MmError::PermissionDenied)
        );
    }
}
