//! peios-rt: a tiny `no_std` runtime for static Linux-ABI programs.
//!
//! It provides the process entry point (`_start`, argv/envp/auxv parsing), raw
//! `syscall` wrappers with a typed [`Errno`], `print!`-style output, a global
//! allocator over `mmap`, threads over raw `clone`, `fork`/`execve`/`wait4` helpers,
//! and signal handling with an `sa_restorer` trampoline. Programs built on it run
//! unchanged on Linux and on the Peios kernel.
//!
//! A program is a `#![no_std] #![no_main]` binary that names its entry function
//! with [`main!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use peios_rt::prelude::*;
//! peios_rt::main!(main);
//! fn main(args: &Args) -> i32 { println!("{} args", args.len()); 0 }
//! ```
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;

pub mod errno;
pub mod fault;
pub mod heap;
pub mod io;
pub mod process;
pub mod signal;
pub mod start;
pub mod sync;
pub mod sys;
pub mod syscall;
pub mod thread;
pub mod time;

pub use errno::Errno;
pub use start::{args, Args};

/// The names most programs want in scope.
pub mod prelude {
    pub use crate::errno::Errno;
    pub use crate::start::Args;
    pub use crate::{eprint, eprintln, print, println};
    pub use alloc::boxed::Box;
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

/// Declares the program's entry function: `fn(&Args) -> i32`, whose result is the
/// exit status passed to `exit_group`.
#[macro_export]
macro_rules! main {
    ($f:path) => {
        /// Entry point called by peios-rt's `_start` after the runtime is set up.
        #[unsafe(no_mangle)]
        pub fn __peios_rt_main(args: &$crate::Args) -> i32 {
            $f(args)
        }
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    eprintln!("panic: {}", info);
    sys::process::exit_group(101)
}
