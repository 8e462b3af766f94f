//! Pipes: a 64 KiB byte queue between a read end and a write end. A read takes what is
//! there (end of file once every writer is gone); a write of at most [`PIPE_BUF`] bytes
//! goes in whole or not at all, a longer one as space allows; with no reader left a
//! write is EPIPE (the syscall layer adds SIGPIPE). Reads and writes that cannot
//! proceed answer EAGAIN and the waiting is done by the caller through `poll`'s waker
//! registration: every change of the pipe (data in, data out, an end closed) wakes
//! every registered waiter.

use super::{
    anon_inode_number,
    events::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM},
    stat::{encode_dev, mode::S_IFIFO},
    File, Stat,
};
use crate::arch::uaccess::{copy_from_user, copy_to_user, write_user};
use alloc::{collections::VecDeque, sync::Arc, vec::Vec};
use core::task::Waker;
use errno::{Errno, SysResult};
use spin::Mutex;

/// Writes up to this many bytes are atomic (Linux's `PIPE_BUF`).
pub const PIPE_BUF: usize = 4096;
/// Bytes a pipe holds (Linux's default: 16 pages).
pub const PIPE_CAPACITY: usize = 65536;
/// `FIONREAD`: bytes waiting to be read.
const FIONREAD: u32 = 0x541B;

struct State {
    data: VecDeque<u8>,
    readers: usize,
    writers: usize,
    waiters: Vec<Waker>,
}

/// The shared pipe.
struct Pipe {
    state: Mutex<State>,
    ino: u64,
}

impl Pipe {
    /// Wakes every registered waiter (the state changed); called with the lock held,
    /// the wakers are taken out and woken after it is released.
    fn wake_all(state: &mut State) -> Vec<Waker> {
        core::mem::take(&mut state.waiters)
    }

    fn register(state: &mut State, waker: Option<&Waker>) {
        if let Some(w) = waker {
            if !state.waiters.iter().any(|x| x.will_wake(w)) {
                state.waiters.push(w.clone());
            }
        }
    }

    fn stat(&self) -> Stat {
        Stat {
            mode: S_IFIFO | 0o600,
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        }
        .at(encode_dev(0, 3), self.ino)
    }
}

/// The read end.
pub struct PipeReader(Arc<Pipe>);
/// The write end.
pub struct PipeWriter(Arc<Pipe>);

/// A new pipe's two ends.
pub fn new_pipe() -> (PipeReader, PipeWriter) {
    let pipe = Arc::new(Pipe {
        state: Mutex::new(State {
            data: VecDeque::new(),
            readers: 1,
            writers: 1,
            waiters: Vec::new(),
        }),
        ino: anon_inode_number(),
    });
    (PipeReader(pipe.clone()), PipeWriter(pipe))
}

fn wake(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

impl File for PipeReader {
    fn proc_name(&self) -> alloc::string::String {
        alloc::format!("pipe:[{}]", self.0.ino)
    }

    fn pollable(&self) -> bool {
        true
    }

    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        if count == 0 {
            return Ok(0);
        }
        let mut s = self.0.state.lock();
        if s.data.is_empty() {
            return if s.writers == 0 {
                Ok(0)
            } else {
                Err(Errno::EAGAIN)
            };
        }
        let n = s
            .data
            .len()
            .min(usize::try_from(count).unwrap_or(usize::MAX));
        let (a, b) = s.data.as_slices();
        let first = a.len().min(n);
        copy_to_user(buf, &a[..first])?;
        if first < n {
            copy_to_user(buf + first as u64, &b[..n - first])?;
        }
        s.data.drain(..n);
        let wakers = Pipe::wake_all(&mut s);
        drop(s);
        wake(wakers);
        Ok(n as u64)
    }

    fn poll(&self, waker: Option<&Waker>) -> u16 {
        let mut s = self.0.state.lock();
        Pipe::register(&mut s, waker);
        let mut events = 0;
        if !s.data.is_empty() {
            events |= POLLIN | POLLRDNORM;
        }
        if s.writers == 0 {
            events |= POLLHUP;
        }
        events
    }

    fn ioctl(&self, request: u32, arg: u64) -> SysResult<u64> {
        ioctl(&self.0, request, arg)
    }

    fn stat(&self) -> Stat {
        self.0.stat()
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let mut s = self.0.state.lock();
        s.readers -= 1;
        let wakers = Pipe::wake_all(&mut s);
        drop(s);
        wake(wakers);
    }
}

impl File for PipeWriter {
    fn proc_name(&self) -> alloc::string::String {
        alloc::format!("pipe:[{}]", self.0.ino)
    }

    fn pollable(&self) -> bool {
        true
    }

    fn write(&self, buf: u64, count: u64) -> SysResult<u64> {
        if count == 0 {
            return Ok(0);
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        // Copied before the lock is taken: the most this write could put in.
        let mut kbuf = crate::mem::kbuf::zeroed(count.min(PIPE_CAPACITY))?;
        copy_from_user(&mut kbuf, buf)?;
        let mut s = self.0.state.lock();
        if s.readers == 0 {
            return Err(Errno::EPIPE);
        }
        let free = PIPE_CAPACITY - s.data.len();
        let n = if count <= PIPE_BUF {
            if free < count {
                return Err(Errno::EAGAIN);
            }
            count
        } else {
            if free == 0 {
                return Err(Errno::EAGAIN);
            }
            free.min(kbuf.len())
        };
        // The queue grows to its 64 KiB as it fills (Linux allocates a pipe's pages as
        // they are written, and fails the write with ENOMEM when it cannot).
        crate::mem::kbuf::reserve_queue(&mut s.data, n)?;
        s.data.extend(&kbuf[..n]);
        let wakers = Pipe::wake_all(&mut s);
        drop(s);
        wake(wakers);
        Ok(n as u64)
    }

    fn poll(&self, waker: Option<&Waker>) -> u16 {
        let mut s = self.0.state.lock();
        Pipe::register(&mut s, waker);
        let mut events = 0;
        if PIPE_CAPACITY - s.data.len() >= PIPE_BUF {
            events |= POLLOUT | POLLWRNORM;
        }
        if s.readers == 0 {
            events |= POLLERR;
        }
        events
    }

    fn ioctl(&self, request: u32, arg: u64) -> SysResult<u64> {
        ioctl(&self.0, request, arg)
    }

    fn stat(&self) -> Stat {
        self.0.stat()
    }

    fn is_stream(&self) -> bool {
        true
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        let mut s = self.0.state.lock();
        s.writers -= 1;
        let wakers = Pipe::wake_all(&mut s);
        drop(s);
        wake(wakers);
    }
}

fn ioctl(pipe: &Pipe, request: u32, arg: u64) -> SysResult<u64> {
    match request {
        FIONREAD => {
            let n = pipe.state.lock().data.len() as i32;
            write_user(arg, &n)?;
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
}
