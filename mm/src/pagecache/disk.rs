//! Reading a file's pages from a block device by futures: the [`PageReader`] trait a
//! file object with asynchronous I/O uses, and [`DiskPages`], a file on a block device
//! located by its [`BlockMap`]. A run of pages contiguous on the device is one request.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};

use super::backing::IoError;
use super::blockmap::{BlockMap, Run};
use crate::block::{BlockDevice, IoBuf, SECTOR_SIZE};
use crate::phys::PAGE_BYTES;

/// The bytes of a run of pages (a whole number of pages), or the error.
pub type PagesFuture = Pin<Box<dyn Future<Output = Result<IoBuf, IoError>> + Send>>;

/// Where a file object with asynchronous I/O reads its pages from.
pub trait PageReader: Send + Sync {
    /// How many pages from `first` (1 to `max`) one read can bring in.
    fn run_pages(&self, first: u64, max: u64) -> u64;
    /// Reads pages `[first, first + count)`: `count` pages of bytes.
    fn read_pages(&self, first: u64, count: u64) -> PagesFuture;
}

/// A file on a block device.
pub struct DiskPages {
    device: Arc<dyn BlockDevice>,
    map: BlockMap,
    requests: Arc<AtomicU64>,
}

impl DiskPages {
    /// The file whose blocks `map` locates on `device`.
    pub fn new(device: Arc<dyn BlockDevice>, map: BlockMap) -> DiskPages {
        DiskPages {
            device,
            map,
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Device requests issued for this file so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl PageReader for DiskPages {
    fn run_pages(&self, first: u64, max: u64) -> u64 {
        match self.map.run(first, max.max(1)) {
            Run::Device { pages, .. } | Run::Hole { pages } => pages,
            Run::Mixed => 1,
        }
    }

    fn read_pages(&self, first: u64, count: u64) -> PagesFuture {
        let count = count.max(1);
        let bytes = count as usize * PAGE_BYTES;
        match self.map.run(first, count) {
            Run::Hole { pages } if pages >= count => {
                Box::pin(core::future::ready(Ok(vec![0u8; bytes].into_boxed_slice())))
            }
            Run::Device { byte, pages } if pages >= count => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                let read = self.device.read(
                    byte / SECTOR_SIZE as u64,
                    vec![0u8; bytes].into_boxed_slice(),
                );
                Box::pin(async move { read.await.map_err(|_| IoError) })
            }
            Run::Mixed if count == 1 => {
                let blocks = self.map.page_blocks(first);
                let block = self.map.block_size() as usize;
                let device = self.device.clone();
                let requests = self.requests.clone();
                Box::pin(async move {
                    let mut page = vec![0u8; PAGE_BYTES].into_boxed_slice();
                    for (k, at) in blocks.iter().enumerate() {
                        let Some(at) = at else { continue };
                        requests.fetch_add(1, Ordering::Relaxed);
                        let got = device
                            .read(at / SECTOR_SIZE as u64, vec![0u8; block].into_boxed_slice())
                            .await
                            .map_err(|_| IoError)?;
                        page[k * block..(k + 1) * block].copy_from_slice(&got);
                    }
                    Ok(page)
                })
            }
            // The caller asked for more than one run holds.
            _ => Box::pin(core::future::ready(Err(IoError))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::RamDisk;
    use crate::pagecache::blockmap::Extent;
    use alloc::vec::Vec;

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = core::pin::pin!(f);
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        loop {
            if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn runs_holes_and_mixed_pages() {
        let disk = Arc::new(RamDisk::new(256));
        let pattern: Vec<u8> = (0..256 * 512).map(|i| (i / 1024) as u8).collect();
        block_on(disk.write(0, pattern.into_boxed_slice())).unwrap();
        let map = BlockMap::new(
            1024,
            alloc::vec![
                Extent {
                    logical: 0,
                    physical: 8,
                    blocks: 8
                },
                Extent {
                    logical: 8,
                    physical: 100,
                    blocks: 1
                },
            ],
        )
        .unwrap();
        let file = DiskPages::new(disk, map);
        assert_eq!(file.run_pages(0, 16), 2);
        assert_eq!(file.run_pages(2, 16), 1);
        assert_eq!(file.run_pages(3, 16), 16);
        let two = block_on(file.read_pages(0, 2)).unwrap();
        assert_eq!((two[0], two[4096], two[8191]), (8, 12, 15));
        assert_eq!(file.requests(), 1, "a contiguous run is one request");
        let mixed = block_on(file.read_pages(2, 1)).unwrap();
        assert_eq!((mixed[0], mixed[1023], mixed[1024]), (100, 100, 0));
        let hole = block_on(file.read_pages(5, 3)).unwrap();
        assert!(hole.iter().all(|&b| b == 0));
        assert_eq!(file.requests(), 2);
        assert!(block_on(file.read_pages(0, 3)).is_err(), "beyond one run");
    }
}
