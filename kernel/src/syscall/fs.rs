//! File-descriptor syscalls over the file layer (`crate::vfs`): each decodes its
//! arguments, finds the open file description and calls the file's operation. A read
//! or write the file answers with EAGAIN waits (unless `O_NONBLOCK`) as a future woken
//! through the file's poll registration, so only a call that must wait allocates.

use super::Outcome;
use crate::{
    arch::uaccess::{read_user, read_user_cstr},
    fs::userfaultfd::UserfaultFd,
    memd::userfaultfd,
    proc::{signal, thread::Thread},
    vfs::{
        self,
        flags::{O_CLOEXEC, O_LARGEFILE, O_NONBLOCK, O_RDWR},
        memfd::Memfd,
        stat::mode::{S_IFDIR, S_IFMT},
        Caller, OpenFile, Whence,
    },
};
use alloc::{string::String, sync::Arc};
use core::{future::poll_fn, task::Poll};
use errno::{Errno, SysResult};

/// `AT_FDCWD`.
pub const AT_FDCWD: i64 = -100;
/// Longest path accepted (the walk refuses one of `PATH_MAX` bytes or more).
const PATH_MAX: usize = pathwalk::PATH_MAX;

/// Who the calling thread is, for the namespace.
pub(super) fn caller(thread: &Thread) -> Caller {
    Caller {
        pid: thread.process.pid,
        token: thread.process.token.read().clone(),
    }
}

/// The open file description at `fd`.
pub(super) fn file_of(thread: &Thread, fd: u64) -> SysResult<Arc<OpenFile>> {
    thread.process.files.lock().get(fd)
}

/// A path argument: at most `PATH_MAX` bytes, UTF-8 (anything else names nothing here).
pub(super) fn read_path(addr: u64) -> SysResult<String> {
    let raw = read_user_cstr(addr, PATH_MAX)?;
    String::from_utf8(raw).map_err(|_| Errno::ENOENT)
}

/// The directory a path is resolved from: `/` for an absolute path, the working
/// directory for `AT_FDCWD`, else the directory `dirfd` has open (EBADF, ENOTDIR).
pub(super) fn start_dir(thread: &Thread, dirfd: i64, path: &str) -> SysResult<String> {
    if path.starts_with('/') {
        return Ok(String::from("/"));
    }
    if dirfd == AT_FDCWD {
        return Ok(thread.process.fs.lock().cwd.clone());
    }
    let dir = file_of(thread, u64::try_from(dirfd).map_err(|_| Errno::EBADF)?)?;
    match dir.path() {
        Some(p) if dir.file().stat().mode & S_IFMT == S_IFDIR => Ok(String::from(p)),
        _ => Err(Errno::ENOTDIR),
    }
}

/// A read or write that answered EAGAIN on a blocking descriptor: waits until
/// `attempt` gives a result, re-trying it whenever the file reports a change; a signal
/// or exit ends the wait with `on_interrupt()`. An EINTR from it is Linux's
/// ERESTARTSYS: the call is run again after a handler installed with `SA_RESTART`.
pub(super) fn wait_for_file<A, I>(
    thread: &Arc<Thread>,
    file: Arc<OpenFile>,
    mut attempt: A,
    on_interrupt: I,
) -> Outcome
where
    A: FnMut(&OpenFile) -> Option<SysResult> + Send + 'static,
    I: Fn() -> SysResult + Send + Sync + 'static,
{
    let thread = thread.clone();
    Outcome::Wait(alloc::boxed::Box::pin(async move {
        thread.clear_interrupt();
        let result = poll_fn(|cx| {
            thread.interrupt_waker.register(cx.waker());
            // Registered before the retry, so a change between the two is not lost.
            let _ = file.file().poll(Some(cx.waker()));
            if let Some(result) = attempt(&file) {
                return Poll::Ready(result);
            }
            if thread.is_interrupted() {
                return Poll::Ready(match on_interrupt() {
                    Err(Errno::EINTR) => return Poll::Ready(Ok(super::RESTART_IF_SA_RESTART)),
                    other => other,
                });
            }
            Poll::Pending
        })
        .await;
        match result {
            Ok(v) => v,
            Err(e) => e.as_return(),
        }
    }))
}

/// `read`.
pub fn read(thread: &Arc<Thread>, fd: u64, buf: u64, count: u64) -> Outcome {
    let file = match file_of(thread, fd) {
        Ok(f) if f.readable() => f,
        Ok(_) => return Err(Errno::EBADF).into(),
        Err(e) => return Err(e).into(),
    };
    match file.file().read(buf, count) {
        Err(Errno::EAGAIN) if !file.nonblocking() => wait_for_file(
            thread,
            file,
            move |f| match f.file().read(buf, count) {
                Err(Errno::EAGAIN) => None,
                other => Some(other),
            },
            || Err(Errno::EINTR),
        ),
        other => other.into(),
    }
}

/// EPIPE from a write also sends the writer SIGPIPE.
pub(super) fn sigpipe_on_epipe(thread: &Thread, result: SysResult) -> SysResult {
    if result == Err(Errno::EPIPE) {
        let uid = u64::from(thread.process.token.read().uid());
        let info = signal::SigInfo {
            code: signal::code::SI_USER,
            value: u64::from(thread.process.pid) | (uid << 32),
        };
        signal::send_to_thread(thread, signal::SIGPIPE, info);
    }
    result
}

/// `write`. A blocking write to a stream (pipe) goes on until every byte is in; one
/// interrupted after some bytes returns their count.
pub fn write(thread: &Arc<Thread>, fd: u64, buf: u64, count: u64) -> Outcome {
    let file = match file_of(thread, fd) {
        Ok(f) if f.writable() => f,
        Ok(_) => return Err(Errno::EBADF).into(),
        Err(e) => return Err(e).into(),
    };
    let first = file.file().write(buf, count);
    let done = match first {
        Ok(n) if n < count && file.file().is_stream() && !file.nonblocking() => n,
        Err(Errno::EAGAIN) if !file.nonblocking() => 0,
        other => return sigpipe_on_epipe(thread, other).into(),
    };
    let written = Arc::new(core::sync::atomic::AtomicU64::new(done));
    let progress = written.clone();
    let writer = thread.clone();
    wait_for_file(
        thread,
        file,
        move |f| {
            let done = progress.load(core::sync::atomic::Ordering::Relaxed);
            match f.file().write(buf + done, count - done) {
                Ok(n) if done + n == count => Some(Ok(count)),
                // A regular file's short write is the answer (no later change would
                // wake this wait: only a stream's reader makes room).
                Ok(n) if !f.file().is_stream() => Some(Ok(done + n)),
                Ok(n) => {
                    progress.store(done + n, core::sync::atomic::Ordering::Relaxed);
                    None
                }
                Err(Errno::EAGAIN) => None,
                Err(_) if done > 0 => Some(Ok(done)),
                Err(e) => Some(sigpipe_on_epipe(&writer, Err(e))),
            }
        },
        move || match written.load(core::sync::atomic::Ordering::Relaxed) {
            0 => Err(Errno::EINTR),
            n => Ok(n),
        },
    )
}

/// `openat` (and `open` with `AT_FDCWD`); `mode` gives a created file's permission
/// bits, less the umask.
pub fn openat(thread: &Thread, dirfd: i64, path: u64, flags: u64, mode: u64) -> SysResult {
    let name = read_path(path)?;
    let flags = flags as u32 | O_LARGEFILE;
    let from = start_dir(thread, dirfd, &name)?;
    let perm = mode as u32 & 0o7777 & !thread.process.fs.lock().umask;
    let file = vfs::mount::open(&caller(thread), &from, &name, flags, perm)?;
    thread
        .process
        .files
        .lock()
        .insert(file, flags & O_CLOEXEC != 0)
}

/// `close`: the description is dropped after the table's lock is released.
pub fn close(thread: &Thread, fd: u64) -> SysResult {
    let closed = thread.process.files.lock().close(fd)?;
    drop(closed);
    Ok(0)
}

/// `dup`.
pub fn dup(thread: &Thread, fd: u64) -> SysResult {
    thread.process.files.lock().dup(fd)
}

/// `lseek`.
pub fn lseek(thread: &Thread, fd: u64, offset: i64, whence: u64) -> SysResult {
    let file = file_of(thread, fd)?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    file.file().seek(offset, Whence::from_raw(whence as u32)?)
}

/// `fstat`.
pub fn fstat(thread: &Thread, fd: u64, statbuf: u64) -> SysResult {
    file_of(thread, fd)?.file().stat().write_stat(statbuf)?;
    Ok(0)
}

/// `ioctl`: the descriptor-level requests (`FIOCLEX`, `FIONCLEX`, `FIONBIO`), then
/// the file's own.
pub fn ioctl(thread: &Thread, fd: u64, request: u64, arg: u64) -> SysResult {
    const FIONCLEX: u32 = 0x5450;
    const FIOCLEX: u32 = 0x5451;
    const FIONBIO: u32 = 0x5421;
    let request = request as u32;
    let file = {
        let mut files = thread.process.files.lock();
        let d = files.get_mut(fd)?;
        if d.file.is_path_only() {
            return Err(Errno::EBADF);
        }
        match request {
            FIOCLEX | FIONCLEX => {
                d.cloexec = request == FIOCLEX;
                return Ok(0);
            }
            _ => d.file.clone(),
        }
    };
    if request == FIONBIO {
        let on: i32 = read_user(arg)?;
        let flags = file.flags();
        file.set_status_flags(if on != 0 {
            flags | O_NONBLOCK
        } else {
            flags & !O_NONBLOCK
        });
        return Ok(0);
    }
    file.file().ioctl(request, arg)
}

/// `fcntl`.
pub fn fcntl(thread: &Thread, fd: u64, cmd: u64, arg: u64) -> SysResult {
    const F_DUPFD: u64 = 0;
    const F_GETFD: u64 = 1;
    const F_SETFD: u64 = 2;
    const F_GETFL: u64 = 3;
    const F_SETFL: u64 = 4;
    const F_DUPFD_CLOEXEC: u64 = 1030;
    let mut files = thread.process.files.lock();
    let d = files.get_mut(fd)?;
    match cmd {
        F_GETFD => Ok(u64::from(d.cloexec)),
        F_SETFD => {
            d.cloexec = arg & 1 != 0;
            Ok(0)
        }
        F_GETFL => Ok(u64::from(d.file.flags())),
        F_SETFL => {
            d.file.set_status_flags(arg as u32);
            Ok(0)
        }
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let file = d.file.clone();
            let min = usize::try_from(arg as u32 as i32).map_err(|_| Errno::EINVAL)?;
            files.insert_from(min, file, cmd == F_DUPFD_CLOEXEC)
        }
        F_ADD_SEALS | F_GET_SEALS => {
            let file = d.file.clone();
            drop(files);
            seals(&file, cmd, arg)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `fcntl(F_ADD_SEALS)`.
const F_ADD_SEALS: u64 = 1033;
/// `fcntl(F_GET_SEALS)`.
const F_GET_SEALS: u64 = 1034;

/// `F_GET_SEALS` and `F_ADD_SEALS` on a memfd or tmpfs file (EINVAL on any other
/// file). Adding needs a descriptor open for writing (EPERM); `F_SEAL_WRITE` is
/// EBUSY while any shared mapping may write the file (`VM_SHARED`, which a read-only
/// mapping of a writable descriptor has too, as on Linux): the file's exact count of
/// such mappings, kept by the address spaces' VMA trees through mmap, munmap,
/// mremap, splits, fork and exit (Linux's `i_mmap_writable`).
fn seals(file: &OpenFile, cmd: u64, arg: u64) -> SysResult {
    let memfd = file
        .file()
        .as_any()
        .downcast_ref::<Memfd>()
        .ok_or(Errno::EINVAL)?;
    if cmd == F_GET_SEALS {
        return Ok(u64::from(memfd.seals()));
    }
    if !file.writable() {
        return Err(Errno::EPERM);
    }
    let object = file.file().mmap_object()?;
    let seals = u32::try_from(arg).map_err(|_| Errno::EINVAL)?;
    memfd.add_seals(seals, || object.writable_mappings() > 0)?;
    Ok(0)
}

/// `userfaultfd(flags)`: a descriptor for the caller's missing-page faults.
pub fn userfaultfd(thread: &Thread, flags: u64) -> SysResult {
    let uffd = userfaultfd::create(thread, flags)?;
    let status = O_RDWR | (flags as u32 & O_NONBLOCK);
    let file = OpenFile::new(Arc::new(UserfaultFd(uffd)), status, None);
    thread
        .process
        .files
        .lock()
        .insert(file, flags as u32 & O_CLOEXEC != 0)
}

/// `memfd_create(name, flags)`: an empty anonymous shared-memory file.
///
/// `MFD_NOEXEC_SEAL` makes it non-executable (mode `0o666`) with `F_SEAL_EXEC` set
/// and sealing allowed; `MFD_EXEC` (or neither, under `vm.memfd_noexec` 0) makes it
/// executable (`0o777`). Under `vm.memfd_noexec` 1 or 2 a memfd asking for neither
/// is made as with `MFD_NOEXEC_SEAL`, and under 2 `MFD_EXEC` is EACCES, as Linux.
/// `MFD_HUGETLB` (page size in bits 26..31, `MFD_HUGE_2MB`/`MFD_HUGE_1GB`, else the
/// default 2 MiB) draws its pages from the hugetlb pools (ENODEV for a size with no
/// pool). EINVAL for unknown flags, for both exec flags, and for a name longer than
/// 249 bytes.
pub fn memfd_create(thread: &Thread, name: u64, flags: u64) -> SysResult {
    const MFD_CLOEXEC: u64 = 1;
    const MFD_ALLOW_SEALING: u64 = 2;
    const MFD_HUGETLB: u64 = 4;
    const MFD_NOEXEC_SEAL: u64 = 8;
    const MFD_EXEC: u64 = 0x10;
    const MFD_HUGE_SHIFT: u64 = 26;
    const MFD_HUGE_MASK: u64 = 0x3f;
    let mut known = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;
    if flags & MFD_HUGETLB != 0 {
        known |= MFD_HUGE_MASK << MFD_HUGE_SHIFT;
    }
    if flags & !known != 0 || flags & (MFD_EXEC | MFD_NOEXEC_SEAL) == MFD_EXEC | MFD_NOEXEC_SEAL {
        return Err(Errno::EINVAL);
    }
    let noexec_scope = crate::vfs::memfd::MEMFD_NOEXEC.get();
    let noexec = match flags & (MFD_EXEC | MFD_NOEXEC_SEAL) {
        MFD_NOEXEC_SEAL => true,
        MFD_EXEC if noexec_scope >= 2 => return Err(Errno::EACCES),
        MFD_EXEC => false,
        _ => noexec_scope >= 1,
    };
    let name = read_user_cstr(name, 249).map_err(|e| {
        if e == Errno::ENAMETOOLONG {
            Errno::EINVAL
        } else {
            e
        }
    })?;
    let name = String::from_utf8_lossy(&name);
    let frames = crate::mem::frames::mm_frames().clone();
    let object = if flags & MFD_HUGETLB != 0 {
        let size = match (flags >> MFD_HUGE_SHIFT) & MFD_HUGE_MASK {
            0 | 21 => mm::hugetlb::HugeSize::Mib2,
            30 => mm::hugetlb::HugeSize::Gib1,
            _ => return Err(Errno::ENODEV),
        };
        let source = Arc::new(crate::mem::hugetlb::KernelHugetlb);
        let pages = mm::hugetlb_file::HugetlbFile::new(size, source, frames.clone(), None);
        let path = alloc::format!("/memfd:{name} (deleted)");
        mm::pagecache::FileObject::new_hugetlb(&path, pages, frames)
    } else {
        mm::pagecache::FileObject::new_memfd(&name, frames)
    };
    let memfd = if noexec {
        Memfd::new_noexec(object)
    } else {
        Memfd::new_sealable(object, flags & MFD_ALLOW_SEALING != 0)
    };
    memfd.set_creator(&caller(thread).token);
    let file = OpenFile::new(Arc::new(memfd), O_RDWR | O_LARGEFILE, None);
    thread
        .process
        .files
        .lock()
        .insert(file, flags & MFD_CLOEXEC != 0)
}

/// `fallocate(fd, mode, offset, len)`: Linux 6.12's `vfs_fallocate` checks in its
/// order (EINVAL for a negative offset or a length not positive, EOPNOTSUPP for unknown
/// or mixed modes, a punch without `KEEP_SIZE` and a collapse or insert with it, EBADF
/// without write access, ESPIPE for a pipe, EISDIR, ENODEV for what is not a regular
/// file, EFBIG past the largest offset), then the file's own: a shared-memory file's as Linux's shmem
/// ([`Memfd::fallocate_shmem`], a future: an allocation may wait for reclaim), the
/// others' through [`vfs::File::fallocate`] (hugetlb files; EOPNOTSUPP for the rest).
pub fn fallocate(thread: &Thread, fd: u64, mode: u64, offset: u64, len: u64) -> super::Outcome {
    let file = match fallocate_checks(thread, fd, mode, offset, len) {
        Ok(file) => file,
        Err(e) => return Err::<u64, _>(e).into(),
    };
    let mode = mode as u32;
    let shmem = file
        .file()
        .as_any()
        .downcast_ref::<Memfd>()
        .filter(|m| m.object().hugetlb().is_none());
    let Some(memfd) = shmem else {
        return file.file().fallocate(mode, offset, len).map(|()| 0).into();
    };
    if mode & vfs::falloc::PUNCH_HOLE == 0 && !could_ever_fit(offset, len) {
        return Err::<u64, _>(Errno::ENOMEM).into();
    }
    match memfd.fallocate_shmem(mode, offset, len) {
        Ok(work) => super::wait(work),
        Err(e) => Err::<u64, _>(e).into(),
    }
}

/// Whether `len` bytes at `offset` could be allocated at all: no more pages than RAM
/// and swap hold together (a request that never fits fails at once with ENOMEM
/// instead of driving every process into reclaim and the OOM killer).
fn could_ever_fit(offset: u64, len: u64) -> bool {
    let page = mm::frame::PAGE_SIZE;
    let pages = (offset + len).div_ceil(page) - offset / page;
    let ram = crate::mem::frames::allocator().total_pages().0;
    let swap = crate::memd::swap::swap().totals().0;
    pages <= ram.saturating_add(swap)
}

/// `fallocate`'s checks before the file's own (see [`fallocate`]): the open file.
fn fallocate_checks(
    thread: &Thread,
    fd: u64,
    mode: u64,
    offset: u64,
    len: u64,
) -> SysResult<Arc<OpenFile>> {
    use vfs::falloc::{KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE};
    const COLLAPSE_RANGE: u32 = 0x08;
    const INSERT_RANGE: u32 = 0x20;
    const UNSHARE_RANGE: u32 = 0x40;
    /// The bits naming an operation (at most one of them), beside `KEEP_SIZE`.
    const OPERATION: u32 = PUNCH_HOLE | COLLAPSE_RANGE | ZERO_RANGE | INSERT_RANGE | UNSHARE_RANGE;
    const S_IFIFO: u32 = 0o010_000;
    const S_IFREG: u32 = 0o100_000;
    const S_IFBLK: u32 = 0o060_000;
    let mode = mode as u32;
    let (offset_signed, len_signed) = (offset as i64, len as i64);
    if offset_signed < 0 || len_signed <= 0 {
        return Err(Errno::EINVAL);
    }
    // Linux 6.12's table: one operation at most; a punch needs KEEP_SIZE, a collapse
    // or an insert refuses it; anything else (NO_HIDE_STALE too) is EOPNOTSUPP.
    let keep = mode & KEEP_SIZE != 0;
    let valid = mode & !(OPERATION | KEEP_SIZE) == 0
        && match mode & OPERATION {
            0 | ZERO_RANGE | UNSHARE_RANGE => true,
            PUNCH_HOLE => keep,
            COLLAPSE_RANGE | INSERT_RANGE => !keep,
            _ => false,
        };
    if !valid {
        return Err(Errno::EOPNOTSUPP);
    }
    let file = file_of(thread, fd)?;
    if file.is_path_only() || !file.writable() {
        return Err(Errno::EBADF);
    }
    let kind = file.file().stat().mode & S_IFMT;
    match kind {
        S_IFIFO => return Err(Errno::ESPIPE),
        S_IFDIR => return Err(Errno::EISDIR),
        S_IFREG | S_IFBLK => {}
        _ => return Err(Errno::ENODEV),
    }
    if offset_signed.checked_add(len_signed).is_none() {
        return Err(Errno::EFBIG);
    }
    Ok(file)
}

/// `ftruncate(fd, length)`: EINVAL for a file that cannot be resized or a descriptor
/// not open for writing.
pub fn ftruncate(thread: &Thread, fd: u64, length: u64) -> SysResult {
    if (length as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let file = file_of(thread, fd)?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    if !file.writable() {
        return Err(Errno::EINVAL);
    }
    file.file().truncate(length)?;
    Ok(0)
}
