//! Process memory control: the mlock family (mlock, mlock2, munlock, mlockall,
//! munlockall), mseal and the protection-key calls (pkey_alloc, pkey_free,
//! pkey_mprotect), over `mm`'s address space.
//!
//! Locking is held to `RLIMIT_MEMLOCK` unless the caller's token holds
//! SeLockMemoryPrivilege (Linux's `CAP_IPC_LOCK`), which lifts the limit: the
//! [`LockLimit`] every call and every mmap is checked against.

use super::{wait, Outcome};
use crate::{arch::usermode::UserContext, proc::thread::Thread};
use alloc::sync::Arc;
use errno::{Errno, SysResult};
use mm::aspace::{LockLimit, PopulateStep};
use security::Privilege;

/// `RLIMIT_MEMLOCK`'s index.
pub const RLIMIT_MEMLOCK: usize = 8;

/// What the calling thread may lock: unlimited with SeLockMemoryPrivilege, else its
/// process's `RLIMIT_MEMLOCK` soft limit.
pub fn lock_limit(thread: &Thread) -> LockLimit {
    if thread
        .process
        .token
        .read()
        .has_privilege(Privilege::SeLockMemoryPrivilege)
    {
        LockLimit::Unlimited
    } else {
        LockLimit::Bytes(thread.process.rlimits.lock()[RLIMIT_MEMLOCK].cur)
    }
}

/// Finishes a locking call whose populate may have to wait: awaits each wait and
/// resumes `populate_locked` until `[.., end)` is done.
fn populate_then_done(
    thread: &Arc<Thread>,
    step: Result<PopulateStep, mm::errno::MmError>,
    end: u64,
    best_effort: bool,
) -> Outcome {
    let space = thread.process.address_space();
    populate_outcome(step, move |from| {
        space.mm().populate_locked(from, end, best_effort)
    })
}

/// The end of the page-aligned range mlock acts on (for resuming its populate; the
/// mm call has validated the range before it could ask to wait).
fn lock_end(addr: u64, len: u64) -> u64 {
    let start = addr & !4095;
    start.saturating_add(len.saturating_add(addr - start).saturating_add(4095) & !4095)
}

/// `mlock(addr, len)`.
pub fn mlock(thread: &Arc<Thread>, addr: u64, len: u64) -> Outcome {
    mlock2(thread, addr, len, 0)
}

/// `mlock2(addr, len, flags)`: `MLOCK_ONFAULT` locks pages as they fault in.
pub fn mlock2(thread: &Arc<Thread>, addr: u64, len: u64, flags: u64) -> Outcome {
    let limit = lock_limit(thread);
    let step = thread
        .process
        .address_space()
        .mm()
        .mlock2(addr, len, flags, limit);
    populate_then_done(thread, step, lock_end(addr, len), false)
}

/// `munlock(addr, len)`.
pub fn munlock(thread: &Thread, addr: u64, len: u64) -> SysResult {
    thread.process.address_space().mm().munlock(addr, len)?;
    Ok(0)
}

/// `mlockall(flags)`.
pub fn mlockall(thread: &Arc<Thread>, flags: u64) -> Outcome {
    let limit = lock_limit(thread);
    let space = thread.process.address_space();
    let step = space.mm().mlockall(flags, limit);
    let end = space.mm().layout().task_size;
    populate_then_done(thread, step, end, true)
}

/// `munlockall()`.
pub fn munlockall(thread: &Thread) -> SysResult {
    thread.process.address_space().mm().munlockall();
    Ok(0)
}

/// `mseal(addr, len, flags)`.
pub fn mseal(thread: &Thread, addr: u64, len: u64, flags: u64) -> SysResult {
    thread
        .process
        .address_space()
        .mm()
        .mseal(addr, len, flags)?;
    Ok(0)
}

/// `pkey_mprotect(addr, len, prot, pkey)`: `pkey` is an `int` (-1: keep the keys).
pub fn pkey_mprotect(thread: &Thread, addr: u64, len: u64, prot: u64, pkey: u64) -> SysResult {
    let prot = mm::vma::Prot::from_mmap_bits(prot)?;
    thread
        .process
        .address_space()
        .mm()
        .pkey_mprotect(addr, len, prot, i64::from(pkey as i32))?;
    Ok(0)
}

/// `pkey_alloc(flags, access_rights)`: a free key of the address space, whose rights
/// in the calling thread's PKRU become `access_rights` (two bits per key).
pub fn pkey_alloc(thread: &Thread, ctx: &mut UserContext, flags: u64, rights: u64) -> SysResult {
    let key = thread
        .process
        .address_space()
        .mm()
        .pkey_alloc(flags, rights)?;
    let shift = 2 * u32::from(key);
    ctx.pkru = (ctx.pkru & !(3 << shift)) | ((rights as u32) << shift);
    Ok(u64::from(key))
}

/// `pkey_free(pkey)`.
pub fn pkey_free(thread: &Thread, pkey: u64) -> SysResult {
    thread
        .process
        .address_space()
        .mm()
        .pkey_free(i64::from(pkey as i32))?;
    Ok(0)
}

/// A populate that may have to wait (a page under I/O, reclaim): done, failed, or a
/// future that awaits the first wait, then resumes with `resume(from)` until done.
pub(super) fn populate_outcome(
    step: Result<PopulateStep, mm::errno::MmError>,
    resume: impl Fn(u64) -> Result<PopulateStep, mm::errno::MmError> + Send + 'static,
) -> Outcome {
    match step {
        Ok(PopulateStep::Done) => Ok(0).into(),
        Err(e) => Err::<u64, _>(Errno::from(e)).into(),
        Ok(PopulateStep::Wait {
            wait: first,
            resume_at,
        }) => wait(async move {
            first.await;
            let mut from = resume_at;
            loop {
                match resume(from)? {
                    PopulateStep::Done => return Ok(0),
                    PopulateStep::Wait { wait, resume_at } => {
                        wait.await;
                        from = resume_at;
                    }
                }
            }
        }),
    }
}
