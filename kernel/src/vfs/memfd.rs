//! `memfd_create` files: anonymous shared memory with a size, read, written, truncated
//! and mapped through one page-cache object. A tmpfs file is the same thing with a
//! name ([`Memfd::named`]): its attributes come from its inode.

use super::{
    anon_inode_number,
    attrs::{Owned, SetAttr},
    seek_position, File, Stat, Whence,
};
use crate::arch::uaccess::{copy_from_user, copy_to_user};
use crate::tunable::{keep, key, Key, KeyKind};
use alloc::{boxed::Box, sync::Arc};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use errno::{Errno, SysResult};
use mm::pagecache::{FileObject, PageError};
use spin::Mutex;

/// `vm.memfd_noexec`: 0, a memfd is executable unless made with `MFD_NOEXEC_SEAL`;
/// 1, a memfd that names neither `MFD_EXEC` nor `MFD_NOEXEC_SEAL` is made as with
/// `MFD_NOEXEC_SEAL`; 2, as 1, and `MFD_EXEC` is refused (EACCES). Linux's values
/// (there per pid namespace; one system-wide value here).
pub static MEMFD_NOEXEC: Key = key(
    "vm.memfd_noexec",
    &["/proc/sys/vm/memfd_noexec"],
    KeyKind::Int { min: 0, max: 2 },
    0,
    keep,
);

/// Most bytes one read or write moves (a short count beyond, as Linux may give).
const MAX_IO_BYTES: usize = 64 * 1024;
/// Bytes a read or write moves at a time, through a buffer on the stack (no heap: a
/// transfer cannot fail for want of kernel memory).
const CHUNK_BYTES: usize = 4096;

/// File seals (`F_ADD_SEALS`), Linux's values.
pub mod seal {
    /// No more seals may be added.
    pub const SEAL: u32 = 0x1;
    /// The size may not shrink.
    pub const SHRINK: u32 = 0x2;
    /// The size may not grow.
    pub const GROW: u32 = 0x4;
    /// No writes at all (refused while a writable shared mapping exists).
    pub const WRITE: u32 = 0x8;
    /// No new writes (existing writable mappings keep writing).
    pub const FUTURE_WRITE: u32 = 0x10;
    /// The execute bits may not change.
    pub const EXEC: u32 = 0x20;
    /// Every seal.
    pub const ALL: u32 = SEAL | SHRINK | GROW | WRITE | FUTURE_WRITE | EXEC;
}

/// The attributes of a named shared-memory file, given its size.
pub type StatOf = Box<dyn Fn(u64) -> Stat + Send + Sync>;

/// A named shared-memory file's `chmod` and `chown` (its inode's).
pub type SetAttrOf = Box<dyn Fn(SetAttr, &super::Caller) -> SysResult<()> + Send + Sync>;

/// A memfd (or an open tmpfs file).
pub struct Memfd {
    object: Arc<FileObject>,
    pos: Mutex<u64>,
    ino: u64,
    /// Writes go to the end (`O_APPEND`).
    append: AtomicBool,
    /// For a named file: its attributes (else a memfd's).
    stat_of: Option<StatOf>,
    /// Its seals ([`seal`]); `SEAL` alone for a file that does not allow sealing.
    seals: AtomicU32,
    /// A memfd's permission bits (`0o777`, or `0o666` for `MFD_NOEXEC_SEAL`).
    mode: AtomicU32,
    /// For a named file: its inode's `chmod` and `chown`.
    set_attr_of: Option<SetAttrOf>,
    /// A memfd's owner and descriptor (built from `mode` as a tmpfs file's), once
    /// [`set_creator`](Self::set_creator) has given them; `chmod` and `chown` change
    /// them (and `mode` with them).
    owner: Mutex<Option<Owned>>,
    /// A read or write waiting for a page (read back from swap).
    page_wait: super::pagewait::PageWait,
}

impl Memfd {
    /// A memfd over `object` (from `FileObject::new_memfd`: empty, named) that takes
    /// seals when `allow_sealing` (`MFD_ALLOW_SEALING`).
    pub fn new_sealable(object: Arc<FileObject>, allow_sealing: bool) -> Memfd {
        let memfd = Memfd::new(object);
        let initial = if allow_sealing { 0 } else { seal::SEAL };
        memfd.seals.store(initial, Ordering::Relaxed);
        memfd
    }

    /// A memfd over `object` made with `MFD_NOEXEC_SEAL` (or under `vm.memfd_noexec`
    /// 1 or 2): not executable (`0o666`), `F_SEAL_EXEC` set, and sealing allowed.
    pub fn new_noexec(object: Arc<FileObject>) -> Memfd {
        let memfd = Memfd::new(object);
        memfd.seals.store(seal::EXEC, Ordering::Relaxed);
        memfd.mode.store(0o666, Ordering::Relaxed);
        memfd
    }

    /// A memfd over `object` that takes no seals.
    pub fn new(object: Arc<FileObject>) -> Memfd {
        Memfd {
            object,
            pos: Mutex::new(0),
            ino: anon_inode_number(),
            append: AtomicBool::new(false),
            stat_of: None,
            seals: AtomicU32::new(seal::SEAL),
            mode: AtomicU32::new(0o777),
            set_attr_of: None,
            owner: Mutex::new(None),
            page_wait: super::pagewait::PageWait::default(),
        }
    }

    /// A memfd made by `creator`: it owns the file (`stat` shows its uid and gid,
    /// and it may `fchmod` it).
    pub fn set_creator(&self, creator: &security::Token) {
        let mode = self.mode.load(Ordering::Relaxed);
        *self.owner.lock() = Some(Owned {
            mode,
            uid: creator.uid(),
            gid: creator.gid(),
            sd: security::SecurityDescriptor::for_file(creator, mode),
        });
    }

    /// [`named`](Self::named), with the inode's `chmod` and `chown`.
    pub fn named_with_attrs(
        object: Arc<FileObject>,
        stat_of: StatOf,
        set_attr_of: SetAttrOf,
    ) -> Memfd {
        Memfd {
            set_attr_of: Some(set_attr_of),
            ..Memfd::named(object, stat_of)
        }
    }

    /// A memfd's `chmod` or `chown` (EPERM for one with no recorded creator).
    fn set_attr(&self, change: SetAttr, caller: &super::Caller) -> SysResult<()> {
        if let Some(set_attr_of) = &self.set_attr_of {
            return set_attr_of(change, caller);
        }
        let mut owner = self.owner.lock();
        let owned = owner.as_mut().ok_or(Errno::EPERM)?;
        let mut changed = owned.clone();
        changed.apply(change, caller, false)?;
        // Linux's hugetlbfs does not check F_SEAL_EXEC on chmod (only shmem does).
        let exec_sealed = self.seals() & seal::EXEC != 0 && self.object.hugetlb().is_none();
        if exec_sealed && (changed.mode ^ owned.mode) & 0o111 != 0 {
            return Err(Errno::EPERM);
        }
        self.mode.store(changed.mode, Ordering::Relaxed);
        *owned = changed;
        Ok(())
    }

    /// An open description of a named file over `object` whose attributes `stat_of`
    /// gives (a tmpfs file).
    pub fn named(object: Arc<FileObject>, stat_of: StatOf) -> Memfd {
        Memfd {
            stat_of: Some(stat_of),
            ..Memfd::new(object)
        }
    }

    /// Reads at `offset`; a page that must be waited for answers EAGAIN (the wait is
    /// parked for [`File::poll`]).
    fn read_at(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        loop {
            match self.try_read_at(buf, count, offset) {
                // The wait was over already: at once again.
                Err(Errno::EINTR) => continue,
                other => return other,
            }
        }
    }

    fn try_read_at(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        let n = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(MAX_IO_BYTES);
        let mut chunk = [0u8; CHUNK_BYTES];
        let mut got = 0usize;
        while got < n {
            let want = (n - got).min(CHUNK_BYTES);
            let at = offset + got as u64;
            let read = match self.object.hugetlb() {
                Some(pages) => pages.read_at(at, &mut chunk[..want]),
                None => match self.object.read_at(at, &mut chunk[..want]) {
                    Ok(read) => read,
                    Err(_) if got > 0 => break,
                    // A page in swap (or no frame yet): wait, then read again.
                    Err(PageError::Wait(wait)) => return self.page_wait.park(wait),
                    Err(_) => return Err(Errno::EIO),
                },
            };
            copy_to_user(buf + got as u64, &chunk[..read])?;
            got += read;
            if read < want {
                break; // the end of the file
            }
        }
        Ok(got as u64)
    }

    /// The seals in force.
    pub fn seals(&self) -> u32 {
        // SeqCst: paired with the writable-mapping count (see `add_seals`).
        self.seals.load(Ordering::SeqCst)
    }

    /// Whether writes through descriptors and new writable shared mappings are
    /// refused (`WRITE` or `FUTURE_WRITE`).
    pub fn write_sealed(&self) -> bool {
        self.seals() & (seal::WRITE | seal::FUTURE_WRITE) != 0
    }

    /// `F_ADD_SEALS`: adds `seals` (`EXEC` on an executable file brings every write
    /// seal with it), where `writable_mapping()` says whether a writable
    /// shared mapping of the file exists (asked only when `WRITE` is added). EINVAL for
    /// an unknown seal, EPERM once `SEAL` is set, EBUSY for `WRITE` while mapped
    /// writable. The seals are set before the mapping check (and taken back if it
    /// finds one), so an `mmap` that reads them afterwards is refused; `mmap` counts
    /// its mapping before reading the seals, so one of the two sees the other.
    pub fn add_seals(&self, seals: u32, writable_mapping: impl Fn() -> bool) -> SysResult<()> {
        if seals & !seal::ALL != 0 {
            return Err(Errno::EINVAL);
        }
        // Sealing an executable file's exec bits seals its writes too (W^X from then
        // on), as Linux does.
        let seals = if seals & seal::EXEC != 0 && self.mode.load(Ordering::Relaxed) & 0o111 != 0 {
            seals | seal::SHRINK | seal::GROW | seal::WRITE | seal::FUTURE_WRITE
        } else {
            seals
        };
        // Under the object's seal gate: a hole punch in flight (`fallocate`,
        // `MADV_REMOVE` through any mapping) finishes first, and none punches once a
        // write seal is in (Linux holds the inode lock for both).
        self.object.seal_writes_with(|| {
            let mut old = self.seals();
            loop {
                if old & seal::SEAL != 0 {
                    return Err(Errno::EPERM);
                }
                match self.seals.compare_exchange(
                    old,
                    old | seals,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => break,
                    Err(now) => old = now,
                }
            }
            if seals & seal::WRITE != 0 && old & seal::WRITE == 0 && writable_mapping() {
                self.seals.fetch_and(!(seals & !old), Ordering::AcqRel);
                return Err(Errno::EBUSY);
            }
            // The object learns it too: `MADV_REMOVE` finds it through a mapping, not
            // through this file.
            Ok(seals & (seal::WRITE | seal::FUTURE_WRITE) != 0)
        })
    }

    /// EPERM for a write of `count` bytes at `offset` the seals refuse.
    fn check_write_seals(&self, offset: u64, count: u64) -> SysResult<()> {
        let seals = self.seals();
        if seals & (seal::WRITE | seal::FUTURE_WRITE) != 0 {
            return Err(Errno::EPERM);
        }
        if seals & seal::GROW != 0 && offset.saturating_add(count) > self.object.size_bytes() {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// The object under the file (its pages).
    pub fn object(&self) -> &Arc<FileObject> {
        &self.object
    }

    /// `fallocate(mode, offset, len)` on a shared-memory file (a tmpfs file or a
    /// memfd, not a hugetlb one), as Linux's `shmem_fallocate`, the system call's
    /// own checks passed: EOPNOTSUPP for a mode other than `KEEP_SIZE` and
    /// `PUNCH_HOLE | KEEP_SIZE`; a punch under `F_SEAL_WRITE`/`F_SEAL_FUTURE_WRITE`,
    /// or an allocation past the end under `F_SEAL_GROW`, is EPERM. Else the work,
    /// as a future (an allocation may wait for reclaim, a punch for a page in swap):
    /// see [`shmem_allocate`] and [`shmem_punch`].
    pub fn fallocate_shmem(
        &self,
        mode: u32,
        offset: u64,
        len: u64,
    ) -> SysResult<core::pin::Pin<Box<dyn core::future::Future<Output = SysResult<u64>> + Send>>>
    {
        use super::falloc::{KEEP_SIZE, PUNCH_HOLE};
        if mode & !(KEEP_SIZE | PUNCH_HOLE) != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        // The caller checked that it stays below 2^63.
        let end = offset + len;
        let object = self.object.clone();
        if mode & PUNCH_HOLE != 0 {
            if self.write_sealed() {
                return Err(Errno::EPERM);
            }
            // Checked again with the punch, in one step against `F_ADD_SEALS`.
            return Ok(Box::pin(shmem_punch(object, offset, end)));
        }
        if self.seals() & seal::GROW != 0 && end > object.size_bytes() {
            return Err(Errno::EPERM);
        }
        let grow = mode & KEEP_SIZE == 0;
        Ok(Box::pin(shmem_allocate(object, offset, end, grow)))
    }

    /// Writes at `offset`, as [`read_at`](Self::read_at) reads.
    fn write_at(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        loop {
            match self.try_write_at(buf, count, offset) {
                Err(Errno::EINTR) => continue,
                other => return other,
            }
        }
    }

    fn try_write_at(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        // hugetlbfs has no write(2): its pages are written through mappings.
        if self.object.hugetlb().is_some() {
            return Err(Errno::EINVAL);
        }
        let n = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(MAX_IO_BYTES);
        // The seal check and the write in one step against F_ADD_SEALS.
        self.object.write_under_seal_gate(|| {
            self.check_write_seals(offset, n as u64)?;
            self.write_unsealed(buf, n, offset)
        })
    }

    /// The copy of `n` bytes from `buf` to `offset`, the seals checked.
    fn write_unsealed(&self, buf: u64, n: usize, offset: u64) -> SysResult<u64> {
        let mut chunk = [0u8; CHUNK_BYTES];
        let mut done = 0usize;
        while done < n {
            let len = (n - done).min(CHUNK_BYTES);
            match copy_from_user(&mut chunk[..len], buf + done as u64) {
                Ok(()) => {}
                Err(_) if done > 0 => break,
                Err(e) => return Err(e),
            }
            match self.object.write_at(offset + done as u64, &chunk[..len]) {
                Ok(put) => done += put,
                Err(PageError::Wait(wait)) if done == 0 => return self.page_wait.park(wait),
                Err(_) if done > 0 => break,
                Err(_) => return Err(Errno::EIO),
            }
        }
        Ok(done as u64)
    }
}

impl File for Memfd {
    fn proc_name(&self) -> alloc::string::String {
        self.object.info().path.clone()
    }

    fn poll(&self, waker: Option<&core::task::Waker>) -> u16 {
        self.page_wait.poll(waker)
    }

    /// A regular file: a wait for a page (read back from swap) is waited out
    /// whatever `O_NONBLOCK` says.
    fn always_blocks(&self) -> bool {
        true
    }

    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        let got = self.read_at(buf, count, *pos)?;
        *pos += got;
        Ok(got)
    }

    fn write(&self, buf: u64, count: u64) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        if self.append.load(Ordering::Relaxed) {
            *pos = self.object.size_bytes();
        }
        let done = self.write_at(buf, count, *pos)?;
        *pos += done;
        Ok(done)
    }

    fn pread(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        self.read_at(buf, count, offset)
    }

    fn pwrite(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        self.write_at(buf, count, offset)
    }

    fn seek(&self, offset: i64, whence: Whence) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        *pos = seek_position(*pos, self.object.size_bytes(), whence, offset)?;
        Ok(*pos)
    }

    fn mmap_object(&self) -> SysResult<Arc<FileObject>> {
        Ok(self.object.clone())
    }

    fn status_flags_changed(&self, status: u32) {
        let append = status & super::flags::O_APPEND != 0;
        self.append.store(append, Ordering::Relaxed);
    }

    fn stat(&self) -> Stat {
        if let Some(stat_of) = &self.stat_of {
            return stat_of(self.object.size_bytes());
        }
        let mode = self.mode.load(Ordering::Relaxed);
        let mut stat =
            Stat::regular(mode, self.object.size_bytes()).with_shmem_blocks(&self.object);
        if let Some(owned) = &*self.owner.lock() {
            stat.uid = owned.uid;
            stat.gid = owned.gid;
        }
        stat.at(super::stat::encode_dev(0, 2), self.ino)
    }

    /// A named file's goes to its inode; a memfd's follows [`super::attrs`], and
    /// with `F_SEAL_EXEC` a change of any exec bit is EPERM, as Linux's shmem (a
    /// hugetlb memfd's exec bits change regardless, as Linux's hugetlbfs lets them).
    fn chmod(&self, mode: u32, caller: &super::Caller) -> SysResult<()> {
        self.set_attr(SetAttr::Mode(mode), caller)
    }

    fn chown(&self, uid: Option<u32>, gid: Option<u32>, caller: &super::Caller) -> SysResult<()> {
        self.set_attr(SetAttr::Owner(uid, gid), caller)
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }

    /// A hugetlb file's, as Linux's hugetlbfs: `PUNCH_HOLE` (refused under
    /// `F_SEAL_WRITE`/`FUTURE_WRITE`) zeroes the partial pages at the edges and
    /// empties the whole ones, unmapped from every mapping, shared or private;
    /// without it, the range's missing pages are allocated (ENOSPC when the pool runs
    /// out, those allocated kept; EPERM past the end under `F_SEAL_GROW`) and the
    /// size grows to the range's end unless `KEEP_SIZE`. A shared-memory file's
    /// goes through [`fallocate_shmem`](Memfd::fallocate_shmem) (the system call
    /// takes that path), not this one: EOPNOTSUPP here.
    fn fallocate(&self, mode: u32, offset: u64, len: u64) -> SysResult<()> {
        use super::falloc::{KEEP_SIZE, PUNCH_HOLE};
        let Some(pages) = self.object.hugetlb() else {
            return Err(Errno::EOPNOTSUPP);
        };
        if mode & !(KEEP_SIZE | PUNCH_HOLE) != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        // The caller checked that it stays below 2^63.
        let end = offset + len;
        let page = pages.page_bytes();
        if mode & PUNCH_HOLE != 0 {
            // The seal check and the punch in one step against `F_ADD_SEALS`.
            let punched = self
                .object
                .punch_unless_sealed(|| pages.punch_bytes(offset, end));
            return punched.ok_or(Errno::EPERM);
        }
        if self.seals() & seal::GROW != 0 && end > self.object.size_bytes() {
            return Err(Errno::EPERM);
        }
        pages
            .allocate(offset / page, end.div_ceil(page), mm::frame::Policy::Local)
            .map_err(|_| Errno::ENOSPC)?;
        if mode & KEEP_SIZE == 0 {
            self.object.grow_size(end);
        }
        Ok(())
    }

    fn truncate(&self, length: u64) -> SysResult<()> {
        // A hugetlb file's size moves in whole huge pages.
        if let Some(pages) = self.object.hugetlb() {
            if !length.is_multiple_of(pages.page_bytes()) {
                return Err(Errno::EINVAL);
            }
        }
        let seals = self.seals();
        let size = self.object.size_bytes();
        if (length < size && seals & seal::SHRINK != 0)
            || (length > size && seals & seal::GROW != 0)
        {
            return Err(Errno::EPERM);
        }
        self.object.set_size(length);
        Ok(())
    }
}

/// Reclaim rounds an allocation waits through without getting a frame before it gives
/// up (ENOMEM).
const FALLOC_FRUITLESS_ROUNDS: u32 = 4;

/// Allocates the pages of `[offset, end)` of `object` (zeroed; those there already
/// stay), waiting for reclaim while it frees frames, then grows the size to `end` if
/// `grow`. ENOMEM when memory runs out: the pages this call added go again and the
/// size is as it was.
pub async fn shmem_allocate(
    object: Arc<FileObject>,
    offset: u64,
    end: u64,
    grow: bool,
) -> SysResult<u64> {
    use mm::pagecache::{FallocStep, Fallocation};
    let page = mm::frame::PAGE_SIZE;
    let mut alloc = Fallocation::new(offset / page, end.div_ceil(page));
    let mut fruitless = 0;
    loop {
        let before = alloc.next_index();
        match object.falloc_step(&mut alloc) {
            FallocStep::Done => break,
            FallocStep::Wait(round) => {
                fruitless = if alloc.next_index() == before {
                    fruitless + 1
                } else {
                    0
                };
                if fruitless > FALLOC_FRUITLESS_ROUNDS {
                    object.falloc_undo(&alloc);
                    return Err(Errno::ENOMEM);
                }
                round.await;
            }
            FallocStep::NoMemory => {
                object.falloc_undo(&alloc);
                return Err(Errno::ENOMEM);
            }
        }
    }
    if grow {
        object.grow_size(end);
    }
    Ok(0)
}

/// Punches a hole over `[offset, end)` of `object`: the bytes of pages the range
/// covers in part are zeroed (a page in swap is read back first), the whole pages
/// are freed (swap slots too) and unmapped from every shared mapping and from the
/// private mappings that map them (their private copies stay). The size stays. EPERM
/// once the object's writes are sealed: the check and the punch are one step against
/// `F_ADD_SEALS` (`FileObject::punch_hole_bytes`).
pub async fn shmem_punch(object: Arc<FileObject>, offset: u64, end: u64) -> SysResult<u64> {
    use mm::pagecache::PunchError;
    loop {
        match object.punch_hole_bytes(offset, end) {
            Ok(_) => return Ok(0),
            Err(PunchError::Sealed) => return Err(Errno::EPERM),
            Err(PunchError::Page(PageError::Wait(wait))) => wait.await,
            Err(PunchError::Page(PageError::OutOfMemory)) => return Err(Errno::ENOMEM),
            Err(PunchError::Page(_)) => return Err(Errno::EIO),
        }
    }
}
