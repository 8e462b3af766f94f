//! The page cache: a [`FileObject`] is a mappable file (an id, a size, a
//! [`FileBacking`]) with its [`PageCache`] of resident pages. File-backed faults and
//! `MAP_SHARED` mappings reach pages only through [`FileObject::get_page`]; anonymous
//! shared memory is a file object over [`ZeroBacking`] ("shmem"), so fork shares it.
//!
//! The seam for later work: readahead grows [`FileObject::read_ahead`], writeback and
//! eviction walk the cache, and an asynchronous backing turns a miss into
//! a [`FaultFuture`] the way a concurrent fill does today.

mod backing;
mod cache;

pub use backing::{FileBacking, IoError, SliceBacking, ZeroBacking};
pub use cache::{FillGuard, Lookup, PageCache};

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::fault::{FaultFuture, WaitReason};
use crate::frame::{Pfn, PAGE_SIZE};
use crate::phys::{AllocFailure, Frames, PAGE_BYTES};

/// Identifies a file object (the inode number for real files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u64);

/// First id handed to anonymous shared-memory objects, far from inode numbers.
const SHMEM_ID_BASE: u64 = 1 << 62;
static NEXT_SHMEM_ID: AtomicU64 = AtomicU64::new(SHMEM_ID_BASE);

/// What kind of object a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file (its pages count as `RssFile`).
    Regular,
    /// Shared memory (its pages count as `RssShmem`).
    Shmem,
}

/// How `/proc/<pid>/maps` names a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// The path (`"/dev/zero (deleted)"` for anonymous shared memory).
    pub path: String,
    /// Device major number.
    pub dev_major: u32,
    /// Device minor number.
    pub dev_minor: u32,
    /// Inode number.
    pub inode: u64,
}

/// Why a page of a file could not be provided.
#[derive(Debug)]
pub enum PageError {
    /// The page lies wholly beyond the end of the file (`SIGBUS`).
    BeyondEof,
    /// The backing store failed (`SIGBUS`).
    Io,
    /// No frame for it.
    OutOfMemory,
    /// Another fault is filling it, or a frame must be waited for.
    Wait(FaultFuture),
}

/// A mappable file with its page cache.
pub struct FileObject {
    id: FileId,
    kind: FileKind,
    size_bytes: AtomicU64,
    backing: Box<dyn FileBacking>,
    info: FileInfo,
    cache: PageCache,
}

impl FileObject {
    /// A regular file of `size_bytes` over `backing`.
    pub fn new(
        id: FileId,
        info: FileInfo,
        size_bytes: u64,
        backing: Box<dyn FileBacking>,
        frames: Arc<Frames>,
    ) -> Arc<FileObject> {
        Arc::new(FileObject {
            id,
            kind: FileKind::Regular,
            size_bytes: AtomicU64::new(size_bytes),
            backing,
            info,
            cache: PageCache::new(frames),
        })
    }

    /// An in-memory file (an initramfs entry) holding `data`.
    pub fn from_bytes(
        id: FileId,
        path: &str,
        data: impl Into<Arc<[u8]>>,
        frames: Arc<Frames>,
    ) -> Arc<FileObject> {
        let backing = SliceBacking::new(data);
        let info = FileInfo {
            path: String::from(path),
            dev_major: 0,
            dev_minor: 1,
            inode: id.0,
        };
        let size = backing.len_bytes();
        FileObject::new(id, info, size, Box::new(backing), frames)
    }

    /// Anonymous shared memory of `size_bytes` (what `MAP_SHARED | MAP_ANONYMOUS`
    /// maps).
    pub fn new_shmem(size_bytes: u64, frames: Arc<Frames>) -> Arc<FileObject> {
        Self::new_shmem_at("/dev/zero (deleted)", size_bytes, frames)
    }

    /// An empty `memfd_create(name)` file: shared memory that /proc shows as Linux
    /// does, `/memfd:NAME (deleted)`.
    pub fn new_memfd(name: &str, frames: Arc<Frames>) -> Arc<FileObject> {
        Self::new_shmem_at(&alloc::format!("/memfd:{name} (deleted)"), 0, frames)
    }

    /// An empty shared-memory file that has a name (a tmpfs file): /proc shows
    /// `path` as it is.
    pub fn new_shmem_named(path: &str, frames: Arc<Frames>) -> Arc<FileObject> {
        Self::new_shmem_at(path, 0, frames)
    }

    fn new_shmem_at(path: &str, size_bytes: u64, frames: Arc<Frames>) -> Arc<FileObject> {
        let id = FileId(NEXT_SHMEM_ID.fetch_add(1, Ordering::Relaxed));
        Arc::new(FileObject {
            id,
            kind: FileKind::Shmem,
            size_bytes: AtomicU64::new(size_bytes),
            backing: Box::new(ZeroBacking),
            info: FileInfo {
                path: String::from(path),
                dev_major: 0,
                dev_minor: 1,
                inode: id.0 - SHMEM_ID_BASE + 1,
            },
            cache: PageCache::new(frames),
        })
    }

    /// The id.
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Regular file or shared memory.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// The naming information.
    pub fn info(&self) -> &FileInfo {
        &self.info
    }

    /// The size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    /// Changes the size; pages wholly beyond the new end leave the cache (mappings
    /// keep the frames they hold until they are unmapped).
    ///
    /// Shrinking into a cached page zeroes that page past the new end, so a later
    /// growth reads zeros there (as Linux's truncate does).
    pub fn set_size(&self, size_bytes: u64) {
        let old = self.size_bytes.swap(size_bytes, Ordering::AcqRel);
        let first_gone = size_bytes.div_ceil(PAGE_SIZE);
        self.cache.remove_range(first_gone, u64::MAX);
        let in_page = (size_bytes % PAGE_SIZE) as usize;
        if size_bytes < old && in_page != 0 {
            if let Lookup::Hit(pfn) = self.cache.get(size_bytes / PAGE_SIZE) {
                let zeros = [0u8; PAGE_BYTES];
                self.cache.frames().write(pfn, in_page, &zeros[in_page..]);
                self.cache.frames().put(pfn);
            }
        }
    }

    /// The page cache.
    pub fn cache(&self) -> &PageCache {
        &self.cache
    }

    /// Whether page `index` lies within the file.
    pub fn page_in_file(&self, index: u64) -> bool {
        index < self.size_bytes().div_ceil(PAGE_SIZE)
    }

    /// The frame of page `index`, with one reference taken for the caller: from the
    /// cache on a hit, read from the backing on a miss. A page another fault is
    /// filling is waited for ([`PageError::Wait`]), never read twice.
    pub fn get_page(&self, index: u64) -> Result<Pfn, PageError> {
        self.get_page_traced(index).map(|(pfn, _)| pfn)
    }

    /// Like [`get_page`](Self::get_page), also telling whether the page was read
    /// from the backing (a major fault) rather than found in the cache.
    pub fn get_page_traced(&self, index: u64) -> Result<(Pfn, bool), PageError> {
        loop {
            if !self.page_in_file(index) {
                return Err(PageError::BeyondEof);
            }
            match self.cache.get(index) {
                Lookup::Hit(pfn) => return Ok((pfn, false)),
                Lookup::Filling(c) => {
                    let reason = WaitReason::PageLocked {
                        file: self.id,
                        index,
                    };
                    return Err(PageError::Wait(FaultFuture::new(reason, c)));
                }
                Lookup::Miss => {}
            }
            let Some(guard) = self.cache.begin_fill(index) else {
                continue;
            };
            let pfn = self.fill(index)?;
            // The caller's reference, taken before the page is published so that a
            // concurrent removal cannot free it under us.
            self.cache.frames().get(pfn);
            guard.finish(pfn);
            return Ok((pfn, true));
        }
    }

    /// Reads page `index` from the backing into a new frame (one reference).
    fn fill(&self, index: u64) -> Result<Pfn, PageError> {
        let frames = self.cache.frames();
        let va_hint = index * PAGE_SIZE;
        let alloc_error = |e| match e {
            AllocFailure::OutOfMemory => PageError::OutOfMemory,
            AllocFailure::Wait(f) => PageError::Wait(f),
        };
        if self.backing.reads_zero() {
            return frames.alloc_zeroed(va_hint).map_err(alloc_error);
        }
        let pfn = frames.alloc(va_hint).map_err(alloc_error)?;
        let mut buf: Box<[u8; PAGE_BYTES]> = Box::new([0; PAGE_BYTES]);
        if self.backing.read_page(index, &mut buf).is_err() {
            frames.put(pfn);
            return Err(PageError::Io);
        }
        frames.write(pfn, 0, &buf[..]);
        Ok(pfn)
    }

    /// Brings pages `[first, first + count)` into the cache (`MADV_WILLNEED`,
    /// readahead); stops at the end of the file or the first failure. Returns the
    /// pages now resident in the range.
    pub fn read_ahead(&self, first: u64, count: u64) -> u64 {
        let mut resident = 0;
        for index in first..first.saturating_add(count) {
            match self.get_page(index) {
                Ok(pfn) => {
                    self.cache.frames().put(pfn);
                    resident += 1;
                }
                Err(PageError::Wait(_)) => resident += 1,
                Err(_) => break,
            }
        }
        resident
    }

    /// Drops pages `[first, first + count)` from the cache: for shared memory their
    /// contents are gone (`MADV_REMOVE`, a hole punch).
    pub fn punch_hole(&self, first: u64, count: u64) -> u64 {
        if count == 0 {
            return 0;
        }
        self.cache
            .remove_range(first, first.saturating_add(count - 1))
    }

    /// Copies bytes of the file at `offset` into `buf` through the cache (stops at
    /// the end of the file); returns the bytes read.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, PageError> {
        let size = self.size_bytes();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            if pos >= size {
                break;
            }
            let in_page = (pos % PAGE_SIZE) as usize;
            let n = (PAGE_BYTES - in_page)
                .min(buf.len() - done)
                .min((size - pos) as usize);
            let pfn = self.get_page(pos / PAGE_SIZE)?;
            self.cache
                .frames()
                .read(pfn, in_page, &mut buf[done..done + n]);
            self.cache.frames().put(pfn);
            done += n;
        }
        Ok(done)
    }
}

impl FileObject {
    /// Copies `data` into the file at `offset` through the cache, growing the file to
    /// cover it (shared memory: `write(2)` on a memfd); returns the bytes written.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<usize, PageError> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(PageError::BeyondEof)?;
        if end > self.size_bytes() {
            self.size_bytes.fetch_max(end, Ordering::AcqRel);
        }
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let in_page = (pos % PAGE_SIZE) as usize;
            let n = (PAGE_BYTES - in_page).min(data.len() - done);
            let pfn = self.get_page(pos / PAGE_SIZE)?;
            self.cache
                .frames()
                .write(pfn, in_page, &data[done..done + n]);
            self.cache.frames().put(pfn);
            done += n;
        }
        Ok(done)
    }
}

impl core::fmt::Debug for FileObject {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FileObject")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("size_bytes", &self.size_bytes())
            .field("path", &self.info.path)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phys::soft::SoftFrames;
    use alloc::vec::Vec;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn get_page_reads_once_and_caches() {
        let soft = SoftFrames::new();
        let frames = Frames::new(soft.clone());
        let f = FileObject::from_bytes(
            FileId(5),
            "/bin/x",
            data(3 * PAGE_BYTES + 100),
            frames.clone(),
        );
        let p = f.get_page(1).unwrap();
        let q = f.get_page(1).unwrap();
        assert_eq!(p, q);
        assert_eq!(frames.count(p), 3);
        let mut b = [0u8; 4];
        frames.read(p, 0, &mut b);
        assert_eq!(
            b,
            [80, 81, 82, 83],
            "page 1 starts at byte 4096 of the file"
        );
        frames.put(p);
        frames.put(q);
        assert!(matches!(f.get_page(4), Err(PageError::BeyondEof)));
        let last = f.get_page(3).unwrap();
        frames.put(last);
        let mut buf = [0u8; 200];
        assert_eq!(f.read_at(3 * PAGE_SIZE, &mut buf).unwrap(), 100);
        assert_eq!(&buf[..100], &data(3 * PAGE_BYTES + 100)[3 * PAGE_BYTES..]);
        assert_eq!(f.cache().len(), 2);
        assert_eq!(f.read_ahead(0, 10), 4);
        assert_eq!(f.cache().len(), 4);
        f.set_size(PAGE_SIZE + 1);
        assert_eq!(f.cache().len(), 2);
        drop(f);
        assert_eq!(soft.live(), 0);
    }

    #[test]
    fn concurrent_fill_is_a_wait() {
        let soft = SoftFrames::new();
        let frames = Frames::new(soft.clone());
        let f = FileObject::new_shmem(4 * PAGE_SIZE, frames.clone());
        let guard = f.cache().begin_fill(2).unwrap();
        let Err(PageError::Wait(fut)) = f.get_page(2) else {
            panic!("expected a wait")
        };
        assert_eq!(
            fut.reason(),
            WaitReason::PageLocked {
                file: f.id(),
                index: 2
            }
        );
        drop(guard);
        assert!(fut.is_ready());
        let p = f.get_page(2).unwrap();
        frames.put(p);
        assert_eq!(f.punch_hole(0, 4), 1);
        assert_eq!(f.kind(), FileKind::Shmem);
        assert_eq!(f.info().path, "/dev/zero (deleted)");
        let m = FileObject::new_memfd("jit", frames.clone());
        assert_eq!(m.info().path, "/memfd:jit (deleted)");
        assert_eq!(m.kind(), FileKind::Shmem);
        drop(f);
        assert_eq!(soft.live(), 0);
    }
}

#[cfg(test)]
mod write_tests {
    use super::*;
    use crate::phys::{soft::SoftFrames, Frames};

    #[test]
    fn write_at_grows_shmem_and_reads_back() {
        let frames = Frames::new(SoftFrames::new());
        let file = FileObject::new_shmem(0, frames);
        assert_eq!(file.write_at(4090, b"hello, world").unwrap(), 12);
        assert_eq!(file.size_bytes(), 4102);
        let mut buf = [0u8; 12];
        assert_eq!(file.read_at(4090, &mut buf).unwrap(), 12);
        assert_eq!(&buf, b"hello, world");
        let mut head = [1u8; 8];
        file.read_at(0, &mut head).unwrap();
        assert_eq!(head, [0u8; 8], "the hole before the write reads as zeroes");
    }

    #[test]
    fn shrinking_zeroes_the_cut_tail_of_a_page() {
        let frames = Frames::new(SoftFrames::new());
        let file = FileObject::new_shmem_named("/tmp/x", frames);
        file.write_at(0, b"hello").unwrap();
        file.set_size(3);
        file.set_size(4096);
        let mut buf = [1u8; 5];
        assert_eq!(file.read_at(0, &mut buf).unwrap(), 5);
        assert_eq!(&buf, b"hel\0\0");
        assert_eq!(file.info().path, "/tmp/x");
    }
}
