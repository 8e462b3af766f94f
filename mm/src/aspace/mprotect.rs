//! `mprotect`: changes the protection of a wholly mapped range, splitting VMAs at its
//! edges and merging them with equal neighbours, then updates the present entries
//! (one batched flush for the weakened ones). A private entry never gains write
//! permission here: the next write goes through copy-on-write, which knows whether
//! the frame is shared.

use super::mseal::check_unsealed;
use super::zap::Zap;
use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::errno::MmError;
use crate::fault::vma_pte_perms;
use crate::frame::PAGE_SIZE;
use crate::pagetable::{PageTable, PteFlags};
use crate::vma::{Prot, VmFlags, Vma};

impl<P: PageTable> AddressSpace<P> {
    /// `mprotect(addr, len, prot)` with `prot` decoded by
    /// [`Prot::from_mprotect_bits`]. `EINVAL` for an unaligned address or a bad
    /// `PROT_GROWS*`; `ENOMEM` for a range with holes or leaving user space, or when
    /// splitting would exceed `max_map_count`; `EACCES` when a VMA may not take the
    /// protection (a shared mapping of a file opened read-only). On error nothing
    /// changes.
    pub fn mprotect(&self, addr: u64, len: u64, prot: Prot) -> Result<(), MmError> {
        self.mprotect_pkey(addr, len, prot, None)
    }

    /// [`mprotect`](Self::mprotect) that also sets the protection key of the range
    /// when `pkey` is given (`pkey_mprotect`; the key is checked by the caller).
    pub(crate) fn mprotect_pkey(
        &self,
        addr: u64,
        len: u64,
        prot: Prot,
        pkey: Option<u16>,
    ) -> Result<(), MmError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::InvalidArgument);
        }
        if prot.contains(Prot::GROWSDOWN | Prot::GROWSUP) {
            return Err(MmError::InvalidArgument);
        }
        let len = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MmError::NoMemory)?;
        if len == 0 {
            return Ok(());
        }
        let mut start = addr;
        let end = addr.checked_add(len).ok_or(MmError::NoMemory)?;
        if end > self.layout().task_size {
            return Err(MmError::NoMemory);
        }
        let mut st = self.state().write();
        if prot.contains(Prot::GROWSUP) {
            return Err(MmError::InvalidArgument);
        }
        if prot.contains(Prot::GROWSDOWN) {
            let vma = st.tree.find(start).ok_or(MmError::NoMemory)?;
            if !vma.flags.contains(VmFlags::GROWSDOWN) {
                return Err(MmError::InvalidArgument);
            }
            start = vma.start;
        }
        if !st.tree.is_covered(start, end) {
            return Err(MmError::NoMemory);
        }
        check_unsealed(&st.tree, start, end)?;
        super::munmap::hugetlb_edges_aligned(&st.tree, start, end)?;
        let access = prot.access();
        if st
            .tree
            .overlapping(start, end)
            .any(|v| !v.flags.may().contains(access))
        {
            return Err(MmError::AccessDenied);
        }
        let max = self.tunables().max_map_count();
        let next_flags = |old: VmFlags| {
            let next = protected_flags(old, access);
            pkey.map_or(next, |k| next.with_pkey(k))
        };
        let old = st.tree.edit_each(start, end, max, &mut |n: &mut Vma| {
            n.flags = next_flags(n.flags)
        })?;
        let mut zap = Zap::new(self.frames(), &**self.tlb());
        for v in &old {
            let next = next_flags(v.flags);
            self.reprotect_entries(v, next, &mut zap);
        }
        zap.finish();
        Ok(())
    }

    /// Rewrites the present entries of `old` (a VMA part) for its new flags.
    pub(crate) fn reprotect_entries(&self, old: &Vma, new_flags: VmFlags, zap: &mut Zap<'_>) {
        let perms = vma_pte_perms(new_flags);
        let private = !new_flags.contains(VmFlags::MAYSHARE);
        let pt = self.page_table();
        let keep_of = |f: PteFlags| {
            if private {
                f & PteFlags::WRITE | !PteFlags::WRITE
            } else {
                PteFlags::all()
            }
        };
        // A huge leaf inside the range changes whole (a hugetlb one always is);
        // one the range cuts is split by the 4 KiB updates below.
        pt.scan_leaves(
            VirtAddr::new(old.start),
            VirtAddr::new(old.end),
            &mut |va, _, huge| {
                let end = va + crate::pagetable::HUGE_SIZE;
                if !huge || va < VirtAddr::new(old.start) || end > VirtAddr::new(old.end) {
                    return;
                }
                while let Some(leaf) = pt.query_huge(va) {
                    let next = (leaf.flags - PteFlags::PERMS) | (perms & keep_of(leaf.flags));
                    match pt.replace_huge(va, leaf, leaf.with_flags(next)) {
                        Ok(()) => {
                            if !(leaf.flags & PteFlags::PERMS).difference(next).is_empty() {
                                zap.weakened_range(va.as_u64(), end.as_u64());
                            }
                            break;
                        }
                        Err(None) => break,
                        Err(Some(_)) => {}
                    }
                }
            },
        );
        pt.scan(
            VirtAddr::new(old.start),
            VirtAddr::new(old.end),
            &mut |va, _| {
                if let Some(leaf) = pt.query_huge(va) {
                    let base = crate::pagetable::huge_base(va.as_u64());
                    let whole = base >= old.start && base + crate::pagetable::HUGE_SIZE <= old.end;
                    if whole || leaf.flags.contains(PteFlags::HUGETLB) {
                        // Done above.
                        return;
                    }
                }
                let mut weakened = false;
                pt.update_flags(va, &mut |f| {
                    let keep = if private {
                        f & PteFlags::WRITE | !PteFlags::WRITE
                    } else {
                        PteFlags::all()
                    };
                    let next = (f - PteFlags::PERMS) | (perms & keep);
                    // A new protection key only adds bits, yet may refuse what the old
                    // one allowed: it is flushed like a lost permission.
                    weakened = !(f & PteFlags::PERMS).difference(next).is_empty()
                        || f.pkey() != next.pkey();
                    next
                });
                if weakened {
                    zap.weakened(va.as_u64());
                }
            },
        );
    }
}

/// A VMA's flags after `mprotect` to `access`: Linux starts accounting a private
/// mapping that becomes writable.
fn protected_flags(old: VmFlags, access: Prot) -> VmFlags {
    let mut next = old.with_prot(access);
    let uncharged = !old.intersects(
        VmFlags::ACCOUNT | VmFlags::WRITE | VmFlags::SHARED | VmFlags::NORESERVE | VmFlags::HUGETLB,
    );
    if next.contains(VmFlags::WRITE) && uncharged && !old.contains(VmFlags::MAYSHARE) {
        next |= VmFlags::ACCOUNT;
    }
    next
}

#[cfg(test)]
mod tests {
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{anon_rw, file_bytes, harness, map_file};
    use crate::errno::MmError;
    use crate::fault::{Access, FaultError, FaultResolved};
    use crate::frame::PAGE_SIZE;
    use crate::pagetable::{PageTable, PteFlags};
    use crate::vma::{MapFlags, Prot, VmFlags};

    #[test]
    fn split_update_entries_and_remerge() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        h.aspace
            .write_bytes(a, &[7u8; 4 * PAGE_SIZE as usize])
            .unwrap();
        let flushes = h.tlb.flushes();
        h.aspace
            .mprotect(a + PAGE_SIZE, 2 * PAGE_SIZE, Prot::READ)
            .unwrap();
        assert_eq!(h.tlb.flushes(), flushes + 1, "one batched flush");
        assert_eq!(h.aspace.vma_count(), 3);
        let pte = h
            .aspace
            .page_table()
            .query(VirtAddr::new(a + PAGE_SIZE))
            .unwrap();
        assert!(!pte.flags.contains(PteFlags::WRITE) && pte.flags.contains(PteFlags::DIRTY));
        assert!(matches!(
            h.aspace.fault(a + PAGE_SIZE, Access::Write, true),
            Err(FaultError::AccErr)
        ));
        h.aspace
            .mprotect(a + PAGE_SIZE, 2 * PAGE_SIZE, Prot::empty())
            .unwrap();
        assert!(!h
            .aspace
            .page_table()
            .query(VirtAddr::new(a + PAGE_SIZE))
            .unwrap()
            .flags
            .contains(PteFlags::READ));
        assert!(matches!(
            h.aspace.fault(a + PAGE_SIZE, Access::Read, true),
            Err(FaultError::AccErr)
        ));
        h.aspace
            .mprotect(a, 4 * PAGE_SIZE, Prot::READ | Prot::WRITE)
            .unwrap();
        assert_eq!(h.aspace.vma_count(), 1);
        // The private entry regains write through a fault that finds it exclusive.
        assert!(!h
            .aspace
            .page_table()
            .query(VirtAddr::new(a + PAGE_SIZE))
            .unwrap()
            .flags
            .contains(PteFlags::WRITE));
        assert_eq!(
            h.aspace.fault(a + PAGE_SIZE, Access::Write, true).unwrap(),
            FaultResolved::CowReused
        );
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn errno() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        assert_eq!(
            h.aspace.mprotect(a + 1, 10, Prot::READ),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            h.aspace.mprotect(a, 3 * PAGE_SIZE, Prot::READ),
            Err(MmError::NoMemory),
            "hole"
        );
        assert_eq!(
            h.aspace.vma_at(a).unwrap().prot(),
            Prot::READ | Prot::WRITE,
            "no change on error"
        );
        assert_eq!(h.aspace.mprotect(a, 0, Prot::READ), Ok(()));
        assert_eq!(
            h.aspace
                .mprotect(a, PAGE_SIZE, Prot::READ | Prot::GROWSDOWN),
            Err(MmError::InvalidArgument)
        );
        h.aspace.tunables().set_max_map_count(2);
        assert_eq!(h.aspace.mprotect(a, PAGE_SIZE, Prot::READ), Ok(()));
        assert_eq!(
            h.aspace.mprotect(a + PAGE_SIZE, PAGE_SIZE, Prot::EXEC),
            Ok(()),
            "changes a whole VMA: no split"
        );
        h.aspace.mprotect(a, 2 * PAGE_SIZE, Prot::READ).unwrap();
        let b = anon_rw(&h.aspace, 3);
        assert_eq!(
            h.aspace.mprotect(b + PAGE_SIZE, PAGE_SIZE, Prot::READ),
            Err(MmError::NoMemory),
            "max_map_count"
        );
        assert_eq!(h.aspace.vma_count(), 2);
    }

    #[test]
    fn read_only_shared_file_refuses_write() {
        let h = harness();
        let f = h.file(&file_bytes(4096));
        let a = map_file(&h.aspace, &f, 1, Prot::READ, MapFlags::SHARED, 0);
        let v = h.aspace.vma_at(a).unwrap();
        assert!(
            v.flags().contains(VmFlags::MAYWRITE),
            "harness opens files read-write"
        );
        let ro = crate::aspace::FileMapping {
            file: f.clone(),
            readable: true,
            writable: false,
        };
        let req = crate::aspace::MmapRequest::from_raw(0, 4096, 1, 1, Some(ro), 0).unwrap();
        let b = h.aspace.mmap(&req, false).unwrap();
        assert_eq!(
            h.aspace.mprotect(b, 4096, Prot::READ | Prot::WRITE),
            Err(MmError::AccessDenied)
        );
        assert!(h.aspace.mprotect(b, 4096, Prot::READ | Prot::EXEC).is_ok());
    }

    #[test]
    fn growsdown_extends_to_vma_start() {
        let h = harness();
        let req = crate::aspace::MmapRequest::anon(
            0x6000_0000_0000,
            4 * PAGE_SIZE,
            Prot::READ | Prot::WRITE,
            MapFlags::PRIVATE | MapFlags::FIXED | MapFlags::GROWSDOWN,
        );
        let s = h.aspace.mmap(&req, false).unwrap();
        h.aspace
            .mprotect(s + 2 * PAGE_SIZE, PAGE_SIZE, Prot::READ | Prot::GROWSDOWN)
            .unwrap();
        let v = h.aspace.vma_at(s).unwrap();
        assert_eq!(
            (v.start(), v.end(), v.prot()),
            (s, s + 3 * PAGE_SIZE, Prot::READ)
        );
    }
}
