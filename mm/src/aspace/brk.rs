//! `brk`: moves the program break, growing the heap VMA (merged with the one below
//! when compatible) or unmapping its tail; on any failure the break stays, as Linux
//! does (`brk` returns the old break, not an errno).

use super::AddressSpace;
use crate::frame::PAGE_SIZE;
use crate::pagetable::PageTable;
use crate::vma::placement::start_gap;
use crate::vma::{Backing, VmFlags, Vma};

/// The flags of heap memory (Linux's `VM_DATA_DEFAULT_FLAGS` for a brk area).
pub(crate) const BRK_FLAGS: VmFlags = VmFlags::READ
    .union(VmFlags::WRITE)
    .union(VmFlags::MAYREAD)
    .union(VmFlags::MAYWRITE)
    .union(VmFlags::MAYEXEC)
    .union(VmFlags::ACCOUNT);

impl<P: PageTable> AddressSpace<P> {
    /// `brk(requested)`: returns the new break, or the unchanged one when the request
    /// is below the heap start, collides with a mapping (or a stack's guard gap), or
    /// would exceed `max_map_count`.
    pub fn brk(&self, requested: u64) -> u64 {
        self.brk_limited(requested, super::LockLimit::Unlimited)
    }

    /// [`brk`](Self::brk) for a caller that may lock at most `limit`: after
    /// `mlockall(MCL_FUTURE)` the new heap is locked (and populated, unless on-fault),
    /// and growing past the limit leaves the break where it was (Linux's
    /// `mlock_future_ok` in `brk`).
    pub fn brk_limited(&self, requested: u64, limit: super::LockLimit) -> u64 {
        let mut st = self.state().write();
        let old = st.brk;
        if requested < st.start_brk || requested > self.layout().task_size {
            return old;
        }
        let (Some(new_end), Some(old_end)) = (
            requested.checked_next_multiple_of(PAGE_SIZE),
            old.checked_next_multiple_of(PAGE_SIZE),
        ) else {
            return old;
        };
        if new_end == old_end {
            st.brk = requested;
            return requested;
        }
        if new_end < old_end {
            if self.unmap_locked(&mut st.tree, new_end, old_end).is_err() {
                return old;
            }
            st.brk = requested;
            return requested;
        }
        // Keep a page, plus a stack's guard gap, between the heap and what is above.
        let gap = self.gap_bytes();
        let probe_end = new_end.saturating_add(PAGE_SIZE);
        let blocked = st
            .tree
            .overlapping(old_end, probe_end.saturating_add(gap))
            .any(|v| start_gap(v, gap) < probe_end);
        if blocked || new_end > self.layout().task_size {
            return old;
        }
        let flags = BRK_FLAGS | st.def_flags;
        if Self::check_lock_future(&st, flags, new_end - old_end, limit).is_err() {
            return old;
        }
        let heap = Vma::new(old_end, new_end, flags, Backing::Anon, 0);
        let max = self.tunables().max_map_count();
        if st
            .tree
            .rewrite(old_end, new_end, max, &mut |_| None, Some(heap))
            .is_err()
        {
            return old;
        }
        st.brk = requested;
        st.note_vm_size();
        drop(st);
        if flags.contains(VmFlags::LOCKED) && !flags.contains(VmFlags::LOCKONFAULT) {
            let _ = self.prefault_best_effort(old_end, new_end, true);
        }
        requested
    }
}

#[cfg(test)]
mod tests {
    use crate::aspace::tests::harness;
    use crate::aspace::MmapRequest;
    use crate::frame::PAGE_SIZE;
    use crate::vma::{MapFlags, Prot};

    #[test]
    fn grow_shrink_and_collide() {
        let h = harness();
        let start = 0x60_0000;
        h.aspace.set_brk_start(start);
        assert_eq!(h.aspace.brk(0), start);
        assert_eq!(h.aspace.brk(start - 1), start);
        assert_eq!(h.aspace.brk(start + 100), start + 100);
        assert_eq!(h.aspace.vma_at(start).unwrap().end(), start + PAGE_SIZE);
        h.aspace.write_bytes(start, b"heap").unwrap();
        assert_eq!(h.aspace.brk(start + 3 * PAGE_SIZE), start + 3 * PAGE_SIZE);
        assert_eq!(h.aspace.vma_count(), 1);
        assert_eq!(h.aspace.brk(start + 10), start + 10);
        assert_eq!(h.aspace.vma_at(start).unwrap().end(), start + PAGE_SIZE);
        assert_eq!(h.soft.live(), 1);
        // A mapping above blocks growth into it (and its page of separation).
        let req = MmapRequest::anon(
            start + 8 * PAGE_SIZE,
            PAGE_SIZE,
            Prot::READ,
            MapFlags::PRIVATE | MapFlags::FIXED,
        );
        h.aspace.mmap(&req, false).unwrap();
        assert_eq!(h.aspace.brk(start + 8 * PAGE_SIZE), start + 10);
        assert_eq!(h.aspace.brk(start + 7 * PAGE_SIZE), start + 7 * PAGE_SIZE);
        assert_eq!(h.aspace.brk(start), start);
        assert_eq!(h.aspace.vma_count(), 1);
        assert_eq!(h.soft.live(), 0);
        h.aspace.check_invariants().unwrap();
    }
}
