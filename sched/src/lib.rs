//! The per-CPU async executor: every CPU runs one executor, kernel work is a future,
//! and CPUs talk to each other only through lock-free queues plus a wake-up kick.
//!
//! The machine is reached only through [`Platform`] (current CPU, kick, clock,
//! idle), so the same code runs in the kernel and in host tests where std
//! threads stand in for CPUs (see `host`, behind the `host` feature).
//!
//! Layout, one mechanism per file:
//! - `platform.rs`: what the executor needs from the machine;
//! - `state.rs`: the task state machine (idle / scheduled / running / notified / done);
//! - `task.rs`: a task's single allocation (future or output, join waker) and its waker;
//! - `join.rs`: [`JoinHandle`];
//! - `queue.rs`: the lock-free run queue (preallocated ring plus overflow);
//! - `idle.rs`: the idle-CPU mask and the kick protocol that loses no wake-up;
//! - `executor.rs`: [`Scheduler`], spawning, waking, the executor loop, work stealing;
//! - `timer.rs`: per-CPU timer queues and [`Sleep`];
//! - `yield_now.rs`: [`yield_now`];
//! - `stats.rs`: per-CPU counters and [`CpuStats`];
//! - `host.rs` (tests and feature `host`): the std-thread platform;
//! - `tests/`: multi-CPU host tests (spawn/join, all-pairs, ping-pong,
//!   fairness, stealing, timers, stress, a wake round-trip figure).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
// One `unsafe` block in the crate (pinning a future inside its task, `task.rs`);
// it carries its own `allow` and `SAFETY` comment.
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(test, feature = "host"))]
extern crate std;

mod executor;
mod idle;
mod ids;
mod join;
mod platform;
mod queue;
mod requeue;
mod sleep;
mod state;
mod stats;
mod task;
mod timer;
mod yield_now;

#[cfg(any(test, feature = "host"))]
pub mod host;

#[cfg(test)]
mod tests;

pub use executor::{Scheduler, DEFAULT_RING_CAPACITY};
pub use ids::{CpuId, MAX_CPUS};
pub use join::JoinHandle;
pub use platform::Platform;
pub use sleep::Sleep;
pub use stats::CpuStats;
pub use yield_now::{yield_now, YieldNow};
