//! `mincore`: which pages of a range are resident — mapped in the page table, or,
//! for file-backed pages, present in the page cache.

use super::AddressSpace;
use crate::errno::MmError;
use crate::frame::PAGE_SIZE;
use crate::pagetable::PageTable;

impl<P: PageTable> AddressSpace<P> {
    /// `mincore(addr, len, vec)`: fills `vec` (one byte per page, at least
    /// `ceil(len / 4096)` long) with 1 for resident pages, 0 otherwise. `EINVAL` for an
    /// unaligned address, `ENOMEM` for a range leaving user space or not wholly mapped.
    pub fn mincore(&self, addr: u64, len: u64, vec: &mut [u8]) -> Result<(), MmError> {
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
        let pages = (len / PAGE_SIZE) as usize;
        if vec.len() < pages {
            return Err(MmError::BadAddress);
        }
        let st = self.state().read();
        if !st.tree.is_covered(addr, end) {
            return Err(MmError::NoMemory);
        }
        for (i, out) in vec.iter_mut().take(pages).enumerate() {
            let va = addr + i as u64 * PAGE_SIZE;
            let resident = self.page_table().query(va).is_some()
                || st
                    .tree
                    .find(va)
                    .and_then(|v| Some((v, v.file()?)))
                    .is_some_and(|(v, f)| f.cache().peek(v.file_index(va)).is_some());
            *out = u8::from(resident);
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
}
