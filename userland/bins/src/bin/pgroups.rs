//! `pgroups`: process groups and sessions. In a forked child (not a group leader):
//! setsid makes a new session and group led by the caller; children inherit the group;
//! setpgid moves a child into a group of its own; kill(-pgid) signals exactly that group;
//! wait4(-pgid) and wait4(0) reap by group; errors: kill of a missing group is ESRCH,
//! setpgid to a group that does not exist in the session is EPERM, setsid by a group
//! leader is EPERM.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::sys::process::{exit_group, getpid, kill};
use peios_rt::syscall::{syscall0, syscall1, syscall2, syscall4};
use peios_rt::time::sleep_ms;

peios_rt::main!(main);

fn setsid() -> Result<i32, Errno> {
    // SAFETY: setsid takes no arguments.
    Errno::result(unsafe { syscall0(112) }).map(|v| v as i32)
}
fn getsid(pid: i32) -> Result<i32, Errno> {
    // SAFETY: getsid only reads.
    Errno::result(unsafe { syscall1(124, pid as usize) }).map(|v| v as i32)
}
fn getpgid(pid: i32) -> Result<i32, Errno> {
    // SAFETY: getpgid only reads.
    Errno::result(unsafe { syscall1(121, pid as usize) }).map(|v| v as i32)
}
fn setpgid(pid: i32, pgid: i32) -> Result<(), Errno> {
    // SAFETY: setpgid only changes process-group membership.
    Errno::result(unsafe { syscall2(109, pid as usize, pgid as usize) }).map(|_| ())
}
fn wait_any(pid: i32) -> Result<(i32, i32), Errno> {
    let mut status = 0i32;
    // SAFETY: wait4 writes the status into our local and reads no other memory.
    let r = unsafe {
        syscall4(
            61,
            pid as isize as usize,
            &mut status as *mut i32 as usize,
            0,
            0,
        )
    };
    Errno::result(r).map(|p| (p as i32, status))
}

fn tests() -> i32 {
    let mut c = Checks::new("pgroups");
    let me = getpid();
    let sid = setsid();
    c.check("setsid", sid == Ok(me), format_args!("{:?}", sid));
    c.check(
        "session-and-group-led-by-caller",
        getsid(0) == Ok(me) && getpgid(0) == Ok(me),
        format_args!("sid {:?} pgid {:?}", getsid(0), getpgid(0)),
    );
    c.expect_errno("setsid-by-leader-eperm", setsid(), Errno::EPERM);

    let a = match fork() {
        Ok(Fork::Child) => loop {
            sleep_ms(20);
        },
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            c.check("fork", false, format_args!("{}", e));
            return c.finish();
        }
    };
    let b = match fork() {
        Ok(Fork::Child) => {
            sleep_ms(100);
            exit_group(5)
        }
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            c.check("fork", false, format_args!("{}", e));
            return c.finish();
        }
    };
    c.check(
        "children-inherit-group",
        getpgid(a) == Ok(me) && getpgid(b) == Ok(me),
        format_args!("{:?} {:?}", getpgid(a), getpgid(b)),
    );
    let moved = setpgid(a, 0);
    c.check(
        "setpgid-own-group",
        moved.is_ok() && getpgid(a) == Ok(a),
        format_args!("{:?}, pgid {:?}", moved, getpgid(a)),
    );
    c.expect_errno(
        "setpgid-missing-group-eperm",
        setpgid(b, 0x7fff_0000),
        Errno::EPERM,
    );
    c.expect_errno(
        "kill-missing-group-esrch",
        kill(-0x7fff_0000, 0),
        Errno::ESRCH,
    );
    let k = kill(-a, 9);
    c.check("kill-group", k.is_ok(), format_args!("{:?}", k));
    let ra = wait_any(-a);
    c.check(
        "wait-by-group",
        matches!(ra, Ok((p, st)) if p == a && st == 9),
        format_args!("{:?}", ra),
    );
    let rb = wait_any(0);
    c.check(
        "wait-own-group",
        matches!(rb, Ok((p, st)) if p == b && st == 5 << 8),
        format_args!("{:?} (b = {})", rb, b),
    );
    c.finish()
}

fn main(_args: &Args) -> i32 {
    // In a child: a group leader (as this program is when a shell starts it) may not setsid.
    match fork() {
        Ok(Fork::Child) => exit_group(tests()),
        Ok(Fork::Parent(pid)) => match wait_pid(pid) {
            Ok(WaitStatus::Exited(code)) => code,
            other => {
                println!("pgroups: test child {:?}", other);
                1
            }
        },
        Err(e) => {
            println!("pgroups: fork: {}", e);
            1
        }
    }
}
