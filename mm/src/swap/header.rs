//! Linux's swap header (`union swap_header` in `include/linux/swap.h`), as `mkswap`
//! writes it in the first page of a swap device: the magic `SWAPSPACE2` in the page's
//! last ten bytes, and at offset 1024 the version (1), the last usable page, the
//! number of bad pages and their list. Little-endian, as on x86.

use alloc::vec::Vec;

use crate::errno::MmError;
use crate::phys::PAGE_BYTES;

/// The magic of a version-1 swap area.
pub const MAGIC: &[u8; 10] = b"SWAPSPACE2";
/// Offset of the `info` part of the header (after the boot block).
const INFO: usize = 1024;
/// The most bad pages the header can list (Linux's `MAX_SWAP_BADPAGES` for 4 KiB).
const MAX_BAD_PAGES: usize = (PAGE_BYTES - INFO - 512 - 10) / 4;

/// What a valid header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwapHeader {
    /// The last page that may hold swapped data (page 0 is the header itself).
    pub last_page: u64,
    /// Pages listed as unusable.
    pub bad_pages: Vec<u64>,
}

fn u32_at(page: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]])
}

impl SwapHeader {
    /// Parses the first page of a device of `device_pages` pages. `EINVAL` for a
    /// missing magic, another version, a bad-page count over the limit, or no usable
    /// page.
    pub fn parse(page: &[u8], device_pages: u64) -> Result<SwapHeader, MmError> {
        if page.len() < PAGE_BYTES || &page[PAGE_BYTES - 10..PAGE_BYTES] != MAGIC {
            return Err(MmError::InvalidArgument);
        }
        if u32_at(page, INFO) != 1 {
            return Err(MmError::InvalidArgument);
        }
        let nr_bad = u32_at(page, INFO + 8) as usize;
        if nr_bad > MAX_BAD_PAGES {
            return Err(MmError::InvalidArgument);
        }
        // Linux clamps an oversized last_page to the device rather than refusing.
        let last_page = u64::from(u32_at(page, INFO + 4)).min(device_pages.saturating_sub(1));
        if last_page == 0 {
            return Err(MmError::InvalidArgument);
        }
        let list = INFO + 512;
        let bad_pages = (0..nr_bad)
            .map(|i| u64::from(u32_at(page, list + 4 * i)))
            .collect::<Vec<_>>();
        if bad_pages.iter().any(|&b| b == 0 || b > last_page) {
            return Err(MmError::InvalidArgument);
        }
        Ok(SwapHeader {
            last_page,
            bad_pages,
        })
    }

    /// Writes a header for a device of `pages` pages into `page` (what `mkswap`
    /// writes, less the UUID and label): for tests and for formatting a RAM disk.
    pub fn format(page: &mut [u8], pages: u64) {
        page[..PAGE_BYTES].fill(0);
        page[INFO..INFO + 4].copy_from_slice(&1u32.to_le_bytes());
        let last = u32::try_from(pages.saturating_sub(1)).unwrap_or(u32::MAX);
        page[INFO + 4..INFO + 8].copy_from_slice(&last.to_le_bytes());
        page[PAGE_BYTES - 10..PAGE_BYTES].copy_from_slice(MAGIC);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn a_formatted_header_parses() {
        let mut page = vec![0u8; PAGE_BYTES];
        SwapHeader::format(&mut page, 256);
        let h = SwapHeader::parse(&page, 256).unwrap();
        assert_eq!(h.last_page, 255);
        assert!(h.bad_pages.is_empty());
        // A header claiming more than the device has is clamped to the device.
        assert_eq!(SwapHeader::parse(&page, 100).unwrap().last_page, 99);
    }

    #[test]
    fn bad_headers_are_einval() {
        let mut page = vec![0u8; PAGE_BYTES];
        assert_eq!(
            SwapHeader::parse(&page, 256),
            Err(MmError::InvalidArgument),
            "no magic"
        );
        SwapHeader::format(&mut page, 256);
        page[INFO] = 2;
        assert_eq!(SwapHeader::parse(&page, 256), Err(MmError::InvalidArgument));
        SwapHeader::format(&mut page, 256);
        page[INFO + 8..INFO + 12].copy_from_slice(&5000u32.to_le_bytes());
        assert_eq!(SwapHeader::parse(&page, 256), Err(MmError::InvalidArgument));
        SwapHeader::format(&mut page, 1);
        assert_eq!(SwapHeader::parse(&page, 1), Err(MmError::InvalidArgument));
        assert_eq!(
            SwapHeader::parse(&page[..100], 256),
            Err(MmError::InvalidArgument)
        );
    }

    #[test]
    fn bad_page_list_is_read_and_checked() {
        let mut page = vec![0u8; PAGE_BYTES];
        SwapHeader::format(&mut page, 64);
        page[INFO + 8..INFO + 12].copy_from_slice(&2u32.to_le_bytes());
        page[INFO + 512..INFO + 516].copy_from_slice(&7u32.to_le_bytes());
        page[INFO + 516..INFO + 520].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(SwapHeader::parse(&page, 64).unwrap().bad_pages, [7, 9]);
        page[INFO + 516..INFO + 520].copy_from_slice(&99u32.to_le_bytes());
        assert_eq!(SwapHeader::parse(&page, 64), Err(MmError::InvalidArgument));
    }
}
