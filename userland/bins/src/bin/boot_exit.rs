//! `boot_exit`: exits 0 at once, for timing boot-to-exit of the guest. Beyond the
//! runtime's start-up (set_tid_address, arch_prctl) it makes one syscall,
//! exit_group.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

peios_rt::main!(main);

fn main(_args: &peios_rt::Args) -> i32 {
    0
}
