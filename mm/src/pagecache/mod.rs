//! The page cache: a [`FileObject`] is a mappable file (an id, a size, a
//! [`FileBacking`]) with its [`PageCache`] of resident pages. File-backed faults and
//! `MAP_SHARED` mappings reach pages only through [`FileObject::get_page`]; anonymous
//! shared memory is a file object over [`ZeroBacking`] ("shmem"), so fork shares it.
//!
//! The seam for later work: readahead grows [`FileObject::read_ahead`], writeback and
//! eviction walk the cache, and an asynchronous backing turns a miss into
//! a [`FaultFuture`] the way a concurrent fill does today.

mod backing;
pub mod blockmap;
mod cache;
pub mod disk;
pub mod ext4map;
pub mod fault_readahead;
pub mod file_id;
pub mod readahead;
mod shmem_falloc;
mod shmem_swap;

pub use backing::{FileBacking, IoError, SliceBacking, ZeroBacking};
pub(crate) use cache::MigrationLock;
pub use cache::{FillGuard, Lookup, PageCache};
pub use disk::{DiskPages, PageReader, PagesFuture};
pub use file_id::FileId;
pub use shmem_falloc::{
    hole_punches, hole_unmap_hook, set_hole_unmap_hook, FallocStep, Fallocation, HoleUnmapHook,
    PunchError, PunchedPages,
};

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::addr::VirtAddr;
use crate::fault::wait::Completion;
use crate::swap::Spawner;

use crate::fault::wait::{FaultFuture, WaitReason};
use crate::frame::{Pfn, PAGE_SIZE};
use crate::phys::{AllocFailure, Frames, PAGE_BYTES};

/// The path anonymous shared memory shows (as on Linux).
const ANON_SHMEM_PATH: &str = "/dev/zero (deleted)";

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

/// Pages a fault on a file with asynchronous I/O reads around the faulting page
/// (Linux's default 128 KiB read-around).
pub const FAULT_READ_PAGES: u64 = 32;

/// Where a file's missing pages come from.
enum Source {
    /// Copied synchronously (memory-backed files).
    Backing(Box<dyn FileBacking>),
    /// Read by I/O tasks; faults and reads wait for them.
    Reader(AsyncIo),
}

/// A file's asynchronous reads: who reads and who runs the tasks.
struct AsyncIo {
    reader: Arc<dyn PageReader>,
    spawner: Arc<dyn Spawner>,
    /// Read requests started (runs of pages).
    reads: AtomicU64,
    /// Pages whose last read failed: the next access gets the error (once).
    failed: spin::Mutex<BTreeSet<u64>>,
    /// Pages whose last read found no frame to land in (reclaim had given up): the
    /// next access asks the allocator before reading again (see
    /// [`FileObject::check_read`]).
    starved: spin::Mutex<BTreeSet<u64>>,
}

/// A mappable file with its page cache.
pub struct FileObject {
    id: FileId,
    kind: FileKind,
    size_bytes: AtomicU64,
    source: Source,
    info: FileInfo,
    cache: PageCache,
    /// The object itself, for the I/O tasks it starts.
    me: Weak<FileObject>,
    /// Where reclaim looks for clean pages to drop next.
    shrink_cursor: spin::Mutex<u64>,
    /// Where reclaim looks for shared-memory pages to swap out next.
    swap_cursor: spin::Mutex<u64>,
    /// Swapped pages a shrink cut into (page index: bytes kept), zeroed past that
    /// when read back.
    cut_tails: spin::Mutex<alloc::collections::BTreeMap<u64, usize>>,
    /// Shared mappings that may write the file (VMAs with `VM_SHARED`, which a
    /// `MAP_SHARED` mapping of a writable descriptor has even while `PROT_READ`), plus
    /// the `mmap` calls that are making one ([`WritableMapPin`]): Linux's
    /// `i_mmap_writable`, what `F_SEAL_WRITE` must find at zero.
    writable_maps: AtomicU64,
    /// Writes are sealed (`F_SEAL_WRITE` or `F_SEAL_FUTURE_WRITE`, which the kernel's
    /// memfd mirrors here): a hole punch by `MADV_REMOVE`, which finds the object
    /// through a mapping and not a descriptor, is refused (see
    /// [`seal_writes`](Self::seal_writes)).
    writes_sealed: core::sync::atomic::AtomicBool,
    /// Hole punches (read side) against the sealing of writes (write side): a punch
    /// checks [`writes_sealed`](Self::writes_sealed) and punches under it, so a seal
    /// waits for the punches in flight and none starts after it (Linux's inode lock,
    /// which both `shmem_fallocate` and `memfd_add_seals` hold).
    seal_gate: spin::RwLock<()>,
    /// VMAs that map the file in any address space's tree (see
    /// [`mapped_vmas`](Self::mapped_vmas)).
    mapped_vmas: AtomicU64,
    /// For a hugetlb file (hugetlbfs, `MFD_HUGETLB`): its huge pages, which stand in
    /// for the page cache (set once, at creation).
    hugetlb: spin::Once<Arc<crate::hugetlb_file::HugetlbFile>>,
}

/// A shared writable mapping being made (see [`FileObject::pin_writable_mapping`]);
/// dropping it takes its count back.
pub struct WritableMapPin(Arc<FileObject>);

impl Drop for WritableMapPin {
    fn drop(&mut self) {
        self.0.writable_mapping_removed();
    }
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
        let source = Source::Backing(backing);
        Self::build(id, FileKind::Regular, info, size_bytes, source, frames)
    }

    /// A regular file of `size_bytes` whose pages `reader` reads by futures, in tasks
    /// `spawner` runs: a miss starts the read and waits for it
    /// ([`PageError::Wait`]) instead of copying.
    pub fn new_async(
        id: FileId,
        info: FileInfo,
        size_bytes: u64,
        reader: Arc<dyn PageReader>,
        spawner: Arc<dyn Spawner>,
        frames: Arc<Frames>,
    ) -> Arc<FileObject> {
        let source = Source::Reader(AsyncIo {
            reader,
            spawner,
            reads: AtomicU64::new(0),
            failed: spin::Mutex::new(BTreeSet::new()),
            starved: spin::Mutex::new(BTreeSet::new()),
        });
        Self::build(id, FileKind::Regular, info, size_bytes, source, frames)
    }

    fn build(
        id: FileId,
        kind: FileKind,
        info: FileInfo,
        size_bytes: u64,
        source: Source,
        frames: Arc<Frames>,
    ) -> Arc<FileObject> {
        Arc::new_cyclic(|me| FileObject {
            id,
            kind,
            size_bytes: AtomicU64::new(size_bytes),
            source,
            info,
            cache: PageCache::new(frames),
            me: me.clone(),
            shrink_cursor: spin::Mutex::new(0),
            swap_cursor: spin::Mutex::new(0),
            cut_tails: spin::Mutex::new(alloc::collections::BTreeMap::new()),
            writable_maps: AtomicU64::new(0),
            writes_sealed: core::sync::atomic::AtomicBool::new(false),
            seal_gate: spin::RwLock::new(()),
            mapped_vmas: AtomicU64::new(0),
            hugetlb: spin::Once::new(),
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
        Self::new_shmem_at(ANON_SHMEM_PATH, size_bytes, frames)
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

    /// An empty hugetlb file named `path` in /proc (`/memfd:NAME (deleted)` for a
    /// memfd, the hugetlbfs path otherwise) whose pages are `pages`'.
    pub fn new_hugetlb(
        path: &str,
        pages: Arc<crate::hugetlb_file::HugetlbFile>,
        frames: Arc<Frames>,
    ) -> Arc<FileObject> {
        let object = Self::new_shmem_at(path, 0, frames);
        object.hugetlb.call_once(|| pages);
        object
    }

    /// The huge pages of a hugetlb file.
    pub fn hugetlb(&self) -> Option<&Arc<crate::hugetlb_file::HugetlbFile>> {
        self.hugetlb.get()
    }

    fn new_shmem_at(path: &str, size_bytes: u64, frames: Arc<Frames>) -> Arc<FileObject> {
        let id = FileId(NEXT_SHMEM_ID.fetch_add(1, Ordering::Relaxed));
        let info = FileInfo {
            path: String::from(path),
            dev_major: 0,
            dev_minor: 1,
            inode: id.0 - SHMEM_ID_BASE + 1,
        };
        let source = Source::Backing(Box::new(ZeroBacking));
        let object = Self::build(id, FileKind::Shmem, info, size_bytes, source, frames);
        crate::swap::shmem::register_shmem(&object);
        object
    }

    /// The id.
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Whether this is anonymous shared memory (`MAP_SHARED | MAP_ANONYMOUS`).
    pub fn is_anon_shmem(&self) -> bool {
        self.kind() == FileKind::Shmem && self.info().path == ANON_SHMEM_PATH
    }

    /// Regular file or shared memory.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// The naming information.
    pub fn info(&self) -> &FileInfo {
        &self.info
    }

    /// Shared writable mappings of the file now (VMAs, counted through every split,
    /// merge, move, fork and exit), plus `mmap` calls making one.
    pub fn writable_mappings(&self) -> u64 {
        self.writable_maps.load(Ordering::SeqCst)
    }

    /// One more shared writable mapping (a VMA entered an address space's tree).
    pub(crate) fn writable_mapping_added(&self) {
        self.writable_maps.fetch_add(1, Ordering::SeqCst);
    }

    /// One shared writable mapping fewer (a VMA left an address space's tree).
    pub(crate) fn writable_mapping_removed(&self) {
        let was = self.writable_maps.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(was > 0, "writable mapping count underflow");
    }

    /// VMAs mapping the file now, in every address space's tree (counted as they
    /// enter and leave a tree, through every split, merge, move, fork and exit; a
    /// change counts its new VMAs before it forgets the old ones, so the count never
    /// dips to zero while a VMA maps the file). Zero means no page table maps a page
    /// of the file, and none will map a page no longer in its cache: a hole punch or
    /// truncation then skips the walk over the address spaces.
    pub fn mapped_vmas(&self) -> u64 {
        self.mapped_vmas.load(Ordering::SeqCst)
    }

    /// One more VMA of the file in a tree.
    pub(crate) fn mapping_added(&self) {
        self.mapped_vmas.fetch_add(1, Ordering::SeqCst);
    }

    /// One VMA of the file fewer in a tree.
    pub(crate) fn mapping_removed(&self) {
        let was = self.mapped_vmas.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(was > 0, "mapped VMA count underflow");
    }

    /// Counts a shared writable mapping about to be made, until the pin drops: taken
    /// by `mmap` before it reads the file's seals, so that an `F_SEAL_WRITE` added
    /// meanwhile (which sets the seal, then reads the count) either sees the count or
    /// is seen by the seal check, never neither.
    pub fn pin_writable_mapping(self: &Arc<Self>) -> WritableMapPin {
        self.writable_mapping_added();
        WritableMapPin(self.clone())
    }

    /// The size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    /// Changes the size; unless it grows, pages wholly beyond the new end leave the
    /// cache, and for a shmem object every mapping of them too (private copies
    /// included: see [`truncate_pages`](Self::truncate_pages)).
    ///
    /// Shrinking into a cached page zeroes that page past the new end, so a later
    /// growth reads zeros there (as Linux's truncate does).
    pub fn set_size(&self, size_bytes: u64) {
        if let Some(pages) = self.hugetlb() {
            pages.set_size(size_bytes);
        }
        let old = self.size_bytes.swap(size_bytes, Ordering::AcqRel);
        let first_gone = size_bytes.div_ceil(PAGE_SIZE);
        // Growing keeps the pages `fallocate(KEEP_SIZE)` put past the old end; a
        // change to the same size or below drops them, as Linux's `shmem_setattr`.
        if size_bytes <= old {
            if self.kind() == FileKind::Shmem && self.hugetlb().is_none() {
                // Mappings past the new end go too (SIGBUS there, as on Linux).
                self.truncate_pages(first_gone);
            } else {
                self.cache.remove_range(first_gone, u64::MAX);
            }
        }
        let in_page = (size_bytes % PAGE_SIZE) as usize;
        if size_bytes < old && in_page != 0 {
            let cut = self.cache.cut_tail(size_bytes / PAGE_SIZE, in_page);
            // In swap: cut when it is read back.
            if let cache::TailCut::Swapped = cut {
                self.cut_tails
                    .lock()
                    .entry(size_bytes / PAGE_SIZE)
                    .and_modify(|keep| *keep = (*keep).min(in_page))
                    .or_insert(in_page);
            }
        }
        if size_bytes < old {
            self.cut_tails.lock().retain(|&index, _| index < first_gone);
        }
    }

    /// Grows a hugetlb file to `size_bytes` if it is smaller, keeping any page past
    /// the new end (see [`HugetlbFile::grow_to`](crate::hugetlb_file::HugetlbFile::grow_to));
    /// another file's size only grows, as [`set_size`](Self::set_size) would grow it.
    pub fn grow_size(&self, size_bytes: u64) {
        match self.hugetlb() {
            Some(pages) => {
                pages.grow_to(size_bytes);
                self.size_bytes.fetch_max(size_bytes, Ordering::AcqRel);
            }
            None if size_bytes > self.size_bytes() => self.set_size(size_bytes),
            None => {}
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
                Lookup::Swapped(entry) => {
                    // Read back (or waited for); then look again.
                    self.swap_in(index, entry)?;
                    continue;
                }
                Lookup::Miss => {}
            }
            if let Source::Reader(io) = &self.source {
                self.check_read(io, index)?;
                match self.start_reads(index, FAULT_READ_PAGES) {
                    Some(c) => return Err(PageError::Wait(self.wait_for(index, c))),
                    None => continue,
                }
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
        let Source::Backing(backing) = &self.source else {
            return Err(PageError::Io);
        };
        if backing.reads_zero() {
            return frames
                .alloc_zeroed(VirtAddr::new(va_hint))
                .map_err(alloc_error);
        }
        let pfn = frames.alloc(VirtAddr::new(va_hint)).map_err(alloc_error)?;
        let mut buf: Box<[u8; PAGE_BYTES]> = Box::new([0; PAGE_BYTES]);
        if backing.read_page(index, &mut buf).is_err() {
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
        if matches!(self.source, Source::Reader(_)) {
            // Started, not waited for: every page of the range in the file is resident
            // or on its way.
            self.start_reads(first, count);
            let pages = self.size_bytes().div_ceil(PAGE_SIZE);
            return first.saturating_add(count).min(pages).saturating_sub(first);
        }
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

    /// Drops the pages of `[first, first + count)` no mapping holds
    /// (`POSIX_FADV_DONTNEED`); returns how many.
    pub fn drop_clean_range(&self, first: u64, count: u64) -> u64 {
        if count == 0 {
            return 0;
        }
        self.cache
            .remove_unshared_range(first, first.saturating_add(count - 1))
    }

    /// Drops pages `[first, first + count)` from the cache: for shared memory their
    /// contents are gone. The cache alone: mappings keep what they map (a hole punch
    /// that unmaps them everywhere is [`punch_range`](Self::punch_range)).
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
            let Some(pfn) = self.page_to_read(pos / PAGE_SIZE)? else {
                buf[done..done + n].fill(0); // a hole in shared memory
                done += n;
                continue;
            };
            self.note_referenced(pos / PAGE_SIZE, pfn);
            self.cache
                .frames()
                .read(pfn, in_page, &mut buf[done..done + n]);
            self.cache.frames().put(pfn);
            done += n;
        }
        Ok(done)
    }

    /// The frame [`read_at`](Self::read_at) copies page `index` from (a reference
    /// taken), or `None` for a hole in shared memory: a page never written (or
    /// punched) reads as zeros without a frame, as Linux's `shmem_file_read_iter`
    /// reads `ZERO_PAGE` (`SGP_READ`), so reading a sparse file allocates nothing
    /// (`Shmem`, `st_blocks` and free memory stay). A page being filled or in swap is
    /// waited for as [`get_page`](Self::get_page) waits.
    fn page_to_read(&self, index: u64) -> Result<Option<Pfn>, PageError> {
        if self.kind() == FileKind::Shmem {
            match self.cache.get(index) {
                cache::Lookup::Hit(pfn) => return Ok(Some(pfn)),
                cache::Lookup::Miss => return Ok(None),
                cache::Lookup::Filling(_) | cache::Lookup::Swapped(_) => {}
            }
        }
        self.get_page(index).map(Some)
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
            self.note_referenced(pos / PAGE_SIZE, pfn);
            self.cache
                .frames()
                .write(pfn, in_page, &data[done..done + n]);
            self.cache.frames().put(pfn);
            done += n;
        }
        Ok(done)
    }
}

impl FileObject {
    /// Whether missing pages are read by I/O tasks (a file on a disk).
    pub fn is_async(&self) -> bool {
        matches!(self.source, Source::Reader(_))
    }

    /// Read requests started for this file (runs of pages).
    pub fn reads_started(&self) -> u64 {
        match &self.source {
            Source::Reader(io) => io.reads.load(Ordering::Relaxed),
            Source::Backing(_) => 0,
        }
    }

    /// Before page `index` is read again: what its last read owes the access, once.
    /// `Io` if it failed. If it found no frame, the allocator is asked now: out of
    /// memory goes to the caller (a fault reaches the OOM path instead of starting
    /// the same read forever, each finding no frame), a wait for reclaim is waited
    /// for, and a frame to spare lets the read go again.
    fn check_read(&self, io: &AsyncIo, index: u64) -> Result<(), PageError> {
        if io.failed.lock().remove(&index) {
            return Err(PageError::Io);
        }
        if !io.starved.lock().remove(&index) {
            return Ok(());
        }
        let frames = self.cache.frames();
        match frames.alloc(VirtAddr::new(index * PAGE_SIZE)) {
            Ok(pfn) => {
                frames.put(pfn);
                Ok(())
            }
            Err(AllocFailure::OutOfMemory) => Err(PageError::OutOfMemory),
            Err(AllocFailure::Wait(wait)) => Err(PageError::Wait(wait)),
        }
    }

    fn wait_for(&self, index: u64, completion: Arc<Completion>) -> FaultFuture {
        let reason = WaitReason::PageLocked {
            file: self.id,
            index,
        };
        FaultFuture::new(reason, completion)
    }

    /// Starts reading the missing pages of `[first, first + count)` (clipped to the
    /// file), one request per run the reader can read at once; pages resident or
    /// already being read are skipped. Returns the completion of page `first` when
    /// this call started its read. Does nothing for a file without a reader.
    pub fn start_reads(&self, first: u64, count: u64) -> Option<Arc<Completion>> {
        let Source::Reader(io) = &self.source else {
            return None;
        };
        let me = self.me.upgrade()?;
        let end = first
            .saturating_add(count.max(1))
            .min(self.size_bytes().div_ceil(PAGE_SIZE));
        let mut first_completion = None;
        let mut index = first;
        while index < end {
            let run = io
                .reader
                .run_pages(index, end - index)
                .clamp(1, end - index);
            let mut claimed = Vec::new();
            for i in index..index + run {
                match self.cache.claim(i) {
                    Some(c) => claimed.push(c),
                    None => break,
                }
            }
            if claimed.is_empty() {
                index += 1;
                continue;
            }
            if index == first {
                first_completion = Some(claimed[0].clone());
            }
            let pages = claimed.len() as u64;
            io.reads.fetch_add(1, Ordering::Relaxed);
            let read = io.reader.read_pages(index, pages);
            let file = me.clone();
            let start = index;
            io.spawner.spawn(Box::pin(async move {
                let result = read.await;
                file.finish_reads(start, claimed, result).await;
            }));
            index += pages;
        }
        first_completion
    }

    /// Puts the pages a read brought in into the cache (or marks them failed) and
    /// wakes their waiters.
    async fn finish_reads(
        &self,
        first: u64,
        claimed: Vec<Arc<Completion>>,
        result: Result<crate::block::IoBuf, IoError>,
    ) {
        let Source::Reader(io) = &self.source else {
            return;
        };
        let frames = self.cache.frames().clone();
        let size = self.size_bytes();
        let mut pages = claimed.iter().enumerate();
        if let Ok(data) = &result {
            for (k, completion) in pages.by_ref() {
                let index = first + k as u64;
                let pfn = loop {
                    match frames.alloc(VirtAddr::new(index * PAGE_SIZE)) {
                        Ok(pfn) => break Some(pfn),
                        Err(AllocFailure::Wait(wait)) => wait.await,
                        Err(AllocFailure::OutOfMemory) => break None,
                    }
                };
                let Some(pfn) = pfn else {
                    // No frame, and reclaim gave up: the waiters look again, and the
                    // next access asks the allocator before a new read.
                    io.starved.lock().insert(index);
                    self.cache.abandon(index, completion);
                    continue;
                };
                let bytes = &data[k * PAGE_BYTES..(k + 1) * PAGE_BYTES];
                frames.write(pfn, 0, bytes);
                // Bytes past the end of the file read as zero, whatever the block holds.
                let page_start = index * PAGE_SIZE;
                if size < page_start + PAGE_SIZE {
                    let keep = size.saturating_sub(page_start) as usize;
                    let zeros = [0u8; PAGE_BYTES];
                    frames.write(pfn, keep, &zeros[keep..]);
                }
                self.cache.publish(index, pfn, completion);
            }
            return;
        }
        for (k, completion) in pages {
            let index = first + k as u64;
            io.failed.lock().insert(index);
            self.cache.abandon(index, completion);
        }
    }

    /// Copies bytes at `offset` into `buf` from resident pages only, stopping at the
    /// end of the file or the first page that is not resident. Returns the bytes
    /// copied and the index of the page it stopped at, if one was missing.
    pub fn read_resident(&self, offset: u64, buf: &mut [u8]) -> (usize, Option<u64>) {
        let size = self.size_bytes();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            if pos >= size {
                break;
            }
            let index = pos / PAGE_SIZE;
            let in_page = (pos % PAGE_SIZE) as usize;
            let n = (PAGE_BYTES - in_page)
                .min(buf.len() - done)
                .min((size - pos) as usize);
            let Lookup::Hit(pfn) = self.cache.get(index) else {
                return (done, Some(index));
            };
            self.cache
                .frames()
                .read(pfn, in_page, &mut buf[done..done + n]);
            self.cache.frames().put(pfn);
            done += n;
        }
        (done, None)
    }

    /// What a reader that found page `index` missing waits on: the read in flight,
    /// or one started now for `[index, index + count)`. `Err(Io)` when the last read of
    /// the page failed, `Err(OutOfMemory)` when it found no frame (each reported once);
    /// `Ok(None)` if the page became resident.
    pub fn wait_for_page(&self, index: u64, count: u64) -> Result<Option<FaultFuture>, PageError> {
        if let Source::Reader(io) = &self.source {
            self.check_read(io, index)?;
        }
        loop {
            match self.cache.get(index) {
                Lookup::Hit(pfn) => {
                    self.cache.frames().put(pfn);
                    return Ok(None);
                }
                Lookup::Filling(c) => return Ok(Some(self.wait_for(index, c))),
                Lookup::Swapped(entry) => match self.swap_in(index, entry) {
                    Ok(()) => continue,
                    Err(PageError::Wait(wait)) => return Ok(Some(wait)),
                    Err(e) => return Err(e),
                },
                Lookup::Miss => {}
            }
            if !self.page_in_file(index) {
                return Ok(None);
            }
            if let Some(c) = self.start_reads(index, count) {
                return Ok(Some(self.wait_for(index, c)));
            }
            if !self.is_async() {
                // A synchronous file: bring it in here.
                let pfn = self.get_page(index)?;
                self.cache.frames().put(pfn);
                return Ok(None);
            }
        }
    }

    /// Reclaim: drops up to `max` resident pages no mapping holds whose frames `take`
    /// accepts (a node's), going round the file from where the last call stopped.
    pub fn shrink(&self, max: usize, take: &dyn Fn(Pfn) -> bool) -> usize {
        let mut cursor = self.shrink_cursor.lock();
        self.cache.remove_unshared_some(&mut cursor, max, take)
    }

    /// Drops every resident page no mapping holds (`drop_caches`); returns how many.
    pub fn drop_clean(&self) -> u64 {
        self.cache.remove_unshared()
    }

    /// Reads pages `[first, first + pages)` from the device without the cache
    /// (`O_DIRECT`): neither looks at nor fills it. `InvalidArgument` for a file
    /// without a reader, `NoMemory` when the heap cannot hold the bytes (the buffer is
    /// reserved before the read starts: the caller sizes it).
    pub fn read_direct(&self, first: u64, pages: u64) -> Result<DirectRead, crate::errno::MmError> {
        let Source::Reader(io) = &self.source else {
            return Err(crate::errno::MmError::InvalidArgument);
        };
        let mut out: Vec<u8> = Vec::new();
        usize::try_from(pages)
            .ok()
            .and_then(|p| p.checked_mul(PAGE_BYTES))
            .and_then(|bytes| out.try_reserve_exact(bytes).ok())
            .ok_or(crate::errno::MmError::NoMemory)?;
        let done = Completion::new();
        let result = Arc::new(spin::Mutex::new(None));
        let reader = io.reader.clone();
        let (task_done, task_result) = (done.clone(), result.clone());
        io.spawner.spawn(Box::pin(async move {
            let mut index = first;
            let end = first + pages;
            let mut outcome = Ok(());
            while index < end {
                let run = reader.run_pages(index, end - index).clamp(1, end - index);
                match reader.read_pages(index, run).await {
                    Ok(bytes) => out.extend_from_slice(&bytes),
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
                index += run;
            }
            *task_result.lock() = Some(outcome.map(|()| out.into_boxed_slice()));
            task_done.complete();
        }));
        Ok(DirectRead {
            file: self.id,
            first,
            done,
            result,
        })
    }
}

/// An uncached read in flight ([`FileObject::read_direct`]).
pub struct DirectRead {
    file: FileId,
    first: u64,
    done: Arc<Completion>,
    result: Arc<spin::Mutex<Option<Result<crate::block::IoBuf, IoError>>>>,
}

impl DirectRead {
    /// A future that completes when the bytes are in.
    pub fn wait(&self) -> FaultFuture {
        let reason = WaitReason::PageLocked {
            file: self.file,
            index: self.first,
        };
        FaultFuture::new(reason, self.done.clone())
    }

    /// The bytes (whole pages from the first), once the read is done.
    pub fn take(&self) -> Option<Result<crate::block::IoBuf, IoError>> {
        self.result.lock().take()
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

#[cfg(test)]
mod async_tests {
    use super::blockmap::{BlockMap, Extent};
    use super::*;
    use crate::block::{BlockDevice, RamDisk};
    use crate::phys::soft::SoftFrames;
    use core::future::Future;
    use core::pin::Pin;
    use core::task::{Context, Waker};

    /// Keeps spawned tasks until the test runs them.
    #[derive(Default)]
    pub(super) struct Deferred(spin::Mutex<Vec<Pin<Box<dyn Future<Output = ()> + Send>>>>);

    impl Spawner for Deferred {
        fn spawn(&self, task: Pin<Box<dyn Future<Output = ()> + Send>>) {
            self.0.lock().push(task);
        }
    }

    impl Deferred {
        pub(super) fn run_all(&self) -> usize {
            let tasks = core::mem::take(&mut *self.0.lock());
            let n = tasks.len();
            for mut t in tasks {
                let mut cx = Context::from_waker(Waker::noop());
                while t.as_mut().poll(&mut cx).is_pending() {}
            }
            n
        }
    }

    pub(super) fn disk_file(
        size: u64,
    ) -> (Arc<FileObject>, Arc<Deferred>, Arc<SoftFrames>, Arc<Frames>) {
        let disk = Arc::new(RamDisk::new(2048));
        let bytes: Vec<u8> = (0..2048 * 512).map(|i| (i / 4096) as u8).collect();
        let mut cx = Context::from_waker(Waker::noop());
        let mut w = disk.write(0, bytes.into_boxed_slice());
        while w.as_mut().poll(&mut cx).is_pending() {}
        // Pages 0..8 at device blocks 10..18, page 8 a hole, pages 9.. at 100...
        let map = BlockMap::new(
            4096,
            alloc::vec![
                Extent {
                    logical: 0,
                    physical: 10,
                    blocks: 8
                },
                Extent {
                    logical: 9,
                    physical: 100,
                    blocks: 20
                },
            ],
        )
        .unwrap();
        let soft = SoftFrames::new();
        let frames = Frames::new(soft.clone());
        let spawner = Arc::new(Deferred::default());
        let info = FileInfo {
            path: String::from("/mnt/f"),
            dev_major: 254,
            dev_minor: 16,
            inode: 12,
        };
        let reader = Arc::new(DiskPages::new(disk, map));
        let file = FileObject::new_async(
            FileId(12),
            info,
            size,
            reader,
            spawner.clone(),
            frames.clone(),
        );
        (file, spawner, soft, frames)
    }

    #[test]
    fn a_miss_waits_for_one_read_of_the_run() {
        let (file, spawner, soft, frames) = disk_file(20 * PAGE_SIZE + 5);
        let Err(PageError::Wait(wait)) = file.get_page(2) else {
            panic!("a miss must wait for the device")
        };
        assert!(!wait.is_ready());
        assert!(
            matches!(file.get_page(3), Err(PageError::Wait(_))),
            "in flight"
        );
        assert_eq!(
            spawner.run_all(),
            3,
            "pages 2..8, the hole 8, then 9..21 clipped to the file"
        );
        assert!(wait.is_ready());
        assert_eq!(file.reads_started(), 3);
        let p = file.get_page(2).unwrap();
        let mut b = [0u8; 2];
        frames.read(p, 0, &mut b);
        assert_eq!(b, [12, 12], "page 2 is device block 12");
        frames.put(p);
        assert!(file.cache().remove(8));
        let mut buf = [1u8; 8];
        assert_eq!(file.read_resident(20 * PAGE_SIZE, &mut buf), (5, None));
        assert_eq!(&buf[..5], &[111; 5], "page 20 is device block 100 + 11");
        let mut tail = [1u8; 1];
        let last = file.get_page(20).unwrap();
        frames.read(last, 5, &mut tail);
        assert_eq!(tail, [0], "past the end of the file reads zero");
        frames.put(last);
        assert_eq!(
            file.read_resident(7 * PAGE_SIZE, &mut [0u8; 2 * PAGE_BYTES]),
            (PAGE_BYTES, Some(8))
        );
        let wait = file
            .wait_for_page(8, 1)
            .unwrap()
            .expect("a read of the hole");
        spawner.run_all();
        assert!(wait.is_ready());
        let mut hole = [1u8; 4];
        assert_eq!(file.read_resident(8 * PAGE_SIZE, &mut hole), (4, None));
        assert_eq!(hole, [0; 4]);
        let mapped = file.get_page(9).unwrap();
        let before = file.cache().len();
        assert_eq!(file.drop_clean(), before - 1, "the mapped page stays");
        assert_eq!(file.cache().peek(9), Some(mapped));
        frames.put(mapped);
        drop(file);
        spawner.run_all();
        assert_eq!(soft.live(), 0);
    }

    #[test]
    fn direct_reads_leave_the_cache_alone() {
        let (file, spawner, _soft, _frames) = disk_file(20 * PAGE_SIZE);
        let direct = file.read_direct(7, 3).unwrap();
        assert!(direct.take().is_none());
        spawner.run_all();
        assert!(direct.wait().is_ready());
        let bytes = direct.take().unwrap().unwrap();
        assert_eq!(bytes.len(), 3 * PAGE_BYTES);
        assert_eq!(
            (bytes[0], bytes[PAGE_BYTES], bytes[2 * PAGE_BYTES]),
            (17, 0, 100)
        );
        assert!(file.cache().is_empty());
        file.read_ahead(0, 4);
        spawner.run_all();
        assert_eq!(file.drop_clean_range(1, 2), 2);
        assert_eq!(file.cache().len(), 2);
    }

    #[test]
    fn a_direct_read_too_large_for_the_heap_is_refused_before_it_starts() {
        let (file, spawner, _soft, _frames) = disk_file(20 * PAGE_SIZE);
        for pages in [u64::MAX / 2, 1 << 40] {
            assert_eq!(
                file.read_direct(0, pages).err(),
                Some(crate::errno::MmError::NoMemory)
            );
        }
        spawner.run_all();
        assert!(file.cache().is_empty());
    }

    #[test]
    fn shrinking_goes_round_and_spares_mapped_pages() {
        let (file, spawner, _soft, frames) = disk_file(20 * PAGE_SIZE);
        file.read_ahead(0, 8);
        spawner.run_all();
        let mapped = file.get_page(1).unwrap();
        let all = |_: Pfn| true;
        assert_eq!(file.shrink(3, &all), 3, "pages 0, 2 and 3");
        assert!(file.cache().contains(1) && !file.cache().contains(0));
        assert_eq!(file.shrink(100, &all), 4, "the rest, from the cursor on");
        assert_eq!(file.shrink(100, &all), 0);
        assert_eq!(file.shrink(100, &|_| false), 0);
        assert_eq!(file.cache().len(), 1);
        frames.put(mapped);
        assert_eq!(file.shrink(100, &all), 1, "unmapped now");
    }

    #[test]
    fn a_failed_read_is_reported_once() {
        // A file longer than the map: page 30 lies past the device's end.
        let (file, spawner, _soft, _frames) = disk_file(40 * PAGE_SIZE);
        let _ = file.start_reads(29, 1);
        spawner.run_all();
        assert!(file.cache().contains(29), "a hole");
        let disk = Arc::new(RamDisk::new(8));
        let map = BlockMap::new(
            4096,
            alloc::vec![Extent {
                logical: 0,
                physical: 1000,
                blocks: 1
            }],
        )
        .unwrap();
        let broken = FileObject::new_async(
            FileId(13),
            file.info().clone(),
            PAGE_SIZE,
            Arc::new(DiskPages::new(disk, map)),
            spawner.clone(),
            Frames::new(SoftFrames::new()),
        );
        let Err(PageError::Wait(wait)) = broken.get_page(0) else {
            panic!("expected a wait")
        };
        spawner.run_all();
        assert!(wait.is_ready());
        assert!(matches!(broken.get_page(0), Err(PageError::Io)));
        assert!(
            matches!(broken.get_page(0), Err(PageError::Wait(_))),
            "tried again"
        );
    }

    #[test]
    fn a_read_with_no_frame_reports_out_of_memory_once() {
        // No frame left, and no reclaim to wait for (the allocator says out of
        // memory): the read lands nowhere. Its waiters must hear so, not start the
        // same read forever.
        let (file, spawner, soft, frames) = disk_file(4 * PAGE_SIZE);
        soft.set_limit(0);
        let Err(PageError::Wait(wait)) = file.get_page(1) else {
            panic!("a miss waits for the device")
        };
        spawner.run_all();
        assert!(wait.is_ready(), "abandoned: the waiters woken");
        assert!(!file.cache().contains(1));
        assert!(matches!(file.get_page(1), Err(PageError::OutOfMemory)));
        // The read() path hears it too, for the pages read with it.
        assert!(matches!(
            file.wait_for_page(2, 1),
            Err(PageError::OutOfMemory)
        ));
        // Asked again each time while memory is out, reported once each.
        let _ = file.start_reads(1, 1);
        spawner.run_all();
        assert!(matches!(file.get_page(1), Err(PageError::OutOfMemory)));
        // With memory back, the next access reads the page: no error left over (a
        // page read ahead that found no frame costs nothing once memory is back).
        soft.set_limit(u64::MAX);
        assert!(matches!(file.wait_for_page(3, 1), Ok(Some(_))));
        spawner.run_all();
        let reads = file.reads_started();
        assert!(matches!(file.get_page(1), Err(PageError::Wait(_))));
        assert_eq!(file.reads_started(), reads + 1);
        spawner.run_all();
        let pfn = file.get_page(1).unwrap();
        let mut byte = [0u8; 1];
        frames.read(pfn, 0, &mut byte);
        assert_eq!(byte[0], 11, "page 1 is at device block 11");
        frames.put(pfn);
    }
}
