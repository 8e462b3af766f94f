//! The block-device seam swap and the page cache's writeback use: asynchronous
//! sector I/O whose completion is a future (a driver completes it from its interrupt
//! handler through a waker), plus [`RamDisk`], a memory-backed device (Linux's `brd`)
//! for host tests and for swapping to RAM in small guests.
//!
//! Buffers are owned ([`IoBuf`]): a request takes the buffer and its future gives it
//! back. A driver that does DMA keeps the buffer in its request slot until the device
//! is done with it, so dropping the future early never frees memory the device may
//! still write.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;

use spin::Mutex;

/// Bytes in a sector.
pub const SECTOR_SIZE: usize = 512;

/// An owned I/O buffer (a whole number of sectors).
pub type IoBuf = Box<[u8]>;

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The range runs past the end of the device.
    OutOfRange,
    /// The buffer is empty or not a whole number of sectors.
    Unaligned,
    /// The device reported an error (`EIO`).
    Io,
}

/// A request's completion: the buffer back (filled, for a read) or the error.
pub type BlockFuture = Pin<Box<dyn Future<Output = Result<IoBuf, BlockError>> + Send>>;

/// A block device.
pub trait BlockDevice: Send + Sync {
    /// Size in sectors.
    fn capacity_sectors(&self) -> u64;
    /// Reads `buf.len()` bytes starting at `sector` into `buf`.
    fn read(&self, sector: u64, buf: IoBuf) -> BlockFuture;
    /// Writes `buf` starting at `sector`; complete once the data is on the device.
    fn write(&self, sector: u64, buf: IoBuf) -> BlockFuture;
}

/// Checks that `len` bytes at `sector` are whole sectors inside a device of
/// `capacity` sectors; returns the byte range.
pub fn check_range(
    capacity: u64,
    sector: u64,
    len: usize,
) -> Result<core::ops::Range<usize>, BlockError> {
    if len == 0 || !len.is_multiple_of(SECTOR_SIZE) {
        return Err(BlockError::Unaligned);
    }
    let sectors = (len / SECTOR_SIZE) as u64;
    let end = sector.checked_add(sectors).ok_or(BlockError::OutOfRange)?;
    if end > capacity {
        return Err(BlockError::OutOfRange);
    }
    let start = sector as usize * SECTOR_SIZE;
    Ok(start..start + len)
}

/// A block device in memory.
pub struct RamDisk {
    data: Mutex<Vec<u8>>,
}

impl RamDisk {
    /// A zero-filled disk of `sectors` sectors.
    pub fn new(sectors: u64) -> RamDisk {
        RamDisk {
            data: Mutex::new(vec![0; sectors as usize * SECTOR_SIZE]),
        }
    }
}

impl BlockDevice for RamDisk {
    fn capacity_sectors(&self) -> u64 {
        (self.data.lock().len() / SECTOR_SIZE) as u64
    }

    fn read(&self, sector: u64, mut buf: IoBuf) -> BlockFuture {
        let data = self.data.lock();
        let result = check_range((data.len() / SECTOR_SIZE) as u64, sector, buf.len()).map(|r| {
            buf.copy_from_slice(&data[r]);
            buf
        });
        Box::pin(core::future::ready(result))
    }

    fn write(&self, sector: u64, buf: IoBuf) -> BlockFuture {
        let mut data = self.data.lock();
        let result = check_range((data.len() / SECTOR_SIZE) as u64, sector, buf.len()).map(|r| {
            data[r].copy_from_slice(&buf);
            buf
        });
        Box::pin(core::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::block_on;

    fn page(byte: u8) -> IoBuf {
        vec![byte; 4096].into_boxed_slice()
    }

    #[test]
    fn a_page_written_reads_back_identical() {
        let disk = RamDisk::new(64);
        assert_eq!(disk.capacity_sectors(), 64);
        let mut pattern = page(0);
        for (i, b) in pattern.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let expected = pattern.clone();
        block_on(disk.write(8, pattern)).unwrap();
        let back = block_on(disk.read(8, page(0xff))).unwrap();
        assert_eq!(back, expected);
        let before = block_on(disk.read(0, page(0xff))).unwrap();
        assert!(before.iter().all(|&b| b == 0), "other sectors untouched");
    }

    #[test]
    fn bad_requests_are_refused() {
        let disk = RamDisk::new(16);
        assert_eq!(
            block_on(disk.read(9, page(0))).err(),
            Some(BlockError::OutOfRange)
        );
        assert_eq!(
            block_on(disk.write(u64::MAX, page(0))).err(),
            Some(BlockError::OutOfRange)
        );
        assert_eq!(
            block_on(disk.read(0, vec![0; 100].into_boxed_slice())).err(),
            Some(BlockError::Unaligned)
        );
        assert_eq!(
            block_on(disk.read(0, Box::new([]))).err(),
            Some(BlockError::Unaligned)
        );
        assert!(
            block_on(disk.read(8, page(0))).is_ok(),
            "the last page fits"
        );
    }
}
