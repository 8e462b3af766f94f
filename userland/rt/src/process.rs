//! Processes: `fork` (clone with SIGCHLD), `execve` from Rust strings, and the
//! decoding of `wait4` statuses.

use crate::signal::{signal_name, SIGCHLD};
use crate::sys::process::{clone, execve as sys_execve, wait4};
use crate::Errno;
use alloc::vec::Vec;
use core::fmt;

/// Which side of a [`fork`] we are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fork {
    /// In the new child process.
    Child,
    /// In the parent; the child's pid.
    Parent(i32),
}

/// Creates a child process: `clone(SIGCHLD, 0, ...)`, the fork of the Linux ABI.
///
/// The child gets a copy of the address space with only the calling thread. As with
/// any fork of a multi-threaded process, a lock another thread held (the heap's)
/// stays held in the child: fork before spawning threads.
pub fn fork() -> Result<Fork, Errno> {
    // SAFETY: no CLONE_VM and stack 0: the child continues on a private copy of
    // this stack, exactly like fork(2).
    let pid = unsafe {
        clone(
            SIGCHLD as u64,
            0,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            0,
        )
    }?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent(pid as i32)
    })
}

/// A decoded `wait4` status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    /// Exited normally with this status (`WIFEXITED`, `WEXITSTATUS`).
    Exited(i32),
    /// Killed by a signal (`WIFSIGNALED`, `WTERMSIG`, `WCOREDUMP`).
    Signaled {
        /// The signal number.
        signal: i32,
        /// True when a core dump was written.
        core_dumped: bool,
    },
    /// Stopped by a signal (`WIFSTOPPED`, `WSTOPSIG`).
    Stopped(i32),
    /// Resumed by SIGCONT (`WIFCONTINUED`).
    Continued,
}

impl WaitStatus {
    /// Decodes a raw status word as glibc's `W*` macros do.
    pub const fn from_raw(status: i32) -> WaitStatus {
        let low = status & 0x7f;
        if low == 0 {
            WaitStatus::Exited((status >> 8) & 0xff)
        } else if status == 0xffff {
            WaitStatus::Continued
        } else if status & 0xff == 0x7f {
            WaitStatus::Stopped((status >> 8) & 0xff)
        } else {
            WaitStatus::Signaled {
                signal: low,
                core_dumped: status & 0x80 != 0,
            }
        }
    }

    /// The shell-style code: the exit status, or 128 + signal for a signal death.
    pub const fn code(self) -> i32 {
        match self {
            WaitStatus::Exited(c) => c,
            WaitStatus::Signaled { signal, .. } => 128 + signal,
            WaitStatus::Stopped(s) => 128 + s,
            WaitStatus::Continued => 128,
        }
    }
}

impl fmt::Display for WaitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WaitStatus::Exited(c) => write!(f, "exited with status {}", c),
            WaitStatus::Signaled {
                signal,
                core_dumped,
            } => {
                write!(f, "killed by signal {} ({})", signal, signal_name(signal))?;
                if core_dumped {
                    f.write_str(", core dumped")?;
                }
                Ok(())
            }
            WaitStatus::Stopped(s) => write!(f, "stopped by signal {} ({})", s, signal_name(s)),
            WaitStatus::Continued => f.write_str("continued"),
        }
    }
}

/// Waits for child `pid` (retrying on `EINTR`) and decodes its status.
pub fn wait_pid(pid: i32) -> Result<WaitStatus, Errno> {
    loop {
        match wait4(pid, 0) {
            Ok((_, raw)) => return Ok(WaitStatus::from_raw(raw)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// NUL-terminated copies of strings plus the null-terminated pointer array that
/// `execve` wants.
pub struct CStrArray {
    storage: Vec<Vec<u8>>,
    ptrs: Vec<*const u8>,
}

impl CStrArray {
    /// Copies `items` (an interior NUL ends that item early, as C would read it).
    pub fn new<'a, I: IntoIterator<Item = &'a str>>(items: I) -> CStrArray {
        let storage: Vec<Vec<u8>> = items
            .into_iter()
            .map(|s| {
                let mut v: Vec<u8> = s.as_bytes().to_vec();
                v.push(0);
                v
            })
            .collect();
        let mut ptrs: Vec<*const u8> = storage.iter().map(|v| v.as_ptr()).collect();
        ptrs.push(core::ptr::null());
        CStrArray { storage, ptrs }
    }

    /// The null-terminated pointer array.
    pub fn as_ptr(&self) -> *const *const u8 {
        self.ptrs.as_ptr()
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.storage.len()
    }

    /// True when there are no strings.
    pub fn is_empty(&self) -> bool {
        self.storage.is_empty()
    }
}

/// Replaces the process image with `path`, arguments `argv` and environment `envp`.
/// Returns only on failure, with the errno.
pub fn execve(path: &str, argv: &[&str], envp: &[&str]) -> Errno {
    let p = CStrArray::new([path]);
    let a = CStrArray::new(argv.iter().copied());
    let e = CStrArray::new(envp.iter().copied());
    // SAFETY: all three are live, NUL-terminated, null-terminated arrays.
    unsafe { sys_execve(p.storage[0].as_ptr(), a.as_ptr(), e.as_ptr()) }
}
