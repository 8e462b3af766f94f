//! `/dev/vda`, `/dev/vdb`, ...: the virtio disks as block device files, readable by a
//! caller holding SeTcbPrivilege (reading a raw disk bypasses every file's security,
//! so it belongs to the TCB; EACCES for anyone else, as Linux answers a user for a
//! root-only device node). Reads go through the device's own page cache, as Linux's
//! block device mapping: one file object per disk, every page at its own offset on the
//! device, with the readahead of any disk file. Writing is refused (EROFS): the page
//! cache writes nothing back yet.

use super::ext4::{DiskFile, VIRTIO_MAJOR};
use crate::vfs::{self, Caller, File, OpenRequest, Stat};
use alloc::{string::String, sync::Arc};
use conquer_once::spin::OnceCell;
use errno::{Errno, SysResult};
use mm::block::BlockDevice;
use mm::pagecache::{
    blockmap::{BlockMap, Extent},
    DiskPages, FileId, FileInfo, FileObject,
};
use mm::phys::PAGE_BYTES;
use security::Privilege;

/// `S_IFBLK`.
const S_IFBLK: u32 = 0o060_000;
/// Disks that get a node.
const NAMES: [&str; 8] = ["vda", "vdb", "vdc", "vdd", "vde", "vdf", "vdg", "vdh"];
/// Ids of the disks' file objects (far from inode numbers and shared memory).
const ID_BASE: u64 = 1 << 61;

/// Each disk's page-cache object, made at its first open.
static OBJECTS: [OnceCell<Arc<FileObject>>; 8] = [const { OnceCell::uninit() }; 8];

/// Adds a `/dev` node for every virtio disk found.
pub fn register_disks() {
    let openers: [vfs::devfs::DeviceOpener; 8] = [
        |c, r| open(0, c, r),
        |c, r| open(1, c, r),
        |c, r| open(2, c, r),
        |c, r| open(3, c, r),
        |c, r| open(4, c, r),
        |c, r| open(5, c, r),
        |c, r| open(6, c, r),
        |c, r| open(7, c, r),
    ];
    let disks = crate::virtio_blk::devices().len().min(NAMES.len());
    for index in 0..disks {
        vfs::devfs::register(NAMES[index], openers[index]);
    }
}

/// The page-cache object of disk `index`: its pages are its 4 KiB blocks.
fn object(index: usize) -> SysResult<Arc<FileObject>> {
    let disk = crate::virtio_blk::devices()
        .get(index)
        .ok_or(Errno::ENODEV)?;
    let bytes = disk.capacity_sectors() * mm::block::SECTOR_SIZE as u64;
    if let Ok(made) = OBJECTS[index].try_get() {
        return Ok(made.clone());
    }
    let made = (|| {
        let blocks = bytes / PAGE_BYTES as u64;
        let extents = if blocks == 0 {
            alloc::vec![]
        } else {
            alloc::vec![Extent {
                logical: 0,
                physical: 0,
                blocks,
            }]
        };
        let map = BlockMap::new(PAGE_BYTES as u64, extents).map_err(|_| Errno::EIO)?;
        let device = crate::memd::swap::block_device(&alloc::format!("/dev/{}", NAMES[index]))
            .ok_or(Errno::ENODEV)?;
        let info = FileInfo {
            path: String::from("/dev/") + NAMES[index],
            dev_major: 0,
            dev_minor: 5,
            inode: ID_BASE + index as u64,
        };
        Ok::<_, Errno>(FileObject::new_async(
            FileId(ID_BASE + index as u64),
            info,
            // Whole blocks only: a trailing part of a block is not readable here.
            bytes / PAGE_BYTES as u64 * PAGE_BYTES as u64,
            Arc::new(DiskPages::new(device, map)),
            crate::memd::swap::io_spawner(),
            crate::mem::frames::mm_frames().clone(),
        ))
    })()?;
    // Two first opens at once: the one made first is kept.
    Ok(OBJECTS[index].get_or_init(|| made).clone())
}

fn open(index: usize, caller: &Caller, req: &OpenRequest) -> SysResult<Arc<dyn File>> {
    if !caller.token.has_privilege(Privilege::SeTcbPrivilege) {
        return Err(Errno::EACCES);
    }
    if req.write() {
        return Err(Errno::EROFS);
    }
    let object = object(index)?;
    let stat = Stat {
        mode: S_IFBLK | 0o660,
        nlink: 1,
        rdev: vfs::stat::encode_dev(VIRTIO_MAJOR, 16 * index as u32),
        size: 0,
        blksize: PAGE_BYTES as u64,
        ..Stat::default()
    };
    Ok(Arc::new(DiskFile::new(object, stat)))
}
