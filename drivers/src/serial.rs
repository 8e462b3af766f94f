//! The 16550 UART on COM1, polled: the kernel console.

use x86_64::instructions::port::Port;

/// I/O base of COM1.
pub const COM1: u16 = 0x3f8;

/// Line status register bit: the transmit holding register is empty.
const LSR_THR_EMPTY: u8 = 1 << 5;

/// A polled 16550 UART.
pub struct SerialPort {
    base: u16,
}

impl SerialPort {
    /// A port at I/O base `base`; call [`SerialPort::init`] before writing.
    pub const fn new(base: u16) -> Self {
        Self { base }
    }

    fn port(&self, offset: u16) -> Port<u8> {
        Port::new(self.base + offset)
    }

    /// Programs 115200 baud, 8N1, FIFOs on, interrupts off.
    pub fn init(&mut self) {
        // SAFETY: these are the documented 16550 registers of a port we own; writing them
        // only reconfigures the UART.
        unsafe {
            self.port(1).write(0x00); // no interrupts
            self.port(3).write(0x80); // DLAB on
            self.port(0).write(0x01); // divisor 1: 115200 baud
            self.port(1).write(0x00);
            self.port(3).write(0x03); // 8N1, DLAB off
            self.port(2).write(0xc7); // FIFO on, cleared, 14-byte threshold
            self.port(4).write(0x03); // DTR | RTS
        }
    }

    /// Writes one byte, waiting for room in the transmitter.
    pub fn write_byte(&mut self, byte: u8) {
        // SAFETY: reading LSR and writing THR of our UART has no side effect beyond sending.
        unsafe {
            while self.port(5).read() & LSR_THR_EMPTY == 0 {
                core::hint::spin_loop();
            }
            self.port(0).write(byte);
        }
    }
}

impl core::fmt::Write for SerialPort {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
        Ok(())
    }
}
