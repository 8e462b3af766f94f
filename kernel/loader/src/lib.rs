//! What the kernel needs to start a program, as pure functions tested on the host: the
//! ELF parser (static and dynamically linked programs), the initramfs (cpio newc) reader, and the initial user stack layout
//! (argc, argv, envp, auxv, strings) Linux programs expect. Every input is untrusted:
//! malformed data is an error, never a panic or an overflow.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod cpio;
pub mod elf;
pub mod stack;
