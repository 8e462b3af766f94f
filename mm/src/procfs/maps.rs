//! `/proc/<pid>/maps`: one line per VMA,
//! `start-end perms offset major:minor inode` then the name padded to column 74.

use alloc::string::String;
use core::fmt::Write;

use super::vma_name;
use crate::aspace::{AddressSpace, MmState};
use crate::errno::MmError;
use crate::frame::PAGE_SIZE;
use crate::pagetable::PageTable;
use crate::vma::{VmFlags, Vma};

/// Where the pathname starts (Linux pads the header to `25 + 6 * sizeof(void *)`).
const NAME_COLUMN: usize = 73;

/// Appends the maps line of `vma` (with its newline) to `out`.
pub(crate) fn maps_line(out: &mut String, st: &MmState, vma: &Vma) {
    let line_start = out.len();
    let f = vma.flags;
    let perm = |flag: VmFlags, c: char| if f.contains(flag) { c } else { '-' };
    let (offset, major, minor, inode) = match vma.file() {
        Some(file) => {
            let info = file.info();
            (
                vma.pgoff * PAGE_SIZE,
                info.dev_major,
                info.dev_minor,
                info.inode,
            )
        }
        None => (0, 0, 0, 0),
    };
    let _ = write!(
        out,
        "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {} ",
        vma.start,
        vma.end,
        perm(VmFlags::READ, 'r'),
        perm(VmFlags::WRITE, 'w'),
        perm(VmFlags::EXEC, 'x'),
        if f.contains(VmFlags::MAYSHARE) {
            's'
        } else {
            'p'
        },
        offset,
        major,
        minor,
        inode,
    );
    if let Some(name) = vma_name(st, vma) {
        while out.len() - line_start < NAME_COLUMN {
            out.push(' ');
        }
        out.push_str(&name);
    }
    out.push('\n');
}

/// The text of `/proc/<pid>/maps` (whole: host tests and small spaces; the kernel reads
/// it a batch at a time with [`maps_batch`]).
pub fn maps<P: PageTable>(aspace: &AddressSpace<P>) -> String {
    let mut out = String::new();
    let mut from = Some(0);
    while let Some(at) = from {
        from = maps_batch(aspace, at, usize::MAX, &mut out).unwrap_or(None);
    }
    out
}

/// Appends the maps lines of at most `max_vmas` VMAs, from the first one ending above
/// `from` (Linux's seq_file position: a VMA changed between two reads is neither
/// skipped nor repeated), to `out`. Returns where the next batch starts (the end of the
/// last VMA written), `None` after the last VMA. `NoMemory` if `out` cannot grow (what
/// was appended stays).
pub fn maps_batch<P: PageTable>(
    aspace: &AddressSpace<P>,
    from: u64,
    max_vmas: usize,
    out: &mut String,
) -> Result<Option<u64>, MmError> {
    let st = aspace.state().read();
    super::batch(&st, from, max_vmas, |vma| {
        out.try_reserve(LINE_BYTES).map_err(|_| MmError::NoMemory)?;
        maps_line(out, &st, vma);
        Ok(())
    })
}

/// Room reserved before each line (a longer path grows the string past it).
const LINE_BYTES: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, file_bytes, harness, map_file, map_shared_anon};
    use crate::vma::{MapFlags, Prot};
    use alloc::vec::Vec;

    /// Maps `n` one-page VMAs that do not merge (alternating protections).
    fn many_vmas(h: &crate::aspace::tests::Harness, n: u64) -> u64 {
        let base = anon_rw(&h.aspace, n + 1);
        for i in (0..n).step_by(2) {
            h.aspace
                .mprotect(base + i * PAGE_SIZE, PAGE_SIZE, Prot::READ)
                .unwrap();
        }
        base
    }

    #[test]
    fn batches_add_up_to_the_whole_text() {
        let h = harness();
        many_vmas(&h, 9);
        let whole = maps(&h.aspace);
        for per in [1, 2, 3, 64] {
            let mut text = String::new();
            let mut from = Some(0);
            let mut rounds = 0;
            while let Some(at) = from {
                from = maps_batch(&h.aspace, at, per, &mut text).unwrap();
                rounds += 1;
            }
            assert_eq!(text, whole, "{per} per batch");
            assert_eq!(
                rounds,
                whole.lines().count().div_ceil(per),
                "{per} per batch"
            );
        }
    }

    #[test]
    fn a_change_between_batches_neither_repeats_nor_skips() {
        let h = harness();
        let base = many_vmas(&h, 6);
        let mut text = String::new();
        let next = maps_batch(&h.aspace, 0, 2, &mut text).unwrap().unwrap();
        // The two VMAs just read go away before the next read.
        h.aspace.munmap(base, 2 * PAGE_SIZE).unwrap();
        let mut from = Some(next);
        while let Some(at) = from {
            from = maps_batch(&h.aspace, at, 2, &mut text).unwrap();
        }
        let starts: Vec<u64> = text
            .lines()
            .map(|l| u64::from_str_radix(l.split('-').next().unwrap(), 16).unwrap())
            .collect();
        assert!(starts.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(starts.len(), maps(&h.aspace).lines().count() + 2, "{text}");
    }

    #[test]
    fn linux_format() {
        let h = harness();
        h.aspace.set_brk_start(0x55_0000);
        h.aspace.brk(0x55_2000);
        let a = anon_rw(&h.aspace, 1);
        let f = h.file(&file_bytes(8192));
        let m = map_file(
            &h.aspace,
            &f,
            1,
            Prot::READ | Prot::EXEC,
            MapFlags::PRIVATE,
            4096,
        );
        let s = map_shared_anon(&h.aspace, 1);
        let text = maps(&h.aspace);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            "00550000-00552000 rw-p 00000000 00:00 0                                  [heap]"
        );
        let anon_line = std::format!("{:08x}-{:08x} rw-p 00000000 00:00 0 ", a, a + 4096);
        assert!(lines.contains(&anon_line.as_str()), "{text}");
        let file_line = std::format!(
            "{:08x}-{:08x} r-xp 00001000 00:01 {}",
            m,
            m + 4096,
            f.info().inode
        );
        let l = lines.iter().find(|l| l.starts_with(&file_line)).unwrap();
        assert_eq!(l.find("/test/file"), Some(NAME_COLUMN));
        let shm = lines
            .iter()
            .find(|l| l.starts_with(&std::format!("{s:08x}")))
            .unwrap();
        assert!(shm.contains(" rw-s ") && shm.ends_with("/dev/zero (deleted)"));
    }
}
