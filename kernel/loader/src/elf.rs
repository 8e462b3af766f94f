//! x86_64 ELF programs (ET_EXEC, and ET_DYN placed at a chosen base): the entry point,
//! the program headers' address, the loadable segments and, for a dynamically linked
//! program, the path of the interpreter (PT_INTERP) the kernel loads beside it.

use alloc::vec::Vec;

/// `e_type` of a position-dependent executable.
pub const ET_EXEC: u16 = 2;
/// `e_type` of a position-independent one.
pub const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
/// Size of one program header.
pub const PHENT_BYTES: u16 = 56;
/// Most program headers accepted.
const MAX_PHNUM: usize = 256;
/// Longest interpreter path accepted, with its NUL (Linux's PATH_MAX).
const MAX_INTERP_BYTES: u64 = 4096;

/// Why a file is not a program this kernel runs (the kernel answers ENOEXEC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not ELF, not 64-bit little-endian, or not x86_64.
    NotX86_64Elf,
    /// Neither ET_EXEC nor ET_DYN.
    NotExecutable,
    /// An interpreter that itself asks for an interpreter.
    NestedInterpreter,
    /// Headers or segments point outside the file or overflow.
    Malformed,
    /// No loadable segment.
    NothingToLoad,
}

/// One loadable segment, at its final address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address of the first byte.
    pub vaddr: u64,
    /// Offset of its bytes in the file.
    pub offset: u64,
    /// Bytes taken from the file.
    pub file_len: u64,
    /// Bytes in memory (the rest is zero: .bss).
    pub mem_len: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

impl Segment {
    /// One past the last byte in memory.
    pub fn end(&self) -> u64 {
        self.vaddr + self.mem_len
    }
}

/// A page-aligned run of a program's image: pages covered by the same segments, with
/// the union of their protections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First byte (page-aligned).
    pub start: u64,
    /// One past the last byte (page-aligned).
    pub end: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

/// A parsed program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Entry point (relocated).
    pub entry: u64,
    /// Where the program headers are in memory (AT_PHDR), if they are loaded.
    pub phdr_vaddr: Option<u64>,
    /// Number of program headers (AT_PHNUM).
    pub phnum: u16,
    /// Loadable segments, in file order.
    pub segments: Vec<Segment>,
    /// The load bias (0 for ET_EXEC).
    pub bias: u64,
    /// The interpreter's path (PT_INTERP, without its NUL) of a dynamically linked program.
    pub interp: Option<Vec<u8>>,
}

impl Program {
    /// Page-aligned bounds `(start, end)` of everything the segments cover.
    pub fn span(&self, page_bytes: u64) -> (u64, u64) {
        let mask = page_bytes - 1;
        let start = self
            .segments
            .iter()
            .map(|s| s.vaddr & !mask)
            .min()
            .unwrap_or(0);
        let end = self.segments.iter().map(|s| s.end()).max().unwrap_or(0);
        (start, end.saturating_add(mask) & !mask)
    }
}

/// The interpreter path a PT_INTERP header at file `offset`, `len` bytes long, names:
/// a NUL-terminated string inside the file with no other NUL, at most PATH_MAX long.
fn interp_path(elf: &[u8], offset: u64, len: u64) -> Result<Vec<u8>, ElfError> {
    if !(2..=MAX_INTERP_BYTES).contains(&len) {
        return Err(ElfError::Malformed);
    }
    let start = usize::try_from(offset).map_err(|_| ElfError::Malformed)?;
    let bytes = start
        .checked_add(len as usize)
        .and_then(|end| elf.get(start..end))
        .ok_or(ElfError::Malformed)?;
    match bytes.split_last() {
        Some((0, path)) if !path.contains(&0) => Ok(path.to_vec()),
        _ => Err(ElfError::Malformed),
    }
}

/// Parses an interpreter (the dynamic loader) placed at `base`, refusing one that asks
/// for an interpreter itself.
pub fn parse_interpreter(elf: &[u8], base: u64, user_end: u64) -> Result<Program, ElfError> {
    let program = parse(elf, base, user_end)?;
    if program.interp.is_some() {
        return Err(ElfError::NestedInterpreter);
    }
    Ok(program)
}

impl Program {
    /// Every page some segment covers, as runs of pages `page_bytes` long (a power of
    /// two) sharing one protection (the union of the segments on the page), lowest
    /// first. The work depends on the number of segments, never on their sizes: a
    /// segment of many terabytes is one run, so the kernel can map it (or refuse it)
    /// at once.
    pub fn page_runs(&self, page_bytes: u64) -> Vec<Run> {
        let mask = page_bytes - 1;
        // The segments on a page change only where a segment starts or ends.
        let mut cuts: Vec<u64> = self
            .segments
            .iter()
            .flat_map(|s| [s.vaddr & !mask, s.end().saturating_add(mask) & !mask])
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut runs: Vec<Run> = Vec::new();
        for window in cuts.windows(2) {
            let (start, end) = (window[0], window[1]);
            let on = self
                .segments
                .iter()
                .filter(|s| s.vaddr < end && s.end() > start);
            let mut run = Run {
                start,
                end,
                read: false,
                write: false,
                exec: false,
            };
            let mut any = false;
            for s in on {
                any = true;
                run.read |= s.read;
                run.write |= s.write;
                run.exec |= s.exec;
            }
            if !any {
                continue;
            }
            match runs.last_mut() {
                Some(last)
                    if last.end == start
                        && (last.read, last.write, last.exec)
                            == (run.read, run.write, run.exec) =>
                {
                    last.end = end;
                }
                _ => runs.push(run),
            }
        }
        runs
    }
}

fn bytes<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], ElfError> {
    b.get(at..at.checked_add(N).ok_or(ElfError::Malformed)?)
        .and_then(|s| s.try_into().ok())
        .ok_or(ElfError::Malformed)
}
fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    bytes::<2>(b, at).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    bytes::<4>(b, at).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    bytes::<8>(b, at).map(u64::from_le_bytes)
}

/// Parses `elf`; a static-PIE is placed at `pie_base`. Every segment must lie in the file
/// and below `user_end` (exclusive), and may not start on page 0.
/// Parses `elf`, placing an ET_DYN file at `pie_base`; segments must end below `user_end`.
pub fn parse(elf: &[u8], pie_base: u64, user_end: u64) -> Result<Program, ElfError> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(ElfError::NotX86_64Elf);
    }
    if u16_at(elf, 18)? != EM_X86_64 {
        return Err(ElfError::NotX86_64Elf);
    }
    let kind = u16_at(elf, 16)?;
    let bias = match kind {
        ET_EXEC => 0,
        ET_DYN => pie_base,
        _ => return Err(ElfError::NotExecutable),
    };
    // The entry point must be a user address: `iretq` to anything else faults in the
    // kernel.
    let entry = u64_at(elf, 24)?
        .checked_add(bias)
        .filter(|&e| e < user_end)
        .ok_or(ElfError::Malformed)?;
    let phoff = usize::try_from(u64_at(elf, 32)?).map_err(|_| ElfError::Malformed)?;
    let phentsize = usize::from(u16_at(elf, 54)?);
    let phnum = u16_at(elf, 56)?;
    if phentsize < usize::from(PHENT_BYTES) || phnum == 0 || usize::from(phnum) > MAX_PHNUM {
        return Err(ElfError::Malformed);
    }
    let mut segments = Vec::new();
    let mut phdr_vaddr = None;
    let mut interp = None;
    for i in 0..usize::from(phnum) {
        let ph = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .ok_or(ElfError::Malformed)?;
        let p_type = u32_at(elf, ph)?;
        let flags = u32_at(elf, ph + 4)?;
        let offset = u64_at(elf, ph + 8)?;
        let vaddr = u64_at(elf, ph + 16)?
            .checked_add(bias)
            .ok_or(ElfError::Malformed)?;
        let file_len = u64_at(elf, ph + 32)?;
        let mem_len = u64_at(elf, ph + 40)?;
        match p_type {
            PT_INTERP if interp.is_none() => interp = Some(interp_path(elf, offset, file_len)?),
            PT_INTERP => return Err(ElfError::Malformed),
            PT_PHDR => phdr_vaddr = Some(vaddr),
            PT_LOAD if mem_len > 0 => {
                let in_file = offset
                    .checked_add(file_len)
                    .is_some_and(|end| end <= elf.len() as u64);
                let in_user = vaddr
                    .checked_add(mem_len)
                    .is_some_and(|end| end <= user_end);
                if file_len > mem_len || !in_file || !in_user || vaddr < 4096 {
                    return Err(ElfError::Malformed);
                }
                segments.push(Segment {
                    vaddr,
                    offset,
                    file_len,
                    mem_len,
                    read: flags & 4 != 0,
                    write: flags & 2 != 0,
                    exec: flags & 1 != 0,
                });
                if phdr_vaddr.is_none() && offset == 0 {
                    phdr_vaddr = vaddr.checked_add(phoff as u64);
                }
            }
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(ElfError::NothingToLoad);
    }
    Ok(Program {
        entry,
        phdr_vaddr,
        phnum,
        segments,
        bias,
        interp,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    const USER_END: u64 = 0x0000_7fff_ffff_f000;

    /// A minimal static executable: a 64-byte header, two program headers (R+X text at
    /// 0x400000 holding the headers, RW data with .bss at 0x401000) and 0x200 bytes of code.
    pub(crate) fn tiny_exec(kind: u16) -> Vec<u8> {
        let mut f = vec![0u8; 0x1200];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&kind.to_le_bytes());
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[24..32].copy_from_slice(&0x400100u64.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&PHENT_BYTES.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph =
            |f: &mut Vec<u8>, at: usize, flags: u32, off: u64, va: u64, filesz: u64, memsz: u64| {
                f[at..at + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
                f[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
                f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
                f[at + 16..at + 24].copy_from_slice(&va.to_le_bytes());
                f[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
                f[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
            };
        ph(&mut f, 64, 5, 0, 0x400000, 0x1000, 0x1000);
        ph(&mut f, 120, 6, 0x1000, 0x401000, 0x200, 0x3000);
        f
    }

    #[test]
    fn static_executable() {
        let p = parse(&tiny_exec(ET_EXEC), 0x5555_0000_0000, USER_END).unwrap();
        assert_eq!(p.entry, 0x400100);
        assert_eq!(p.phdr_vaddr, Some(0x400040));
        assert_eq!(p.phnum, 2);
        assert_eq!(p.segments.len(), 2);
        assert!(p.segments[0].exec && p.segments[0].read && !p.segments[0].write);
        assert_eq!(
            (
                p.segments[1].file_len,
                p.segments[1].mem_len,
                p.segments[1].end()
            ),
            (0x200, 0x3000, 0x404000)
        );
    }

    #[test]
    fn static_pie_is_placed_at_the_base() {
        let p = parse(&tiny_exec(ET_DYN), 0x5555_0000_0000, USER_END).unwrap();
        assert_eq!(p.bias, 0x5555_0000_0000);
        assert_eq!(p.entry, 0x5555_0040_0100);
        assert_eq!(p.segments[0].vaddr, 0x5555_0040_0000);
    }

    #[test]
    fn refusals() {
        let good = tiny_exec(ET_EXEC);
        let with = |at: usize, bytes: &[u8]| {
            let mut f = good.clone();
            f[at..at + bytes.len()].copy_from_slice(bytes);
            parse(&f, 0, USER_END)
        };
        assert_eq!(with(0, b"\x7fELG"), Err(ElfError::NotX86_64Elf));
        assert_eq!(with(4, &[1]), Err(ElfError::NotX86_64Elf));
        assert_eq!(with(18, &3u16.to_le_bytes()), Err(ElfError::NotX86_64Elf));
        assert_eq!(with(16, &1u16.to_le_bytes()), Err(ElfError::NotExecutable));
        assert_eq!(with(56, &0u16.to_le_bytes()), Err(ElfError::Malformed));
        // A segment running past the end of the file, one larger in the file than in
        // memory, one that wraps around, one above user space, one on page 0.
        assert_eq!(
            with(120 + 32, &0x10_0000u64.to_le_bytes()),
            Err(ElfError::Malformed)
        );
        assert_eq!(
            with(120 + 40, &0x100u64.to_le_bytes()),
            Err(ElfError::Malformed)
        );
        assert_eq!(
            with(120 + 16, &u64::MAX.to_le_bytes()),
            Err(ElfError::Malformed)
        );
        assert_eq!(
            with(120 + 16, &USER_END.to_le_bytes()),
            Err(ElfError::Malformed)
        );
        assert_eq!(with(64 + 16, &0u64.to_le_bytes()), Err(ElfError::Malformed));
        assert_eq!(parse(&good[..100], 0, USER_END), Err(ElfError::Malformed));
        // A PIE base that overflows.
        assert_eq!(
            parse(&tiny_exec(ET_DYN), u64::MAX - 10, USER_END),
            Err(ElfError::Malformed)
        );
    }

    /// `tiny_exec(kind)` with a third program header: PT_INTERP naming `path` (stored at
    /// file offset 0x1100 with its NUL).
    fn with_interp(kind: u16, path: &[u8]) -> Vec<u8> {
        let mut f = tiny_exec(kind);
        f[56..58].copy_from_slice(&3u16.to_le_bytes());
        let at = 176;
        f[at..at + 4].copy_from_slice(&PT_INTERP.to_le_bytes());
        f[at + 8..at + 16].copy_from_slice(&0x1100u64.to_le_bytes());
        f[at + 32..at + 40].copy_from_slice(&(path.len() as u64 + 1).to_le_bytes());
        f[0x1100..0x1100 + path.len()].copy_from_slice(path);
        f[0x1100 + path.len()] = 0;
        f
    }

    #[test]
    fn dynamic_program_names_its_interpreter() {
        let f = with_interp(ET_DYN, b"/lib/ld-musl-x86_64.so.1");
        let p = parse(&f, 0x5555_0000_0000, USER_END).unwrap();
        assert_eq!(p.interp.as_deref(), Some(&b"/lib/ld-musl-x86_64.so.1"[..]));
        assert_eq!(p.span(4096), (0x5555_0040_0000, 0x5555_0040_4000));
        assert_eq!(
            parse_interpreter(&f, 0, USER_END),
            Err(ElfError::NestedInterpreter)
        );
        assert!(parse_interpreter(&tiny_exec(ET_DYN), 0x7000_0000, USER_END).is_ok());
    }

    #[test]
    fn malformed_interpreter_paths_are_refused() {
        let mut f = with_interp(ET_EXEC, b"/lib/ld.so");
        // Not NUL-terminated.
        f[0x1100 + 10] = b'x';
        assert_eq!(parse(&f, 0, USER_END), Err(ElfError::Malformed));
        // A NUL inside.
        let mut f = with_interp(ET_EXEC, b"/lib/ld.so");
        f[0x1100 + 3] = 0;
        assert_eq!(parse(&f, 0, USER_END), Err(ElfError::Malformed));
        // Running past the end of the file, empty, longer than PATH_MAX.
        for len in [0x200u64, 1, 0, 4097, u64::MAX] {
            let mut f = with_interp(ET_EXEC, b"/lib/ld.so");
            f[176 + 32..176 + 40].copy_from_slice(&len.to_le_bytes());
            assert_eq!(
                parse(&f, 0, USER_END),
                Err(ElfError::Malformed),
                "len {len}"
            );
        }
        let mut f = with_interp(ET_EXEC, b"/lib/ld.so");
        f[176 + 8..176 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&f, 0, USER_END), Err(ElfError::Malformed));
    }

    /// `tiny_exec` with the data segment's p_memsz set to `memsz`.
    fn with_data_memsz(memsz: u64) -> Vec<u8> {
        let mut f = tiny_exec(ET_EXEC);
        f[120 + 40..120 + 48].copy_from_slice(&memsz.to_le_bytes());
        f
    }

    #[test]
    fn page_runs_merge_shared_pages_and_keep_protections() {
        let p = parse(&tiny_exec(ET_EXEC), 0, USER_END).unwrap();
        let runs = p.page_runs(4096);
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].start, runs[0].end), (0x400000, 0x401000));
        assert!(runs[0].exec && !runs[0].write);
        assert_eq!((runs[1].start, runs[1].end), (0x401000, 0x404000));
        assert!(runs[1].write && !runs[1].exec);
    }

    #[test]
    fn a_64_tib_bss_is_one_run_at_once() {
        // Accepted as Linux accepts it (it fits in user space); the kernel's mapping of
        // it is then refused by commit accounting (ENOMEM), not walked page by page.
        let huge = 64u64 << 40;
        let p = parse(&with_data_memsz(huge), 0, USER_END).unwrap();
        let runs = p.page_runs(4096);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].end, 0x401000 + huge);
        // Beyond user space, or wrapping: refused by the parser.
        assert_eq!(
            parse(&with_data_memsz(USER_END), 0, USER_END),
            Err(ElfError::Malformed)
        );
        assert_eq!(
            parse(&with_data_memsz(u64::MAX - 0x1000), 0, USER_END),
            Err(ElfError::Malformed)
        );
    }

    #[test]
    fn entry_outside_user_space_is_refused() {
        let mut f = tiny_exec(ET_EXEC);
        f[24..32].copy_from_slice(&0x8000_0000_0000_0000u64.to_le_bytes());
        assert_eq!(parse(&f, 0, USER_END), Err(ElfError::Malformed));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Corrupting any header bytes never panics, and whatever parses stays in bounds.
        #[test]
        fn corrupted_headers_never_panic(flips in proptest::collection::vec((0usize..176, any::<u8>()), 1..12), pie in any::<u64>()) {
            let mut f = tiny_exec(ET_EXEC);
            for (at, byte) in flips {
                f[at] = byte;
            }
            if let Ok(p) = parse(&f, pie, USER_END) {
                for s in &p.segments {
                    prop_assert!(s.end() <= USER_END && s.offset + s.file_len <= f.len() as u64);
                }
            }
        }
    }
}
