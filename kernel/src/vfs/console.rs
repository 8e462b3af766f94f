//! The serial console as a file: reads end at once (no input device), writes go to the
//! log, and it answers the terminal ioctls stdio asks (so stdio line-buffers it).

use super::{File, Stat};
use crate::arch::uaccess::{check_user_range, copy_from_user, copy_to_user, write_user};
use alloc::string::String;
use errno::{Errno, SysResult};

/// Bytes moved per chunk between user memory and the console.
const CHUNK: usize = 512;
const TCGETS: u32 = 0x5401;
const TIOCGWINSZ: u32 = 0x5413;

/// The kernel's `struct termios` for TCGETS, 36 bytes (c_iflag, c_oflag, c_cflag,
/// c_lflag, c_line, c_cc[19]): a cooked terminal at 38400 baud as Linux's defaults
/// (ICRNL|IXON; OPOST|ONLCR; B38400|CS8|CREAD|HUPCL; ISIG|ICANON|ECHO|ECHOE|ECHOK|
/// ECHOCTL|ECHOKE|IEXTEN), with the usual control characters. Exactly this size: libc
/// reads it into a stack buffer of 36 bytes, and more would overwrite its neighbours.
fn default_termios() -> [u8; 36] {
    let mut t = [0u8; 36];
    let words: [u32; 4] = [0o2400, 0o5, 0o2277, 0o105073];
    for (slot, w) in t.chunks_exact_mut(4).zip(words) {
        slot.copy_from_slice(&w.to_le_bytes());
    }
    // c_line 0; c_cc: INTR ^C, QUIT ^\, ERASE DEL, KILL ^U, EOF ^D, TIME 0, MIN 1,
    // SWTC 0, START ^Q, STOP ^S, SUSP ^Z, EOL 0, REPRINT ^R, DISCARD ^O, WERASE ^W,
    // LNEXT ^V, EOL2 0.
    let cc = [
        3u8, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0,
    ];
    t[17..17 + cc.len()].copy_from_slice(&cc);
    t
}

/// The console (`/dev/console`, `/dev/tty`, and fds 0-2 of the first process).
pub struct Console;

impl File for Console {
    fn proc_name(&self) -> String {
        String::from("/dev/console")
    }

    fn pollable(&self) -> bool {
        true
    }

    fn read(&self, _buf: u64, _count: u64) -> SysResult<u64> {
        Ok(0) // no input device: end of file
    }

    fn write(&self, buf: u64, count: u64) -> SysResult<u64> {
        check_user_range(buf, count as usize)?;
        let mut chunk = [0u8; CHUNK];
        let mut done = 0u64;
        while done < count {
            let n = ((count - done) as usize).min(CHUNK);
            if let Err(e) = copy_from_user(&mut chunk[..n], buf + done) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
            crate::logger::print(format_args!("{}", String::from_utf8_lossy(&chunk[..n])));
            done += n as u64;
        }
        Ok(done)
    }

    fn ioctl(&self, request: u32, arg: u64) -> SysResult<u64> {
        match request {
            TIOCGWINSZ => {
                // rows 24, cols 80.
                write_user(arg, &(24u64 | (80 << 16)))?;
                Ok(0)
            }
            TCGETS => {
                copy_to_user(arg, &default_termios())?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn stat(&self) -> Stat {
        Stat {
            size: 0,
            ..Stat::char_device(0o620, 5, 1)
        }
    }
}
