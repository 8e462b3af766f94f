//! The per-CPU async executor: every CPU runs one executor, kernel work is a future,
//! and CPUs talk to each other only through lock-free queues plus a wake-up kick.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod ids;

pub use ids::{CpuId, MAX_CPUS};
