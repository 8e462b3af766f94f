//! Swap files: a regular file's pages mapped once, at swapon, to the device blocks
//! that hold them, so that swap I/O then goes straight to those blocks through the
//! block layer without the filesystem (Linux's `swap_activate` /
//! `iomap_swapfile_activate`).
//!
//! [`SwapFile`] is a [`BlockDevice`] over the file: sector `s` is byte `s * 512` of the
//! file, found on the underlying device through the page extents built at swapon. A
//! file with a hole, or a page whose blocks are not contiguous on the device, is
//! refused (`EINVAL`), as Linux refuses a swap file with holes: swap never allocates
//! blocks. A request that spans two extents is split into one request per piece, all
//! in flight together.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::block::{check_range, BlockDevice, BlockError, BlockFuture, IoBuf, SECTOR_SIZE};
use crate::errno::MmError;
use crate::pagecache::blockmap::{BlockMap, Run};
use crate::phys::PAGE_BYTES;

const PAGE: u64 = PAGE_BYTES as u64;

/// Pages of the file stored contiguously on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageExtent {
    /// The first page of the file in the run.
    pub first_page: u64,
    /// Device byte offset of that page.
    pub device_byte: u64,
    /// Pages in the run.
    pub pages: u64,
}

/// A swap file as a block device over the disk holding it.
pub struct SwapFile {
    device: Arc<dyn BlockDevice>,
    /// Sorted by `first_page`, covering `0..pages` without gaps.
    extents: Vec<PageExtent>,
    pages: u64,
}

/// One piece of a request: device sector, and the byte range of the buffer.
type Piece = (u64, core::ops::Range<usize>);

impl SwapFile {
    /// Maps the whole pages of a file `file_bytes` long whose blocks `map` gives, on
    /// `device`. `EINVAL` for a file with a hole or a page split on the device, for
    /// an extent past the device's end, or for a file shorter than two pages.
    pub fn new(
        device: Arc<dyn BlockDevice>,
        map: &BlockMap,
        file_bytes: u64,
    ) -> Result<SwapFile, MmError> {
        let pages = file_bytes / PAGE;
        if pages < 2 {
            return Err(MmError::InvalidArgument);
        }
        let device_bytes = device
            .capacity_sectors()
            .checked_mul(SECTOR_SIZE as u64)
            .ok_or(MmError::InvalidArgument)?;
        let mut extents: Vec<PageExtent> = Vec::new();
        let mut index = 0;
        while index < pages {
            let Run::Device { byte, pages: run } = map.run(index, pages - index) else {
                return Err(MmError::InvalidArgument);
            };
            let end = run
                .checked_mul(PAGE)
                .and_then(|len| byte.checked_add(len))
                .ok_or(MmError::InvalidArgument)?;
            if end > device_bytes || !byte.is_multiple_of(SECTOR_SIZE as u64) {
                return Err(MmError::InvalidArgument);
            }
            match extents.last_mut() {
                // `run` stops at a page boundary of its own; merge what continues.
                Some(last) if last.device_byte + last.pages * PAGE == byte => last.pages += run,
                _ => extents.push(PageExtent {
                    first_page: index,
                    device_byte: byte,
                    pages: run,
                }),
            }
            index += run;
        }
        Ok(SwapFile {
            device,
            extents,
            pages,
        })
    }

    /// The page extents (for `/proc` and tests).
    pub fn extents(&self) -> &[PageExtent] {
        &self.extents
    }

    /// The device requests that `len` bytes from file sector `sector` take (the
    /// caller checked the range).
    fn pieces(&self, sector: u64, len: usize) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut at = sector * SECTOR_SIZE as u64;
        let end = at + len as u64;
        while at < end {
            let page = at / PAGE;
            let i = self.extents.partition_point(|e| e.first_page <= page) - 1;
            let e = self.extents[i];
            let extent_end = (e.first_page + e.pages) * PAGE;
            let take = (end.min(extent_end)) - at;
            let device_byte = e.device_byte + (at - e.first_page * PAGE);
            let from = (at - sector * SECTOR_SIZE as u64) as usize;
            out.push((device_byte / SECTOR_SIZE as u64, from..from + take as usize));
            at += take;
        }
        out
    }

    fn refuse(e: BlockError) -> BlockFuture {
        Box::pin(core::future::ready(Err(e)))
    }
}

/// A zeroed buffer of `len` bytes from the heap, or `None`.
fn piece_buf(len: usize) -> Option<IoBuf> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, 0u8);
    Some(v.into_boxed_slice())
}

impl BlockDevice for SwapFile {
    fn capacity_sectors(&self) -> u64 {
        self.pages * (PAGE / SECTOR_SIZE as u64)
    }

    fn read(&self, sector: u64, mut buf: IoBuf) -> BlockFuture {
        if let Err(e) = check_range(self.capacity_sectors(), sector, buf.len()) {
            return Self::refuse(e);
        }
        let pieces = self.pieces(sector, buf.len());
        if let [(device_sector, _)] = pieces[..] {
            return self.device.read(device_sector, buf);
        }
        let mut requests = Vec::with_capacity(pieces.len());
        for (device_sector, range) in pieces {
            let Some(part) = piece_buf(range.len()) else {
                return Self::refuse(BlockError::Io);
            };
            requests.push((range, self.device.read(device_sector, part)));
        }
        Box::pin(async move {
            for (range, request) in requests {
                let part = request.await?;
                buf[range].copy_from_slice(&part);
            }
            Ok(buf)
        })
    }

    fn write(&self, sector: u64, buf: IoBuf) -> BlockFuture {
        if let Err(e) = check_range(self.capacity_sectors(), sector, buf.len()) {
            return Self::refuse(e);
        }
        let pieces = self.pieces(sector, buf.len());
        if let [(device_sector, _)] = pieces[..] {
            return self.device.write(device_sector, buf);
        }
        let mut requests = Vec::with_capacity(pieces.len());
        for (device_sector, range) in pieces {
            let Some(mut part) = piece_buf(range.len()) else {
                return Self::refuse(BlockError::Io);
            };
            part.copy_from_slice(&buf[range]);
            requests.push(self.device.write(device_sector, part));
        }
        Box::pin(async move {
            // Every piece is waited for, so none is still being written when the
            // caller hears of a failure.
            let mut outcome = Ok(());
            for request in requests {
                if let Err(e) = request.await {
                    outcome = Err(e);
                }
            }
            outcome.map(|()| buf)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::block_on;
    use crate::block::RamDisk;
    use crate::pagecache::blockmap::Extent;
    use alloc::vec;

    fn page(byte: u8) -> IoBuf {
        vec![byte; PAGE_BYTES].into_boxed_slice()
    }

    /// A 64-page disk and a 6-page file on it: pages 0-2 at device pages 10-12,
    /// pages 3-5 at device pages 40-42 (4 KiB blocks).
    fn scattered() -> (Arc<RamDisk>, SwapFile) {
        let disk = Arc::new(RamDisk::new(64 * 8));
        let map = BlockMap::new(
            4096,
            vec![
                Extent {
                    logical: 3,
                    physical: 40,
                    blocks: 3,
                },
                Extent {
                    logical: 0,
                    physical: 10,
                    blocks: 3,
                },
            ],
        )
        .unwrap();
        let file = SwapFile::new(disk.clone(), &map, 6 * PAGE).unwrap();
        (disk, file)
    }

    #[test]
    fn pages_land_on_their_extents() {
        let (disk, file) = scattered();
        assert_eq!(file.capacity_sectors(), 6 * 8);
        assert_eq!(
            file.extents(),
            &[
                PageExtent {
                    first_page: 0,
                    device_byte: 10 * PAGE,
                    pages: 3
                },
                PageExtent {
                    first_page: 3,
                    device_byte: 40 * PAGE,
                    pages: 3
                },
            ]
        );
        for p in 0..6u64 {
            block_on(file.write(p * 8, page(0x10 + p as u8))).unwrap();
        }
        for (p, device_page) in [(0u64, 10u64), (2, 12), (3, 40), (5, 42)] {
            let back = block_on(disk.read(device_page * 8, page(0))).unwrap();
            assert!(back.iter().all(|&b| b == 0x10 + p as u8), "file page {p}");
        }
        // The pages between the extents are not the file's: untouched.
        let between = block_on(disk.read(13 * 8, page(0xff))).unwrap();
        assert!(between.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_request_across_two_extents_is_split_and_joined() {
        let (disk, file) = scattered();
        let mut run = vec![0u8; 3 * PAGE_BYTES].into_boxed_slice();
        for (i, b) in run.iter_mut().enumerate() {
            *b = (i / PAGE_BYTES) as u8 + 1;
        }
        // File pages 2, 3, 4: device pages 12, 40, 41.
        block_on(file.write(2 * 8, run.clone())).unwrap();
        assert!(block_on(disk.read(12 * 8, page(0)))
            .unwrap()
            .iter()
            .all(|&b| b == 1));
        assert!(block_on(disk.read(40 * 8, page(0)))
            .unwrap()
            .iter()
            .all(|&b| b == 2));
        assert!(block_on(disk.read(41 * 8, page(0)))
            .unwrap()
            .iter()
            .all(|&b| b == 3));
        let back = block_on(file.read(2 * 8, vec![0u8; 3 * PAGE_BYTES].into_boxed_slice()));
        assert_eq!(back.unwrap(), run);
        // A sub-page read across nothing: one sector in the middle of page 4.
        let sector = block_on(file.read(4 * 8 + 3, vec![0u8; 512].into_boxed_slice())).unwrap();
        assert!(sector.iter().all(|&b| b == 3));
    }

    #[test]
    fn requests_past_the_file_are_refused() {
        let (_, file) = scattered();
        assert_eq!(
            block_on(file.read(6 * 8, page(0))).err(),
            Some(BlockError::OutOfRange)
        );
        assert_eq!(
            block_on(file.write(5 * 8 + 1, page(0))).err(),
            Some(BlockError::OutOfRange)
        );
        assert_eq!(
            block_on(file.read(0, vec![0u8; 100].into_boxed_slice())).err(),
            Some(BlockError::Unaligned)
        );
    }

    #[test]
    fn holes_and_split_pages_are_refused() {
        let disk: Arc<dyn BlockDevice> = Arc::new(RamDisk::new(64 * 8));
        let hole = BlockMap::new(
            4096,
            vec![
                Extent {
                    logical: 0,
                    physical: 10,
                    blocks: 2,
                },
                Extent {
                    logical: 3,
                    physical: 20,
                    blocks: 2,
                },
            ],
        )
        .unwrap();
        assert_eq!(
            SwapFile::new(disk.clone(), &hole, 5 * PAGE).err(),
            Some(MmError::InvalidArgument)
        );
        // The same map is fine for the first two pages only (a file that short).
        assert!(SwapFile::new(disk.clone(), &hole, 2 * PAGE).is_ok());
        // 1 KiB blocks: page 1's blocks scattered on the device.
        let split = BlockMap::new(
            1024,
            vec![
                Extent {
                    logical: 0,
                    physical: 100,
                    blocks: 6,
                },
                Extent {
                    logical: 6,
                    physical: 300,
                    blocks: 2,
                },
            ],
        )
        .unwrap();
        assert_eq!(
            SwapFile::new(disk.clone(), &split, 2 * PAGE).err(),
            Some(MmError::InvalidArgument)
        );
        // Past the device's end, and too short to hold a header and a slot.
        let far = BlockMap::new(
            4096,
            vec![Extent {
                logical: 0,
                physical: 63,
                blocks: 2,
            }],
        )
        .unwrap();
        assert_eq!(
            SwapFile::new(disk.clone(), &far, 2 * PAGE).err(),
            Some(MmError::InvalidArgument)
        );
        let one = BlockMap::new(
            4096,
            vec![Extent {
                logical: 0,
                physical: 1,
                blocks: 1,
            }],
        )
        .unwrap();
        assert_eq!(
            SwapFile::new(disk, &one, PAGE).err(),
            Some(MmError::InvalidArgument)
        );
    }

    #[test]
    fn one_kib_blocks_contiguous_on_the_device_make_whole_pages() {
        let disk = Arc::new(RamDisk::new(64 * 8));
        let map = BlockMap::new(
            1024,
            vec![Extent {
                logical: 0,
                physical: 40,
                blocks: 12,
            }],
        )
        .unwrap();
        let file = SwapFile::new(disk.clone(), &map, 3 * PAGE).unwrap();
        assert_eq!(
            file.extents(),
            &[PageExtent {
                first_page: 0,
                device_byte: 40 * 1024,
                pages: 3
            }]
        );
        block_on(file.write(8, page(7))).unwrap();
        let back = block_on(disk.read((40 * 1024 + PAGE) / 512, page(0))).unwrap();
        assert!(back.iter().all(|&b| b == 7));
    }
}
