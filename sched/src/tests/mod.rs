//! Host tests of the whole executor: std threads stand in for CPUs
//! (`crate::host`), the test thread waits with a timeout so a lost wake-up
//! fails instead of hanging.

mod basic;
mod bench;
mod fairness;
mod smp;
mod stealing;
mod stress;
mod timers;
mod util;
