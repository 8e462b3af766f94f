//! Loading an ELF program (ET_EXEC, or ET_DYN such as a static-PIE) from the initramfs
//! into a fresh address space, with its interpreter (the dynamic loader PT_INTERP names)
//! when it is dynamically linked, and the initial stack Linux builds: argc, argv, envp,
//! auxv (AT_PHDR, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_ENTRY, AT_RANDOM, AT_HWCAP, ...), and
//! the strings.

use crate::tunable::{keep, key, Key, KeyKind};
use crate::{
    arch::usermode::UserContext,
    mem::aspace::{AddressSpace, MmSpace as Mm, PAGE, STACK_INITIAL_BYTES, STACK_TOP},
};
use alloc::{boxed::Box, vec::Vec};
use errno::{Errno, SysResult};
use loader::elf::Program;
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
    pub const SYSINFO_EHDR: u64 = 33;
}

/// A loaded program: its address space and the context to start it with.
pub struct Image {
    /// The new address space.
    pub aspace: AddressSpace,
    /// Registers at the entry point.
    pub ctx: Box<UserContext>,
}

/// The interpreter (dynamic loader) path `elf` names, if any: ENOEXEC for an ELF this
/// kernel cannot load.
pub fn interpreter_path(elf: &[u8]) -> SysResult<Option<alloc::string::String>> {
    let program = loader::elf::parse(elf, PIE_BASE, IMAGE_END).map_err(|_| Errno::ENOEXEC)?;
    match program.interp {
        None => Ok(None),
        Some(path) => alloc::string::String::from_utf8(path.to_vec())
            .map(Some)
            .map_err(|_| Errno::ENOENT),
    }
}

/// Checks that `elf` is a program [`load`] accepts, with `interp` the interpreter it
/// names ([`interpreter_path`], read by the caller from wherever it lives), without
/// building anything (execve asks before it ends the caller's other threads).
pub fn check(elf: &[u8], interp: Option<&[u8]>) -> SysResult<()> {
    let program = loader::elf::parse(elf, PIE_BASE, IMAGE_END).map_err(|_| Errno::ENOEXEC)?;
    if program.interp.is_some() {
        let interp = interp.ok_or(Errno::ENOENT)?;
        loader::elf::parse_interpreter(interp, PIE_BASE, IMAGE_END).map_err(|_| Errno::ENOEXEC)?;
    }
    Ok(())
}

/// Loads `elf` with `argv`/`envp` (as byte strings, no NULs) for a process with `uid`;
/// `interp` is the interpreter `elf` names, if it names one.
pub fn load(
    elf: &[u8],
    interp: Option<&[u8]>,
    path: &[u8],
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    uid: u32,
    persona: u32,
) -> SysResult<Image> {
    let program = loader::elf::parse(elf, PIE_BASE, IMAGE_END).map_err(|_| Errno::ENOEXEC)?;
    let interp_elf = match &program.interp {
        Some(_) => Some(interp.ok_or(Errno::ENOENT)?),
        None => None,
    };
    let mut random = [0u8; 8];
    crate::random::fill(&mut random);
    // User ASLR: the mmap area's top moves by up to 4 GiB (page granular) per exec,
    // unless `kernel.randomize_va_space` is 0 or the process asked for a fixed layout
    // (`personality(ADDR_NO_RANDOMIZE)`, as gdb and `setarch -R` do).
    let shift = if randomizes_layout(persona) {
        (u64::from_le_bytes(random) % (1 << 20)) * PAGE
    } else {
        0
    };
    let layout = Layout {
        mmap_base: Layout::default().mmap_base - shift,
        ..Layout::default()
    };
    let aspace = AddressSpace::new(layout)?;
    let mm = aspace.mm();
    let highest = map_program(mm, elf, &program)?;
    if let Some(text) = program.segments.iter().find(|s| s.exec) {
        mm.set_code_range(text.vaddr, text.end());
    }
    mm.set_brk_start(highest);
    // A dynamically linked program starts in its interpreter, placed where the next
    // mmap would go; it finds the program through AT_PHDR/AT_ENTRY and itself through
    // AT_BASE.
    let (start, interp_base) = match interp_elf {
        Some(interp_elf) => {
            let interp = place_interpreter(mm, interp_elf)?;
            map_program(mm, interp_elf, &interp)?;
            (interp.entry, interp.bias)
        }
        None => (program.entry, 0),
    };
    let vdso = super::vdso::map(mm)?;

    let mut random = [0u8; 16];
    crate::random::fill(&mut random);
    let hwcap = u64::from(core::arch::x86_64::__cpuid(1).edx);
    let auxv = [
        (at::PHDR, program.phdr_vaddr.unwrap_or(0)),
        (at::PHENT, u64::from(loader::elf::PHENT_BYTES)),
        (at::PHNUM, u64::from(program.phnum)),
        (at::PAGESZ, PAGE),
        (at::BASE, interp_base),
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
        (at::SYSINFO_EHDR, vdso),
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
    mm.set_arg_range(initial.args.0, initial.args.1);

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
        &MmapRequest::anon(
            STACK_TOP - stack_bytes,
            stack_bytes,
            Prot::READ | Prot::WRITE,
            stack_flags,
        ),
        true,
    )?;
    mm.set_stack_start(STACK_TOP);
    mm.write_bytes(sp, &stack).map_err(|_| Errno::ENOMEM)?;

    let ctx = Box::new(UserContext::new(start, sp));
    Ok(Image { aspace, ctx })
}

/// Segments must end below this: the top GiB under the stack stays free for it.
const IMAGE_END: u64 = STACK_TOP - (1 << 30);

/// The interpreter of the first program (an initramfs file): ENOENT if there is none,
/// as Linux's execve answers for a missing dynamic loader.
fn initramfs_interpreter(elf: &[u8]) -> SysResult<Option<&'static [u8]>> {
    match interpreter_path(elf)? {
        None => Ok(None),
        Some(path) => crate::initramfs::lookup(&path)
            .map(Some)
            .ok_or(Errno::ENOENT),
    }
}

/// Parses the interpreter `elf` at a base the address space's mmap allocator picks for
/// its whole span (found by mapping and unmapping a placeholder of that size).
fn place_interpreter(mm: &Mm, elf: &[u8]) -> SysResult<Program> {
    let parse =
        |base| loader::elf::parse_interpreter(elf, base, IMAGE_END).map_err(|_| Errno::ENOEXEC);
    // Its first segment is usually at 0, which the parser refuses as a final address:
    // measure it at PIE_BASE.
    let (low, high) = parse(PIE_BASE)?.span(PAGE);
    let len = high - low;
    let none = MapFlags::PRIVATE | MapFlags::ANONYMOUS;
    let at = mm.mmap(&MmapRequest::anon(0, len, Prot::empty(), none), false)?;
    mm.munmap(at, len)?;
    parse(at + PIE_BASE - low)
}

/// Maps every page a segment of `program` covers (read-write while loading), copies the
/// file bytes in (the rest is demand-zero: .bss), then gives each page the union of the
/// protections of the segments on it. The runs come from the segments' bounds, so a
/// huge p_memsz costs one mmap, which commit accounting refuses (ENOMEM) as Linux's
/// vm_brk does, instead of a walk over its pages. Returns the end of the highest run.
fn map_program(mm: &Mm, elf: &[u8], program: &Program) -> SysResult<u64> {
    let rw = Prot::READ | Prot::WRITE;
    let anon_fixed = MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED_NOREPLACE;
    let runs = program.page_runs(PAGE);
    for run in &runs {
        mm.mmap(
            &MmapRequest::anon(run.start, run.end - run.start, rw, anon_fixed),
            true,
        )?;
    }
    for s in &program.segments {
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
    Ok(runs.last().map_or(0, |r| r.end))
}

/// Makes the first process (pid 1) from the initramfs with a SYSTEM token: its thread
/// and user context, for the caller to start.
pub fn spawn_init(
    path: &str,
    argv: &[Vec<u8>],
) -> SysResult<(
    alloc::sync::Arc<super::thread::Thread>,
    alloc::boxed::Box<UserContext>,
)> {
    let elf = crate::initramfs::lookup(path).ok_or(Errno::ENOENT)?;
    let token = alloc::sync::Arc::new(security::Token::system());
    let envp = [
        b"HOME=/".to_vec(),
        b"PATH=/bin".to_vec(),
        b"TERM=linux".to_vec(),
    ];
    let interp = initramfs_interpreter(elf)?;
    let image = load(elf, interp, path.as_bytes(), argv, &envp, token.uid(), 0)?;
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
    Ok((thread, image.ctx))
}

/// `personality(2)`'s `ADDR_NO_RANDOMIZE`: this process's next exec lays the address
/// space out without randomisation.
pub const ADDR_NO_RANDOMIZE: u32 = 0x0004_0000;

/// `kernel.randomize_va_space`: 0 turns user address-space randomisation off for every
/// exec; any other value (2 is the default, as on Linux) leaves it on (the mmap area's
/// base moves). Linux takes any int; negative values are EINVAL here.
pub static RANDOMIZE_VA_SPACE: Key = key(
    "kernel.randomize_va_space",
    &["/proc/sys/kernel/randomize_va_space"],
    KeyKind::Int {
        min: 0,
        max: i32::MAX as u64,
    },
    2,
    keep,
);

/// Whether an exec by a process of personality `persona` randomises its layout.
fn randomizes_layout(persona: u32) -> bool {
    RANDOMIZE_VA_SPACE.get() != 0 && persona & ADDR_NO_RANDOMIZE == 0
}
