//! `clone3(args, size)`: `clone` with its arguments in a versioned `struct clone_args`
//! (64 bytes in version 0, 80 with `set_tid`, 88 with `cgroup`; a larger struct from a
//! newer libc is accepted when its unknown tail is zero). Each field is validated as
//! Linux does, then the clone is `process::clone`'s.

use super::{process, Outcome};
use crate::{
    arch::{uaccess::copy_from_user, usermode::UserContext},
    proc::thread::Thread,
};
use alloc::sync::Arc;
use errno::{Errno, SysResult};

/// `CLONE_ARGS_SIZE_VER0`.
const SIZE_VER0: u64 = 64;
/// The fields this kernel knows (`CLONE_ARGS_SIZE_VER2`).
const SIZE_KNOWN: usize = 88;
const PAGE_SIZE: u64 = 4096;
/// `CSIGNAL`: the exit-signal byte of `clone`'s flags (clone3 has a field instead).
const CSIGNAL: u64 = 0xff;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_PARENT: u64 = 0x8000;
/// The highest signal number.
const NSIG: u64 = 64;

/// The decoded `struct clone_args`.
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
}

/// Reads and checks the struct: EINVAL below version 0's size, E2BIG past a page or
/// for a non-zero tail this kernel does not know.
fn read_args(at: u64, size: u64) -> SysResult<CloneArgs> {
    if size < SIZE_VER0 {
        return Err(Errno::EINVAL);
    }
    if size > PAGE_SIZE {
        return Err(Errno::E2BIG);
    }
    let size = size as usize;
    let mut bytes = [0u8; PAGE_SIZE as usize];
    copy_from_user(&mut bytes[..size], at)?;
    if bytes[SIZE_KNOWN.min(size)..size].iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let field = |i: usize| u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    // Field 10, `cgroup`, only counts with CLONE_INTO_CGROUP, which this kernel does
    // not support (the flag is refused as unknown).
    Ok(CloneArgs {
        flags: field(0),
        pidfd: field(1),
        child_tid: field(2),
        parent_tid: field(3),
        exit_signal: field(4),
        stack: field(5),
        stack_size: field(6),
        tls: field(7),
        set_tid: field(8),
        set_tid_size: field(9),
    })
}

/// `clone3(args, size)`.
pub fn clone3(thread: &Arc<Thread>, ctx: &UserContext, args: u64, size: u64) -> Outcome {
    let checked = || -> SysResult<CloneArgs> {
        let a = read_args(args, size)?;
        // The exit signal has its own field; the flags' signal byte must be clear.
        if a.flags & CSIGNAL != 0 || a.exit_signal & !CSIGNAL != 0 || a.exit_signal > NSIG {
            return Err(Errno::EINVAL);
        }
        if a.flags & (CLONE_THREAD | CLONE_PARENT) != 0 && a.exit_signal != 0 {
            return Err(Errno::EINVAL);
        }
        // A stack is a base and a size: both or neither.
        if (a.stack == 0) != (a.stack_size == 0) {
            return Err(Errno::EINVAL);
        }
        if a.set_tid_size != 0 || a.set_tid != 0 {
            // A list and its length (at most one pid per namespace level, 32), both or
            // neither; choosing the child's pid (checkpoint/restore) is then a right
            // no token holds.
            if a.set_tid == 0 || a.set_tid_size == 0 || a.set_tid_size > 32 {
                return Err(Errno::EINVAL);
            }
            return Err(Errno::EPERM);
        }
        Ok(a)
    };
    let a = match checked() {
        Ok(a) => a,
        Err(e) => return Err::<u64, _>(e).into(),
    };
    // The stack pointer starts at the top of the given stack (stacks grow down).
    let stack_top = a.stack.wrapping_add(a.stack_size);
    process::clone_with_pidfd_at(
        thread,
        ctx,
        a.flags | a.exit_signal,
        stack_top,
        a.parent_tid,
        a.child_tid,
        a.tls,
        a.pidfd,
    )
}
