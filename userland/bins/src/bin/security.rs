//! `security`: the Peios security model seen from user mode. A restricted process
//! (its token restricted with the Peios syscall 1024: no privileges, Medium
//! integrity) is refused what a privileged one (init's SYSTEM token) may do.
//!
//! Checks, from a restricted child against a privileged sibling: kill → EPERM,
//! prlimit64 (set) → EPERM, sched_setaffinity → EPERM, MAP_FIXED below
//! mmap_min_addr → EPERM; the restricted child may still signal itself. From the
//! privileged parent: MAP_FIXED below mmap_min_addr succeeds (SeTcbPrivilege),
//! prlimit64 on the restricted child succeeds, kill of the sibling succeeds.
//! Linux has no syscall 1024, so on Linux the restriction step reports ENOSYS and
//! the program says so and exits 0 without checking (it is a Peios-only test).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::sys::mm::{mmap, MapFlags, Prot};
use peios_rt::sys::process::{exit_group, kill, prlimit64, Rlimit};
use peios_rt::sys::sched::{sched_setaffinity, CpuSet};
use peios_rt::syscall::syscall0;
use peios_rt::time::sleep_ms;

peios_rt::main!(main);

/// Peios: restrict the caller's token.
const SYS_PEIOS_RESTRICT_SELF: usize = 1024;
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;
const RLIMIT_NOFILE: u32 = 7;
/// An address below the default mmap_min_addr (65536).
const LOW_ADDRESS: usize = 0x1000;

fn restrict_self() -> Result<(), Errno> {
    // SAFETY: the Peios restrict syscall takes no arguments and only drops rights.
    let r = unsafe { syscall0(SYS_PEIOS_RESTRICT_SELF) };
    Errno::result(r).map(|_| ())
}

fn map_low() -> Result<*mut u8, Errno> {
    // SAFETY: the low range is unused by this program; MAP_FIXED_NOREPLACE never
    // replaces an existing mapping.
    unsafe {
        mmap(
            LOW_ADDRESS,
            4096,
            Prot::READ | Prot::WRITE,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::FIXED_NOREPLACE,
            -1,
            0,
        )
    }
}

/// The restricted child's checks; returns its exit status (0 = all refused as expected).
fn restricted_child(sibling: i32) -> i32 {
    let mut checks = Checks::new("security(restricted)");
    if let Err(e) = restrict_self() {
        checks.check(
            "restrict",
            false,
            format_args!("restrict syscall failed: {}", e),
        );
        return checks.finish();
    }
    checks.expect_errno(
        "kill-privileged-sibling-eperm",
        kill(sibling, SIGTERM),
        Errno::EPERM,
    );
    checks.expect_errno(
        "kill0-privileged-sibling-eperm",
        kill(sibling, 0),
        Errno::EPERM,
    );
    let limit = Rlimit { cur: 64, max: 64 };
    checks.expect_errno(
        "prlimit-privileged-sibling-eperm",
        prlimit64(sibling, RLIMIT_NOFILE, Some(&limit)),
        Errno::EPERM,
    );
    checks.expect_errno(
        "setaffinity-privileged-sibling-eperm",
        sched_setaffinity(sibling, &CpuSet::single(0)),
        Errno::EPERM,
    );
    checks.expect_errno("mmap-below-min-addr-eperm", map_low(), Errno::EPERM);
    checks.check(
        "signal-self-allowed",
        kill(peios_rt::sys::process::getpid(), 0).is_ok(),
        format_args!("kill(self, 0)"),
    );
    checks.finish()
}

fn main(_args: &Args) -> i32 {
    let mut checks = Checks::new("security");
    // SAFETY: probing the syscall in a child keeps the parent's token intact.
    let probe = match fork() {
        Ok(Fork::Child) => exit_group(match restrict_self() {
            Ok(()) => 0,
            Err(Errno::ENOSYS) => 38,
            Err(_) => 1,
        }),
        Ok(Fork::Parent(pid)) => wait_pid(pid),
        Err(e) => {
            checks.check("fork", false, format_args!("{}", e));
            return checks.finish();
        }
    };
    if probe == Ok(WaitStatus::Exited(38)) {
        println!("security: the Peios restrict syscall is absent (not Peios): nothing to check");
        return 0;
    }

    // A privileged sibling that just waits to be killed.
    let sibling = match fork() {
        Ok(Fork::Child) => loop {
            sleep_ms(50);
        },
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            checks.check("fork-sibling", false, format_args!("{}", e));
            return checks.finish();
        }
    };
    let restricted = match fork() {
        Ok(Fork::Child) => exit_group(restricted_child(sibling)),
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            checks.check("fork-restricted", false, format_args!("{}", e));
            return checks.finish();
        }
    };
    let st = wait_pid(restricted);
    checks.check(
        "restricted-child-refused",
        st == Ok(WaitStatus::Exited(0)),
        format_args!("restricted child {:?}", st),
    );
    checks.check(
        "privileged-mmap-below-min-addr",
        map_low().is_ok(),
        format_args!(
            "MAP_FIXED at {:#x} with SeTcbPrivilege: {:?}",
            LOW_ADDRESS,
            map_low().err()
        ),
    );
    checks.check(
        "privileged-kill-sibling",
        kill(sibling, SIGKILL).is_ok(),
        format_args!("kill(sibling, SIGKILL)"),
    );
    let st = wait_pid(sibling);
    checks.check(
        "sibling-killed",
        st == Ok(WaitStatus::Signaled {
            signal: SIGKILL,
            core_dumped: false,
        }),
        format_args!("sibling {:?}", st),
    );
    checks.finish()
}
