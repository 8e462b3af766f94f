//! A file's block map: which device bytes hold each page. Built once per file from its
//! extents (logical block, physical block, length, in filesystem blocks); unmapped
//! blocks (holes, unwritten extents) read as zeroes. The page cache asks it how one
//! device request can cover a run of pages ([`BlockMap::run`]).

use alloc::vec::Vec;

use crate::phys::PAGE_BYTES;

/// A run of a file's blocks stored contiguously on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// First logical block in the file.
    pub logical: u64,
    /// First physical block on the device.
    pub physical: u64,
    /// Blocks in the run.
    pub blocks: u64,
}

/// Why a block map could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockMapError {
    /// The block size is not a power of two between 512 and a page.
    BlockSize,
    /// Two extents overlap or an extent is empty or overflows.
    BadExtent,
}

/// Where a run of pages is: on the device (`pages` pages from `byte`), or a hole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// `pages` whole pages stored contiguously from device byte `byte`.
    Device {
        /// Device byte offset of the first page.
        byte: u64,
        /// Pages in the run (at least 1).
        pages: u64,
    },
    /// `pages` pages with no block on the device: they read as zeroes.
    Hole {
        /// Pages in the run (at least 1).
        pages: u64,
    },
    /// One page whose blocks are scattered or partly holes: read block by block.
    Mixed,
}

/// One file's logical-to-physical block map.
#[derive(Clone, Debug)]
pub struct BlockMap {
    block_size: u64,
    /// Sorted by `logical`, not overlapping.
    extents: Vec<Extent>,
}

impl BlockMap {
    /// A map over `extents` (any order) for a filesystem of `block_size` bytes.
    pub fn new(block_size: u64, mut extents: Vec<Extent>) -> Result<BlockMap, BlockMapError> {
        if !block_size.is_power_of_two() || !(512..=PAGE_BYTES as u64).contains(&block_size) {
            return Err(BlockMapError::BlockSize);
        }
        extents.sort_by_key(|e| e.logical);
        let mut end = 0u64;
        for e in &extents {
            let this_end = e
                .logical
                .checked_add(e.blocks)
                .ok_or(BlockMapError::BadExtent)?;
            let phys_end = e.physical.checked_add(e.blocks);
            if e.blocks == 0 || e.logical < end || phys_end.is_none() {
                return Err(BlockMapError::BadExtent);
            }
            end = this_end;
        }
        Ok(BlockMap {
            block_size,
            extents,
        })
    }

    /// Bytes per filesystem block.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// The extents, sorted.
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// The physical block of logical block `block`, `None` in a hole.
    pub fn physical(&self, block: u64) -> Option<u64> {
        let i = self.extents.partition_point(|e| e.logical <= block);
        let e = self.extents.get(i.checked_sub(1)?)?;
        (block < e.logical + e.blocks).then(|| e.physical + (block - e.logical))
    }

    fn blocks_per_page(&self) -> u64 {
        PAGE_BYTES as u64 / self.block_size
    }

    /// Where page `index` is on its own: `Device` with one page, `Hole`, or `Mixed`.
    fn page(&self, index: u64) -> Run {
        let per = self.blocks_per_page();
        let Some(first) = index.checked_mul(per) else {
            return Run::Hole { pages: 1 };
        };
        let start = self.physical(first);
        let mut all_hole = start.is_none();
        let mut contiguous = start.is_some();
        for k in 1..per {
            let p = self.physical(first + k);
            all_hole &= p.is_none();
            contiguous &= matches!((start, p), (Some(s), Some(p)) if p == s + k);
        }
        match start {
            Some(s) if contiguous => Run::Device {
                byte: s * self.block_size,
                pages: 1,
            },
            _ if all_hole => Run::Hole { pages: 1 },
            _ => Run::Mixed,
        }
    }

    /// The run that starts at page `index`, at most `max` pages long (`max` >= 1): as
    /// many following pages as continue it on the device (or in the hole).
    pub fn run(&self, index: u64, max: u64) -> Run {
        let first = self.page(index);
        let mut pages = 1;
        while pages < max {
            let Some(next) = index.checked_add(pages) else {
                break;
            };
            let continues = match (first, self.page(next)) {
                (Run::Device { byte, .. }, Run::Device { byte: b, .. }) => {
                    b == byte + pages * PAGE_BYTES as u64
                }
                (Run::Hole { .. }, Run::Hole { .. }) => true,
                _ => false,
            };
            if !continues {
                break;
            }
            pages += 1;
        }
        match first {
            Run::Device { byte, .. } => Run::Device { byte, pages },
            Run::Hole { .. } => Run::Hole { pages },
            Run::Mixed => Run::Mixed,
        }
    }

    /// The device byte of each block of page `index`, `None` for a hole (for a
    /// [`Run::Mixed`] page).
    pub fn page_blocks(&self, index: u64) -> Vec<Option<u64>> {
        let per = self.blocks_per_page();
        (0..per)
            .map(|k| {
                index
                    .checked_mul(per)
                    .and_then(|b| self.physical(b + k))
                    .map(|p| p * self.block_size)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const P: u64 = PAGE_BYTES as u64;

    #[test]
    fn runs_follow_extents_and_holes() {
        let map = BlockMap::new(
            4096,
            vec![
                Extent {
                    logical: 4,
                    physical: 100,
                    blocks: 2,
                },
                Extent {
                    logical: 0,
                    physical: 10,
                    blocks: 3,
                },
                Extent {
                    logical: 6,
                    physical: 102,
                    blocks: 1,
                },
            ],
        )
        .unwrap();
        assert_eq!(map.physical(2), Some(12));
        assert_eq!(map.physical(3), None);
        assert_eq!(map.physical(6), Some(102));
        assert_eq!(map.physical(7), None);
        assert_eq!(
            map.run(0, 64),
            Run::Device {
                byte: 10 * P,
                pages: 3
            }
        );
        assert_eq!(
            map.run(1, 1),
            Run::Device {
                byte: 11 * P,
                pages: 1
            }
        );
        assert_eq!(map.run(3, 64), Run::Hole { pages: 1 });
        assert_eq!(
            map.run(4, 64),
            Run::Device {
                byte: 100 * P,
                pages: 3
            },
            "adjacent extents on the device make one run"
        );
        assert_eq!(map.run(7, 5), Run::Hole { pages: 5 });
    }

    #[test]
    fn small_blocks_make_mixed_pages() {
        let map = BlockMap::new(
            1024,
            vec![
                Extent {
                    logical: 0,
                    physical: 40,
                    blocks: 8,
                },
                Extent {
                    logical: 8,
                    physical: 90,
                    blocks: 2,
                },
            ],
        )
        .unwrap();
        assert_eq!(
            map.run(0, 8),
            Run::Device {
                byte: 40 * 1024,
                pages: 2
            }
        );
        assert_eq!(map.run(2, 8), Run::Mixed);
        assert_eq!(
            map.page_blocks(2),
            vec![Some(90 * 1024), Some(91 * 1024), None, None]
        );
        assert_eq!(map.run(3, 2), Run::Hole { pages: 2 });
    }

    #[test]
    fn bad_maps_are_refused() {
        let e = |logical, blocks| Extent {
            logical,
            physical: 1,
            blocks,
        };
        assert_eq!(
            BlockMap::new(3000, vec![]).unwrap_err(),
            BlockMapError::BlockSize
        );
        assert_eq!(
            BlockMap::new(8192, vec![]).unwrap_err(),
            BlockMapError::BlockSize
        );
        assert_eq!(
            BlockMap::new(4096, vec![e(0, 4), e(3, 1)]).unwrap_err(),
            BlockMapError::BadExtent
        );
        assert_eq!(
            BlockMap::new(4096, vec![e(0, 0)]).unwrap_err(),
            BlockMapError::BadExtent
        );
        assert_eq!(
            BlockMap::new(4096, vec![e(u64::MAX, 2)]).unwrap_err(),
            BlockMapError::BadExtent
        );
        let empty = BlockMap::new(4096, vec![]).unwrap();
        assert_eq!(empty.run(5, 3), Run::Hole { pages: 3 });
    }
}
