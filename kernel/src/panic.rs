//! Fatal errors: the panic handler and kernel-mode exceptions. Both print a report, stop
//! the other CPUs and end the VM with a failing exit code.

use crate::{
    arch::{apic, cpu, percpu, trap::ExceptionReport},
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

/// Reports a fatal exception and stops the machine.
pub fn fatal_exception(report: &ExceptionReport) -> ! {
    print_emergency(format_args!("{report}\n"));
    panic!(
        "fatal {} in kernel mode",
        crate::arch::trap::exception_name(report.frame.vector)
    );
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    if PANICKING.swap(true, Ordering::SeqCst) {
        cpu::halt_forever();
    }
    let cpu = percpu::current_cpu();
    print_emergency(format_args!("KERNEL PANIC on cpu {}: {}\n", cpu.0, info));
    stop_machine()
}
