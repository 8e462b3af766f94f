//! File attributes and the two layouts user space reads them in (`struct stat` for
//! `fstat`/`newfstatat`, `struct statx`).

use crate::arch::uaccess::write_user;
use errno::SysResult;

/// `S_IFMT` file types.
pub mod mode {
    /// Mask of the type bits.
    pub const S_IFMT: u32 = 0o170_000;
    /// Directory.
    pub const S_IFDIR: u32 = 0o040_000;
    /// Character device.
    pub const S_IFCHR: u32 = 0o020_000;
    /// Regular file.
    pub const S_IFREG: u32 = 0o100_000;
    /// Symbolic link.
    pub const S_IFLNK: u32 = 0o120_000;
    /// FIFO (pipe).
    pub const S_IFIFO: u32 = 0o010_000;
}

/// What `stat` reports of a file (times are not kept: zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// The filesystem's device number (Linux's encoding).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Type and permission bits.
    pub mode: u32,
    /// Links.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// The device a device file stands for.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Preferred I/O size.
    pub blksize: u64,
    /// 512-byte blocks allocated, where the file counts them (shared memory: its
    /// pages, resident or in swap); else [`blocks`](Self::blocks) derives them from
    /// the size.
    pub allocated_blocks: Option<u64>,
}

/// Linux's `new_encode_dev`.
pub const fn encode_dev(major: u32, minor: u32) -> u64 {
    ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as u64
}

impl Stat {
    /// A regular file with permission bits `perm` and `size` bytes.
    pub fn regular(perm: u32, size: u64) -> Stat {
        Stat {
            mode: mode::S_IFREG | perm,
            nlink: 1,
            size,
            blksize: 4096,
            ..Stat::default()
        }
    }

    /// A directory.
    pub fn directory(perm: u32) -> Stat {
        Stat {
            mode: mode::S_IFDIR | perm,
            nlink: 2,
            blksize: 4096,
            ..Stat::default()
        }
    }

    /// A symbolic link whose target is `len` bytes long.
    pub fn symlink(len: u64) -> Stat {
        Stat {
            mode: mode::S_IFLNK | 0o777,
            nlink: 1,
            size: len,
            blksize: 4096,
            ..Stat::default()
        }
    }

    /// A character device `major:minor`.
    pub fn char_device(perm: u32, major: u32, minor: u32) -> Stat {
        Stat {
            mode: mode::S_IFCHR | perm,
            nlink: 1,
            rdev: encode_dev(major, minor),
            blksize: 4096,
            ..Stat::default()
        }
    }

    /// With inode `ino` on device `dev`.
    pub fn at(self, dev: u64, ino: u64) -> Stat {
        Stat { dev, ino, ..self }
    }

    /// 512-byte blocks allocated (those the size takes, unless the file counts them).
    pub fn blocks(&self) -> u64 {
        self.allocated_blocks
            .unwrap_or_else(|| self.size.div_ceil(512))
    }

    /// With the blocks a shared-memory object's pages take, resident or in swap (as
    /// Linux's shmem counts `i_blocks`), unless it is a hugetlb file (whose blocks
    /// stay those of its size).
    pub fn with_shmem_blocks(self, object: &mm::pagecache::FileObject) -> Stat {
        if object.hugetlb().is_some() {
            return self;
        }
        let pages = object.cache().len() + object.cache().swapped();
        Stat {
            allocated_blocks: Some(pages * (mm::frame::PAGE_SIZE / 512)),
            ..self
        }
    }

    /// Writes `struct stat` (x86_64, 144 bytes) to `addr`.
    pub fn write_stat(&self, addr: u64) -> SysResult<()> {
        let mut s = [0u64; 18];
        s[0] = self.dev;
        s[1] = self.ino;
        s[2] = self.nlink;
        s[3] = u64::from(self.mode) | (u64::from(self.uid) << 32);
        s[4] = u64::from(self.gid);
        s[5] = self.rdev;
        s[6] = self.size;
        s[7] = self.blksize;
        s[8] = self.blocks();
        write_user(addr, &s)
    }

    /// Writes `struct statx` (256 bytes) to `addr`, with the basic fields
    /// (`STATX_BASIC_STATS`) filled whatever `mask` asked, as Linux does.
    pub fn write_statx(&self, addr: u64) -> SysResult<()> {
        const STATX_BASIC_STATS: u64 = 0x7ff;
        let major = |d: u64| ((d >> 8) & 0xfff) as u32;
        let minor = |d: u64| ((d & 0xff) | ((d >> 12) & !0xff)) as u32;
        let mut s = [0u64; 32];
        s[0] = STATX_BASIC_STATS | (self.blksize << 32); // stx_mask, stx_blksize
        s[2] = self.nlink | (u64::from(self.uid) << 32); // stx_nlink, stx_uid
        s[3] = u64::from(self.gid) | (u64::from(self.mode & 0xffff) << 32); // stx_gid, stx_mode
        s[4] = self.ino;
        s[5] = self.size;
        s[6] = self.blocks();
        s[16] = u64::from(major(self.rdev)) | (u64::from(minor(self.rdev)) << 32);
        s[17] = u64::from(major(self.dev)) | (u64::from(minor(self.dev)) << 32);
        write_user(addr, &s)
    }
}
