//! `mincore`: which pages of a range are resident — mapped in the page table, or,
//! for file-backed pages, present in the page cache.

use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::errno::MmError;
use crate::frame::PAGE_SIZE;
use crate::pagetable::PageTable;

/// A mark `mincore_step` leaves on a swapped page the swap cache does not hold, so
/// the file's cache is not asked about it (0 in the result).
const SWAPPED_OUT: u8 = 2;

/// Most pages one [`AddressSpace::mincore_step`] reports: one page of result bytes, as
/// Linux's `mincore` does per round (so the kernel's buffer stays one page whatever the
/// length asked for).
pub const MINCORE_BATCH_PAGES: usize = PAGE_SIZE as usize;

impl<P: PageTable> AddressSpace<P> {
    /// Checks a `mincore(addr, len)` range: `EINVAL` for an unaligned address, `ENOMEM`
    /// for one leaving user space. Returns the number of pages (bytes of result).
    pub fn mincore_pages(&self, addr: u64, len: u64) -> Result<u64, MmError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::InvalidArgument);
        }
        let len = len
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MmError::NoMemory)?;
        let end = addr.checked_add(len).ok_or(MmError::NoMemory)?;
        if end > self.layout().task_size {
            return Err(MmError::NoMemory);
        }
        Ok(len / PAGE_SIZE)
    }

    /// One round of `mincore` (Linux's `do_mincore`): fills `out` from the page at
    /// `addr` (page aligned) with 1 for resident pages (mapped in the page table,
    /// swapped but held by the swap cache, or, with no entry, file pages present in
    /// the page cache), 0 otherwise, stopping at the end of the
    /// VMA holding `addr` or of `out`. Returns the pages filled; `ENOMEM` if no VMA holds
    /// `addr`.
    pub fn mincore_step(&self, addr: u64, out: &mut [u8]) -> Result<usize, MmError> {
        let st = self.state().read();
        let vma = st.tree.find(addr).ok_or(MmError::NoMemory)?;
        let want = (out.len() as u64).saturating_mul(PAGE_SIZE);
        let end = vma.end().min(addr.saturating_add(want));
        let pages = ((end - addr) / PAGE_SIZE) as usize;
        let out = &mut out[..pages];
        out.fill(0);
        self.page_table()
            .scan(VirtAddr::new(addr), VirtAddr::new(end), &mut |va, _| {
                out[((va.as_u64() - addr) / PAGE_SIZE) as usize] = 1;
            });
        // A swapped page (anonymous, or a private copy of a file page) is resident
        // when the swap cache holds it, whatever the file's cache holds at its index.
        let swap = self.tunables().swap();
        self.page_table()
            .scan_swap(VirtAddr::new(addr), VirtAddr::new(end), &mut |va, entry| {
                out[((va.as_u64() - addr) / PAGE_SIZE) as usize] = if swap.holds_page(entry) {
                    1
                } else {
                    SWAPPED_OUT
                };
            });
        if let Some(f) = vma.file() {
            for (i, byte) in out.iter_mut().enumerate().filter(|(_, b)| **b == 0) {
                let va = addr + i as u64 * PAGE_SIZE;
                *byte = u8::from(f.cache().peek(vma.file_index(va)).is_some());
            }
        }
        for byte in out.iter_mut().filter(|b| **b == SWAPPED_OUT) {
            *byte = 0;
        }
        Ok(pages)
    }

    /// `mincore(addr, len, vec)` in one call: fills `vec` (one byte per page, at least
    /// `ceil(len / 4096)` long) round by round. `EINVAL` for an unaligned address,
    /// `ENOMEM` for a range leaving user space or not wholly mapped (the rounds before
    /// the hole are filled in, as on Linux).
    pub fn mincore(&self, addr: u64, len: u64, vec: &mut [u8]) -> Result<(), MmError> {
        let pages = self.mincore_pages(addr, len)? as usize;
        if vec.len() < pages {
            return Err(MmError::BadAddress);
        }
        let mut done = 0;
        while done < pages {
            let n = (pages - done).min(MINCORE_BATCH_PAGES);
            let at = addr + done as u64 * PAGE_SIZE;
            done += self.mincore_step(at, &mut vec[done..done + n])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::aspace::tests::{anon_rw, file_bytes, harness, map_file};
    use crate::errno::MmError;
    use crate::frame::PAGE_SIZE;
    use crate::vma::{MapFlags, Prot};

    #[test]
    fn reports_mapped_and_cached_pages() {
        let h = harness();
        let a = anon_rw(&h.aspace, 3);
        h.aspace.write_bytes(a + PAGE_SIZE, b"x").unwrap();
        let mut v = [9u8; 3];
        h.aspace.mincore(a, 3 * PAGE_SIZE, &mut v).unwrap();
        assert_eq!(v, [0, 1, 0]);
        assert_eq!(
            h.aspace.mincore(a, 4 * PAGE_SIZE, &mut [0; 4]),
            Err(MmError::NoMemory)
        );
        assert_eq!(
            h.aspace.mincore(a + 1, 1, &mut v),
            Err(MmError::InvalidArgument)
        );

        let f = h.file(&file_bytes(2 * PAGE_SIZE as usize));
        f.read_ahead(1, 1);
        let m = map_file(&h.aspace, &f, 2, Prot::READ, MapFlags::PRIVATE, 0);
        let mut v = [9u8; 2];
        h.aspace.mincore(m, 2 * PAGE_SIZE, &mut v).unwrap();
        assert_eq!(v, [0, 1], "cached but unmapped counts as resident");
    }

    #[test]
    fn rounds_stop_at_vma_ends_and_at_holes() {
        use crate::aspace::MmapRequest;
        let h = harness();
        let a = anon_rw(&h.aspace, 3);
        // Read-only, so it never merges with `a`.
        let b = h
            .aspace
            .mmap(
                &MmapRequest::anon(0, 2 * PAGE_SIZE, Prot::READ, MapFlags::PRIVATE),
                false,
            )
            .unwrap();
        h.aspace.write_bytes(a + 2 * PAGE_SIZE, b"x").unwrap();
        let mut out = [9u8; 8];
        assert_eq!(
            h.aspace.mincore_step(a, &mut out),
            Ok(3),
            "stops at the VMA end"
        );
        assert_eq!(&out[..3], &[0, 0, 1]);
        assert_eq!(h.aspace.mincore_step(a + PAGE_SIZE, &mut out[..1]), Ok(1));
        assert_eq!(out[0], 0);
        assert_eq!(h.aspace.mincore_step(b, &mut out), Ok(2));
        let hole = if b > a {
            a + 3 * PAGE_SIZE
        } else {
            b + 2 * PAGE_SIZE
        };
        if h.aspace.state().read().tree.find(hole).is_none() {
            assert_eq!(
                h.aspace.mincore_step(hole, &mut out),
                Err(MmError::NoMemory)
            );
        }
        assert_eq!(
            h.aspace.mincore_pages(1 << 47, 4096),
            Err(MmError::NoMemory),
            "beyond user space"
        );
    }

    #[test]
    fn a_large_sparse_range_takes_many_rounds() {
        use super::MINCORE_BATCH_PAGES;
        use crate::aspace::MmapRequest;
        let h = harness();
        let pages = 3 * MINCORE_BATCH_PAGES + 5;
        let len = pages as u64 * PAGE_SIZE;
        let a = h
            .aspace
            .mmap(
                &MmapRequest::anon(
                    0,
                    len,
                    Prot::READ | Prot::WRITE,
                    MapFlags::PRIVATE | MapFlags::NORESERVE,
                ),
                false,
            )
            .unwrap();
        let touched = [0, MINCORE_BATCH_PAGES - 1, MINCORE_BATCH_PAGES, pages - 1];
        for &i in &touched {
            h.aspace
                .write_bytes(a + i as u64 * PAGE_SIZE, b"y")
                .unwrap();
        }
        let mut v = std::vec![9u8; pages];
        h.aspace.mincore(a, len, &mut v).unwrap();
        for (i, byte) in v.iter().enumerate() {
            assert_eq!(*byte, u8::from(touched.contains(&i)), "page {i}");
        }
    }
}
