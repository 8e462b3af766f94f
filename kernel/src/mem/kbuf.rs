//! Kernel buffers a system call allocates on behalf of its caller (a read's bounce
//! buffer, a rendered file, a copied argument): allocated fallibly, so that a heap
//! that cannot supply one fails the call with `ENOMEM` instead of panicking the
//! kernel ("memory allocation of N bytes failed").

use alloc::vec::Vec;
use errno::{Errno, SysResult};

/// A zeroed buffer of `len` bytes; `ENOMEM` when the heap cannot supply it.
pub fn zeroed(len: usize) -> SysResult<Vec<u8>> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    buf.resize(len, 0);
    Ok(buf)
}

/// An empty vector with room for `items` items; `ENOMEM` when the heap cannot supply
/// it.
pub fn with_capacity<T>(items: usize) -> SysResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(items).map_err(|_| Errno::ENOMEM)?;
    Ok(v)
}
