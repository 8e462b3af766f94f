//! Loading a static ELF program (ET_EXEC or static-PIE ET_DYN) from the initramfs into a
//! fresh address space, with the initial stack Linux builds: argc, argv, envp, auxv
//! (AT_PHDR, AT_PHNUM, AT_PAGESZ, AT_ENTRY, AT_RANDOM, AT_HWCAP, ...), and the strings.

use crate::{
    arch::usermode::UserContext,
    mem::aspace::{AddressSpace, PAGE, STACK_INITIAL_BYTES, STACK_TOP},
};
use alloc::{boxed::Box, vec::Vec};
use errno::{Errno, SysResult};
use mm::{
    aspace::{Layout, MmapRequest},
    vma::{MapFlags, Prot},
};

/// Where a static-PIE is placed.
const PIE_BASE: u64 = 0x0000_5555_5555_0000;

/// Auxiliary vector keys (besides those the stack builder adds).
mod at {
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
    pub const HWCAP: u64 = 16;
    pub const CLKTCK: u64 = 17;
    pub const SECURE: u64 = 23;
    pub const HWCAP2: u64 = 26;
}

/// A loaded program: its address space and the context to start it with.
pub struct Image {
    /// The new address space.
    pub aspace: AddressSpace,
    /// Registers at the entry point.
    pub ctx: Box<UserContext>,
}

/// Loads `elf` with `argv`/`envp` (as byte strings, no NULs) for a process with `uid`.
pub fn load(
    elf: &[u8],
    path: &[u8],
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    uid: u32,
) -> SysResult<Image> {
    let program =
        loader::elf::parse(elf, PIE_BASE, STACK_TOP - (1 << 30)).map_err(|_| Errno::ENOEXEC)?;
    let segments = &program.segments;
    let mut random = [0u8; 8];
    crate::random::fill(&mut random);
    // User ASLR: the mmap area's top moves by up to 4 GiB (page granular) per exec.
    let shift = (u64::from_le_bytes(random) % (1 << 20)) * PAGE;
    let layout = Layout {
        mmap_base: Layout::default().mmap_base - shift,
        ..Layout::default()
    };
    let aspace = AddressSpace::new(layout)?;
    let mm = aspace.mm();
    let rw = Prot::READ | Prot::WRITE;
    let anon_fixed = MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED_NOREPLACE;
    // Map every page any segment covers (read-write while loading), then copy the file
    // bytes in (the rest is demand-zero: .bss), then give each page the union of the
    // protections of the segments on it. The runs come from the segments' bounds, so a
    // huge p_memsz costs one mmap, which commit accounting refuses (ENOMEM) as Linux's
    // vm_brk does, instead of a walk over its pages.
    let runs = program.page_runs(PAGE);
    for run in &runs {
        mm.mmap(
            &MmapRequest::anon(run.start, run.end - run.start, rw, anon_fixed),
            true,
        )?;
    }
    for s in segments {
        let data = &elf[s.offset as usize..(s.offset + s.file_len) as usize];
        mm.write_bytes(s.vaddr, data).map_err(|_| Errno::ENOMEM)?;
    }
    for run in &runs {
        let mut prot = Prot::empty();
        if run.read {
            prot |= Prot::READ;
        }
        if run.write {
            prot |= Prot::WRITE;
        }
        if run.exec {
            prot |= Prot::EXEC;
        }
        mm.mprotect(run.start, run.end - run.start, prot)?;
    }
    let highest = runs.last().map_or(0, |r| r.end);
    if let Some(text) = segments.iter().find(|s| s.exec) {
        mm.set_code_range(text.vaddr, text.end());
    }
    mm.set_brk_start(highest);

    let mut random = [0u8; 16];
    crate::random::fill(&mut random);
    let hwcap = u64::from(core::arch::x86_64::__cpuid(1).edx);
    let auxv = [
        (at::PHDR, program.phdr_vaddr.unwrap_or(0)),
        (at::PHENT, u64::from(loader::elf::PHENT_BYTES)),
        (at::PHNUM, u64::from(program.phnum)),
        (at::PAGESZ, PAGE),
        (at::BASE, 0),
        (at::FLAGS, 0),
        (at::ENTRY, program.entry),
        (at::UID, u64::from(uid)),
        (at::EUID, u64::from(uid)),
        (at::GID, u64::from(uid)),
        (at::EGID, u64::from(uid)),
        (at::HWCAP, hwcap),
        (at::HWCAP2, 0),
        (at::CLKTCK, 100),
        (at::SECURE, 0),
    ];
    let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    let envp: Vec<&[u8]> = envp.iter().map(Vec::as_slice).collect();
    let spec = loader::stack::StackSpec {
        top: STACK_TOP,
        argv: &argv,
        envp: &envp,
        execfn: path,
        random,
        auxv: &auxv,
    };
    let initial = loader::stack::build(&spec).ok_or(Errno::E2BIG)?;
    let (sp, stack) = (initial.sp, initial.bytes);

    // The stack: a growsdown mapping large enough for the arguments, growing on faults
    // up to RLIMIT_STACK (the guard gap below it is kept free).
    let stack_bytes = (STACK_TOP - sp + (64 << 10))
        .next_multiple_of(PAGE)
        .max(STACK_INITIAL_BYTES);
    let stack_flags = MapFlags::PRIVATE
        | MapFlags::ANONYMOUS
        | MapFlags::FIXED_NOREPLACE
        | MapFlags::GROWSDOWN
        | MapFlags::STACK;
    mm.mmap(
        &MmapRequest::anon(STACK_TOP - stack_bytes, stack_bytes, rw, stack_flags),
        true,
    )?;
    mm.set_stack_start(STACK_TOP);
    mm.write_bytes(sp, &stack).map_err(|_| Errno::ENOMEM)?;

    let ctx = Box::new(UserContext::new(program.entry, sp));
    Ok(Image { aspace, ctx })
}

/// Starts the first process (pid 1) from the initramfs with a SYSTEM token.
pub fn spawn_init(path: &str, argv: &[Vec<u8>]) -> SysResult<()> {
    let elf = crate::initramfs::lookup(path).ok_or(Errno::ENOENT)?;
    let token = alloc::sync::Arc::new(security::Token::system());
    let envp = [
        b"HOME=/".to_vec(),
        b"PATH=/bin".to_vec(),
        b"TERM=linux".to_vec(),
    ];
    let image = load(elf, path.as_bytes(), argv, &envp, token.uid())?;
    let slot = super::limits::reserve(super::limits::Requester {
        uid: token.uid(),
        nproc_limit: u64::MAX,
        exempt: true,
    })?;
    let pid = slot.pid();
    let name = alloc::string::String::from(path.rsplit('/').next().unwrap_or(path));
    let process = super::new_process(super::NewProcess {
        slot,
        ppid: 0,
        name,
        aspace: alloc::sync::Arc::new(image.aspace),
        files: super::files::FileTable::with_console(),
        fs: crate::vfs::FsContext::default(),
        exe: alloc::string::String::from(path),
        token,
        rlimits: super::default_rlimits(),
    });
    let all = crate::smp::online_mask();
    let thread = super::thread::Thread::new(pid, process, 0, all, None);
    super::thread::start(thread, image.ctx);
    Ok(())
}
