//! Typed wrappers for the Linux syscalls the programs use, one family per file.
//!
//! Wrappers that cannot break memory safety are safe functions taking slices and
//! references; the ones that take raw addresses or change the address space are
//! `unsafe fn`s with the contract spelled out.

pub mod fs;
pub mod futex;
pub mod misc;
pub mod mm;
pub mod nr;
pub mod process;
pub mod sched;
pub mod signal;
pub mod swap;
pub mod time;
pub mod uffd;
