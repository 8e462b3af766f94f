//! Device drivers for the Peios kernel.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
