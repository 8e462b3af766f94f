//! QEMU's `isa-debug-exit` device: writing `v` to its port ends QEMU with status `(v << 1) | 1`.

use x86_64::instructions::port::Port;

/// The I/O port the harness configures (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// How the guest ends; QEMU exits with `(code << 1) | 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// The guest finished normally (QEMU status 33).
    Success = 0x10,
    /// A test failed or the kernel panicked (QEMU status 35).
    Failure = 0x11,
}

/// Ends the VM. Returns only if the device is absent (then the caller halts).
pub fn exit_qemu(code: ExitCode) {
    let mut port = Port::<u32>::new(DEBUG_EXIT_PORT);
    // SAFETY: writing this port has no effect on hardware other than the debug-exit device.
    unsafe { port.write(code as u32) };
}
