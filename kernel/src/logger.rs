//! The console: a 16550 serial port behind a lock, and the `log` facade on top of it.
//! Every line carries the CPU that printed it.

use crate::arch::percpu;
use core::fmt::Write;
use drivers::serial::{SerialPort, COM1};
use log::{Level, LevelFilter, Metadata, Record};
use spin::Mutex;

static CONSOLE: Mutex<SerialPort> = Mutex::new(SerialPort::new(COM1));

struct KernelLogger;

static LOGGER: KernelLogger = KernelLogger;

impl log::Log for KernelLogger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let cpu = percpu::current_cpu();
        with_console(|c| {
            let _ = writeln!(c, "[cpu{} {}] {}", cpu.0, level, record.args());
        });
    }

    fn flush(&self) {}
}

/// Runs `f` with the console locked and interrupts off.
pub fn with_console(f: impl FnOnce(&mut SerialPort)) {
    x86_64::instructions::interrupts::without_interrupts(|| f(&mut CONSOLE.lock()));
}

/// Writes text to the console without the log prefix (for reports and test output).
pub fn print(args: core::fmt::Arguments) {
    with_console(|c| {
        let _ = c.write_fmt(args);
    });
}

/// Console output for the panic path: takes the lock by force so a CPU that died while
/// holding it cannot silence the report.
pub fn print_emergency(args: core::fmt::Arguments) {
    if CONSOLE.is_locked() {
        // SAFETY: we are on the way to halting the machine; a torn line is better than
        // losing the report.
        unsafe { CONSOLE.force_unlock() };
    }
    print(args);
}

/// Initialises the UART and installs the logger at `level`.
pub fn init(level: LevelFilter) {
    CONSOLE.lock().init();
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// `print!` to the console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::logger::print(format_args!($($arg)*)) };
}

/// `println!` to the console.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => { $crate::logger::print(format_args!("{}\n", format_args!($($arg)*))) };
}
