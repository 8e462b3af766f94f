//! Where a file's pages come from on a page-cache miss: the [`FileBacking`] trait,
//! with [`SliceBacking`] for in-memory files (the initramfs) and [`ZeroBacking`] for
//! anonymous shared memory.

use alloc::sync::Arc;

use crate::phys::PAGE_BYTES;

/// A read from the backing store failed (the faulting access gets `SIGBUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoError;

/// The store behind a file's page cache.
pub trait FileBacking: Send + Sync {
    /// Fills `buf` with page `index` of the file (bytes past the end of the file
    /// read as zero).
    fn read_page(&self, index: u64, buf: &mut [u8; PAGE_BYTES]) -> Result<(), IoError>;

    /// Whether every page reads as zeroes, so a miss can take a zeroed frame without
    /// reading (anonymous shared memory).
    fn reads_zero(&self) -> bool {
        false
    }
}

/// A file whose contents are a byte slice in memory.
pub struct SliceBacking {
    data: Arc<[u8]>,
}

impl SliceBacking {
    /// A backing over `data`.
    pub fn new(data: impl Into<Arc<[u8]>>) -> SliceBacking {
        SliceBacking { data: data.into() }
    }

    /// The length of the data in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.data.len() as u64
    }
}

impl FileBacking for SliceBacking {
    fn read_page(&self, index: u64, buf: &mut [u8; PAGE_BYTES]) -> Result<(), IoError> {
        let start = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_mul(PAGE_BYTES))
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let end = start.saturating_add(PAGE_BYTES).min(self.data.len());
        let n = end - start;
        buf[..n].copy_from_slice(&self.data[start..end]);
        buf[n..].fill(0);
        Ok(())
    }
}

/// A store of zeroes: the object behind a `MAP_SHARED | MAP_ANONYMOUS` mapping.
pub struct ZeroBacking;

impl FileBacking for ZeroBacking {
    fn read_page(&self, _index: u64, buf: &mut [u8; PAGE_BYTES]) -> Result<(), IoError> {
        buf.fill(0);
        Ok(())
    }

    fn reads_zero(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn slice_pages_and_tail() {
        let b = SliceBacking::new(vec![7u8; PAGE_BYTES + 10]);
        let mut buf = [1u8; PAGE_BYTES];
        b.read_page(0, &mut buf).unwrap();
        assert!(buf.iter().all(|&x| x == 7));
        b.read_page(1, &mut buf).unwrap();
        assert_eq!(&buf[..10], &[7; 10]);
        assert!(buf[10..].iter().all(|&x| x == 0));
        b.read_page(5, &mut buf).unwrap();
        assert!(buf.iter().all(|&x| x == 0));
        b.read_page(u64::MAX, &mut buf).unwrap();
        assert!(ZeroBacking.reads_zero() && !b.reads_zero());
    }
}
