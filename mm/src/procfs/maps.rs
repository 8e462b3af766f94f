//! `/proc/<pid>/maps`: one line per VMA,
//! `start-end perms offset major:minor inode` then the name padded to column 74.

use alloc::string::String;
use core::fmt::Write;

use super::vma_name;
use crate::aspace::{AddressSpace, MmState};
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

/// The text of `/proc/<pid>/maps`.
pub fn maps<P: PageTable>(aspace: &AddressSpace<P>) -> String {
    let st = aspace.state().read();
    let mut out = String::new();
    for vma in st.tree.iter() {
        maps_line(&mut out, &st, vma);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, file_bytes, harness, map_file, map_shared_anon};
    use crate::vma::{MapFlags, Prot};
    use alloc::vec::Vec;

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
