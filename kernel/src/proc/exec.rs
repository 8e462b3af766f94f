//! Loading a static ELF program (ET_EXEC or static-PIE ET_DYN) from the initramfs into a
//! fresh address space, with the initial stack Linux builds: argc, argv, envp, auxv
//! (AT_PHDR, AT_PHNUM, AT_PAGESZ, AT_ENTRY, AT_RANDOM, AT_HWCAP, ...), and the strings.

use crate::{
    arch::usermode::UserContext,
    mem::aspace::{AddressSpace, PAGE, STACK_INITIAL_BYTES, STACK_TOP},
    syscall::errno::{Errno, SysResult},
};
use mm::{
    aspace::{Layout, MmapRequest},
    vma::{MapFlags, Prot},
};
use alloc::{boxed::Box, vec::Vec};

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
/// Where a static-PIE is placed.
const PIE_BASE: u64 = 0x0000_5555_5555_0000;

/// Auxiliary vector keys.
mod at {
    pub const NULL: u64 = 0;
    pub const PHDR: u64 = 3;
    pub const PHENT: u64 = 4;
    pub const PHNUM: u64 = 5;
    pub const PAGESZ: u64 = 6;
    pub const BASE: u64 = 7;
    pub const FLAGS: u64 = 8;
    pub const ENTRY: u64 = 9;
    pub const UID: u64 = 11;
    pub const EUID: u64 = 12;
    pub const GID: u64 = 13;
    pub const EGID: u64 = 14;
    pub const PLATFORM: u64 = 15;
    pub const HWCAP: u64 = 16;
    pub const CLKTCK: u64 = 17;
    pub const SECURE: u64 = 23;
    pub const RANDOM: u64 = 25;
    pub const HWCAP2: u64 = 26;
    pub const EXECFN: u64 = 31;
}

fn u16_at(b: &[u8], at: usize) -> SysResult<u16> {
    Ok(u16::from_le_bytes(b.get(at..at + 2).ok_or(Errno::ENOEXEC)?.try_into().map_err(|_| Errno::ENOEXEC)?))
}
fn u32_at(b: &[u8], at: usize) -> SysResult<u32> {
    Ok(u32::from_le_bytes(b.get(at..at + 4).ok_or(Errno::ENOEXEC)?.try_into().map_err(|_| Errno::ENOEXEC)?))
}
fn u64_at(b: &[u8], at: usize) -> SysResult<u64> {
    Ok(u64::from_le_bytes(b.get(at..at + 8).ok_or(Errno::ENOEXEC)?.try_into().map_err(|_| Errno::ENOEXEC)?))
}

/// A loaded program: its address space and the context to start it with.
pub struct Image {
    /// The new address space.
    pub aspace: AddressSpace,
    /// Registers at the entry point.
    pub ctx: Box<UserContext>,
}

struct Segment {
    vaddr: u64,
    offset: u64,
    file_len: u64,
    mem_len: u64,
    prot: Prot,
}

/// Loads `elf` with `argv`/`envp` (as byte strings, no NULs) for a process with `uid`.
pub fn load(elf: &[u8], path: &[u8], argv: &[Vec<u8>], envp: &[Vec<u8>], uid: u32) -> SysResult<Image> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(Errno::ENOEXEC);
    }
    let kind = u16_at(elf, 16)?;
    if u16_at(elf, 18)? != 62 || !(kind == ET_EXEC || kind == ET_DYN) {
        return Err(Errno::ENOEXEC);
    }
    let entry = u64_at(elf, 24)?;
    let phoff = u64_at(elf, 32)? as usize;
    let phentsize = usize::from(u16_at(elf, 54)?);
    let phnum = usize::from(u16_at(elf, 56)?);
    if phentsize < 56 || phnum == 0 || phnum > 256 {
        return Err(Errno::ENOEXEC);
    }
    let bias = if kind == ET_DYN { PIE_BASE } else { 0 };
    let mut segments = Vec::new();
    let mut phdr_vaddr = None;
    for i in 0..phnum {
        let ph = phoff.checked_add(i * phentsize).ok_or(Errno::ENOEXEC)?;
        let p_type = u32_at(elf, ph)?;
        let flags = u32_at(elf, ph + 4)?;
        let offset = u64_at(elf, ph + 8)?;
        let vaddr = u64_at(elf, ph + 16)?;
        let file_len = u64_at(elf, ph + 32)?;
        let mem_len = u64_at(elf, ph + 40)?;
        match p_type {
            PT_INTERP => return Err(Errno::ENOEXEC), // static programs only
            PT_PHDR => phdr_vaddr = Some(vaddr + bias),
            PT_LOAD if mem_len > 0 => {
                if file_len > mem_len || offset.checked_add(file_len).is_none_or(|end| end > elf.len() as u64) {
                    return Err(Errno::ENOEXEC);
                }
                let mut prot = Prot::empty();
                if flags & 4 != 0 {
                    prot |= Prot::READ;
                }
                if flags & 2 != 0 {
                    prot |= Prot::WRITE;
                }
                if flags & 1 != 0 {
                    prot |= Prot::EXEC;
                }
                segments.push(Segment { vaddr: vaddr + bias, offset, file_len, mem_len, prot });
                if phdr_vaddr.is_none() && offset == 0 {
                    phdr_vaddr = Some(vaddr + bias + phoff as u64);
                }
            }
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(Errno::ENOEXEC);
    }

    let mut random = [0u8; 8];
    crate::random::fill(&mut random);
    // User ASLR: the mmap area's top moves by up to 4 GiB (page granular) per exec.
    let shift = (u64::from_le_bytes(random) % (1 << 20)) * PAGE;
    let layout = Layout { mmap_base: Layout::default().mmap_base - shift, ..Layout::default() };
    let aspace = AddressSpace::new(layout)?;
    let mm = aspace.mm();
    let rw = Prot::READ | Prot::WRITE;
    let anon_fixed = MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED_NOREPLACE;
    // Map every page any segment covers (read-write while loading), then copy the file
    // bytes in (the rest is demand-zero: .bss), then give each page the union of the
    // protections of the segments on it.
    let mut lowest = u64::MAX;
    let mut highest = 0;
    for s in &segments {
        let start = s.vaddr & !(PAGE - 1);
        let end = (s.vaddr + s.mem_len).next_multiple_of(PAGE);
        if end > STACK_TOP - (1 << 30) || start < PAGE {
            return Err(Errno::ENOEXEC);
        }
        let mut page = start;
        while page < end {
            let run = page;
            while page < end && mm.vma_at(page).is_none() {
                page += PAGE;
            }
            if page > run {
                mm.mmap(&MmapRequest::anon(run, page - run, rw, anon_fixed), true)?;
            }
            while page < end && mm.vma_at(page).is_some() {
                page += PAGE;
            }
        }
        let data = &elf[s.offset as usize..(s.offset + s.file_len) as usize];
        mm.write_bytes(s.vaddr, data).map_err(|_| Errno::ENOMEM)?;
        lowest = lowest.min(start);
        highest = highest.max(end);
    }
    let prot_of = |page: u64| {
        segments
            .iter()
            .filter(|s| page + PAGE > s.vaddr && page < s.vaddr + s.mem_len)
            .fold(Prot::empty(), |acc, s| acc | s.prot)
    };
    let mut page = lowest;
    while page < highest {
        let (run, prot) = (page, prot_of(page));
        while page < highest && prot_of(page) == prot {
            page += PAGE;
        }
        if mm.vma_at(run).is_some() {
            mm.mprotect(run, page - run, prot)?;
        }
    }
    if let Some(text) = segments.iter().find(|s| s.prot.contains(Prot::EXEC)) {
        mm.set_code_range(text.vaddr, text.vaddr + text.mem_len);
    }
    mm.set_brk_start(highest);

    // Strings and the random bytes at the top, then auxv/envp/argv/argc below.
    let mut blob: Vec<u8> = Vec::new();
    let mut offsets = Vec::new();
    for s in argv.iter().chain(envp.iter()) {
        offsets.push(blob.len() as u64);
        blob.extend_from_slice(s);
        blob.push(0);
    }
    let execfn_offset = blob.len() as u64;
    blob.extend_from_slice(path);
    blob.push(0);
    let platform_offset = blob.len() as u64;
    blob.extend_from_slice(b"x86_64\0");
    let random_offset = blob.len() as u64;
    let mut random = [0u8; 16];
    crate::random::fill(&mut random);
    blob.extend_from_slice(&random);
    let strings_base = (STACK_TOP - 16 - blob.len() as u64) & !15;

    let mut words: Vec<u64> = Vec::new();
    words.push(argv.len() as u64);
    for off in &offsets[..argv.len()] {
        words.push(strings_base + off);
    }
    words.push(0);
    for off in &offsets[argv.len()..] {
        words.push(strings_base + off);
    }
    words.push(0);
    let hwcap = u64::from(core::arch::x86_64::__cpuid(1).edx);
    let auxv = [
        (at::PHDR, phdr_vaddr.unwrap_or(0)),
        (at::PHENT, 56),
        (at::PHNUM, phnum as u64),
        (at::PAGESZ, PAGE),
        (at::BASE, 0),
        (at::FLAGS, 0),
        (at::ENTRY, entry + bias),
        (at::UID, u64::from(uid)),
        (at::EUID, u64::from(uid)),
        (at::GID, u64::from(uid)),
        (at::EGID, u64::from(uid)),
        (at::HWCAP, hwcap),
        (at::HWCAP2, 0),
        (at::CLKTCK, 100),
        (at::SECURE, 0),
        (at::RANDOM, strings_base + random_offset),
        (at::PLATFORM, strings_base + platform_offset),
        (at::EXECFN, strings_base + execfn_offset),
        (at::NULL, 0),
    ];
    for (k, v) in auxv {
        words.push(k);
        words.push(v);
    }
    let sp = (strings_base - words.len() as u64 * 8) & !15;
    let mut stack = Vec::with_capacity((STACK_TOP - sp) as usize);
    for w in &words {
        stack.extend_from_slice(&w.to_le_bytes());
    }
    stack.resize((strings_base - sp) as usize, 0);
    stack.extend_from_slice(&blob);
    // The stack: a growsdown mapping large enough for the arguments, growing on faults
    // up to RLIMIT_STACK (the guard gap below it is kept free).
    let stack_bytes = (STACK_TOP - sp + (64 << 10)).next_multiple_of(PAGE).max(STACK_INITIAL_BYTES);
    let stack_flags = MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED_NOREPLACE | MapFlags::GROWSDOWN | MapFlags::STACK;
    mm.mmap(&MmapRequest::anon(STACK_TOP - stack_bytes, stack_bytes, rw, stack_flags), true)?;
    mm.set_stack_start(STACK_TOP);
    mm.write_bytes(sp, &stack).map_err(|_| Errno::ENOMEM)?;

    let ctx = Box::new(UserContext::new(entry + bias, sp));
    Ok(Image { aspace, ctx })
}

/// Starts the first process (pid 1) from the initramfs with a SYSTEM token.
pub fn spawn_init(path: &str, argv: &[Vec<u8>]) -> SysResult<()> {
    let elf = crate::initramfs::lookup(path).ok_or(Errno::ENOENT)?;
    let token = alloc::sync::Arc::new(security::Token::system());
    let envp = [b"HOME=/".to_vec(), b"PATH=/bin".to_vec(), b"TERM=linux".to_vec()];
    let image = load(elf, path.as_bytes(), argv, &envp, token.uid())?;
    let pid = super::alloc_pid();
    let name = alloc::string::String::from(path.rsplit('/').next().unwrap_or(path));
    let process = super::new_process(pid, 0, name, alloc::sync::Arc::new(image.aspace), super::files::FileTable::with_console(), token);
    let online = crate::smp::online_cpus();
    let all = if online >= 64 { u64::MAX } else { (1u64 << online) - 1 };
    let thread = super::thread::Thread::new(pid, process, 0, all);
    super::thread::start(thread, image.ctx);
    Ok(())
}
