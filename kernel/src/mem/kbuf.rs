//! Kernel memory a system call allocates on behalf of its caller (a read's bounce
//! buffer, a pipe's queue, a rendered file, a copied argument): allocated fallibly,
//! so that the call fails with `ENOMEM` instead of panicking the kernel ("memory
//! allocation of N bytes failed"), and refused as soon as the heap is near its cap
//! ([`heap::near_cap`]), so that what a process makes the kernel hold cannot use up
//! the room kept for the allocations the kernel cannot refuse.
//!
//! [`heap::near_cap`]: super::heap::near_cap

use alloc::{collections::VecDeque, vec::Vec};
use errno::{Errno, SysResult};

/// `ENOMEM` when the heap should take no more process-driven allocations.
fn admit() -> SysResult<()> {
    if super::heap::near_cap() {
        return Err(Errno::ENOMEM);
    }
    Ok(())
}

/// A zeroed buffer of `len` bytes; `ENOMEM` when the heap cannot or should not supply
/// it.
pub fn zeroed(len: usize) -> SysResult<Vec<u8>> {
    let mut buf = Vec::new();
    reserve(&mut buf, len)?;
    buf.resize(len, 0);
    Ok(buf)
}

/// An empty vector with room for `items` items; `ENOMEM` when the heap cannot or
/// should not supply it.
pub fn with_capacity<T>(items: usize) -> SysResult<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, items)?;
    Ok(v)
}

/// Room in `v` for `more` items past its length (amortised, as `push` grows);
/// `ENOMEM` when the heap cannot or should not supply it.
pub fn reserve<T>(v: &mut Vec<T>, more: usize) -> SysResult<()> {
    if v.capacity() - v.len() >= more {
        return Ok(());
    }
    admit()?;
    v.try_reserve(more).map_err(|_| Errno::ENOMEM)
}

/// [`reserve`] for a queue.
pub fn reserve_queue<T>(q: &mut VecDeque<T>, more: usize) -> SysResult<()> {
    if q.capacity() - q.len() >= more {
        return Ok(());
    }
    admit()?;
    q.try_reserve(more).map_err(|_| Errno::ENOMEM)
}
