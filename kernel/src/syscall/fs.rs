//! File-descriptor syscalls over the console and the read-only initramfs.

use crate::{
    arch::{
        uaccess::{copy_from_user, copy_to_user, read_user, read_user_cstr, write_user},
        usermode::USER_ADDRESS_END,
    },
    initramfs,
    mem::userfaultfd::{self, UserfaultFile},
    proc::{files::File, thread::Thread},
};
use alloc::{borrow::Cow, string::String, sync::Arc};
use core::{future::poll_fn, task::Poll};
use errno::{Errno, SysResult};
use security::AccessMask;

/// `AT_FDCWD`.
pub const AT_FDCWD: i64 = -100;
const O_ACCMODE: u64 = 3;
const O_CREAT: u64 = 0x40;
const O_TRUNC: u64 = 0x200;
const O_DIRECTORY: u64 = 0x1_0000;
const O_CLOEXEC: u64 = 0x8_0000;
/// Longest path accepted.
const PATH_MAX: usize = 4096;
/// Bytes moved per chunk between user memory and the console.
const CHUNK: usize = 512;

/// `read`: a userfaultfd may wait for a fault; every other file answers at once.
pub fn read(thread: &Arc<Thread>, fd: u64, buf: u64, count: u64) -> super::Outcome {
    let mut files = thread.process.files.lock();
    let d = match files.get_mut(fd) {
        Ok(d) => d,
        Err(e) => return Err(e).into(),
    };
    if let File::Userfaultfd(u) = &d.file {
        // The wait must not hold the descriptor table.
        let u = u.clone();
        drop(files);
        return read_userfaultfd(thread, u, buf, count);
    }
    read_file(&mut d.file, buf, count).into()
}

/// Reads fault messages; waits for the first unless the descriptor is non-blocking.
fn read_userfaultfd(
    thread: &Arc<Thread>,
    file: Arc<UserfaultFile>,
    buf: u64,
    count: u64,
) -> super::Outcome {
    if count < userfaultfd::MSG_SIZE {
        return Err(Errno::EINVAL).into();
    }
    match userfaultfd::read_messages(&file, buf, count) {
        Ok(0) if file.nonblocking() => return Err(Errno::EAGAIN).into(),
        Ok(0) => {}
        other => return other.into(),
    }
    let thread = thread.clone();
    super::wait(async move {
        thread.clear_interrupt();
        poll_fn(|cx| {
            thread.interrupt_waker.register(cx.waker());
            file.register_reader(cx.waker());
            match userfaultfd::read_messages(&file, buf, count) {
                Ok(0) if thread.is_interrupted() => Poll::Ready(Err(Errno::EINTR)),
                Ok(0) => Poll::Pending,
                other => Poll::Ready(other),
            }
        })
        .await
    })
}

/// A read from any file but a userfaultfd (the caller holds the descriptor table).
fn read_file(file: &mut File, buf: u64, count: u64) -> SysResult {
    match file {
        File::Console => Ok(0), // no input device: end of file
        File::Userfaultfd(_) => Err(Errno::EINVAL),
        File::Memfd { object, offset } => {
            let n = (count as usize).min(64 * 1024);
            let mut kbuf = alloc::vec![0u8; n];
            let got = object.read_at(*offset, &mut kbuf).map_err(|_| Errno::EIO)?;
            copy_to_user(buf, &kbuf[..got])?;
            *offset += got as u64;
            Ok(got as u64)
        }
        File::ReadOnly { data, offset, .. } => {
            let start = (*offset).min(data.len());
            let n = (count as usize).min(data.len() - start);
            copy_to_user(buf, &data[start..start + n])?;
            *offset = start + n;
            Ok(n as u64)
        }
        File::Directory => Err(Errno::EISDIR),
        File::VmaText(text) => text.consume(count, |at, piece| copy_to_user(buf + at, piece)),
        File::RegistryKey { .. } | File::OomScoreAdj(_) | File::DamonControl(_) => {
            Err(Errno::EBADF)
        }
        File::ProcessMemory { target, offset, .. } => {
            let n = (count as usize).min(64 * 1024);
            let mut kbuf = alloc::vec![0u8; n];
            let space = target.address_space();
            let got = space.access(*offset, &mut kbuf, false);
            if got == 0 && n > 0 {
                return Err(Errno::EIO);
            }
            copy_to_user(buf, &kbuf[..got])?;
            *offset += got as u64;
            Ok(got as u64)
        }
        File::PageMap {
            target,
            offset,
            show_pfn,
        } => {
            if *offset % 8 != 0 || !count.is_multiple_of(8) {
                return Err(Errno::EINVAL);
            }
            // One entry per page of user space, as Linux's pagemap_read: a position
            // past the last page (however large) reads nothing.
            const PAGE_SHIFT: u32 = 12;
            let first_page = *offset / 8;
            let user_pages = USER_ADDRESS_END >> PAGE_SHIFT;
            let entries = (count / 8)
                .min(4096)
                .min(user_pages.saturating_sub(first_page));
            let space = target.address_space();
            let mut out = alloc::vec::Vec::with_capacity(entries as usize * 8);
            for page in first_page..first_page + entries {
                let vaddr = page << PAGE_SHIFT;
                out.extend_from_slice(
                    &crate::procfs::pagemap_entry(&space, vaddr, *show_pfn).to_le_bytes(),
                );
            }
            copy_to_user(buf, &out)?;
            *offset += out.len() as u64;
            Ok(out.len() as u64)
        }
    }
}

fn console_write(buf: u64, count: u64) -> SysResult {
    crate::arch::uaccess::check_user_range(buf, count as usize)?;
    let mut chunk = [0u8; CHUNK];
    let mut done = 0u64;
    while done < count {
        let n = ((count - done) as usize).min(CHUNK);
        if let Err(e) = copy_from_user(&mut chunk[..n], buf + done) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        crate::logger::print(format_args!("{}", String::from_utf8_lossy(&chunk[..n])));
        done += n as u64;
    }
    Ok(done)
}

pub fn write(thread: &Thread, fd: u64, buf: u64, count: u64) -> SysResult {
    let file = thread.process.files.lock().get_mut(fd)?.file.clone();
    match file {
        File::Console => console_write(buf, count),
        File::ProcessMemory {
            target,
            offset,
            writable: true,
        } => {
            let n = (count as usize).min(64 * 1024);
            let mut kbuf = alloc::vec![0u8; n];
            copy_from_user(&mut kbuf, buf)?;
            let space = target.address_space();
            let done = space.access(offset, &mut kbuf, true);
            if done == 0 && n > 0 {
                return Err(Errno::EIO);
            }
            if let File::ProcessMemory { offset: pos, .. } =
                &mut thread.process.files.lock().get_mut(fd)?.file
            {
                *pos += done as u64;
            }
            Ok(done as u64)
        }
        File::Memfd { object, offset } => {
            let n = (count as usize).min(64 * 1024);
            let mut kbuf = alloc::vec![0u8; n];
            copy_from_user(&mut kbuf, buf)?;
            let done = object.write_at(offset, &kbuf).map_err(|_| Errno::EIO)?;
            if let File::Memfd { offset: pos, .. } =
                &mut thread.process.files.lock().get_mut(fd)?.file
            {
                *pos += done as u64;
            }
            Ok(done as u64)
        }
        File::DamonControl(control) => {
            let n = (count as usize).min(64);
            let mut text = alloc::vec![0u8; n];
            copy_from_user(&mut text, buf)?;
            let text = core::str::from_utf8(&text).map_err(|_| Errno::EINVAL)?;
            crate::mem::damon::write_control(control, text)?;
            Ok(count)
        }
        File::OomScoreAdj(target) => {
            let n = (count as usize).min(64);
            let mut text = alloc::vec![0u8; n];
            copy_from_user(&mut text, buf)?;
            crate::mem::oom::write_score_adj(&thread.process, &target, &text)?;
            Ok(count)
        }
        File::RegistryKey {
            key,
            offset,
            sysctl,
        } => {
            // Linux (sysctl_writes_strict = 1): a /proc/sys write that does not start at
            // position 0 changes nothing but still "writes" its bytes.
            if sysctl && offset != 0 {
                advance_registry_offset(thread, fd, count);
                return Ok(count);
            }
            // A sysctl write is one value: at most a page, parsed whole.
            let n = (count as usize).min(4095);
            let mut text = alloc::vec![0u8; n];
            copy_from_user(&mut text, buf)?;
            if sysctl {
                key.set_sysctl(&text)?;
            } else {
                let text = core::str::from_utf8(&text).map_err(|_| Errno::EINVAL)?;
                key.set(text)?;
            }
            advance_registry_offset(thread, fd, count);
            Ok(count)
        }
        _ => Err(Errno::EBADF),
    }
}

/// Moves a registry key file's position past a write of `count` bytes.
fn advance_registry_offset(thread: &Thread, fd: u64, count: u64) {
    if let Ok(d) = thread.process.files.lock().get_mut(fd) {
        if let File::RegistryKey { offset, .. } = &mut d.file {
            *offset = offset.saturating_add(count);
        }
    }
}

pub fn writev(thread: &Thread, fd: u64, iov: u64, iovcnt: u64) -> SysResult {
    if iovcnt > 1024 {
        return Err(Errno::EINVAL);
    }
    let is_console = matches!(thread.process.files.lock().get_mut(fd)?.file, File::Console);
    if !is_console {
        return Err(Errno::EBADF);
    }
    let mut total = 0u64;
    for i in 0..iovcnt {
        let at = iov.checked_add(i * 16).ok_or(Errno::EFAULT)?;
        let [base, len]: [u64; 2] = read_user(at)?;
        if len > isize::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        match console_write(base, len) {
            Ok(n) => total += n,
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(total)
}

/// Generated `/proc` and `/dev` files (access-checked by `procfs::open`).
fn special_file(thread: &Thread, path: &str) -> SysResult<Option<File>> {
    match path {
        "/dev/console" | "/dev/tty" => Ok(Some(File::Console)),
        _ => Ok(
            crate::procfs::open(thread, path)?.map(|text| File::ReadOnly {
                data: Cow::Owned(text),
                offset: 0,
                object: None,
            }),
        ),
    }
}

pub fn openat(thread: &Thread, dirfd: i64, path: u64, flags: u64) -> SysResult {
    let raw = read_user_cstr(path, PATH_MAX)?;
    let name = core::str::from_utf8(&raw).map_err(|_| Errno::ENOENT)?;
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    if !name.starts_with('/') && dirfd != AT_FDCWD {
        // Only absolute paths and the (root) working directory exist.
        thread.process.files.lock().get_mut(dirfd as u64)?;
    }
    let full = absolute_path(name);
    let cloexec = flags & O_CLOEXEC != 0;
    if let Some(key) = crate::registry::lookup_path(&full) {
        let write = flags & O_ACCMODE != 0;
        let token = thread.process.token.read().clone();
        crate::registry::check_access(key, &token, write)?;
        let file = if write {
            File::RegistryKey {
                key,
                offset: 0,
                sysctl: full.starts_with("/proc/sys/"),
            }
        } else {
            File::ReadOnly {
                data: Cow::Owned(key.render().into_bytes()),
                offset: 0,
                object: None,
            }
        };
        return thread.process.files.lock().insert(file, cloexec);
    }
    if let Some(control) = crate::mem::damon::control(&full) {
        let file = if flags & O_ACCMODE != 0 {
            // DAMON is driven by a TCB daemon.
            if !thread
                .process
                .token
                .read()
                .has_privilege(security::Privilege::SeTcbPrivilege)
            {
                return Err(Errno::EACCES);
            }
            File::DamonControl(control)
        } else {
            File::ReadOnly {
                data: Cow::Owned(crate::mem::damon::read_control(control)?.into_bytes()),
                offset: 0,
                object: None,
            }
        };
        return thread.process.files.lock().insert(file, cloexec);
    }
    if let Some((target, file)) = crate::procfs::process_file(thread, &full)? {
        let write = flags & O_ACCMODE != 0;
        match file {
            "mem" => {
                let mut want = AccessMask::PROCESS_VM_READ;
                if write {
                    want |= AccessMask::PROCESS_VM_WRITE;
                }
                crate::procfs::check_introspection(&thread.process, &target, want)?;
                let file = File::ProcessMemory {
                    target,
                    offset: 0,
                    writable: write,
                };
                return thread.process.files.lock().insert(file, cloexec);
            }
            "pagemap" => {
                crate::procfs::check_introspection(
                    &thread.process,
                    &target,
                    AccessMask::PROCESS_QUERY_INFORMATION,
                )?;
                let show_pfn = crate::procfs::may_see_pfns(thread);
                let file = File::PageMap {
                    target,
                    offset: 0,
                    show_pfn,
                };
                return thread.process.files.lock().insert(file, cloexec);
            }
            name if !write && crate::procfs::VmaFile::from_name(name).is_some() => {
                crate::procfs::check_introspection(
                    &thread.process,
                    &target,
                    AccessMask::PROCESS_QUERY_INFORMATION,
                )?;
                let kind = crate::procfs::VmaFile::from_name(name).ok_or(Errno::ENOENT)?;
                let text = crate::procfs::VmaText::new(target, kind);
                let file = File::VmaText(alloc::boxed::Box::new(text));
                return thread.process.files.lock().insert(file, cloexec);
            }
            "oom_score_adj" if write => {
                crate::procfs::check_introspection(
                    &thread.process,
                    &target,
                    AccessMask::PROCESS_SET_QUOTA,
                )?;
                let file = File::OomScoreAdj(target);
                return thread.process.files.lock().insert(file, cloexec);
            }
            _ if write => return Err(Errno::EACCES),
            _ => {}
        }
    }
    if let Some(file) = special_file(thread, &full)? {
        return thread.process.files.lock().insert(file, cloexec);
    }
    let file = match initramfs::lookup(&full) {
        Some(_) if flags & O_DIRECTORY != 0 => return Err(Errno::ENOTDIR),
        Some(data) => {
            if flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC) != 0 {
                return Err(Errno::EROFS);
            }
            File::ReadOnly {
                data: Cow::Borrowed(data),
                offset: 0,
                object: initramfs::file_object(&full),
            }
        }
        None if initramfs::is_dir(&full) => File::Directory,
        None if flags & O_CREAT != 0 => return Err(Errno::EROFS),
        None => return Err(Errno::ENOENT),
    };
    thread.process.files.lock().insert(file, cloexec)
}

pub fn close(thread: &Thread, fd: u64) -> SysResult {
    thread.process.files.lock().close(fd).map(|()| 0)
}

pub fn dup(thread: &Thread, fd: u64) -> SysResult {
    thread.process.files.lock().dup(fd)
}

/// `name` as an absolute path: the only working directory is the root.
pub(super) fn absolute_path(name: &str) -> String {
    if name.starts_with('/') {
        String::from(name)
    } else {
        String::from("/") + name
    }
}

/// The offset `lseek` moves a sized file to: `whence` is SEEK_SET, SEEK_CUR or SEEK_END;
/// a result below zero or past `i64::MAX` is EINVAL.
fn seek_position(current: u64, size: u64, whence: u64, offset: i64) -> SysResult<u64> {
    let base = match whence {
        0 => 0i64,
        1 => i64::try_from(current).map_err(|_| Errno::EINVAL)?,
        2 => i64::try_from(size).map_err(|_| Errno::EINVAL)?,
        _ => return Err(Errno::EINVAL),
    };
    base.checked_add(offset)
        .filter(|&p| p >= 0)
        .map(|p| p as u64)
        .ok_or(Errno::EINVAL)
}

pub fn lseek(thread: &Thread, fd: u64, offset: i64, whence: u64) -> SysResult {
    let mut files = thread.process.files.lock();
    match &mut files.get_mut(fd)?.file {
        File::ReadOnly {
            data, offset: pos, ..
        } => {
            let new = seek_position(*pos as u64, data.len() as u64, whence, offset)?;
            *pos = new as usize;
            Ok(new)
        }
        File::Memfd {
            object,
            offset: pos,
        } => {
            *pos = seek_position(*pos, object.size_bytes(), whence, offset)?;
            Ok(*pos)
        }
        File::RegistryKey { offset: pos, .. } => {
            *pos = seek_position(*pos, 0, whence, offset)?;
            Ok(*pos)
        }
        File::VmaText(text) => {
            let to = seek_position(text.offset(), text.offset(), whence, offset)?;
            if whence == 2 {
                return Err(Errno::EINVAL); // no size to seek from, as Linux's seq_lseek
            }
            text.seek(to)
        }
        File::ProcessMemory { offset: pos, .. } | File::PageMap { offset: pos, .. } => {
            let new = match whence {
                0 => offset as u64,
                1 => pos.wrapping_add(offset as u64),
                _ => return Err(Errno::EINVAL),
            };
            *pos = new;
            Ok(new)
        }
        _ => Err(Errno::ESPIPE),
    }
}

pub fn fstat(thread: &Thread, fd: u64, statbuf: u64) -> SysResult {
    let (mode, size) = match &thread.process.files.lock().get_mut(fd)?.file {
        File::Console => (0o020_620u32, 0u64),
        File::Userfaultfd(_) => (0o600, 0), // an anonymous inode
        File::ReadOnly { data, .. } => (0o100_444, data.len() as u64),
        File::Memfd { object, .. } => (0o100_600, object.size_bytes()),
        File::Directory => (0o040_555, 0),
        File::RegistryKey { .. } | File::OomScoreAdj(_) | File::DamonControl(_) => (0o100_644, 0),
        File::ProcessMemory { .. } => (0o100_600, 0),
        File::PageMap { .. } => (0o100_400, 0),
        File::VmaText(_) => (0o100_444, 0),
    };
    let mut stat = [0u64; 18];
    stat[2] = 1; // st_nlink
    stat[3] = u64::from(mode); // st_mode (low 32 bits), st_uid 0 (high)
    stat[6] = size; // st_size
    stat[7] = 4096; // st_blksize
    stat[8] = size.div_ceil(512); // st_blocks
    write_user(statbuf, &stat)?;
    Ok(0)
}

pub fn ioctl(thread: &Thread, fd: u64, request: u64, arg: u64) -> SysResult {
    const TCGETS: u64 = 0x5401;
    const TIOCGWINSZ: u64 = 0x5413;
    let (uffd, is_console) = match &thread.process.files.lock().get_mut(fd)?.file {
        File::Userfaultfd(u) => (Some(u.clone()), false),
        File::Console => (None, true),
        _ => (None, false),
    };
    if let Some(u) = uffd {
        return userfaultfd::ioctl(&u, request, arg);
    }
    match (is_console, request) {
        (true, TIOCGWINSZ) => {
            // rows 24, cols 80: the console is a terminal, so stdio line-buffers it.
            write_user(arg, &(24u64 | (80 << 16)))?;
            Ok(0)
        }
        (true, TCGETS) => {
            let termios = [0u64; 8];
            write_user(arg, &termios)?;
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
}

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
        F_GETFL => Ok(match &d.file {
            File::Console => 2,
            File::Userfaultfd(u) if u.nonblocking() => 2 | userfaultfd::O_NONBLOCK,
            File::Userfaultfd(_) => 2,
            _ => 0,
        }),
        F_SETFL => {
            if let File::Userfaultfd(u) = &d.file {
                u.set_nonblocking(arg & userfaultfd::O_NONBLOCK != 0);
            }
            Ok(0)
        }
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let file = d.file.clone();
            files.insert(file, cmd == F_DUPFD_CLOEXEC)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `userfaultfd(flags)`: a descriptor for the caller's missing-page faults.
pub fn userfaultfd(thread: &Thread, flags: u64) -> SysResult {
    let file = userfaultfd::create(thread, flags)?;
    thread
        .process
        .files
        .lock()
        .insert(File::Userfaultfd(file), flags & userfaultfd::O_CLOEXEC != 0)
}

/// `memfd_create(name, flags)`: an empty anonymous shared-memory file.
pub fn memfd_create(thread: &Thread, name: u64, flags: u64) -> SysResult {
    const MFD_CLOEXEC: u64 = 1;
    const MFD_ALLOW_SEALING: u64 = 2;
    if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING) != 0 {
        return Err(Errno::EINVAL);
    }
    let name = read_user_cstr(name, 249).map_err(|e| {
        if e == Errno::ENAMETOOLONG {
            Errno::EINVAL
        } else {
            e
        }
    })?;
    let name = String::from_utf8_lossy(&name);
    let object =
        mm::pagecache::FileObject::new_memfd(&name, crate::mem::frames::mm_frames().clone());
    thread
        .process
        .files
        .lock()
        .insert(File::Memfd { object, offset: 0 }, flags & MFD_CLOEXEC != 0)
}

/// `ftruncate(fd, length)` on a memfd.
pub fn ftruncate(thread: &Thread, fd: u64, length: u64) -> SysResult {
    if (length as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    match &thread.process.files.lock().get_mut(fd)?.file {
        File::Memfd { object, .. } => {
            object.set_size(length);
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `poll(fds, nfds, timeout_ms)`. Every descriptor kind but one is always ready (the
/// console reads as end of file and takes any write; files read from memory); a
/// non-blocking userfaultfd is readable while a fault waits to be read (a blocking one
/// reports POLLERR, as on Linux). With nothing ready the poll
/// sleeps for its timeout (or forever) until a userfaultfd in the set gets a fault or a
/// signal arrives.
pub fn poll(thread: &Arc<Thread>, fds: u64, nfds: u64, timeout_ms: i64) -> super::Outcome {
    if nfds > 1024 {
        return Err(Errno::EINVAL).into();
    }
    match poll_scan(thread, fds, nfds, None) {
        Ok(0) if timeout_ms != 0 => {}
        other => return other.into(),
    }
    let thread = thread.clone();
    super::wait(async move {
        thread.clear_interrupt();
        let deadline = if timeout_ms < 0 {
            u64::MAX
        } else {
            crate::time::now_ns() + timeout_ms as u64 * 1_000_000
        };
        let mut timer = crate::executor::scheduler().sleep_until(deadline);
        poll_fn(|cx| {
            thread.interrupt_waker.register(cx.waker());
            match poll_scan(&thread, fds, nfds, Some(cx.waker())) {
                Ok(0) => {}
                other => return Poll::Ready(other),
            }
            if core::pin::Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(Ok(0));
            }
            if thread.is_interrupted() {
                return Poll::Ready(Err(Errno::EINTR));
            }
            Poll::Pending
        })
        .await
    })
}

/// One pass over the poll set: writes every `revents`, returns how many are non-zero.
/// With `waker`, every userfaultfd in the set wakes it at its next fault.
fn poll_scan(thread: &Thread, fds: u64, nfds: u64, waker: Option<&core::task::Waker>) -> SysResult {
    const POLLIN: u16 = 0x1;
    const POLLOUT: u16 = 0x4;
    const POLLERR: u16 = 0x8;
    const POLLNVAL: u16 = 0x20;
    let mut ready = 0u64;
    for i in 0..nfds {
        let at = fds.checked_add(i * 8).ok_or(Errno::EFAULT)?;
        let entry: u64 = read_user(at)?;
        let (fd, events) = (entry as u32, (entry >> 32) as u16);
        let revents = if (fd as i32) < 0 {
            0
        } else {
            match thread.process.files.lock().get_mut(u64::from(fd)) {
                Ok(d) => match &d.file {
                    File::Directory => 0,
                    File::Userfaultfd(u) => {
                        if let Some(w) = waker {
                            u.register_reader(w);
                        }
                        // POLLERR is reported whatever was asked.
                        u.poll_events() & (events | POLLERR)
                    }
                    _ => events & (POLLIN | POLLOUT),
                },
                Err(_) => POLLNVAL,
            }
        };
        if revents != 0 {
            ready += 1;
        }
        let word = u32::from(events) | (u32::from(revents) << 16);
        write_user(at.wrapping_add(4), &word)?;
    }
    Ok(ready)
}

use core::future::Future as _;
