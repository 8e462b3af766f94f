//! The memory lines of `/proc/<pid>/status` (`VmPeak` through `VmSwap`), computed
//! from the VMA tree and a scan of the page table.

use alloc::string::String;
use core::fmt::Write;

use super::{classify, PageClass};
use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::frame::PAGE_SIZE;
use crate::pagetable::PageTable;
use crate::vma::VmFlags;

/// The memory fields of `status`, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStatus {
    /// Peak virtual size.
    pub vm_peak: u64,
    /// Virtual size.
    pub vm_size: u64,
    /// Locked memory.
    pub vm_lck: u64,
    /// Pinned memory.
    pub vm_pin: u64,
    /// Peak resident size.
    pub vm_hwm: u64,
    /// Resident size (`RssAnon + RssFile + RssShmem`).
    pub vm_rss: u64,
    /// Resident anonymous memory.
    pub rss_anon: u64,
    /// Resident file pages.
    pub rss_file: u64,
    /// Resident shared memory.
    pub rss_shmem: u64,
    /// Private writable memory other than stacks.
    pub vm_data: u64,
    /// Stacks.
    pub vm_stk: u64,
    /// The executable's code.
    pub vm_exe: u64,
    /// Other executable mappings (libraries).
    pub vm_lib: u64,
    /// Page tables.
    pub vm_pte: u64,
    /// Swapped out.
    pub vm_swap: u64,
}

impl MemStatus {
    /// The lines as Linux prints them (`"VmPeak:\t    1234 kB\n"`...).
    pub fn format(&self) -> String {
        let mut out = String::new();
        for (name, kib) in [
            ("VmPeak", self.vm_peak),
            ("VmSize", self.vm_size),
            ("VmLck", self.vm_lck),
            ("VmPin", self.vm_pin),
            ("VmHWM", self.vm_hwm),
            ("VmRSS", self.vm_rss),
            ("RssAnon", self.rss_anon),
            ("RssFile", self.rss_file),
            ("RssShmem", self.rss_shmem),
            ("VmData", self.vm_data),
            ("VmStk", self.vm_stk),
            ("VmExe", self.vm_exe),
            ("VmLib", self.vm_lib),
            ("VmPTE", self.vm_pte),
            ("VmSwap", self.vm_swap),
        ] {
            let _ = writeln!(out, "{name}:\t{kib:>8} kB");
        }
        out
    }
}

/// Computes the `status` memory fields.
pub fn status<P: PageTable>(aspace: &AddressSpace<P>) -> MemStatus {
    let kib = |bytes: u64| bytes >> 10;
    let st = aspace.state().read();
    let (mut anon, mut file, mut shmem) = (0u64, 0u64, 0u64);
    let (mut total, mut locked, mut data, mut stack, mut exec) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for vma in st.tree.iter() {
        let f = vma.flags;
        let len = vma.len_bytes();
        total += len;
        if f.contains(VmFlags::LOCKED) {
            locked += len;
        }
        if f.contains(VmFlags::GROWSDOWN) {
            stack += len;
        } else if f.contains(VmFlags::WRITE) && !f.contains(VmFlags::SHARED) {
            data += len;
        } else if f.contains(VmFlags::EXEC) && !f.contains(VmFlags::WRITE) {
            exec += len;
        }
        aspace.page_table().scan(
            VirtAddr::new(vma.start),
            VirtAddr::new(vma.end),
            &mut |va, pte| match classify(aspace.frames(), vma, va.as_u64(), pte).0 {
                PageClass::Anon => anon += PAGE_SIZE,
                PageClass::File => file += PAGE_SIZE,
                PageClass::Shmem => shmem += PAGE_SIZE,
            },
        );
    }
    let text = if st.end_code > st.start_code {
        (st.end_code.next_multiple_of(PAGE_SIZE) - (st.start_code & !(PAGE_SIZE - 1))).min(exec)
    } else {
        0
    };
    let rss = anon + file + shmem;
    let peak_vm = (st.hiwater_vm_pages * PAGE_SIZE).max(total);
    let hwm = (aspace.hiwater_rss_pages() * PAGE_SIZE).max(rss);
    MemStatus {
        vm_peak: kib(peak_vm),
        vm_size: kib(total),
        vm_lck: kib(locked),
        vm_pin: 0,
        vm_hwm: kib(hwm),
        vm_rss: kib(rss),
        rss_anon: kib(anon),
        rss_file: kib(file),
        rss_shmem: kib(shmem),
        vm_data: kib(data),
        vm_stk: kib(stack),
        vm_exe: kib(text),
        vm_lib: kib(exec - text),
        vm_pte: kib(aspace.page_table().table_bytes()),
        vm_swap: kib(aspace.swapped_pages() * crate::frame::PAGE_SIZE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, file_bytes, harness, map_file, map_shared_anon};
    use crate::vma::{MapFlags, Prot};

    #[test]
    fn fields_by_kind() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        h.aspace
            .write_bytes(a, &[1u8; 3 * PAGE_SIZE as usize])
            .unwrap();
        let f = h.file(&file_bytes(4 * PAGE_SIZE as usize));
        let code = map_file(
            &h.aspace,
            &f,
            4,
            Prot::READ | Prot::EXEC,
            MapFlags::PRIVATE,
            0,
        );
        h.aspace.set_code_range(code, code + 2 * PAGE_SIZE);
        let mut b = [0u8; 1];
        h.aspace.read_bytes(code, &mut b).unwrap();
        h.aspace.read_bytes(code + PAGE_SIZE, &mut b).unwrap();
        let s = map_shared_anon(&h.aspace, 2);
        h.aspace.write_bytes(s, b"x").unwrap();
        let m = status(&h.aspace);
        assert_eq!(
            (m.rss_anon, m.rss_file, m.rss_shmem, m.vm_rss),
            (12, 8, 4, 24)
        );
        assert_eq!(m.vm_size, 16 + 16 + 8);
        assert_eq!(m.vm_data, 16);
        assert_eq!((m.vm_exe, m.vm_lib), (8, 8));
        assert!(m.vm_pte > 0);
        h.aspace.munmap(a, 4 * PAGE_SIZE).unwrap();
        let m2 = status(&h.aspace);
        assert_eq!(m2.vm_size, 24);
        assert_eq!(m2.vm_peak, 40);
        let text = m2.format();
        assert!(
            text.starts_with("VmPeak:\t      40 kB\nVmSize:\t      24 kB\n"),
            "{text}"
        );
        assert!(text.contains("RssShmem:\t       4 kB\n"));
        assert_eq!(text.lines().count(), 15);
    }
}
