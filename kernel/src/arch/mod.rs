//! Architecture support; only x86_64 exists.

mod x86_64;

pub use self::x86_64::*;
