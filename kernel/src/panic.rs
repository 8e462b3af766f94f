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
    // Link-time return addresses: `addr2line -e <kernel ELF> ADDR...` names the callers.
    print_emergency(format_args!("backtrace:"));
    cpu::backtrace(|ret| print_emergency(format_args!(" {ret:#x}")));
    print_emergency(format_args!("\n"));
    stop_machine()
}
