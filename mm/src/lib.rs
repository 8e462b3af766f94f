//! Hardware-independent memory management for the Peios kernel, `no_std` + `alloc`,
//! unit-tested on the host.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

#[cfg(test)]
extern crate std;

pub mod frame;
