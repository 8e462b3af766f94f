//! The real-time interval timer of a process (`ITIMER_REAL`: `setitimer`, `getitimer`,
//! `alarm`): at each expiry the process gets SIGALRM, and a periodic timer is re-armed
//! one interval after the expiry it was due at. While armed, one task on the executor
//! sleeps until the deadline; re-arming or disarming starts a new generation, and the
//! task of an older generation ends at its next poll (it is woken for that at once).
//! Not inherited by fork, kept across execve, disarmed when the process exits (as on
//! Linux).

use super::{signal, Process};
use crate::executor::scheduler;
use alloc::sync::{Arc, Weak};
use core::{
    future::{poll_fn, Future},
    pin::Pin,
    task::Poll,
};
use futures_util::task::AtomicWaker;

/// `SIGALRM`.
pub const SIGALRM: u8 = 14;

/// One process's `ITIMER_REAL`.
pub struct RealTimer {
    state: spin::Mutex<TimerState>,
    /// Woken when the timer is re-armed or disarmed, so a sleeping task of an older
    /// generation ends now rather than at its deadline.
    changed: AtomicWaker,
}

#[derive(Clone, Copy, Default)]
struct TimerState {
    /// Bumped at every arm or disarm; a task serves only its own generation.
    generation: u64,
    /// The next expiry (monotonic ns); 0 when disarmed.
    deadline_ns: u64,
    /// The period after each expiry; 0 for a one-shot timer.
    interval_ns: u64,
}

/// A timer setting as `getitimer` reports it: time to the next expiry and the period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerValue {
    /// Nanoseconds until the next expiry (0: disarmed).
    pub value_ns: u64,
    /// Nanoseconds between expiries (0: one-shot).
    pub interval_ns: u64,
}

impl Default for RealTimer {
    fn default() -> Self {
        RealTimer::new()
    }
}

impl RealTimer {
    /// A disarmed timer.
    pub const fn new() -> RealTimer {
        RealTimer {
            state: spin::Mutex::new(TimerState {
                generation: 0,
                deadline_ns: 0,
                interval_ns: 0,
            }),
            changed: AtomicWaker::new(),
        }
    }

    /// The current setting.
    pub fn get(&self) -> TimerValue {
        let state = *self.state.lock();
        remaining(&state, crate::time::now_ns())
    }

    /// Disarms the timer (process exit).
    pub fn disarm(&self) {
        {
            let mut state = self.state.lock();
            state.generation = state.generation.wrapping_add(1);
            state.deadline_ns = 0;
            state.interval_ns = 0;
        }
        self.changed.wake();
    }
}

/// What `state` has left at `now`. An armed timer whose expiry is being delivered
/// reports at least 1 ns, so it never reads as disarmed.
fn remaining(state: &TimerState, now: u64) -> TimerValue {
    if state.deadline_ns == 0 {
        return TimerValue {
            value_ns: 0,
            interval_ns: state.interval_ns,
        };
    }
    TimerValue {
        value_ns: state.deadline_ns.saturating_sub(now).max(1),
        interval_ns: state.interval_ns,
    }
}

/// Arms (`new.value_ns` > 0) or disarms (`value_ns` 0) `process`'s real timer and
/// returns the setting it replaces.
pub fn set(process: &Arc<Process>, new: TimerValue) -> TimerValue {
    let now = crate::time::now_ns();
    let timer = &process.real_timer;
    let (old, generation, deadline) = {
        let mut state = timer.state.lock();
        let old = remaining(&state, now);
        state.generation = state.generation.wrapping_add(1);
        state.deadline_ns = if new.value_ns == 0 {
            0
        } else {
            now.saturating_add(new.value_ns)
        };
        state.interval_ns = if new.value_ns == 0 {
            0
        } else {
            new.interval_ns
        };
        (old, state.generation, state.deadline_ns)
    };
    timer.changed.wake();
    if deadline != 0 {
        drop(scheduler().spawn(expiries(Arc::downgrade(process), generation, deadline)));
    }
    old
}

/// The task of one generation: sleeps to each deadline and sends SIGALRM, until the
/// timer is re-armed, disarmed, runs out (one-shot) or its process is gone.
async fn expiries(process: Weak<Process>, generation: u64, mut deadline: u64) {
    loop {
        let mut sleep = scheduler().sleep_until(deadline);
        let expired = poll_fn(|cx| {
            let Some(process) = process.upgrade() else {
                return Poll::Ready(false);
            };
            let timer = &process.real_timer;
            timer.changed.register(cx.waker());
            if timer.state.lock().generation != generation {
                return Poll::Ready(false);
            }
            if Pin::new(&mut sleep).poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            Poll::Pending
        })
        .await;
        if !expired {
            return;
        }
        let Some(process) = process.upgrade() else {
            return;
        };
        let next = {
            let mut state = process.real_timer.state.lock();
            if state.generation != generation {
                return;
            }
            if state.interval_ns == 0 {
                state.deadline_ns = 0;
            } else {
                // The next period after the one due; a late task does not send a burst
                // of signals for the periods it missed (one pending SIGALRM is all a
                // process can see anyway).
                let now = crate::time::now_ns();
                let mut next = deadline.saturating_add(state.interval_ns);
                if next <= now {
                    let missed = (now - next) / state.interval_ns + 1;
                    next = next.saturating_add(missed.saturating_mul(state.interval_ns));
                }
                state.deadline_ns = next;
            }
            state.deadline_ns
        };
        if !process.exiting.load(core::sync::atomic::Ordering::SeqCst) {
            signal::send_to_process(&process, SIGALRM);
        }
        if next == 0 {
            return;
        }
        deadline = next;
    }
}

/// `SIGVTALRM`: the virtual timer's signal.
pub const SIGVTALRM: u8 = 26;
/// `SIGPROF`: the profiling timer's signal.
pub const SIGPROF: u8 = 27;

/// Which CPU-time timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuClock {
    /// `ITIMER_VIRTUAL`: user-mode time of the process's threads.
    Virtual,
    /// `ITIMER_PROF`: user and kernel time.
    Prof,
}

/// The process's `ITIMER_VIRTUAL` and `ITIMER_PROF`: they run down as its threads are
/// charged CPU time (`proc::rusage`, at each entry to and return from user mode; a
/// thread that never enters the kernel is still charged every time slice, at the
/// preemption timer's trap), and at zero send their signal and reload from the
/// interval.
pub struct CpuTimers {
    /// Any of the two is armed (the charging fast path reads only this).
    armed: core::sync::atomic::AtomicBool,
    /// `[virtual, prof]`: (remaining ns, 0 = disarmed; interval ns).
    timers: spin::Mutex<[(u64, u64); 2]>,
}

impl Default for CpuTimers {
    fn default() -> Self {
        CpuTimers::new()
    }
}

impl CpuTimers {
    /// Both disarmed.
    pub const fn new() -> CpuTimers {
        CpuTimers {
            armed: core::sync::atomic::AtomicBool::new(false),
            timers: spin::Mutex::new([(0, 0); 2]),
        }
    }

    fn index(clock: CpuClock) -> usize {
        match clock {
            CpuClock::Virtual => 0,
            CpuClock::Prof => 1,
        }
    }

    /// The current setting of `clock`.
    pub fn get(&self, clock: CpuClock) -> TimerValue {
        let (value_ns, interval_ns) = self.timers.lock()[Self::index(clock)];
        TimerValue {
            value_ns,
            interval_ns: if value_ns == 0 { 0 } else { interval_ns },
        }
    }

    /// Arms (`value_ns` > 0) or disarms `clock`; returns the replaced setting.
    pub fn set(&self, clock: CpuClock, new: TimerValue) -> TimerValue {
        let mut timers = self.timers.lock();
        let slot = &mut timers[Self::index(clock)];
        let old = TimerValue {
            value_ns: slot.0,
            interval_ns: if slot.0 == 0 { 0 } else { slot.1 },
        };
        *slot = (new.value_ns, new.interval_ns);
        let armed = timers.iter().any(|t| t.0 != 0);
        self.armed
            .store(armed, core::sync::atomic::Ordering::Relaxed);
        old
    }

    /// Runs the timers down by `user_ns` of user time and `system_ns` of kernel time
    /// and sends the signals of those that ran out.
    ///
    /// Inlined: the thread loop charges twice per trap, and almost always nothing
    /// is armed (one load).
    #[inline]
    pub fn charge(&self, process: &Arc<Process>, user_ns: u64, system_ns: u64) {
        if self.armed.load(core::sync::atomic::Ordering::Relaxed) {
            self.charge_armed(process, user_ns, system_ns);
        }
    }

    /// [`charge`](Self::charge) with a timer armed.
    #[inline(never)]
    fn charge_armed(&self, process: &Arc<Process>, user_ns: u64, system_ns: u64) {
        let mut fired = [false; 2];
        {
            let mut timers = self.timers.lock();
            let spent = [user_ns, user_ns.saturating_add(system_ns)];
            for (i, (remaining, interval)) in timers.iter_mut().enumerate() {
                if *remaining == 0 || spent[i] == 0 {
                    continue;
                }
                if spent[i] < *remaining {
                    *remaining -= spent[i];
                    continue;
                }
                fired[i] = true;
                // The overrun carries into the next period (one signal per charge).
                let over = spent[i] - *remaining;
                *remaining = if *interval == 0 {
                    0
                } else {
                    interval.saturating_sub(over % *interval).max(1)
                };
            }
            let armed = timers.iter().any(|t| t.0 != 0);
            self.armed
                .store(armed, core::sync::atomic::Ordering::Relaxed);
        }
        if fired[0] {
            signal::send_to_process(process, SIGVTALRM);
        }
        if fired[1] {
            signal::send_to_process(process, SIGPROF);
        }
    }
}
