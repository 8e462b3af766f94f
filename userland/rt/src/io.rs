//! Console output: `print!`-family macros writing to fds 1 and 2 through a small
//! per-call buffer, so one call is (usually) one `write` and lines from different
//! threads do not interleave mid-line.

use crate::sys::fs::write_all;
use core::fmt;

/// Buffer size of one print call; longer output is written in pieces.
pub const PRINT_BUFFER: usize = 512;

/// A `fmt::Write` sink that buffers and writes to a file descriptor.
pub struct FdWriter {
    fd: i32,
    len: usize,
    buf: [u8; PRINT_BUFFER],
}

impl FdWriter {
    /// A writer for `fd`.
    pub const fn new(fd: i32) -> FdWriter {
        FdWriter {
            fd,
            len: 0,
            buf: [0; PRINT_BUFFER],
        }
    }

    /// Writes out what is buffered (errors are dropped: there is nowhere to report them).
    pub fn flush(&mut self) {
        if self.len > 0 {
            let _ = write_all(self.fd, &self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl fmt::Write for FdWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = bytes.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

impl Drop for FdWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Formats `args` to `fd` (used by the macros).
pub fn print_to(fd: i32, args: fmt::Arguments<'_>) {
    let mut w = FdWriter::new(fd);
    let _ = fmt::Write::write_fmt(&mut w, args);
    w.flush();
}

/// Prints to standard output.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::io::print_to(1, format_args!($($arg)*)) };
}

/// Prints a line to standard output.
#[macro_export]
macro_rules! println {
    () => { $crate::io::print_to(1, format_args!("\n")) };
    ($($arg:tt)*) => { $crate::io::print_to(1, format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to standard error.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::io::print_to(2, format_args!($($arg)*)) };
}

/// Prints a line to standard error.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::io::print_to(2, format_args!("\n")) };
    ($($arg:tt)*) => { $crate::io::print_to(2, format_args!("{}\n", format_args!($($arg)*))) };
}
