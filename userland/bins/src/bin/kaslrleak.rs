//! `kaslrleak`: kernel addresses stay out of reach of user mode. /proc/kallsyms shows
//! real addresses to a privileged reader and zeros to a restricted one (so KASLR does not
//! leak), and a user-mode read of the kernel's text faults (the kernel's report of that
//! fault says whether the page was absent from the user tables, as under KPTI, or present
//! but supervisor-only). Peios-only for the restricted part.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::files::read_file;
use peios_bins::peios::restrict_self;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::sys::process::exit_group;

peios_rt::main!(main);

fn text_address(kallsyms: &str) -> Option<u64> {
    kallsyms
        .lines()
        .find(|l| l.ends_with(" _text"))
        .and_then(|l| u64::from_str_radix(l.split(' ').next()?, 16).ok())
}

fn main(_args: &Args) -> i32 {
    let mut checks = Checks::new("kaslrleak");
    let privileged = read_file("/proc/kallsyms")
        .ok()
        .and_then(|t| text_address(&t));
    checks.check(
        "privileged-sees-text",
        privileged.is_some_and(|a| a >> 47 == 0x1ffff),
        format_args!("_text at {:x?}", privileged),
    );
    let Some(text) = privileged else {
        return checks.finish();
    };

    let restricted = match fork() {
        Ok(Fork::Child) => {
            if restrict_self() == Err(Errno::ENOSYS) {
                exit_group(38);
            }
            let addr = read_file("/proc/kallsyms")
                .ok()
                .and_then(|t| text_address(&t));
            exit_group(if addr == Some(0) { 0 } else { 1 })
        }
        Ok(Fork::Parent(pid)) => wait_pid(pid),
        Err(e) => Err(e),
    };
    if restricted != Ok(WaitStatus::Exited(38)) {
        checks.check(
            "restricted-sees-zeros",
            restricted == Ok(WaitStatus::Exited(0)),
            format_args!("{:?}", restricted),
        );
    }

    let reader = match fork() {
        Ok(Fork::Child) => {
            println!("kaslrleak: child reading kernel text at {:#x}", text);
            // SAFETY: deliberately invalid: user mode must not be able to read kernel text.
            let byte = unsafe { core::ptr::read_volatile(text as *const u8) };
            println!("kaslrleak: read {:#x} from kernel text (wrong)", byte);
            exit_group(0)
        }
        Ok(Fork::Parent(pid)) => wait_pid(pid),
        Err(e) => Err(e),
    };
    checks.check(
        "user-read-of-kernel-faults",
        reader
            == Ok(WaitStatus::Signaled {
                signal: 11,
                core_dumped: false,
            }),
        format_args!("{:?}", reader),
    );
    checks.finish()
}
