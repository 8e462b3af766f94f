//! `/proc/<pid>/pagemap`: 8 bytes per virtual page (bit 63 present, the frame number only
//! for a reader allowed to see it).

use crate::{
    arch::{uaccess::copy_to_user, usermode::USER_ADDRESS_END},
    proc::Process,
    vfs::{File, Stat, Whence},
};
use alloc::sync::Arc;
use errno::{Errno, SysResult};
use spin::Mutex;

/// Entries produced per read at most.
const MAX_ENTRIES: u64 = 4096;
const PAGE_SHIFT: u32 = 12;

/// A process's page map.
pub struct PageMapFile {
    target: Arc<Process>,
    pos: Mutex<u64>,
    show_pfn: bool,
}

impl PageMapFile {
    /// `target`'s page map; frame numbers shown when `show_pfn`.
    pub fn new(target: Arc<Process>, show_pfn: bool) -> PageMapFile {
        PageMapFile {
            target,
            pos: Mutex::new(0),
            show_pfn,
        }
    }

    fn entries(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        if !offset.is_multiple_of(8) || !count.is_multiple_of(8) {
            return Err(Errno::EINVAL);
        }
        // One entry per page of user space, as Linux's pagemap_read: a position past
        // the last page (however large) reads nothing.
        let first_page = offset / 8;
        let user_pages = USER_ADDRESS_END >> PAGE_SHIFT;
        let entries = (count / 8)
            .min(MAX_ENTRIES)
            .min(user_pages.saturating_sub(first_page));
        let space = self.target.address_space();
        let mut out = crate::mem::kbuf::with_capacity(entries as usize * 8)?;
        for page in first_page..first_page + entries {
            let entry = crate::procfs::pagemap_entry(&space, page << PAGE_SHIFT, self.show_pfn);
            out.extend_from_slice(&entry.to_le_bytes());
        }
        copy_to_user(buf, &out)?;
        Ok(out.len() as u64)
    }
}

impl File for PageMapFile {
    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        let n = self.entries(buf, count, *pos)?;
        *pos += n;
        Ok(n)
    }

    fn pread(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        self.entries(buf, count, offset)
    }

    fn seek(&self, offset: i64, whence: Whence) -> SysResult<u64> {
        let mut pos = self.pos.lock();
        *pos = match whence {
            Whence::Set => offset as u64,
            Whence::Current => pos.wrapping_add(offset as u64),
            _ => return Err(Errno::EINVAL),
        };
        Ok(*pos)
    }

    fn stat(&self) -> Stat {
        Stat::regular(0o400, 0)
    }
}
