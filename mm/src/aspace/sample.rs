//! Access sampling for DAMON: test and clear a page's accessed bit.

use super::AddressSpace;
use crate::addr::VirtAddr;
use crate::pagetable::{PageTable, PteFlags};
use crate::tlb::TlbBatch;

impl<P: PageTable> AddressSpace<P> {
    /// Whether the page at `va` was accessed since the last call: its accessed bit,
    /// cleared here (the TLB entry is dropped soon after, so the next access sets it
    /// again).
    /// `None` when nothing is mapped there.
    pub fn sample_accessed(&self, va: u64) -> Option<bool> {
        let _st = self.state().read();
        let old = self
            .page_table()
            .update_flags(VirtAddr::new(va), &mut |f| f - PteFlags::ACCESSED)?;
        let accessed = old.flags.contains(PteFlags::ACCESSED);
        if accessed {
            // So the next access sets the bit again; no need to wait for it.
            let mut batch = TlbBatch::new();
            batch.add_page(VirtAddr::new(va));
            self.tlb().hint_flush(&batch);
        }
        Some(accessed)
    }
}

impl<P: PageTable> AddressSpace<P> {
    /// Clears the accessed bit of every page in `[start, end)` (one TLB flush for all):
    /// a monitor starting on the range counts only accesses made from then on.
    pub fn clear_accessed(&self, start: u64, end: u64) {
        let _st = self.state().read();
        let pt = self.page_table();
        let mut pages = alloc::vec::Vec::new();
        pt.scan(VirtAddr::new(start), VirtAddr::new(end), &mut |va, pte| {
            if pte.flags.contains(PteFlags::ACCESSED) {
                pages.push(va);
            }
        });
        let mut batch = TlbBatch::new();
        for va in pages {
            pt.update_flags(va, &mut |f| f - PteFlags::ACCESSED);
            batch.add_page(va);
        }
        self.tlb().hint_flush(&batch);
    }
}

#[cfg(test)]
mod tests {
    use crate::aspace::tests::{anon_rw, harness};
    use crate::frame::PAGE_SIZE;

    #[test]
    fn reports_and_clears_the_accessed_bit() {
        let h = harness();
        let a = anon_rw(&h.aspace, 2);
        assert_eq!(h.aspace.sample_accessed(a), None, "not faulted in yet");
        h.aspace.write_bytes(a, &[1]).unwrap();
        assert_eq!(h.aspace.sample_accessed(a), Some(true));
        assert_eq!(
            h.aspace.sample_accessed(a),
            Some(false),
            "cleared by the first look"
        );
        let mut b = [0u8];
        h.aspace.read_bytes(a, &mut b).unwrap();
        assert_eq!(h.aspace.sample_accessed(a), Some(true));
        assert_eq!(h.aspace.sample_accessed(a + PAGE_SIZE), None);
        h.aspace.write_bytes(a, &[2]).unwrap();
        h.aspace.clear_accessed(a, a + 2 * PAGE_SIZE);
        assert_eq!(
            h.aspace.sample_accessed(a),
            Some(false),
            "cleared for the whole range"
        );
    }
}
