//! The Peios security model: tokens, security descriptors, PIP levels and the access check.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;
