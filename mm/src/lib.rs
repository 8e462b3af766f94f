//! Hardware-independent memory management for the Peios kernel, `no_std` + `alloc`,
//! unit-tested on the host.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(test)]
extern crate std;

/// Physical frame allocation (see the module documentation).
pub mod frame;
