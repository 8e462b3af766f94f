//! Process entry: `_start`, the initial stack the kernel builds (argc, argv, envp,
//! auxv) and the handoff to the program's `main`.

use core::cell::UnsafeCell;
use core::ffi::CStr;

core::arch::global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    // Outermost frame: no return address, frame-pointer chain ends here.
    "xor ebp, ebp",
    // The kernel leaves rsp pointing at argc; hand that to Rust.
    "mov rdi, rsp",
    // The SysV ABI wants rsp 16-byte aligned before a call.
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym rust_start,
);

/// Auxiliary-vector keys (`AT_*`, include/uapi/linux/auxvec.h).
pub mod auxv {
    /// End of the vector.
    pub const AT_NULL: usize = 0;
    /// Address of the program headers.
    pub const AT_PHDR: usize = 3;
    /// Size of one program header entry.
    pub const AT_PHENT: usize = 4;
    /// Number of program headers.
    pub const AT_PHNUM: usize = 5;
    /// System page size.
    pub const AT_PAGESZ: usize = 6;
    /// Interpreter base address.
    pub const AT_BASE: usize = 7;
    /// Flags.
    pub const AT_FLAGS: usize = 8;
    /// Program entry point.
    pub const AT_ENTRY: usize = 9;
    /// Real uid.
    pub const AT_UID: usize = 11;
    /// Effective uid.
    pub const AT_EUID: usize = 12;
    /// Real gid.
    pub const AT_GID: usize = 13;
    /// Effective gid.
    pub const AT_EGID: usize = 14;
    /// Platform string address.
    pub const AT_PLATFORM: usize = 15;
    /// CPU feature bits (CPUID.1:EDX on x86).
    pub const AT_HWCAP: usize = 16;
    /// Clock ticks per second.
    pub const AT_CLKTCK: usize = 17;
    /// Secure-mode (setuid) flag.
    pub const AT_SECURE: usize = 23;
    /// Address of 16 random bytes.
    pub const AT_RANDOM: usize = 25;
    /// More CPU feature bits.
    pub const AT_HWCAP2: usize = 26;
    /// Address of the executed file name.
    pub const AT_EXECFN: usize = 31;
    /// Address of the vDSO ELF header.
    pub const AT_SYSINFO_EHDR: usize = 33;
    /// Minimal signal stack size.
    pub const AT_MINSIGSTKSZ: usize = 51;

    /// A short name for an `AT_*` key, for printing.
    pub fn name(key: usize) -> &'static str {
        match key {
            AT_PHDR => "AT_PHDR",
            AT_PHENT => "AT_PHENT",
            AT_PHNUM => "AT_PHNUM",
            AT_PAGESZ => "AT_PAGESZ",
            AT_BASE => "AT_BASE",
            AT_FLAGS => "AT_FLAGS",
            AT_ENTRY => "AT_ENTRY",
            AT_UID => "AT_UID",
            AT_EUID => "AT_EUID",
            AT_GID => "AT_GID",
            AT_EGID => "AT_EGID",
            AT_PLATFORM => "AT_PLATFORM",
            AT_HWCAP => "AT_HWCAP",
            AT_CLKTCK => "AT_CLKTCK",
            AT_SECURE => "AT_SECURE",
            AT_RANDOM => "AT_RANDOM",
            AT_HWCAP2 => "AT_HWCAP2",
            AT_EXECFN => "AT_EXECFN",
            AT_SYSINFO_EHDR => "AT_SYSINFO_EHDR",
            AT_MINSIGSTKSZ => "AT_MINSIGSTKSZ",
            _ => "AT_?",
        }
    }
}

/// The program's arguments, environment and auxiliary vector, as the kernel laid
/// them out on the initial stack (which lives for the whole process).
#[derive(Clone, Copy, Debug)]
pub struct Args {
    argc: usize,
    argv: *const *const u8,
    envc: usize,
    envp: *const *const u8,
    auxv: *const [usize; 2],
    auxc: usize,
}

// SAFETY: the pointers refer to the initial stack's argument area, which nobody
// writes after start-up and which outlives every thread.
unsafe impl Send for Args {}
// SAFETY: as above; `Args` only reads.
unsafe impl Sync for Args {}

impl Args {
    /// Parses the initial stack at `sp` (pointing at argc).
    ///
    /// # Safety
    /// `sp` must be the stack pointer the kernel passed to `_start`.
    unsafe fn from_stack(sp: *const usize) -> Args {
        // SAFETY: the System V x86_64 process start-up layout: argc, argv[argc],
        // NULL, envp..., NULL, auxv pairs..., AT_NULL.
        unsafe {
            let argc = *sp;
            let argv = sp.add(1) as *const *const u8;
            let envp = argv.add(argc + 1);
            let mut envc = 0;
            while !(*envp.add(envc)).is_null() {
                envc += 1;
            }
            let auxv = envp.add(envc + 1) as *const [usize; 2];
            let mut auxc = 0;
            while (*auxv.add(auxc))[0] != auxv::AT_NULL {
                auxc += 1;
            }
            Args {
                argc,
                argv,
                envc,
                envp,
                auxv,
                auxc,
            }
        }
    }

    /// Number of arguments (argc), including the program name.
    pub fn len(&self) -> usize {
        self.argc
    }

    /// True when argc is 0 (a kernel may start a program that way).
    pub fn is_empty(&self) -> bool {
        self.argc == 0
    }

    /// Argument `i` as a C string.
    pub fn get_cstr(&self, i: usize) -> Option<&'static CStr> {
        if i >= self.argc {
            return None;
        }
        // SAFETY: argv[i] for i < argc is a NUL-terminated string on the initial stack.
        Some(unsafe { CStr::from_ptr(*self.argv.add(i) as *const core::ffi::c_char) })
    }

    /// Argument `i` as text (`"<non-utf8>"` when it is not UTF-8).
    pub fn get(&self, i: usize) -> Option<&'static str> {
        self.get_cstr(i).map(cstr_text)
    }

    /// All arguments as text.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        (0..self.argc).filter_map(move |i| self.get(i))
    }

    /// All `NAME=value` environment strings.
    pub fn env_iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        (0..self.envc).map(move |i| {
            // SAFETY: envp[i] for i < envc is a NUL-terminated string.
            cstr_text(unsafe { CStr::from_ptr(*self.envp.add(i) as *const core::ffi::c_char) })
        })
    }

    /// The value of environment variable `name`.
    pub fn env(&self, name: &str) -> Option<&'static str> {
        self.env_iter().find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then_some(v)
        })
    }

    /// The value of auxiliary-vector entry `key` (see [`auxv`]).
    pub fn auxv(&self, key: usize) -> Option<usize> {
        self.auxv_iter().find(|&(k, _)| k == key).map(|(_, v)| v)
    }

    /// All auxiliary-vector entries except the terminating `AT_NULL`.
    pub fn auxv_iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        // SAFETY: entries below auxc are on the initial stack.
        (0..self.auxc).map(move |i| unsafe {
            let e = *self.auxv.add(i);
            (e[0], e[1])
        })
    }

    /// The page size from `AT_PAGESZ`, or 4096.
    pub fn page_size(&self) -> usize {
        self.auxv(auxv::AT_PAGESZ).unwrap_or(4096)
    }

    /// The 16 bytes `AT_RANDOM` points to.
    pub fn at_random(&self) -> Option<[u8; 16]> {
        let p = self.auxv(auxv::AT_RANDOM)?;
        if p == 0 {
            return None;
        }
        // SAFETY: the kernel placed 16 random bytes at this address on the stack.
        Some(unsafe { *(p as *const [u8; 16]) })
    }

    /// The raw null-terminated `envp` array, to hand to `execve`.
    pub fn envp_ptr(&self) -> *const *const u8 {
        self.envp
    }

    /// The value of option `--name`, given as `--name VALUE` or `--name=VALUE`.
    pub fn opt(&self, name: &str) -> Option<&'static str> {
        let mut it = self.iter().skip(1);
        while let Some(a) = it.next() {
            if a == name {
                return it.next();
            }
            if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                return Some(v);
            }
        }
        None
    }

    /// Option `--name` parsed as an unsigned integer (`default` when absent).
    /// Returns `Err(text)` when it is present but not a number.
    pub fn opt_u64(&self, name: &str, default: u64) -> Result<u64, &'static str> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| v),
        }
    }

    /// True when `flag` appears among the arguments.
    pub fn has(&self, flag: &str) -> bool {
        self.iter().skip(1).any(|a| a == flag)
    }
}

fn cstr_text(s: &'static CStr) -> &'static str {
    s.to_str().unwrap_or("<non-utf8>")
}

struct StartupCell(UnsafeCell<Option<Args>>);

// SAFETY: written once by `rust_start` before `main` runs and before any thread
// exists; only read afterwards.
unsafe impl Sync for StartupCell {}

static ARGS: StartupCell = StartupCell(UnsafeCell::new(None));

/// The process's [`Args`] (the same value `main` receives).
pub fn args() -> &'static Args {
    // SAFETY: ARGS is written once before main and never again (see StartupCell).
    match unsafe { &*ARGS.0.get() } {
        Some(a) => a,
        None => crate::sys::process::exit_group(127),
    }
}

unsafe extern "C" fn rust_start(sp: *const usize) -> ! {
    // SAFETY: `_start` passes the kernel's initial stack pointer.
    let parsed = unsafe { Args::from_stack(sp) };
    // SAFETY: single-threaded start-up; nothing reads ARGS yet.
    unsafe { *ARGS.0.get() = Some(parsed) };
    crate::thread::init_main_thread();
    extern "Rust" {
        fn __peios_rt_main(args: &Args) -> i32;
    }
    // SAFETY: `peios_rt::main!` defines this symbol with exactly this signature.
    let status = unsafe { __peios_rt_main(args()) };
    crate::sys::process::exit_group(status)
}
