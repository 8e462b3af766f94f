//! A read-only ext4 filesystem on a virtio disk, through the `ext4-view` crate: names,
//! directories, attributes and symbolic links are read with it (synchronously, its
//! reads served by the block layer), while every regular file's data comes through
//! the page cache: a file is a `FileObject` whose missing pages are read by I/O tasks
//! (`mm::pagecache::DiskPages`, located by the block map `mm::pagecache::ext4map`
//! reads from the inode's extent tree), so a fault or `read` on a page that is not
//! resident parks its thread until the device answers. `read` keeps a readahead
//! window per open file.

use crate::{
    arch::uaccess::copy_to_user,
    vfs::{
        self,
        dir::{with_dots, DirFile},
        pagewait::PageWait,
        path_inode_number, seek_position, Caller, File, Filesystem, Node, OpenRequest, Stat,
        Whence,
    },
    virtio_blk::VirtioBlk,
};
use alloc::{
    boxed::Box,
    collections::BTreeMap,
    format,
    string::{String, ToString},
    sync::Arc,
    vec,
    vec::Vec,
};
use core::{
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll, Waker},
};
use errno::{Errno, SysResult};
use mm::{
    block::{BlockDevice, SECTOR_SIZE},
    fault::FaultFuture,
    pagecache::{
        blockmap::BlockMap,
        ext4map::{self, Geometry},
        readahead::{Advice, Readahead, Window, DEFAULT_MAX_PAGES},
        DirectRead, DiskPages, FileBacking, FileId, FileInfo, FileObject, IoError,
    },
    phys::PAGE_BYTES,
};
use spin::Mutex;

/// Name in `/proc/mounts`.
const NAME: &str = "ext4";
/// Most bytes one `read` moves (a short count beyond, as Linux may give).
const MAX_IO_BYTES: usize = 128 * 1024;
/// Most bytes one `O_DIRECT` read moves.
const MAX_DIRECT_BYTES: usize = 1 << 20;
/// `s_magic` and where it is on the disk.
const MAGIC: u16 = 0xef53;
const MAGIC_BYTE: u64 = 1024 + 0x38;
/// The major number of virtio disks here (`virtblk`, as `/proc/diskstats` shows), 16
/// minors per disk.
pub const VIRTIO_MAJOR: u32 = 253;

/// A read through `ext4-view` failed on the device.
#[derive(Debug)]
struct DiskReadError;

impl core::fmt::Display for DiskReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("virtio disk read failed")
    }
}

impl core::error::Error for DiskReadError {}

/// Reads `dst.len()` bytes at device byte `start` synchronously: the request is
/// polled to completion here (metadata reads at lookup and open; file data never
/// comes this way).
fn read_sync(device: &VirtioBlk, start: u64, dst: &mut [u8]) -> Result<(), IoError> {
    if dst.is_empty() {
        return Ok(());
    }
    let sector = start / SECTOR_SIZE as u64;
    let skip = (start % SECTOR_SIZE as u64) as usize;
    let len = (skip + dst.len()).next_multiple_of(SECTOR_SIZE);
    let mut request = device.read(sector, vec![0u8; len].into_boxed_slice());
    let mut cx = Context::from_waker(Waker::noop());
    let buf = loop {
        match request.as_mut().poll(&mut cx) {
            Poll::Ready(r) => break r.map_err(|_| IoError)?,
            Poll::Pending => crate::arch::cpu::relax(),
        }
    };
    dst.copy_from_slice(&buf[skip..skip + dst.len()]);
    Ok(())
}

/// `ext4-view`'s reader over a virtio disk.
struct DiskReader(&'static VirtioBlk);

impl ext4_view::Ext4Read for DiskReader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn core::error::Error + Send + Sync + 'static>> {
        read_sync(self.0, start_byte, dst).map_err(|_| Box::new(DiskReadError) as _)
    }
}

/// The `ext4-view` filesystem. It shares its state through `Rc`, so it lives behind
/// this lock and no handle of it (file, entry, metadata holding an `Rc`) leaves a
/// locked section.
struct Volume(Mutex<ext4_view::Ext4>);

#[allow(unsafe_code)]
// SAFETY: every `Rc` inside the `Ext4` (and every object made from it) is created,
// used and dropped only while `Volume`'s mutex is held, so no two CPUs ever touch the
// reference counts at once; nothing borrowed from it outlives the lock.
unsafe impl Send for Volume {}
#[allow(unsafe_code)]
// SAFETY: as above: shared access goes through the mutex.
unsafe impl Sync for Volume {}

/// A mounted ext4 disk.
pub struct Ext4Fs {
    volume: Volume,
    disk: &'static VirtioBlk,
    device: Arc<dyn BlockDevice>,
    geometry: Geometry,
    dev: u64,
    /// Each regular file's page-cache object, by inode number: one cache per file
    /// however often it is opened.
    objects: Mutex<BTreeMap<u32, Arc<FileObject>>>,
}

/// The mounted disks (for `drop_caches` and the device counters).
static MOUNTED: Mutex<Vec<Arc<Ext4Fs>>> = Mutex::new(Vec::new());

/// Whether `disk` holds an ext4 filesystem (its superblock magic).
fn is_ext4(disk: &VirtioBlk) -> bool {
    let mut magic = [0u8; 2];
    read_sync(disk, MAGIC_BYTE, &mut magic).is_ok() && u16::from_le_bytes(magic) == MAGIC
}

/// Mounts the first virtio disk holding ext4 at `at` (`/mnt`); returns its name.
pub fn mount_first_disk(at: &str) -> Option<String> {
    for (index, disk) in crate::virtio_blk::devices().iter().enumerate() {
        if !is_ext4(disk) {
            continue;
        }
        match Ext4Fs::load(disk, index) {
            Ok(fs) => {
                let fs = Arc::new(fs);
                remember(fs.clone());
                vfs::mount::mount(at, fs);
                log::info!("ext4: {} mounted read-only at {at}", disk.name());
                return Some(disk.name());
            }
            Err(e) => log::warn!("ext4: {} not mounted: {e}", disk.name()),
        }
    }
    None
}

/// Mounts the ext4 disk `name` (`vdb`) at `/` in place of the initramfs (`root=`):
/// `/proc`, `/sys`, `/dev`, `/tmp` and `/dev/shm` stay mounted over it. `/init`
/// still starts from the initramfs; the programs it runs come from the disk.
pub fn mount_root(name: &str) {
    let found = crate::virtio_blk::devices()
        .iter()
        .enumerate()
        .find(|(_, d)| d.name() == name);
    let Some((index, disk)) = found else {
        log::error!("ext4: root={name}: no such disk; the initramfs stays the root");
        return;
    };
    match Ext4Fs::load(disk, index) {
        Ok(fs) => {
            let fs = Arc::new(fs);
            remember(fs.clone());
            vfs::mount::mount("/", fs);
            log::info!("ext4: {name} mounted read-only at /");
        }
        Err(e) => log::error!("ext4: root={name}: {e}; the initramfs stays the root"),
    }
}

/// Keeps `fs` among the mounted disks and has `drop_caches` reach their caches.
fn remember(fs: Arc<Ext4Fs>) {
    MOUNTED.lock().push(fs);
    crate::registry::keys::on_drop_caches(drop_all_caches);
    crate::memd::reclaim::register_shrinker(shrink_caches, page_cache_pages);
}

/// Pages of the mounted disks' files held in the page cache (`Cached:` in
/// `/proc/meminfo`, and what reclaim weighs against anonymous memory).
pub fn page_cache_pages() -> u64 {
    MOUNTED
        .lock()
        .iter()
        .map(|fs| {
            fs.objects
                .lock()
                .values()
                .map(|o| o.cache().len())
                .sum::<u64>()
        })
        .sum()
}

/// Reclaim's shrinker: clean unmapped pages of the mounted disks' files, up to `max`,
/// taking files in turn from where the last call stopped.
fn shrink_caches(max: usize, take: &dyn Fn(mm::frame::Pfn) -> bool) -> usize {
    static NEXT: Mutex<u32> = Mutex::new(0);
    let objects: Vec<(u32, Arc<FileObject>)> = MOUNTED
        .lock()
        .iter()
        .flat_map(|fs| {
            let map = fs.objects.lock();
            map.iter().map(|(k, o)| (*k, o.clone())).collect::<Vec<_>>()
        })
        .collect();
    if objects.is_empty() {
        return 0;
    }
    let mut next = NEXT.lock();
    let start = objects
        .iter()
        .position(|(ino, _)| *ino >= *next)
        .unwrap_or(0);
    let mut freed = 0;
    // Each file twice: a file's own cursor wraps to its start on a call that finds
    // nothing past it, so one turn can come back short while pages remain (and a
    // short answer makes reclaim swap instead).
    for i in 0..2 * objects.len() {
        let (ino, object) = &objects[(start + i) % objects.len()];
        freed += object.shrink(max - freed, take);
        if freed >= max {
            *next = *ino;
            return freed;
        }
    }
    *next = 0;
    freed
}

/// For swapon of a file: the disk holding `disk_file` (an open regular file of a
/// mounted ext4 disk), the file's block map and its size. EINVAL for a file not
/// stored as extents; EIO when its extent tree cannot be read.
fn swap_file_blocks(disk_file: &DiskFile) -> SysResult<(Arc<dyn BlockDevice>, BlockMap, u64)> {
    let stat = disk_file.stat;
    let fs = MOUNTED
        .lock()
        .iter()
        .find(|fs| fs.dev == stat.dev)
        .cloned()
        .ok_or(Errno::EINVAL)?;
    let ino = u32::try_from(stat.ino).map_err(|_| Errno::EINVAL)?;
    let map = fs.block_map(ino).map_err(|e| match e {
        ext4map::Ext4MapError::Unsupported => Errno::EINVAL,
        _ => Errno::EIO,
    })?;
    Ok((fs.device.clone(), map, disk_file.object.size_bytes()))
}

/// `drop_caches` of every mounted disk: the pages dropped.
fn drop_all_caches(objects: bool) -> u64 {
    let mounted = MOUNTED.lock().clone();
    mounted.iter().map(|fs| fs.drop_caches(objects)).sum()
}

fn absolute(rel: &str) -> String {
    String::from("/") + rel
}

fn errno_of(e: &ext4_view::Ext4Error) -> Errno {
    use ext4_view::Ext4Error as E;
    match e {
        E::NotFound => Errno::ENOENT,
        E::NotADirectory => Errno::ENOTDIR,
        E::IsADirectory => Errno::EISDIR,
        E::NotAbsolute | E::MalformedPath => Errno::EINVAL,
        E::PathTooLong => Errno::ENAMETOOLONG,
        E::TooManySymlinks => Errno::ELOOP,
        _ => Errno::EIO,
    }
}

/// The inode number of an open `ext4-view` file: the crate names it only in its
/// `Debug` form (`File { inode: 12, .. }`).
fn inode_of(file: &ext4_view::File) -> Option<u32> {
    let text = format!("{file:?}");
    let rest = &text[text.find("inode: ")? + "inode: ".len()..];
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

impl Ext4Fs {
    fn load(disk: &'static VirtioBlk, index: usize) -> Result<Ext4Fs, String> {
        let mut sb = vec![0u8; ext4map::SUPERBLOCK_BYTES];
        read_sync(disk, ext4map::SUPERBLOCK_BYTE, &mut sb).map_err(|_| "read error")?;
        let geometry = Geometry::from_superblock(&sb).map_err(|e| format!("{e:?}"))?;
        let fs = ext4_view::Ext4::load(Box::new(DiskReader(disk))).map_err(|e| e.to_string())?;
        Ok(Ext4Fs {
            volume: Volume(Mutex::new(fs)),
            disk,
            device: crate::memd::swap::block_device(&format!("/dev/{}", disk.name()))
                .ok_or("no block device")?,
            geometry,
            dev: vfs::stat::encode_dev(VIRTIO_MAJOR, 16 * index as u32),
            objects: Mutex::new(BTreeMap::new()),
        })
    }

    /// Drops every cached file page no mapping holds (`drop_caches`); with
    /// `objects`, also forgets the file objects nobody has open or mapped. Returns
    /// the pages dropped.
    pub fn drop_caches(&self, objects: bool) -> u64 {
        let mut map = self.objects.lock();
        let dropped = map.values().map(|o| o.drop_clean()).sum();
        if objects {
            map.retain(|_, o| Arc::strong_count(o) > 1 || !o.cache().is_empty());
        }
        dropped
    }

    /// The attributes of `path` (no link followed at the end).
    fn metadata(&self, path: &str) -> SysResult<ext4_view::Metadata> {
        let fs = self.volume.0.lock();
        fs.symlink_metadata(path).map_err(|e| errno_of(&e))
    }

    fn stat_of(&self, path: &str, meta: &ext4_view::Metadata, ino: Option<u32>) -> Stat {
        let perm = u32::from(meta.mode());
        let mut stat = if meta.is_dir() {
            Stat::directory(perm)
        } else if meta.is_symlink() {
            Stat::symlink(meta.len())
        } else {
            Stat::regular(perm, meta.len())
        };
        stat.uid = meta.uid();
        stat.gid = meta.gid();
        let ino = ino.map_or_else(|| path_inode_number(NAME, path), u64::from);
        stat.at(self.dev, ino)
    }

    /// The page-cache object of the regular file at `path` (inode `ino`), made on
    /// first use.
    fn object(&self, path: &str, ino: u32, size: u64) -> SysResult<Arc<FileObject>> {
        if let Some(o) = self.objects.lock().get(&ino) {
            return Ok(o.clone());
        }
        let info = FileInfo {
            path: String::from(path),
            dev_major: VIRTIO_MAJOR,
            dev_minor: (self.dev & 0xff) as u32,
            inode: u64::from(ino),
        };
        let frames = crate::mem::frames::mm_frames().clone();
        let object = match self.block_map(ino) {
            Ok(map) => FileObject::new_async(
                FileId(u64::from(ino)),
                info,
                size,
                Arc::new(DiskPages::new(self.device.clone(), map)),
                crate::memd::swap::io_spawner(),
                frames,
            ),
            // Inline data or the old indirect block map: the crate copies the bytes.
            Err(ext4map::Ext4MapError::Unsupported) => FileObject::new(
                FileId(u64::from(ino)),
                info,
                size,
                Box::new(CopiedFile {
                    fs: self.self_arc()?,
                    path: String::from(path),
                }),
                frames,
            ),
            Err(e) => {
                log::warn!("ext4: {path}: block map: {e:?}");
                return Err(Errno::EIO);
            }
        };
        Ok(self.objects.lock().entry(ino).or_insert(object).clone())
    }

    /// Inode `ino`'s block map, read from its extent tree (synchronous metadata reads).
    fn block_map(&self, ino: u32) -> Result<BlockMap, ext4map::Ext4MapError> {
        let disk = self.disk;
        let mut read = |at: u64, buf: &mut [u8]| read_sync(disk, at, buf);
        let byte = self.geometry.inode_byte(ino, &mut read)?;
        let mut inode = vec![0u8; self.geometry.inode_size as usize];
        read(byte, &mut inode).map_err(|_| ext4map::Ext4MapError::Io)?;
        ext4map::block_map(&self.geometry, &inode, &mut read)
    }

    fn self_arc(&self) -> SysResult<Arc<Ext4Fs>> {
        MOUNTED
            .lock()
            .iter()
            .find(|f| core::ptr::eq(Arc::as_ptr(f), self))
            .cloned()
            .ok_or(Errno::EIO)
    }

    /// Opens the regular file at `path`: its inode number, size and attributes.
    fn open_regular(&self, path: &str) -> SysResult<(u32, ext4_view::Metadata)> {
        let fs = self.volume.0.lock();
        let file = fs.open(path).map_err(|e| errno_of(&e))?;
        let ino = inode_of(&file).ok_or(Errno::EIO)?;
        Ok((ino, file.metadata().clone()))
    }
}

/// A file whose blocks are not an extent tree: its pages are copied through
/// `ext4-view` when they are missing.
struct CopiedFile {
    fs: Arc<Ext4Fs>,
    path: String,
}

impl FileBacking for CopiedFile {
    fn read_page(&self, index: u64, buf: &mut [u8; PAGE_BYTES]) -> Result<(), IoError> {
        buf.fill(0);
        let fs = self.fs.volume.0.lock();
        let mut file = fs.open(self.path.as_str()).map_err(|_| IoError)?;
        file.seek_to(index * PAGE_BYTES as u64)
            .map_err(|_| IoError)?;
        let mut done = 0;
        while done < PAGE_BYTES {
            match file.read_bytes(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(_) => return Err(IoError),
            }
        }
        Ok(())
    }
}

impl Filesystem for Ext4Fs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn read_only(&self) -> bool {
        true
    }

    fn lookup(&self, rel: &str, _caller: &Caller) -> SysResult<Node> {
        let path = absolute(rel);
        let meta = self.metadata(&path)?;
        if meta.is_symlink() {
            let fs = self.volume.0.lock();
            let target = fs.read_link(path.as_str()).map_err(|e| errno_of(&e))?;
            let target = target.to_str().map_err(|_| Errno::EINVAL)?;
            return Ok(Node::Symlink(String::from(target)));
        }
        Ok(if meta.is_dir() { Node::Dir } else { Node::File })
    }

    fn open(
        &self,
        rel: &str,
        node: &Node,
        req: &OpenRequest,
        caller: &Caller,
    ) -> SysResult<Arc<dyn File>> {
        let path = absolute(rel);
        if req.write() || req.flags & vfs::flags::O_TRUNC != 0 {
            return Err(Errno::EROFS);
        }
        if *node == Node::Dir {
            let stat = self.stat(rel, node, caller)?;
            let fs = self.self_arc()?;
            let (rel, caller, listed) = (String::from(rel), caller.clone(), path.clone());
            let lister = move || Ok(with_dots(NAME, &listed, fs.readdir(&rel, &caller)?));
            return Ok(Arc::new(DirFile::new(stat, Box::new(lister))));
        }
        let (ino, meta) = self.open_regular(&path)?;
        let object = self.object(&path, ino, meta.len())?;
        Ok(Arc::new(DiskFile::new(
            object,
            self.stat_of(&path, &meta, Some(ino)),
        )))
    }

    fn readdir(&self, rel: &str, _caller: &Caller) -> SysResult<Vec<(String, Node)>> {
        let path = absolute(rel);
        let fs = self.volume.0.lock();
        let entries = fs.read_dir(path.as_str()).map_err(|e| errno_of(&e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| errno_of(&e))?;
            let Ok(name) = entry.file_name().as_str() else {
                continue; // a name this namespace cannot hold
            };
            if name == "." || name == ".." {
                continue;
            }
            let name = String::from(name);
            let kind = entry.file_type().map_err(|e| errno_of(&e))?;
            let node = if kind.is_dir() {
                Node::Dir
            } else if kind.is_symlink() {
                let target = fs.read_link(&entry.path()).map_err(|e| errno_of(&e))?;
                Node::Symlink(String::from(target.to_str().unwrap_or("")))
            } else {
                Node::File
            };
            out.push((name, node));
        }
        Ok(out)
    }

    fn stat(&self, rel: &str, node: &Node, _caller: &Caller) -> SysResult<Stat> {
        let path = absolute(rel);
        match node {
            Node::File => {
                let (ino, meta) = self.open_regular(&path)?;
                Ok(self.stat_of(&path, &meta, Some(ino)))
            }
            _ => {
                let meta = self.metadata(&path)?;
                Ok(self.stat_of(&path, &meta, None))
            }
        }
    }
}

/// An open regular file of an ext4 disk: reads through the page cache with a
/// readahead window; a read that finds a page missing starts the device read and
/// answers EAGAIN, which the syscall layer waits out through [`File::poll`].
pub struct DiskFile {
    object: Arc<FileObject>,
    stat: Stat,
    pos: Mutex<u64>,
    readahead: Mutex<Readahead>,
    /// The read the last EAGAIN waits for, and the tasks that polled this file.
    page_wait: PageWait,
    /// An `O_DIRECT` read in flight: its offset, length and the read.
    direct_read: Mutex<Option<(u64, usize, DirectRead)>>,
    /// Opened `O_DIRECT`: reads bypass the cache.
    direct: AtomicBool,
}

impl DiskFile {
    /// An open description of `object` with attributes `stat`.
    pub fn new(object: Arc<FileObject>, stat: Stat) -> DiskFile {
        DiskFile {
            object,
            stat,
            pos: Mutex::new(0),
            readahead: Mutex::new(Readahead::new(DEFAULT_MAX_PAGES)),
            page_wait: PageWait::default(),
            direct_read: Mutex::new(None),
            direct: AtomicBool::new(false),
        }
    }

    /// `posix_fadvise` advice for the readahead window.
    pub fn advise(&self, advice: Advice) {
        self.readahead.lock().advise(advice);
    }

    fn start(&self, w: Window) {
        self.object.start_reads(w.start, w.pages);
    }

    /// Parks the reader on `wait` (EAGAIN; EINTR when it landed already).
    fn park(&self, wait: FaultFuture) -> SysResult<u64> {
        self.page_wait.park(wait)
    }

    /// Reads `count` bytes at `offset` into user memory through the cache.
    fn read_at(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        loop {
            match self.try_read_at(buf, count, offset) {
                Err(Errno::EINTR) => continue,
                other => return other,
            }
        }
    }

    /// An `O_DIRECT` read: offset, length and buffer must be multiples of 512
    /// (EINVAL); the bytes come from the device whatever the cache holds, and the
    /// cache is neither read nor filled.
    fn read_direct(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        const ALIGN: u64 = SECTOR_SIZE as u64;
        if [offset, count, buf]
            .iter()
            .any(|v| !v.is_multiple_of(ALIGN))
        {
            return Err(Errno::EINVAL);
        }
        let size = self.object.size_bytes();
        if offset >= size || count == 0 {
            return Ok(0);
        }
        let n = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(MAX_DIRECT_BYTES)
            .min((size - offset) as usize);
        let mut slot = self.direct_read.lock();
        if let Some((at, len, read)) = slot.as_ref() {
            if *at == offset && *len == n {
                if let Some(result) = read.take() {
                    *slot = None;
                    let bytes = result.map_err(|_| Errno::EIO)?;
                    let skip = (offset % PAGE_BYTES as u64) as usize;
                    copy_to_user(buf, &bytes[skip..skip + n])?;
                    return Ok(n as u64);
                }
                let wait = read.wait();
                drop(slot);
                return self.park(wait);
            }
        }
        let first = offset / PAGE_BYTES as u64;
        let last = (offset + n as u64 - 1) / PAGE_BYTES as u64;
        let read = self
            .object
            .read_direct(first, last - first + 1)
            .map_err(Errno::from)?;
        let wait = read.wait();
        *slot = Some((offset, n, read));
        drop(slot);
        self.park(wait)
    }

    fn try_read_at(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        if self.direct.load(Ordering::Relaxed) && self.object.is_async() {
            return self.read_direct(buf, count, offset);
        }
        let size = self.object.size_bytes();
        if offset >= size || count == 0 {
            return Ok(0);
        }
        let n = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(MAX_IO_BYTES)
            .min((size - offset) as usize);
        let first = offset / PAGE_BYTES as u64;
        let last = (offset + n as u64 - 1) / PAGE_BYTES as u64;
        // Page by page through a buffer on the stack: a read needs no heap, so memory
        // pressure cannot fail it. A missing page parks the read, which then starts
        // over (what was copied is copied again, the same bytes).
        let mut page = [0u8; PAGE_BYTES];
        let mut got = 0usize;
        while got < n {
            let at = offset + got as u64;
            let want = (n - got).min(PAGE_BYTES - (at % PAGE_BYTES as u64) as usize);
            let (read, missing) = self.object.read_resident(at, &mut page[..want]);
            if let Some(index) = missing {
                if !self.object.cache().contains(index) {
                    let window = self.readahead.lock().on_miss(index, last - index + 1);
                    self.start(window);
                }
                return match self.object.wait_for_page(index, 1) {
                    Ok(Some(wait)) => self.park(wait),
                    Ok(None) => Err(Errno::EINTR),
                    Err(_) => Err(Errno::EIO),
                };
            }
            copy_to_user(buf + got as u64, &page[..read])?;
            got += read;
            if read < want {
                break; // the end of the file
            }
        }
        let next = {
            let mut ra = self.readahead.lock();
            let next = ra.on_hit(first, last - first + 1);
            ra.note_read(last);
            next
        };
        if let Some(w) = next {
            self.start(w);
        }
        Ok(got as u64)
    }
}

impl File for DiskFile {
    fn swap_blocks(&self) -> SysResult<(Arc<dyn BlockDevice>, BlockMap, u64)> {
        swap_file_blocks(self)
    }

    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        let got = self.read_at(buf, count, *pos)?;
        *pos += got;
        Ok(got)
    }

    fn pread(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        self.read_at(buf, count, offset)
    }

    fn seek(&self, offset: i64, whence: Whence) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        *pos = seek_position(*pos, self.object.size_bytes(), whence, offset)?;
        Ok(*pos)
    }

    fn poll(&self, waker: Option<&Waker>) -> u16 {
        self.page_wait.poll(waker)
    }

    fn always_blocks(&self) -> bool {
        true
    }

    fn mmap_object(&self) -> SysResult<Arc<FileObject>> {
        Ok(self.object.clone())
    }

    fn status_flags_changed(&self, status: u32) {
        let direct = status & vfs::flags::O_DIRECT != 0;
        self.direct.store(direct, Ordering::Relaxed);
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }

    fn stat(&self) -> Stat {
        self.stat
    }
}
