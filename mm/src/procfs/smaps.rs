//! `/proc/<pid>/smaps`: each maps line followed by the VMA's memory counters
//! (`Rss`, `Pss`, shared/private clean/dirty, `Anonymous`, `Locked`, ...) and its
//! `VmFlags` mnemonics, with Linux's field widths.

use alloc::string::String;
use core::fmt::Write;

use super::maps::maps_line;
use super::{classify, PageClass};
use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::errno::MmError;
use crate::frame::PAGE_SIZE;
use crate::pagetable::{PageTable, PteFlags};
use crate::phys::Frames;
use crate::vma::{VmFlags, Vma};

/// Fixed-point shift of the proportional counters (Linux's `PSS_SHIFT`).
const PSS_SHIFT: u32 = 12;

/// Byte counters of one VMA.
#[derive(Default)]
struct MemSize {
    resident: u64,
    pss: u64,
    pss_dirty: u64,
    shared_clean: u64,
    shared_dirty: u64,
    private_clean: u64,
    private_dirty: u64,
    referenced: u64,
    anonymous: u64,
    anon_huge: u64,
    pss_locked: u64,
    shared_hugetlb: u64,
    private_hugetlb: u64,
}

fn account<P: PageTable>(pt: &P, frames: &Frames, vma: &Vma) -> MemSize {
    let mut m = MemSize::default();
    if let Some(map) = &vma.hugetlb {
        // As Linux: hugetlb pages are not in Rss, only in the two hugetlb lines.
        pt.scan_leaves(
            VirtAddr::new(vma.start),
            VirtAddr::new(vma.end),
            &mut |_, pte, huge| {
                if huge {
                    if frames.count(pte.pfn) >= 2 || map.is_shared() {
                        m.shared_hugetlb += crate::pagetable::HUGE_SIZE;
                    } else {
                        m.private_hugetlb += crate::pagetable::HUGE_SIZE;
                    }
                }
            },
        );
        return m;
    }
    let locked = vma.flags.contains(VmFlags::LOCKED);
    pt.scan(
        VirtAddr::new(vma.start),
        VirtAddr::new(vma.end),
        &mut |va, pte| {
            let (class, mapcount) = classify(frames, vma, va.as_u64(), pte);
            // A shared-memory page has no backing file to be clean against: Linux
            // keeps its folio dirty once written (by write(2), a mapping or
            // fallocate), whatever this entry's dirty bit says.
            let dirty = pte.flags.contains(PteFlags::DIRTY) || class == PageClass::Shmem;
            m.resident += PAGE_SIZE;
            if pte.flags.contains(PteFlags::ACCESSED) {
                m.referenced += PAGE_SIZE;
            }
            if class == PageClass::Anon {
                m.anonymous += PAGE_SIZE;
            }
            let share = (PAGE_SIZE << PSS_SHIFT) / u64::from(mapcount);
            m.pss += share;
            if dirty {
                m.pss_dirty += share;
            }
            if locked {
                m.pss_locked += share;
            }
            match (mapcount >= 2, dirty) {
                (true, true) => m.shared_dirty += PAGE_SIZE,
                (true, false) => m.shared_clean += PAGE_SIZE,
                (false, true) => m.private_dirty += PAGE_SIZE,
                (false, false) => m.private_clean += PAGE_SIZE,
            }
        },
    );
    pt.scan_leaves(
        VirtAddr::new(vma.start),
        VirtAddr::new(vma.end),
        &mut |_, _, huge| {
            if huge && vma.file().is_none() {
                m.anon_huge += crate::pagetable::HUGE_SIZE;
            }
        },
    );
    m
}

fn field(out: &mut String, name: &str, bytes: u64) {
    let _ = writeln!(out, "{name:<16}{:>8} kB", bytes >> 10);
}

/// The text of `/proc/<pid>/smaps` (whole: host tests; the kernel reads it a batch at a
/// time with [`smaps_batch`]).
pub fn smaps<P: PageTable>(aspace: &AddressSpace<P>) -> String {
    let mut out = String::new();
    let mut from = Some(0);
    while let Some(at) = from {
        from = smaps_batch(aspace, at, usize::MAX, &mut out).unwrap_or(None);
    }
    out
}

/// Room reserved before each VMA's block (about 1 KiB of text).
const BLOCK_BYTES: usize = 1536;

/// Like [`maps_batch`](super::maps_batch), for smaps blocks.
pub fn smaps_batch<P: PageTable>(
    aspace: &AddressSpace<P>,
    from: u64,
    max_vmas: usize,
    out: &mut String,
) -> Result<Option<u64>, MmError> {
    let st = aspace.state().read();
    let frames = aspace.frames();
    super::batch(&st, from, max_vmas, |vma| {
        out.try_reserve(BLOCK_BYTES)
            .map_err(|_| MmError::NoMemory)?;
        let eligible = aspace.thp_allowed(vma) && matches!(vma.backing, crate::vma::Backing::Anon);
        let swap = swap_usage(aspace, vma);
        smaps_block(out, &st, aspace.page_table(), frames, vma, eligible, swap);
        Ok(())
    })
}

/// What of `vma` is in swap, in bytes: its swap entries, plus for a shared mapping
/// of shared memory the swapped pages of the object it maps (as Linux's
/// `shmem_partial_swap_usage`); and the entries' proportional share (`SwapPss`,
/// shifted by `PSS_SHIFT`: a slot named by several entries counts divided).
fn swap_usage<P: PageTable>(aspace: &AddressSpace<P>, vma: &Vma) -> (u64, u64) {
    let swap = aspace.tunables().swap();
    let (mut bytes, mut pss) = (0u64, 0u64);
    aspace.page_table().scan_swap(
        VirtAddr::new(vma.start),
        VirtAddr::new(vma.end),
        &mut |_, entry| {
            bytes += PAGE_SIZE;
            pss += (PAGE_SIZE << PSS_SHIFT) / u64::from(swap.refs(entry).max(1));
        },
    );
    if let Some(file) = vma.file().filter(|_| !vma.is_private()) {
        let pages = vma.len_bytes() / PAGE_SIZE;
        let first = vma.pgoff;
        let shmem = file
            .cache()
            .swapped_range(first, first.saturating_add(pages.saturating_sub(1)));
        bytes += shmem * PAGE_SIZE;
    }
    (bytes, pss)
}

/// Appends the smaps block of `vma`.
fn smaps_block<P: PageTable>(
    out: &mut String,
    st: &crate::aspace::MmState,
    pt: &P,
    frames: &Frames,
    vma: &Vma,
    thp_eligible: bool,
    (swap, swap_pss): (u64, u64),
) {
    maps_line(out, st, vma);
    let m = account(pt, frames, vma);
    field(out, "Size:", vma.len_bytes());
    let page_size = vma.hugetlb.as_ref().map_or(PAGE_SIZE, |m| m.page_bytes());
    field(out, "KernelPageSize:", page_size);
    field(out, "MMUPageSize:", page_size);
    field(out, "Rss:", m.resident);
    field(out, "Pss:", m.pss >> PSS_SHIFT);
    field(out, "Pss_Dirty:", m.pss_dirty >> PSS_SHIFT);
    field(out, "Shared_Clean:", m.shared_clean);
    field(out, "Shared_Dirty:", m.shared_dirty);
    field(out, "Private_Clean:", m.private_clean);
    field(out, "Private_Dirty:", m.private_dirty);
    field(out, "Referenced:", m.referenced);
    field(out, "Anonymous:", m.anonymous);
    field(out, "KSM:", 0);
    field(out, "LazyFree:", 0);
    field(out, "AnonHugePages:", m.anon_huge);
    field(out, "ShmemPmdMapped:", 0);
    field(out, "FilePmdMapped:", 0);
    field(out, "Shared_Hugetlb:", m.shared_hugetlb);
    let _ = writeln!(out, "Private_Hugetlb: {:>7} kB", m.private_hugetlb >> 10);
    field(out, "Swap:", swap);
    field(out, "SwapPss:", swap_pss >> PSS_SHIFT);
    field(out, "Locked:", m.pss_locked >> PSS_SHIFT);
    let _ = writeln!(out, "THPeligible:    {:>8}", u8::from(thp_eligible));
    if crate::aspace::pkeys_supported() {
        let _ = writeln!(out, "ProtectionKey:  {:>8}", vma.flags.pkey());
    }
    out.push_str("VmFlags:");
    for mnemonic in vma.flags.mnemonics() {
        out.push(' ');
        out.push_str(mnemonic);
    }
    out.push_str(" \n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, fork, harness};
    use alloc::vec::Vec;

    fn value(block: &str, name: &str) -> u64 {
        let line = block.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..]
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn counters_and_format() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        h.aspace
            .write_bytes(a, &[1u8; 2 * PAGE_SIZE as usize])
            .unwrap();
        let mut b = [0u8; 1];
        h.aspace.read_bytes(a + 2 * PAGE_SIZE, &mut b).unwrap();
        let text = smaps(&h.aspace);
        assert_eq!(value(&text, "Size:"), 16);
        assert_eq!(value(&text, "Rss:"), 12);
        assert_eq!(value(&text, "Pss:"), 12);
        assert_eq!(value(&text, "Private_Dirty:"), 8);
        assert_eq!(value(&text, "Private_Clean:"), 4);
        assert_eq!(value(&text, "Anonymous:"), 12);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "Size:                 16 kB");
        assert_eq!(lines[2], "KernelPageSize:        4 kB");
        assert!(lines.contains(&"Private_Hugetlb:       0 kB"));
        assert!(lines.contains(&"THPeligible:           0"));
        assert_eq!(*lines.last().unwrap(), "VmFlags: rd wr mr mw me ac ");

        // After fork both sides share: Pss halves, pages count as shared.
        let child = fork(&h);
        let text = smaps(&h.aspace);
        assert_eq!(value(&text, "Pss:"), 6);
        assert_eq!(value(&text, "Shared_Dirty:"), 8);
        assert_eq!(value(&text, "Shared_Clean:"), 4);
        drop(child);
    }

    #[test]
    fn a_private_file_mappings_copies_are_anonymous_and_shmem_pages_dirty() {
        use crate::aspace::tests::map_file;
        use crate::pagecache::FileObject;
        use crate::vma::{MapFlags, Prot};
        let h = harness();
        let f = FileObject::new_memfd("smaps", h.frames.clone());
        f.write_at(0, &[7u8; 8 * PAGE_SIZE as usize]).unwrap();
        let rw = Prot::READ | Prot::WRITE;
        let a = map_file(&h.aspace, &f, 8, rw, MapFlags::PRIVATE, 0);
        for p in 0..3 {
            h.aspace.write_bytes(a + p * PAGE_SIZE, b"x").unwrap();
        }
        let mut b = [0u8; 1];
        h.aspace.read_bytes(a + 5 * PAGE_SIZE, &mut b).unwrap();
        h.aspace.read_bytes(a + 6 * PAGE_SIZE, &mut b).unwrap();
        // The values Linux 6.12 shows for the same (userland/c/shmfalloc.c).
        let block = |text: &str| -> alloc::string::String {
            let start = text.find(&alloc::format!("{a:08x}-")).unwrap();
            let rest = &text[start..];
            let end = rest.find("VmFlags").unwrap();
            rest[..end].into()
        };
        let text = block(&smaps(&h.aspace));
        assert_eq!(value(&text, "Rss:"), 20);
        assert_eq!(value(&text, "Anonymous:"), 12, "the three copies");
        assert_eq!(value(&text, "Private_Dirty:"), 20);
        assert_eq!(value(&text, "Private_Clean:"), 0);
        assert_eq!(value(&text, "Pss:"), 20);
        let s = map_file(&h.aspace, &f, 8, Prot::READ, MapFlags::SHARED, 0);
        h.aspace.read_bytes(s + 5 * PAGE_SIZE, &mut b).unwrap();
        h.aspace.read_bytes(s + 6 * PAGE_SIZE, &mut b).unwrap();
        let text = block(&smaps(&h.aspace));
        assert_eq!(value(&text, "Shared_Dirty:"), 8);
        assert_eq!(value(&text, "Shared_Clean:"), 0);
        assert_eq!(value(&text, "Private_Dirty:"), 12);
        assert_eq!(value(&text, "Anonymous:"), 12);
        assert_eq!(value(&text, "Pss:"), 16);
        assert_eq!(value(&text, "Pss_Dirty:"), 16);
    }
}
