//! `timerfd`: a timer read as a file. Each expiry adds one to a counter; a read takes
//! the count (8 bytes) and zeroes it, or is EAGAIN while it is 0 (a blocking descriptor
//! then waits in the syscall layer through `poll`). Readable while the count is not 0.
//! Expiries are counted from the clock when the file is looked at, so a periodic timer
//! nobody reads costs nothing; one task per arming sleeps to each deadline only to wake
//! pollers, and ends when the timer is re-armed, disarmed or the file is gone.

use super::{
    anon_inode_number,
    events::{POLLIN, POLLRDNORM},
    waiters::Waiters,
    File, Stat,
};
use crate::{arch::uaccess::write_user, executor::scheduler};
use alloc::sync::{Arc, Weak};
use core::{
    future::{poll_fn, Future},
    pin::Pin,
    task::{Poll, Waker},
};
use errno::{Errno, SysResult};
use futures_util::task::AtomicWaker;
use spin::Mutex;

/// A timerfd's setting as `timerfd_gettime` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerSetting {
    /// Nanoseconds to the next expiry (0: disarmed).
    pub value_ns: u64,
    /// Nanoseconds between expiries (0: one-shot).
    pub interval_ns: u64,
}

#[derive(Default)]
struct State {
    /// Bumped at every arm or disarm; a wake task serves only its own generation.
    generation: u64,
    /// Next expiry on the monotonic clock (0: disarmed).
    deadline_ns: u64,
    interval_ns: u64,
    /// Expiries not yet read.
    expirations: u64,
}

impl State {
    /// Counts the expiries up to `now`.
    fn catch_up(&mut self, now: u64) {
        if self.deadline_ns == 0 || now < self.deadline_ns {
            return;
        }
        if self.interval_ns == 0 {
            self.expirations = self.expirations.saturating_add(1);
            self.deadline_ns = 0;
        } else {
            let periods = (now - self.deadline_ns) / self.interval_ns + 1;
            self.expirations = self.expirations.saturating_add(periods);
            self.deadline_ns = self
                .deadline_ns
                .saturating_add(periods.saturating_mul(self.interval_ns));
        }
    }
}

/// A timerfd.
pub struct TimerFd {
    /// The clock it was created on is realtime (absolute times are converted).
    realtime: bool,
    /// What the wake task sees (through a weak reference: it ends with the file).
    shared: Arc<Shared>,
    ino: u64,
}

struct Shared {
    state: Mutex<State>,
    waiters: Waiters,
    /// Woken when the timer is re-armed or disarmed (the old wake task ends).
    changed: AtomicWaker,
}

impl TimerFd {
    /// A disarmed timer on the realtime clock (`realtime`) or the monotonic one.
    pub fn new(realtime: bool) -> TimerFd {
        TimerFd {
            realtime,
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                waiters: Waiters::default(),
                changed: AtomicWaker::new(),
            }),
            ino: anon_inode_number(),
        }
    }

    /// Whether absolute times are on the realtime clock.
    pub fn is_realtime(&self) -> bool {
        self.realtime
    }

    /// The current setting.
    pub fn get(&self) -> TimerSetting {
        let now = crate::time::now_ns();
        let mut state = self.shared.state.lock();
        state.catch_up(now);
        setting_of(&state, now)
    }

    /// Arms the timer to expire at `deadline_ns` (monotonic; 0 disarms) and then every
    /// `interval_ns`; pending expiries are dropped. Returns the replaced setting.
    pub fn set(&self, deadline_ns: u64, interval_ns: u64) -> TimerSetting {
        let now = crate::time::now_ns();
        let (old, generation) = {
            let mut state = self.shared.state.lock();
            state.catch_up(now);
            let old = setting_of(&state, now);
            state.generation = state.generation.wrapping_add(1);
            state.expirations = 0;
            state.deadline_ns = deadline_ns;
            state.interval_ns = if deadline_ns == 0 { 0 } else { interval_ns };
            (old, state.generation)
        };
        self.shared.changed.wake();
        // A disarm or a new setting changes what pollers see (no expiry pending now).
        self.shared.waiters.wake_all();
        if deadline_ns != 0 {
            drop(scheduler().spawn(wake_pollers(Arc::downgrade(&self.shared), generation)));
        }
        old
    }
}

fn setting_of(state: &State, now: u64) -> TimerSetting {
    TimerSetting {
        value_ns: if state.deadline_ns == 0 {
            0
        } else {
            state.deadline_ns.saturating_sub(now).max(1)
        },
        interval_ns: state.interval_ns,
    }
}

/// Sleeps to each deadline of one generation and wakes the file's pollers.
async fn wake_pollers(timer: Weak<Shared>, generation: u64) {
    loop {
        let deadline = {
            let Some(t) = timer.upgrade() else { return };
            let state = t.state.lock();
            if state.generation != generation || state.deadline_ns == 0 {
                return;
            }
            state.deadline_ns
        };
        let mut sleep = scheduler().sleep_until(deadline);
        let expired = poll_fn(|cx| {
            let Some(t) = timer.upgrade() else {
                return Poll::Ready(false);
            };
            t.changed.register(cx.waker());
            if t.state.lock().generation != generation {
                return Poll::Ready(false);
            }
            if Pin::new(&mut sleep).poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            Poll::Pending
        })
        .await;
        let Some(t) = timer.upgrade() else { return };
        if !expired {
            return;
        }
        t.state.lock().catch_up(crate::time::now_ns());
        t.waiters.wake_all();
    }
}

impl File for TimerFd {
    fn proc_name(&self) -> alloc::string::String {
        alloc::string::String::from("anon_inode:[timerfd]")
    }

    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        if count < 8 {
            return Err(Errno::EINVAL);
        }
        let mut state = self.shared.state.lock();
        state.catch_up(crate::time::now_ns());
        if state.expirations == 0 {
            return Err(Errno::EAGAIN);
        }
        write_user(buf, &state.expirations)?;
        state.expirations = 0;
        Ok(8)
    }

    fn poll(&self, waker: Option<&Waker>) -> u16 {
        if let Some(w) = waker {
            self.shared.waiters.register(w);
        }
        let mut state = self.shared.state.lock();
        state.catch_up(crate::time::now_ns());
        if state.expirations > 0 {
            POLLIN | POLLRDNORM
        } else {
            0
        }
    }

    fn pollable(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }

    fn stat(&self) -> Stat {
        Stat {
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        }
        .at(super::stat::encode_dev(0, 7), self.ino)
    }
}
