//! Fatal errors: the panic handler (kernel-mode exceptions end here too, with their
//! report in the message). It prints the report, stops the other CPUs and ends the VM
//! with a failing exit code.

#![deny(unsafe_code)]

use crate::{
    arch::{apic, cpu, percpu},
    logger::print_emergency,
};
use core::sync::atomic::{AtomicBool, Ordering};
use drivers::{apic::vectors, debug_exit};

static PANICKING: AtomicBool = AtomicBool::new(false);

fn stop_machine() -> ! {
    apic::send_ipi_all_others(vectors::HALT);
    debug_exit::exit_qemu(debug_exit::ExitCode::Failure);
    cpu::halt_forever()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    if PANICKING.swap(true, Ordering::SeqCst) {
        cpu::halt_forever();
    }
    let cpu = percpu::current_cpu();
    print_emergency(format_args!("KERNEL PANIC on cpu {}: {}\n", cpu.0, info));
    if let Some((bytes, callers)) = crate::mem::heap::last_refused() {
        // An infallible allocation that failed panics with its size alone: name the
        // call chain of the last one the heap refused (link addresses, for addr2line).
        print_emergency(format_args!(
            "last refused heap allocation: {bytes} bytes, from"
        ));
        for addr in callers.iter().take_while(|&&a| a != 0) {
            print_emergency(format_args!(" {addr:#x}"));
        }
        print_emergency(format_args!("\n"));
    }
    stop_machine()
}
