//! `mremap`: shrink in place, grow in place when the space above is free, or move
//! (`MREMAP_MAYMOVE`, to a chosen place with `MREMAP_FIXED`, keeping the old range
//! mapped with `MREMAP_DONTUNMAP`). A move carries the page-table entries across —
//! no copy, no reference change — and flushes the old range once.

use bitflags::bitflags;

use super::mlock::LockLimit;
use super::mseal::check_unsealed;
use super::zap::Zap;
use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::errno::MmError;
use crate::frame::PAGE_SIZE;
use crate::pagetable::{PageTable, HUGE_SIZE};
use crate::vma::placement::{find_top_down, range_is_free};
use crate::vma::{VmFlags, Vma, VmaTree};

bitflags! {
    /// `MREMAP_*` flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MremapFlags: u64 {
        /// `MREMAP_MAYMOVE`.
        const MAYMOVE = 1;
        /// `MREMAP_FIXED`.
        const FIXED = 2;
        /// `MREMAP_DONTUNMAP`.
        const DONTUNMAP = 4;
    }
}

impl<P: PageTable> AddressSpace<P> {
    /// `mremap(old_addr, old_len, new_len, flags, new_addr)`; returns the mapping's
    /// address. Errno as Linux: `EINVAL` for bad flags, alignment, a zero new length
    /// or overlapping fixed ranges; `EFAULT` when the old range is not within one
    /// VMA; `ENOMEM` when it cannot grow in place and may not move, or no room or map
    /// count is left; `EPERM` for a fixed destination below `vm.mmap_min_addr` (as
    /// [`AddressSpace::mremap_as`] for a caller without the privilege to map there).
    pub fn mremap(
        &self,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        flag_bits: u64,
        new_addr: u64,
    ) -> Result<u64, MmError> {
        self.mremap_as(old_addr, old_len, new_len, flag_bits, new_addr, false)
    }

    /// [`AddressSpace::mremap`] for a caller that may (`may_map_low`) or may not map
    /// below `vm.mmap_min_addr`, as mmap's MAP_FIXED is checked (Linux: EPERM from the
    /// security hook when the destination is placed).
    pub fn mremap_as(
        &self,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        flag_bits: u64,
        new_addr: u64,
        may_map_low: bool,
    ) -> Result<u64, MmError> {
        self.mremap_limited(
            old_addr,
            old_len,
            new_len,
            flag_bits,
            new_addr,
            may_map_low,
            LockLimit::Unlimited,
        )
    }

    /// [`AddressSpace::mremap_as`] for a caller that may lock at most `limit`: growing
    /// a locked mapping past it is `EAGAIN` (Linux's `mlock_future_ok` in
    /// `vma_to_resize`).
    #[allow(clippy::too_many_arguments)]
    pub fn mremap_limited(
        &self,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        flag_bits: u64,
        new_addr: u64,
        may_map_low: bool,
        limit: LockLimit,
    ) -> Result<u64, MmError> {
        let flags = MremapFlags::from_bits(flag_bits).ok_or(MmError::InvalidArgument)?;
        let may_move = flags.contains(MremapFlags::MAYMOVE);
        if flags.contains(MremapFlags::FIXED) && !may_move {
            return Err(MmError::InvalidArgument);
        }
        if flags.contains(MremapFlags::DONTUNMAP) && (!may_move || old_len != new_len) {
            return Err(MmError::InvalidArgument);
        }
        if !old_addr.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::InvalidArgument);
        }
        let mut old_len = old_len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MmError::InvalidArgument)?;
        let new_len = new_len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MmError::InvalidArgument)?;
        if new_len == 0 {
            return Err(MmError::InvalidArgument);
        }
        let task_size = self.layout().task_size;
        let mut st = self.state().write();
        let max = self.tunables().max_map_count();
        // As Linux (vma_lookup comes first): no mapping at the old address is EFAULT,
        // whatever the lengths (a shrink used to unmap the "tail" of nothing and succeed).
        let Some(old_vma) = st.tree.find(old_addr) else {
            return Err(MmError::BadAddress);
        };
        // Hugetlb mappings do not move or resize here (Linux allows it for aligned
        // ranges; not built yet).
        if old_vma.hugetlb.is_some() {
            return Err(MmError::InvalidArgument);
        }
        // Where Linux unmaps the tail of a shrinking old range (do_vmi_munmap), that
        // range must lie in user space: EINVAL, never an overflowing `old_addr + old_len`.
        let old_range_ok = old_addr
            .checked_add(old_len)
            .is_some_and(|end| end <= task_size);
        if old_len > new_len && !old_range_ok {
            return Err(MmError::InvalidArgument);
        }
        // A sealed source cannot move, grow or shrink; checked over the whole old
        // range (and the fixed destination below) before anything changes.
        let sealed_end = old_addr
            .saturating_add(old_len.max(PAGE_SIZE))
            .min(task_size);
        check_unsealed(&st.tree, old_addr, sealed_end)?;
        if let Some(v) = st.tree.find(old_addr).filter(|_| new_len > old_len) {
            Self::check_lock_future(&st, v.flags, new_len - old_len, limit)?;
        }

        if flags.intersects(MremapFlags::FIXED | MremapFlags::DONTUNMAP) {
            let fixed = flags.contains(MremapFlags::FIXED);
            if fixed {
                if !new_addr.is_multiple_of(PAGE_SIZE)
                    || new_len > task_size
                    || new_addr > task_size - new_len
                {
                    return Err(MmError::InvalidArgument);
                }
                if old_addr.saturating_add(old_len) > new_addr && new_addr + new_len > old_addr {
                    return Err(MmError::InvalidArgument);
                }
                if new_addr < self.tunables().mmap_min_addr() && !may_map_low {
                    return Err(MmError::PermissionDenied);
                }
                check_unsealed(&st.tree, new_addr, new_addr + new_len)?;
            }
            if st.tree.len() + 3 >= max {
                return Err(MmError::NoMemory);
            }
            let vma = self.vma_to_resize(&st.tree, old_addr, old_len, new_len)?;
            if fixed && old_len != 0 {
                // The destination's tables before anything is unmapped: short of
                // table memory, the call fails with both ranges as they were (Linux
                // has unmapped the destination and the old tail by then).
                self.prepare_move(old_addr, old_len.min(new_len), new_addr)?;
            }
            if fixed {
                self.unmap_locked(&mut st.tree, new_addr, new_addr + new_len)?;
            }
            if old_len > new_len {
                self.unmap_locked(&mut st.tree, old_addr + new_len, old_addr + old_len)?;
                old_len = new_len;
            }
            let dest = if fixed {
                new_addr
            } else {
                self.find_room(&st.tree, new_len)?
            };
            let dontunmap = flags.contains(MremapFlags::DONTUNMAP);
            let moved = self.move_vma(
                &mut st.tree,
                &vma,
                old_addr,
                old_len,
                dest,
                new_len,
                dontunmap,
            )?;
            st.note_vm_size();
            return Ok(moved);
        }

        if old_len >= new_len {
            if old_len > new_len {
                // The tail goes as munmap would take it: EINVAL past user space (a
                // huge old length used to unmap everything above the mapping).
                let old_end = old_addr
                    .checked_add(old_len)
                    .filter(|&e| e <= task_size)
                    .ok_or(MmError::InvalidArgument)?;
                self.unmap_locked(&mut st.tree, old_addr + new_len, old_end)?;
            }
            return Ok(old_addr);
        }
        let vma = self.vma_to_resize(&st.tree, old_addr, old_len, new_len)?;
        let old_end = old_addr + old_len;
        let grow_end = old_addr.checked_add(new_len).filter(|&e| e <= task_size);
        if old_len != 0 && old_end == vma.end {
            if let Some(grow_end) =
                grow_end.filter(|&e| range_is_free(&st.tree, old_end, e, self.gap_bytes()))
            {
                let mut piece = vma.clip(vma.start, vma.end).moved_to(old_end);
                piece.end = grow_end;
                piece.pgoff = vma.pgoff + vma.pages();
                st.tree
                    .rewrite(old_end, grow_end, max, &mut |_| None, Some(piece))?;
                st.note_vm_size();
                drop(st);
                if vma.flags.contains(VmFlags::LOCKED) {
                    self.prefault_best_effort(old_end, grow_end, false);
                }
                return Ok(old_addr);
            }
        }
        if !may_move {
            return Err(MmError::NoMemory);
        }
        if st.tree.len() + 3 >= max {
            return Err(MmError::NoMemory);
        }
        let dest = self.find_room(&st.tree, new_len)?;
        let moved = self.move_vma(&mut st.tree, &vma, old_addr, old_len, dest, new_len, false)?;
        st.note_vm_size();
        Ok(moved)
    }

    /// The VMA holding `[addr, addr + old_len)`, checked for a resize to `new_len`.
    fn vma_to_resize(
        &self,
        tree: &VmaTree,
        addr: u64,
        old_len: u64,
        new_len: u64,
    ) -> Result<Vma, MmError> {
        let vma = tree.find(addr).ok_or(MmError::BadAddress)?;
        if old_len == 0 && !vma.flags.contains(VmFlags::MAYSHARE) {
            return Err(MmError::InvalidArgument);
        }
        if old_len > vma.end - addr {
            return Err(MmError::BadAddress);
        }
        if new_len > old_len && vma.flags.contains(VmFlags::DONTEXPAND) {
            return Err(MmError::BadAddress);
        }
        Ok(vma.clone())
    }

    /// A free range for a moved mapping (top-down, as for mmap).
    fn find_room(&self, tree: &VmaTree, len: u64) -> Result<u64, MmError> {
        let low = self.tunables().mmap_min_addr().max(PAGE_SIZE);
        find_top_down(tree, len, low, self.layout().mmap_base, self.gap_bytes())
            .ok_or(MmError::NoMemory)
    }

    /// Makes every last-level table that moving the entries of `[old, old + len)` to
    /// `dest` will install into, before anything moves: `NoMemory` then leaves the
    /// mapping where it was, where failing halfway would lose the pages. One table per
    /// 2 MiB of destination that receives an entry (a present page or a swap entry);
    /// nothing is allocated from the heap.
    pub(crate) fn prepare_move(&self, old: u64, len: u64, dest: u64) -> Result<(), MmError> {
        let pt = self.page_table();
        let mut last_slot = None;
        let mut result = Ok(());
        let mut need = |va: u64| {
            let to = dest + (va - old);
            let slot = to & !(HUGE_SIZE - 1);
            if result.is_ok() && last_slot != Some(slot) {
                last_slot = Some(slot);
                result = pt.prepare(VirtAddr::new(to));
            }
        };
        pt.scan(
            VirtAddr::new(old),
            VirtAddr::new(old + len),
            &mut |va, _| need(va.as_u64()),
        );
        pt.scan_swap(
            VirtAddr::new(old),
            VirtAddr::new(old + len),
            &mut |va, _| need(va.as_u64()),
        );
        result.map_err(|_| MmError::NoMemory)
    }

    /// Moves `[old, old + old_len)` of `vma` to `[dest, dest + new_len)` (free).
    #[allow(clippy::too_many_arguments)]
    fn move_vma(
        &self,
        tree: &mut VmaTree,
        vma: &Vma,
        old: u64,
        old_len: u64,
        dest: u64,
        new_len: u64,
        dontunmap: bool,
    ) -> Result<u64, MmError> {
        let max = self.tunables().max_map_count();
        let mut moved = if old_len == 0 {
            let mut v = vma.clip(old, old + PAGE_SIZE);
            v.start = old;
            v
        } else {
            vma.clip(old, old + old_len)
        }
        .moved_to(dest);
        moved.end = dest + new_len;
        if old_len != 0 {
            self.prepare_move(old, old_len, dest)?;
        }
        tree.rewrite(dest, dest + new_len, max, &mut |_| None, Some(moved))?;
        if old_len == 0 {
            return Ok(dest);
        }
        let pt = self.page_table();
        let mut zap = Zap::new(self.frames(), &**self.tlb());
        for_each_in_slots(
            old,
            old + old_len,
            &|lo, hi, f| {
                pt.scan(VirtAddr::new(lo), VirtAddr::new(hi), &mut |va, _| {
                    f(va.as_u64())
                })
            },
            &mut |va| {
                let Some(pte) = pt.unmap(VirtAddr::new(va)) else {
                    return;
                };
                zap.weakened(va);
                let to = dest + (va - old);
                // The tables were made by `prepare_move`; this is a kernel bug if it fails.
                if pt.map(VirtAddr::new(to), pte).is_err() {
                    log::error!("mremap: no page-table memory at {to:#x}; page dropped");
                    zap.entry_removed(va, pte.pfn);
                }
            },
        );
        self.move_swap(old, old_len, dest);
        if !dontunmap {
            tree.rewrite(old, old + old_len, usize::MAX, &mut |_| None, None)?;
        }
        zap.finish();
        Ok(dest)
    }
}

/// Calls `f(va)` for every address `scan(lo, hi, emit)` emits in `[start, end)`, one
/// 2 MiB-aligned slot at a time: a slot's addresses (at most 512 pages) are gathered in
/// a fixed buffer first, so `f` may change the table (take the entry out) without a
/// scan running over it, and nothing grows with the size of the range.
pub(crate) fn for_each_in_slots(
    start: u64,
    end: u64,
    scan: &dyn Fn(u64, u64, &mut dyn FnMut(u64)),
    f: &mut dyn FnMut(u64),
) {
    let mut batch = [0u64; (HUGE_SIZE / PAGE_SIZE) as usize];
    let mut at = start;
    while at < end {
        let slot_end = ((at & !(HUGE_SIZE - 1)) + HUGE_SIZE).min(end);
        let mut n = 0;
        scan(at, slot_end, &mut |va| {
            if let Some(slot) = batch.get_mut(n) {
                *slot = va;
                n += 1;
            }
        });
        for &va in &batch[..n] {
            f(va);
        }
        at = slot_end;
    }
}

#[cfg(test)]
mod tests {
    use crate::addr::VirtAddr;
    use crate::aspace::tests::{anon_rw, harness, map_shared_anon};
    use crate::errno::MmError;
    use crate::frame::PAGE_SIZE;
    use crate::pagetable::{PageTable, HUGE_SIZE};

    const MAYMOVE: u64 = 1;
    const FIXED: u64 = 2;
    const DONTUNMAP: u64 = 4;

    #[test]
    fn grow_in_place_then_move() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        h.aspace.write_bytes(a, b"keep").unwrap();
        // Room above? anon_rw maps top-down, so the space above the first mapping is free.
        assert_eq!(
            h.aspace.mremap(a, 2 * PAGE_SIZE, 3 * PAGE_SIZE, 0, 0),
            Ok(a)
        );
        assert_eq!(h.aspace.vma_at(a).unwrap().end(), a + 3 * PAGE_SIZE);
        // Something above: cannot grow in place without MAYMOVE.
        let blocker = crate::aspace::MmapRequest::anon(
            a + 3 * PAGE_SIZE,
            PAGE_SIZE,
            crate::vma::Prot::READ,
            crate::vma::MapFlags::PRIVATE | crate::vma::MapFlags::FIXED_NOREPLACE,
        );
        let _ = h.aspace.mmap(&blocker, false);
        assert_eq!(
            h.aspace.mremap(a, 3 * PAGE_SIZE, 5 * PAGE_SIZE, 0, 0),
            Err(MmError::NoMemory)
        );
        let live = h.soft.live();
        let n = h
            .aspace
            .mremap(a, 3 * PAGE_SIZE, 5 * PAGE_SIZE, MAYMOVE, 0)
            .unwrap();
        assert_ne!(n, a);
        assert_eq!(h.soft.live(), live, "entries moved, not copied");
        let mut buf = [0u8; 4];
        h.aspace.read_bytes(n, &mut buf).unwrap();
        assert_eq!(&buf, b"keep");
        assert!(h.aspace.vma_at(a).is_none());
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(a), VirtAddr::new(a + 3 * PAGE_SIZE)),
            0
        );
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn shrink_fixed_dontunmap_and_errno() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        h.aspace
            .write_bytes(a, &[3u8; 4 * PAGE_SIZE as usize])
            .unwrap();
        assert_eq!(
            h.aspace.mremap(a, 4 * PAGE_SIZE, 2 * PAGE_SIZE, 0, 0),
            Ok(a)
        );
        assert_eq!(h.soft.live(), 2);
        assert_eq!(
            h.aspace.mremap(a + 1, PAGE_SIZE, PAGE_SIZE, 0, 0),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            h.aspace.mremap(a, PAGE_SIZE, 0, 0, 0),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            h.aspace.mremap(a, PAGE_SIZE, PAGE_SIZE, 8, 0),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            h.aspace.mremap(a, PAGE_SIZE, PAGE_SIZE, FIXED, 0x1000_0000),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            h.aspace
                .mremap(a, PAGE_SIZE, 2 * PAGE_SIZE, MAYMOVE | DONTUNMAP, 0),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            h.aspace.mremap(a, 3 * PAGE_SIZE, 4 * PAGE_SIZE, MAYMOVE, 0),
            Err(MmError::BadAddress)
        );
        assert_eq!(
            h.aspace
                .mremap(0x1000_0000, PAGE_SIZE, 2 * PAGE_SIZE, MAYMOVE, 0),
            Err(MmError::BadAddress)
        );
        assert_eq!(
            h.aspace.mremap(
                a,
                2 * PAGE_SIZE,
                2 * PAGE_SIZE,
                MAYMOVE | FIXED,
                a + PAGE_SIZE
            ),
            Err(MmError::InvalidArgument),
            "overlap"
        );
        let to = 0x2000_0000;
        assert_eq!(
            h.aspace
                .mremap(a, 2 * PAGE_SIZE, 2 * PAGE_SIZE, MAYMOVE | FIXED, to),
            Ok(to)
        );
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(to), VirtAddr::new(to + 2 * PAGE_SIZE)),
            2
        );
        // DONTUNMAP: the old range stays mapped but empty.
        let d = h
            .aspace
            .mremap(to, 2 * PAGE_SIZE, 2 * PAGE_SIZE, MAYMOVE | DONTUNMAP, 0)
            .unwrap();
        assert!(h.aspace.vma_at(to).is_some());
        assert_eq!(
            h.aspace
                .page_table()
                .count(VirtAddr::new(to), VirtAddr::new(to + 2 * PAGE_SIZE)),
            0
        );
        let mut b = [0u8; 1];
        h.aspace.read_bytes(to, &mut b).unwrap();
        assert_eq!(b, [0]);
        h.aspace.read_bytes(d, &mut b).unwrap();
        assert_eq!(b, [3]);
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn huge_old_len_is_einval_not_an_overflow() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        let huge = u64::MAX - PAGE_SIZE + 1;
        // Shrinking from a range that runs off the end of user space (or of u64).
        assert_eq!(
            h.aspace.mremap(a, huge, PAGE_SIZE, 0, 0),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            h.aspace.mremap(a, u64::MAX - a, PAGE_SIZE, MAYMOVE, 0),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            h.aspace
                .mremap(a, huge, PAGE_SIZE, MAYMOVE | FIXED, 0x2000_0000),
            Err(MmError::InvalidArgument)
        );
        // A length that does not round up to a page at all.
        assert_eq!(
            h.aspace.mremap(a, u64::MAX, PAGE_SIZE, 0, 0),
            Err(MmError::InvalidArgument)
        );
        // Growing from a huge old length: not within one mapping (EFAULT, as Linux).
        assert_eq!(
            h.aspace.mremap(a, 1 << 46, 1 << 47, MAYMOVE, 0),
            Err(MmError::BadAddress)
        );
        assert!(h.aspace.vma_at(a).is_some());
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn zero_old_len_duplicates_shared_mapping() {
        let h = harness();
        let s = map_shared_anon(&h.aspace, 2);
        let p = anon_rw(&h.aspace, 1);
        assert_eq!(
            h.aspace.mremap(p, 0, PAGE_SIZE, MAYMOVE, 0),
            Err(MmError::InvalidArgument)
        );
        let dup = h.aspace.mremap(s, 0, 2 * PAGE_SIZE, MAYMOVE, 0).unwrap();
        h.aspace.write_bytes(s + PAGE_SIZE, b"both").unwrap();
        let mut b = [0u8; 4];
        h.aspace.read_bytes(dup + PAGE_SIZE, &mut b).unwrap();
        assert_eq!(&b, b"both");
    }

    #[test]
    fn fixed_move_below_mmap_min_addr_needs_the_privilege() {
        use crate::aspace::tests::{anon_rw, harness};
        use crate::errno::MmError;
        use crate::frame::PAGE_SIZE;
        let h = harness();
        let a = anon_rw(&h.aspace, 1);
        h.aspace.write_bytes(a, b"x").unwrap();
        let low = PAGE_SIZE; // below the default 64 KiB
        let flags = 1 | 2; // MAYMOVE | FIXED
        assert_eq!(
            h.aspace.mremap(a, PAGE_SIZE, PAGE_SIZE, flags, low),
            Err(MmError::PermissionDenied)
        );
        assert!(h.aspace.vma_at(a).is_some(), "nothing moved");
        assert_eq!(
            h.aspace
                .mremap_as(a, PAGE_SIZE, PAGE_SIZE, flags, low, true),
            Ok(low)
        );
    }

    /// Maps `pages` read-write pages, each holding its own index, with a page mapped
    /// right above them so that growing must move.
    fn numbered_pages_with_blocker(h: &crate::aspace::tests::Harness, pages: u64) -> u64 {
        let a = anon_rw(&h.aspace, pages);
        for i in 0..pages {
            h.aspace
                .write_bytes(a + i * PAGE_SIZE, &i.to_le_bytes())
                .unwrap();
        }
        let blocker = crate::aspace::MmapRequest::anon(
            a + pages * PAGE_SIZE,
            PAGE_SIZE,
            crate::vma::Prot::READ,
            crate::vma::MapFlags::PRIVATE | crate::vma::MapFlags::FIXED_NOREPLACE,
        );
        h.aspace.mmap(&blocker, false).unwrap();
        a
    }

    /// Whether page `i` of the mapping at `at` still holds `i`, for every page.
    fn pages_hold_their_numbers(h: &crate::aspace::tests::Harness, at: u64, pages: u64) -> bool {
        (0..pages).all(|i| {
            let mut buf = [0u8; 8];
            h.aspace.read_bytes(at + i * PAGE_SIZE, &mut buf).is_ok()
                && u64::from_le_bytes(buf) == i
        })
    }

    #[test]
    fn a_move_short_of_table_memory_fails_whole_and_keeps_every_page() {
        let h = harness();
        // 3 MiB: the pages span two or three 2 MiB slots, so the move needs new tables.
        let pages = 768;
        let a = numbered_pages_with_blocker(&h, pages);
        let ranges = |h: &crate::aspace::tests::Harness| {
            h.aspace
                .vmas()
                .iter()
                .map(|v| (v.start, v.end))
                .collect::<alloc::vec::Vec<_>>()
        };
        let vmas = ranges(&h);
        let live = h.soft.live();
        let pt = h.aspace.page_table();
        pt.set_table_limit(pt.tables());
        let grown = h
            .aspace
            .mremap(a, pages * PAGE_SIZE, (pages + 1) * PAGE_SIZE, MAYMOVE, 0);
        pt.set_table_limit(0);
        assert_eq!(grown, Err(MmError::NoMemory));
        assert_eq!(ranges(&h), vmas, "the mappings are as they were");
        assert_eq!(h.soft.live(), live, "no frame was dropped");
        assert!(pages_hold_their_numbers(&h, a, pages));
        h.aspace.check_invariants().unwrap();
        // With table memory back, the same move succeeds and carries every page.
        let moved = h
            .aspace
            .mremap(a, pages * PAGE_SIZE, (pages + 1) * PAGE_SIZE, MAYMOVE, 0)
            .unwrap();
        assert_ne!(moved, a);
        assert_eq!(h.soft.live(), live);
        assert!(pages_hold_their_numbers(&h, moved, pages));
        h.aspace.check_invariants().unwrap();
    }

    #[test]
    fn a_move_allocates_tables_only_where_entries_land() {
        let h = harness();
        // 8 MiB mapped, one page touched: one destination table is enough.
        let pages = 2048;
        let a = anon_rw(&h.aspace, pages);
        h.aspace.write_bytes(a + 5 * PAGE_SIZE, b"only").unwrap();
        let pt = h.aspace.page_table();
        // Room for the destination's upper tables and one last-level table, no more.
        pt.set_table_limit(pt.tables() + 3);
        let moved = h.aspace.mremap(
            a,
            pages * PAGE_SIZE,
            pages * PAGE_SIZE,
            MAYMOVE | FIXED,
            a - (64 << 30),
        );
        pt.set_table_limit(0);
        let moved = moved.unwrap();
        let mut buf = [0u8; 4];
        h.aspace
            .read_bytes(moved + 5 * PAGE_SIZE, &mut buf)
            .unwrap();
        assert_eq!(&buf, b"only");
    }

    #[test]
    fn slots_are_walked_in_order_and_whole() {
        // Entries every 3 pages over 5 MiB starting off a slot boundary.
        let start = HUGE_SIZE - 7 * PAGE_SIZE;
        let end = start + 5 * HUGE_SIZE / 2;
        let present: alloc::vec::Vec<u64> = (start..end).step_by(3 * PAGE_SIZE as usize).collect();
        let scans = core::cell::Cell::new(0);
        let scan = |lo: u64, hi: u64, emit: &mut dyn FnMut(u64)| {
            assert!(hi - lo <= HUGE_SIZE && (lo / HUGE_SIZE == (hi - 1) / HUGE_SIZE));
            scans.set(scans.get() + 1);
            present
                .iter()
                .filter(|&&va| va >= lo && va < hi)
                .for_each(|&va| emit(va));
        };
        let mut seen = alloc::vec::Vec::new();
        super::for_each_in_slots(start, end, &scan, &mut |va| seen.push(va));
        assert_eq!(seen, present);
        assert_eq!(
            scans.get(),
            4,
            "a partial slot, two whole ones, a partial one"
        );
    }

    #[test]
    fn a_fixed_shrinking_move_short_of_table_memory_unmaps_nothing() {
        let h = harness();
        let pages = 768;
        let a = numbered_pages_with_blocker(&h, pages);
        // The destination: a mapping of its own, far away, that FIXED would replace.
        let dest = a - (64 << 30);
        let target = crate::aspace::MmapRequest::anon(
            dest,
            PAGE_SIZE,
            crate::vma::Prot::READ | crate::vma::Prot::WRITE,
            crate::vma::MapFlags::PRIVATE | crate::vma::MapFlags::FIXED_NOREPLACE,
        );
        h.aspace.mmap(&target, false).unwrap();
        h.aspace.write_bytes(dest, b"there").unwrap();
        let live = h.soft.live();
        let pt = h.aspace.page_table();
        pt.set_table_limit(pt.tables());
        let moved = h.aspace.mremap(
            a,
            pages * PAGE_SIZE,
            (pages / 2) * PAGE_SIZE,
            MAYMOVE | FIXED,
            dest,
        );
        pt.set_table_limit(0);
        assert_eq!(moved, Err(MmError::NoMemory));
        assert_eq!(h.soft.live(), live, "no page was unmapped or dropped");
        assert!(
            pages_hold_their_numbers(&h, a, pages),
            "the old tail is still mapped"
        );
        let mut buf = [0u8; 5];
        h.aspace.read_bytes(dest, &mut buf).unwrap();
        assert_eq!(&buf, b"there", "the destination's mapping is still there");
        h.aspace.check_invariants().unwrap();
    }
}
