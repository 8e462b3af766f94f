//! The serial console as a file: reads end at once (no input device), writes go to the
//! log, and it answers the terminal ioctls stdio asks (so stdio line-buffers it).

use super::{File, Stat};
use crate::arch::uaccess::{check_user_range, copy_from_user, write_user};
use alloc::string::String;
use errno::{Errno, SysResult};

/// Bytes moved per chunk between user memory and the console.
const CHUNK: usize = 512;
const TCGETS: u32 = 0x5401;
const TIOCGWINSZ: u32 = 0x5413;

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
                write_user(arg, &[0u64; 8])?;
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
