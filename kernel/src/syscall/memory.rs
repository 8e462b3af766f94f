//! Memory syscalls: the mmap family over `mm`'s address space (mmap, munmap, mprotect,
//! mremap, brk, madvise, msync, mincore, remap_file_pages), and process_vm_readv/writev.

use super::{wait, Outcome};
use crate::{arch::uaccess::copy_to_user, memd::userfaultfd, proc::thread::Thread};
use alloc::sync::Arc;
use core::future::Future;
use errno::{Errno, SysResult};
use mm::{
    aspace::{Advice, FileMapping, MmapRequest, PopulateStep, MINCORE_BATCH_PAGES},
    fault::{Access, FaultInterceptor, InterceptEvent},
    pagecache::WritableMapPin,
    vma::{MapFlags, Prot},
};
use security::Privilege;

/// The file behind `fd` for a file mapping, with how it was opened (ENODEV for a
/// file that cannot be mapped, EBADF for an `O_PATH` descriptor).
fn mapping_of(thread: &Thread, fd: u64) -> SysResult<FileMapping> {
    let file = thread.process.files.lock().get(fd)?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    Ok(FileMapping {
        file: file.file().mmap_object()?,
        readable: file.readable(),
        writable: file.writable(),
    })
}

/// [`mapping_of`] for `mmap`, with a memfd's write seals applied: a writable shared
/// mapping of a write-sealed file is EPERM, and a read-only shared one may never
/// become writable (`mprotect` is EACCES), as on Linux. A shared mapping that may
/// write is counted on the file ([`WritableMapPin`]) before the seals are read, and
/// the pin is held until the mapping is in place (its VMA then counts itself), so a
/// racing `F_SEAL_WRITE` sees one or the other.
fn sealed_mapping_of(
    thread: &Thread,
    fd: u64,
    prot: u64,
    flags: u64,
) -> SysResult<(FileMapping, Option<WritableMapPin>)> {
    const PROT_WRITE: u64 = 2;
    let mut mapping = mapping_of(thread, fd)?;
    let shared = flags & MapFlags::SHARED.bits() != 0;
    let pin = (shared && mapping.writable).then(|| mapping.file.pin_writable_mapping());
    let file = thread.process.files.lock().get(fd)?;
    let sealed = file
        .file()
        .as_any()
        .downcast_ref::<crate::vfs::memfd::Memfd>()
        .is_some_and(|m| m.write_sealed());
    if sealed && shared {
        if prot & PROT_WRITE != 0 {
            return Err(Errno::EPERM);
        }
        mapping.writable = false;
        return Ok((mapping, None));
    }
    Ok((mapping, pin))
}

/// Pages an `mmap` pre-faults (`MAP_POPULATE`, `MAP_LOCKED`) before it gives the CPU
/// to the other tasks and goes on: 2 MiB, a few ms under TCG (Linux's populate loop
/// calls `cond_resched` the same way). A smaller pre-fault is done in the call.
const PREFAULT_PIECE_BYTES: u64 = 2 << 20;

/// Whether `thread` may map below `vm.mmap_min_addr` (SeTcbPrivilege), for mmap and
/// mremap.
fn may_map_low(thread: &Thread) -> bool {
    thread
        .process
        .token
        .read()
        .has_privilege(Privilege::SeTcbPrivilege)
}

/// `mmap`. A pre-fault larger than [`PREFAULT_PIECE_BYTES`] runs as a future in pieces,
/// yielding between them and stopping early when the thread is being killed; the
/// address is returned once it is done (best effort, as on Linux).
pub fn mmap(
    thread: &Arc<Thread>,
    addr: u64,
    len: u64,
    prot: u64,
    flags: u64,
    fd: u64,
    offset: u64,
) -> Outcome {
    let mapped = (|| {
        let (file, _writable_pin) = if flags & MapFlags::ANONYMOUS.bits() == 0 {
            let (mapping, pin) = sealed_mapping_of(thread, fd, prot, flags)?;
            (Some(mapping), pin)
        } else {
            (None, None)
        };
        let req = MmapRequest::from_raw(addr, len, prot, flags, file, offset)?;
        let may_map_low = may_map_low(thread);
        let limit = super::memctl::lock_limit(thread);
        let space = thread.process.address_space();
        let mapped = space
            .mm()
            .mmap_deferring_prefault(&req, may_map_low, limit)?;
        Ok::<_, Errno>((space, mapped))
    })();
    let (space, (start, prefault)) = match mapped {
        Ok(mapped) => mapped,
        Err(e) => return Err::<u64, _>(e).into(),
    };
    match prefault {
        None => Ok(start).into(),
        Some(p) if p.end - p.start <= PREFAULT_PIECE_BYTES => {
            let _ = space.mm().prefault_best_effort(p.start, p.end, p.write);
            Ok(start).into()
        }
        Some(p) => {
            let thread = thread.clone();
            wait(async move {
                let mut at = p.start;
                while at < p.end && !thread.must_exit() {
                    let end = p.end.min(at + PREFAULT_PIECE_BYTES);
                    if !space.mm().prefault_best_effort(at, end, p.write) {
                        break;
                    }
                    at = end;
                    sched::yield_now().await;
                }
                Ok(start)
            })
        }
    }
}

/// `munmap`; a userfaultfd that asked for `UFFD_EVENT_UNMAP` on the range hears of it,
/// and the call returns once its handler has read the event.
pub fn munmap(thread: &Arc<Thread>, addr: u64, len: u64) -> Outcome {
    let space = thread.process.address_space();
    let listeners = userfaultfd::listeners(&space, addr, len);
    if let Err(e) = space.mm().munmap(addr, len) {
        return Err::<u64, _>(Errno::from(e)).into();
    }
    let end = addr.saturating_add(len.saturating_add(4095) & !4095);
    let event = InterceptEvent::Unmap { start: addr, end };
    after_events(thread, &listeners, &[Some(event)], 0)
}

/// The outcome of an operation that reported `events` (in order) to `listeners`:
/// `value` once every handler has read them (or at once when none listens). A signal
/// ends the wait early.
fn after_events(
    thread: &Arc<Thread>,
    listeners: &[Arc<dyn FaultInterceptor>],
    events: &[Option<InterceptEvent>],
    value: u64,
) -> Outcome {
    if listeners.is_empty() {
        return Outcome::Done(value);
    }
    let mut waits: alloc::vec::Vec<_> = events
        .iter()
        .flatten()
        .flat_map(|&e| userfaultfd::report(listeners, e))
        .collect();
    if waits.is_empty() {
        return Outcome::Done(value);
    }
    let thread = thread.clone();
    wait(async move {
        thread.clear_interrupt();
        core::future::poll_fn(|cx| {
            thread.interrupt_waker.register(cx.waker());
            waits.retain_mut(|w| core::pin::Pin::new(w).poll(cx).is_pending());
            if waits.is_empty() || thread.is_interrupted() {
                core::task::Poll::Ready(Ok(value))
            } else {
                core::task::Poll::Pending
            }
        })
        .await
    })
}

pub fn mprotect(thread: &Thread, addr: u64, len: u64, prot: u64) -> SysResult {
    let prot = Prot::from_mmap_bits(prot)?;
    thread
        .process
        .address_space()
        .mm()
        .mprotect(addr, len, prot)?;
    Ok(0)
}

/// Reclaim rounds an `mremap` short of memory waits for before it answers ENOMEM.
const MREMAP_RECLAIM_ROUNDS: usize = 4;

/// `mremap`; a move of memory a userfaultfd asked `UFFD_EVENT_REMAP` for is reported.
/// A move short of memory waits for reclaim (see [`MREMAP_RECLAIM_ROUNDS`]).
pub fn mremap(
    thread: &Arc<Thread>,
    old_addr: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
) -> Outcome {
    let may_map_low = may_map_low(thread);
    let limit = super::memctl::lock_limit(thread);
    let space = thread.process.address_space();
    let listeners = userfaultfd::listeners(&space, old_addr, old_len);
    let attempt = {
        let space = space.clone();
        move || {
            space.mm().mremap_limited(
                old_addr,
                old_len,
                new_len,
                flags,
                new_addr,
                may_map_low,
                limit,
            )
        }
    };
    let moved_to = match attempt() {
        Ok(to) => to,
        Err(mm::errno::MmError::NoMemory) if listeners.is_empty() => {
            // Perhaps short of frames (a page table for the destination): like a
            // fault, the call waits for a reclaim round while reclaim can make
            // progress and tries again, a few rounds at most (the ENOMEM may have
            // another cause: the VMA limit, no room); then ENOMEM, nothing changed.
            return wait(async move {
                crate::mem::frames::retry_after_reclaim(MREMAP_RECLAIM_ROUNDS, || match attempt() {
                    Err(mm::errno::MmError::NoMemory) => None,
                    r => Some(r.map_err(Errno::from)),
                })
                .await
                .unwrap_or(Err(Errno::ENOMEM))
            });
        }
        Err(e) => return Err::<u64, _>(Errno::from(e)).into(),
    };
    if moved_to == old_addr {
        return Outcome::Done(moved_to);
    }
    let remap = InterceptEvent::Remap {
        from: old_addr,
        to: moved_to,
        len: old_len,
    };
    // The move unmaps the old range too (not with MREMAP_DONTUNMAP), which Linux
    // reports after the remap.
    const MREMAP_DONTUNMAP: u64 = 4;
    let unmap = (flags & MREMAP_DONTUNMAP == 0).then(|| InterceptEvent::Unmap {
        start: old_addr,
        end: old_addr.saturating_add(old_len.saturating_add(4095) & !4095),
    });
    after_events(thread, &listeners, &[Some(remap), unmap], moved_to)
}

pub fn brk(thread: &Thread, addr: u64) -> SysResult {
    let limit = super::memctl::lock_limit(thread);
    Ok(thread.process.address_space().mm().brk_limited(addr, limit))
}

pub fn msync(thread: &Thread, addr: u64, len: u64, flags: u64) -> SysResult {
    thread
        .process
        .address_space()
        .mm()
        .msync(addr, len, flags)?;
    Ok(0)
}

/// `mincore`: answered round by round through a buffer of one page of result bytes
/// (Linux's shape), so no length makes the kernel allocate more; the tree lock is not
/// held while a round is copied out (the copy may fault in the caller's vector).
pub fn mincore(thread: &Thread, addr: u64, len: u64, vec_addr: u64) -> SysResult {
    let space = thread.process.address_space();
    let mm = space.mm();
    let pages = mm.mincore_pages(addr, len)?;
    if pages == 0 {
        return Ok(0);
    }
    crate::arch::uaccess::check_user_range(vec_addr, pages as usize)?;
    let batch = (pages as usize).min(MINCORE_BATCH_PAGES);
    let mut buf = alloc::vec::Vec::new();
    buf.try_reserve_exact(batch).map_err(|_| Errno::ENOMEM)?;
    buf.resize(batch, 0u8);
    let mut done = 0u64;
    while done < pages {
        let n = ((pages - done) as usize).min(batch);
        let got = mm.mincore_step(addr + done * 4096, &mut buf[..n])?;
        copy_to_user(vec_addr + done, &buf[..got])?;
        done += got as u64;
    }
    Ok(0)
}

/// Bytes of a range `MADV_COLD` handles at a time (1,024 pages).
const COLD_PIECE_BYTES: u64 = 4 << 20;

/// `madvise`; `MADV_POPULATE_*` may wait on a page and resume where it stopped.
pub fn madvise(thread: &Arc<Thread>, addr: u64, len: u64, advice: u64) -> Outcome {
    let advice = match Advice::from_linux(advice) {
        Ok(a) => a,
        Err(e) => return Err::<u64, _>(Errno::from(e)).into(),
    };
    let space = thread.process.address_space();
    let drops = matches!(advice, Advice::DontNeed | Advice::Free | Advice::Remove);
    let listeners = if drops {
        userfaultfd::listeners(&space, addr, len)
    } else {
        alloc::vec::Vec::new()
    };
    if advice == Advice::Remove && !listeners.is_empty() {
        return remove_reported_first(thread, space, addr, len);
    }
    if !listeners.is_empty() {
        return drop_reported_first(thread, space, &listeners, addr, len, advice);
    }
    if matches!(advice, Advice::PopulateRead | Advice::PopulateWrite) && len > PREFAULT_PIECE_BYTES
    {
        return populate_in_pieces(thread, space, addr, len, advice);
    }
    let step = space.mm().madvise(addr, len, advice);
    // madvise validated the range before it could ask to wait.
    let end = addr.saturating_add(len.saturating_add(4095) & !4095);
    if matches!(step, Ok(PopulateStep::Done)) {
        match advice {
            Advice::Cold => {
                // A piece at a time: the list of pages each pass gathers stays
                // bounded however large the range (`page_out` steps by itself).
                let mut at = addr & !4095;
                while at < end {
                    let piece_end = end.min(at.saturating_add(COLD_PIECE_BYTES));
                    space.mm().make_cold(at, piece_end);
                    at = piece_end;
                }
            }
            Advice::PageOut => {
                crate::memd::swap::page_out(&space, addr & !4095, end);
            }
            _ => {}
        }
    }
    if matches!(step, Ok(PopulateStep::Done)) && !listeners.is_empty() {
        let remove = InterceptEvent::Remove { start: addr, end };
        return after_events(thread, &listeners, &[Some(remove)], 0);
    }
    let access = if advice == Advice::PopulateWrite {
        Access::Write
    } else {
        Access::Read
    };
    super::memctl::populate_outcome(step, move |from| {
        space.mm().populate_range(from, end, access)
    })
}

/// `MADV_POPULATE_READ`/`WRITE` over more than [`PREFAULT_PIECE_BYTES`]: a future
/// that populates a piece at a time and gives the CPU to the other tasks between them,
/// as Linux's `madvise_populate` calls `cond_resched`; `EINTR` when the thread is being
/// killed, as there. Each piece is `madvise` of its part, so errors come as they would
/// in one call (the parts before a hole populated, then `ENOMEM`).
fn populate_in_pieces(
    thread: &Arc<Thread>,
    space: Arc<crate::mem::aspace::AddressSpace>,
    addr: u64,
    len: u64,
    advice: Advice,
) -> Outcome {
    let Some(end) = len
        .checked_next_multiple_of(4096)
        .and_then(|len| addr.checked_add(len))
    else {
        return Err::<u64, _>(Errno::EINVAL).into();
    };
    let access = if advice == Advice::PopulateWrite {
        Access::Write
    } else {
        Access::Read
    };
    let thread = thread.clone();
    wait(async move {
        let mut at = addr;
        while at < end {
            let piece_end = end.min(at.saturating_add(PREFAULT_PIECE_BYTES));
            // The piece's first step checks its range as one call would; a wait
            // resumes through mm's own awaiting populate.
            if let PopulateStep::Wait { wait, resume_at } =
                space.mm().madvise(at, piece_end - at, advice)?
            {
                wait.await;
                space.mm().populate(resume_at, piece_end, access).await?;
            }
            at = piece_end;
            if crate::proc::signal::fatal_signal_pending(&thread) {
                return Err(Errno::EINTR);
            }
            sched::yield_now().await;
        }
        Ok(0)
    })
}

/// `madvise(MADV_REMOVE)` over a range a userfaultfd listens on: the range is checked,
/// `UFFD_EVENT_REMOVE` reported for each part that will be punched, and the punch made
/// only once every handler has read its event (or the thread is being killed), as Linux
/// 6.12's `madvise_remove` calls `userfaultfd_remove` before `vfs_fallocate`: a
/// handler that sees the event can still read the old contents through another
/// mapping of the file.
fn remove_reported_first(
    thread: &Arc<Thread>,
    space: Arc<crate::mem::aspace::AddressSpace>,
    addr: u64,
    len: u64,
) -> Outcome {
    let planned = match space.mm().plan_remove(addr, len) {
        Ok(Some(planned)) => planned,
        Ok(None) => return Outcome::Done(0),
        Err(e) => return Err::<u64, _>(Errno::from(e)).into(),
    };
    let waits: alloc::vec::Vec<_> = planned
        .address_ranges()
        .flat_map(|(start, end)| {
            let listeners = userfaultfd::listeners(&space, start, end - start);
            userfaultfd::report(&listeners, InterceptEvent::Remove { start, end })
        })
        .collect();
    let thread = thread.clone();
    wait(async move {
        until_events_read(&thread, waits).await;
        space.mm().punch_remove(planned)?;
        Ok(0)
    })
}

/// Waits until every handler has read its event (each of `waits` is done) or `thread`
/// is being killed: killable, not interruptible, as Linux 6.12's
/// `userfaultfd_event_wait_completion` (a signal with a handler waits for the end of
/// the call; the work goes ahead only once the handlers know of it).
async fn until_events_read<W: Future + Unpin>(thread: &Thread, mut waits: alloc::vec::Vec<W>) {
    thread.clear_interrupt();
    core::future::poll_fn(|cx| {
        thread.interrupt_waker.register(cx.waker());
        waits.retain_mut(|w| core::pin::Pin::new(w).poll(cx).is_pending());
        if waits.is_empty() || crate::proc::signal::fatal_signal_pending(thread) {
            core::task::Poll::Ready(())
        } else {
            core::task::Poll::Pending
        }
    })
    .await
}

/// `madvise(MADV_DONTNEED or MADV_FREE)` over a range a userfaultfd listens on: the
/// range is checked (`AddressSpace::check_drop`), `UFFD_EVENT_REMOVE` reported, and the
/// pages dropped only once every handler has read it (or the thread is being killed), as
/// Linux 6.12's `madvise_dontneed_free` calls `userfaultfd_remove` before the zap.
fn drop_reported_first(
    thread: &Arc<Thread>,
    space: Arc<crate::mem::aspace::AddressSpace>,
    listeners: &[Arc<dyn FaultInterceptor>],
    addr: u64,
    len: u64,
    advice: Advice,
) -> Outcome {
    match space.mm().check_drop(addr, len, advice) {
        Ok(true) => {}
        Ok(false) => return Outcome::Done(0),
        Err(e) => return Err::<u64, _>(Errno::from(e)).into(),
    }
    let end = addr.saturating_add(len.saturating_add(4095) & !4095);
    let waits = userfaultfd::report(listeners, InterceptEvent::Remove { start: addr, end });
    let thread = thread.clone();
    wait(async move {
        until_events_read(&thread, waits).await;
        space.mm().madvise(addr, len, advice)?;
        Ok(0)
    })
}

/// `remap_file_pages` (deprecated): emulated, as Linux does, by an mmap of the same file
/// over the range at the new offset.
pub fn remap_file_pages(
    thread: &Thread,
    start: u64,
    size: u64,
    prot: u64,
    pgoff: u64,
    flags: u64,
) -> SysResult {
    if prot != 0 || flags & !0x1_0000 != 0 {
        return Err(Errno::EINVAL);
    }
    let space = thread.process.address_space();
    let vma = space.mm().vma_at(start).ok_or(Errno::EINVAL)?;
    let file = vma.file().cloned().ok_or(Errno::EINVAL)?;
    if !vma.is_shared() || start.checked_add(size).is_none_or(|end| end > vma.end()) {
        return Err(Errno::EINVAL);
    }
    let mapping = FileMapping {
        file,
        readable: true,
        writable: vma.prot().contains(Prot::WRITE),
    };
    let flags = MapFlags::SHARED | MapFlags::FIXED;
    let req = MmapRequest {
        addr: start,
        len: size,
        prot: vma.prot(),
        flags,
        file: Some(mapping),
        offset: pgoff.checked_mul(4096).ok_or(Errno::EINVAL)?,
    };
    space.mm().mmap(&req, true)?;
    Ok(0)
}

fn read_iovecs(addr: u64, count: u64) -> SysResult<alloc::vec::Vec<(u64, u64)>> {
    if count > 1024 {
        return Err(Errno::EINVAL);
    }
    let mut out = alloc::vec::Vec::with_capacity(count as usize);
    for i in 0..count {
        let at = addr.checked_add(i * 16).ok_or(Errno::EFAULT)?;
        let [base, len]: [u64; 2] = crate::arch::uaccess::read_user(at)?;
        if len > isize::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        out.push((base, len));
    }
    Ok(out)
}

/// `process_vm_readv` / `process_vm_writev`: gated by PROCESS_VM_READ / PROCESS_VM_WRITE on
/// the target (EPERM); copies through a kernel buffer, stopping at the first fault.
#[allow(clippy::too_many_arguments)]
pub fn process_vm_rw(
    thread: &Thread,
    pid: u64,
    local: u64,
    local_count: u64,
    remote: u64,
    remote_count: u64,
    flags: u64,
    write: bool,
) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let local = read_iovecs(local, local_count)?;
    let remote = read_iovecs(remote, remote_count)?;
    let target = crate::proc::process_by_id(pid)?;
    let want = if write {
        security::AccessMask::PROCESS_VM_WRITE
    } else {
        security::AccessMask::PROCESS_VM_READ
    };
    crate::proc::check_access(&thread.process, &target, want)?;
    let space = target.address_space();
    let mut total = 0u64;
    let (mut li, mut loff, mut ri, mut roff) = (0usize, 0u64, 0usize, 0u64);
    let mut buf = [0u8; 4096];
    while li < local.len() && ri < remote.len() {
        let (lbase, llen) = local[li];
        let (rbase, rlen) = remote[ri];
        if loff == llen {
            li += 1;
            loff = 0;
            continue;
        }
        if roff == rlen {
            ri += 1;
            roff = 0;
            continue;
        }
        let n = ((llen - loff).min(rlen - roff) as usize).min(buf.len());
        // User-chosen bases and lengths: an address that wraps is not user memory.
        let (Some(local_at), Some(remote_at)) = (lbase.checked_add(loff), rbase.checked_add(roff))
        else {
            break;
        };
        let moved = if write {
            crate::arch::uaccess::copy_from_user(&mut buf[..n], local_at)?;
            space.access(remote_at, &mut buf[..n], true)
        } else {
            let got = space.access(remote_at, &mut buf[..n], false);
            crate::arch::uaccess::copy_to_user(local_at, &buf[..got])?;
            got
        };
        total += moved as u64;
        if moved < n {
            break;
        }
        loff += n as u64;
        roff += n as u64;
    }
    if total == 0 && local.iter().any(|l| l.1 > 0) && remote.iter().any(|r| r.1 > 0) {
        return Err(Errno::EFAULT);
    }
    Ok(total)
}
