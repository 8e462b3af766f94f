//! The block map of an ext4 file, read from its inode's extent tree: the one piece of
//! ext4's on-disk format the kernel reads itself (the filesystem crate it uses for
//! names, attributes and metadata does not expose where a file's blocks are). Only
//! what locating an inode and walking its extents needs is decoded: the superblock's
//! geometry, the group descriptor's inode table, the inode's flags and `i_block`, and
//! the extent nodes.

use alloc::vec;
use alloc::vec::Vec;

use super::backing::IoError;
use super::blockmap::{BlockMap, Extent};

/// Reads bytes at a device byte offset into the buffer (the metadata reads of a block
/// map).
pub type ReadAt<'a> = dyn FnMut(u64, &mut [u8]) -> Result<(), IoError> + 'a;

/// Byte offset of the superblock on the device.
pub const SUPERBLOCK_BYTE: u64 = 1024;
/// Bytes of the superblock.
pub const SUPERBLOCK_BYTES: usize = 1024;
/// `s_magic`.
const EXT4_MAGIC: u16 = 0xef53;
/// The magic at the head of every extent node.
const EXTENT_MAGIC: u16 = 0xf30a;
/// `INCOMPAT_64BIT`: group descriptors carry high halves.
const INCOMPAT_64BIT: u32 = 0x80;
/// `INCOMPAT_META_BG`: group descriptors are scattered (not supported here).
const INCOMPAT_META_BG: u32 = 0x10;
/// `EXT4_EXTENTS_FL`: the inode's blocks are an extent tree.
const EXTENTS_FL: u32 = 0x80000;
/// An extent length above this marks an unwritten extent (reads as zeroes).
const UNWRITTEN_LEN: u16 = 32768;
/// Deepest extent tree accepted (ext4's own limit is 5).
const MAX_DEPTH: u16 = 5;

/// Why a file's block map could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext4MapError {
    /// Not an ext4 superblock, or its geometry is impossible.
    BadSuperblock,
    /// A layout this reader does not decode (scattered group descriptors, an inode
    /// without extents: inline data or the old block map).
    Unsupported,
    /// An extent node is damaged (bad magic, depth, counts or extents).
    Corrupt,
    /// The device read failed.
    Io,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// What locating inodes needs from the superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per block.
    pub block_size: u64,
    /// Inodes in each block group.
    pub inodes_per_group: u32,
    /// Bytes per inode record.
    pub inode_size: u32,
    /// Bytes per group descriptor.
    pub desc_size: u32,
    /// Block holding the first group descriptor's table (block after the superblock).
    pub descriptors_block: u64,
    /// Inodes in the filesystem.
    pub inodes_count: u32,
}

impl Geometry {
    /// Decodes the superblock (the [`SUPERBLOCK_BYTES`] at [`SUPERBLOCK_BYTE`]).
    pub fn from_superblock(sb: &[u8]) -> Result<Geometry, Ext4MapError> {
        if sb.len() < SUPERBLOCK_BYTES || u16_at(sb, 0x38) != EXT4_MAGIC {
            return Err(Ext4MapError::BadSuperblock);
        }
        let log = u32_at(sb, 0x18);
        if log > 6 {
            return Err(Ext4MapError::BadSuperblock);
        }
        let block_size = 1024u64 << log;
        let incompat = u32_at(sb, 0x60);
        if incompat & INCOMPAT_META_BG != 0 {
            return Err(Ext4MapError::Unsupported);
        }
        let inode_size = if u32_at(sb, 0x4c) == 0 {
            128
        } else {
            u32::from(u16_at(sb, 0x58))
        };
        let desc_size = if incompat & INCOMPAT_64BIT != 0 {
            u32::from(u16_at(sb, 0xfe))
        } else {
            32
        };
        let inodes_per_group = u32_at(sb, 0x28);
        if inodes_per_group == 0
            || !(128..=block_size as u32).contains(&inode_size)
            || !(32..=block_size as u32).contains(&desc_size)
        {
            return Err(Ext4MapError::BadSuperblock);
        }
        Ok(Geometry {
            block_size,
            inodes_per_group,
            inode_size,
            desc_size,
            descriptors_block: u64::from(u32_at(sb, 0x14)) + 1,
            inodes_count: u32_at(sb, 0x0),
        })
    }

    /// The device byte of inode `ino`'s record, reading its group descriptor.
    pub fn inode_byte(&self, ino: u32, read: &mut ReadAt<'_>) -> Result<u64, Ext4MapError> {
        if ino == 0 || ino > self.inodes_count {
            return Err(Ext4MapError::Corrupt);
        }
        let group = u64::from((ino - 1) / self.inodes_per_group);
        let slot = u64::from((ino - 1) % self.inodes_per_group);
        let desc_at = self.descriptors_block * self.block_size + group * u64::from(self.desc_size);
        let mut desc = vec![0u8; self.desc_size as usize];
        read(desc_at, &mut desc).map_err(|_| Ext4MapError::Io)?;
        let mut table = u64::from(u32_at(&desc, 0x8));
        if self.desc_size >= 64 {
            table |= u64::from(u32_at(&desc, 0x28)) << 32;
        }
        Ok(table * self.block_size + slot * u64::from(self.inode_size))
    }
}

/// The block map of the file whose inode record is `inode`, reading interior extent
/// nodes with `read(device byte, buffer)`. Unwritten extents are left out (holes).
pub fn block_map(
    geo: &Geometry,
    inode: &[u8],
    read: &mut ReadAt<'_>,
) -> Result<BlockMap, Ext4MapError> {
    if inode.len() < 0x28 + 60 {
        return Err(Ext4MapError::Corrupt);
    }
    if u32_at(inode, 0x20) & EXTENTS_FL == 0 {
        return Err(Ext4MapError::Unsupported);
    }
    let mut extents = Vec::new();
    // Nodes still to visit: (bytes, the depth their parent expects).
    let mut pending: Vec<(Vec<u8>, Option<u16>)> = vec![(inode[0x28..0x28 + 60].to_vec(), None)];
    let mut visited = 0u64;
    while let Some((node, expected_depth)) = pending.pop() {
        visited += 1;
        if visited > 1 << 20 {
            return Err(Ext4MapError::Corrupt);
        }
        if node.len() < 12 || u16_at(&node, 0) != EXTENT_MAGIC {
            return Err(Ext4MapError::Corrupt);
        }
        let entries = usize::from(u16_at(&node, 2));
        let depth = u16_at(&node, 6);
        if depth > MAX_DEPTH
            || expected_depth.is_some_and(|d| d != depth)
            || 12 + entries * 12 > node.len()
        {
            return Err(Ext4MapError::Corrupt);
        }
        for i in 0..entries {
            let e = &node[12 + i * 12..24 + i * 12];
            if depth == 0 {
                let len = u16_at(e, 4);
                if len > UNWRITTEN_LEN {
                    continue;
                }
                let physical = (u64::from(u16_at(e, 6)) << 32) | u64::from(u32_at(e, 8));
                extents.push(Extent {
                    logical: u64::from(u32_at(e, 0)),
                    physical,
                    blocks: u64::from(len),
                });
            } else {
                let leaf = (u64::from(u16_at(e, 8)) << 32) | u64::from(u32_at(e, 4));
                let mut child = vec![0u8; geo.block_size as usize];
                let at = leaf
                    .checked_mul(geo.block_size)
                    .ok_or(Ext4MapError::Corrupt)?;
                read(at, &mut child).map_err(|_| Ext4MapError::Io)?;
                pending.push((child, Some(depth - 1)));
            }
        }
    }
    BlockMap::new(geo.block_size, extents).map_err(|_| Ext4MapError::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pagecache::blockmap::Run;

    fn put16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn header(b: &mut [u8], entries: u16, depth: u16) {
        put16(b, 0, EXTENT_MAGIC);
        put16(b, 2, entries);
        put16(b, 4, 4);
        put16(b, 6, depth);
    }

    fn leaf(b: &mut [u8], i: usize, logical: u32, len: u16, physical: u64) {
        let e = &mut b[12 + i * 12..24 + i * 12];
        put32(e, 0, logical);
        put16(e, 4, len);
        put16(e, 6, (physical >> 32) as u16);
        put32(e, 8, physical as u32);
    }

    fn superblock(log_block: u32, inode_size: u16, incompat: u32) -> Vec<u8> {
        let mut sb = vec![0u8; SUPERBLOCK_BYTES];
        put32(&mut sb, 0x0, 1024);
        put32(&mut sb, 0x14, if log_block == 0 { 1 } else { 0 });
        put32(&mut sb, 0x18, log_block);
        put32(&mut sb, 0x28, 256);
        put16(&mut sb, 0x38, EXT4_MAGIC);
        put32(&mut sb, 0x4c, 1);
        put16(&mut sb, 0x58, inode_size);
        put32(&mut sb, 0x60, incompat);
        put16(&mut sb, 0xfe, 64);
        sb
    }

    #[test]
    fn geometry_and_inode_location() {
        let geo = Geometry::from_superblock(&superblock(2, 256, INCOMPAT_64BIT)).unwrap();
        assert_eq!(geo.block_size, 4096);
        assert_eq!(geo.desc_size, 64);
        assert_eq!(geo.descriptors_block, 1);
        // Inode 300 is slot 43 of group 1, whose descriptor names table block 0x1_0000_0020.
        let mut read = |at: u64, buf: &mut [u8]| {
            assert_eq!(at, 4096 + 64);
            buf.fill(0);
            put32(buf, 0x8, 0x20);
            put32(buf, 0x28, 1);
            Ok(())
        };
        let byte = geo.inode_byte(300, &mut read).unwrap();
        assert_eq!(byte, 0x1_0000_0020 * 4096 + 43 * 256);
        assert_eq!(geo.inode_byte(0, &mut read), Err(Ext4MapError::Corrupt));
        assert_eq!(geo.inode_byte(5000, &mut read), Err(Ext4MapError::Corrupt));

        let small = Geometry::from_superblock(&superblock(0, 128, 0)).unwrap();
        assert_eq!((small.block_size, small.desc_size), (1024, 32));
        assert_eq!(small.descriptors_block, 2);
        let mut bad = superblock(2, 256, 0);
        put16(&mut bad, 0x38, 0);
        assert_eq!(
            Geometry::from_superblock(&bad),
            Err(Ext4MapError::BadSuperblock)
        );
        assert_eq!(
            Geometry::from_superblock(&superblock(2, 256, INCOMPAT_META_BG)),
            Err(Ext4MapError::Unsupported)
        );
    }

    #[test]
    fn two_level_tree_with_an_unwritten_extent() {
        let geo = Geometry::from_superblock(&superblock(2, 256, 0)).unwrap();
        let mut inode = vec![0u8; 256];
        put32(&mut inode, 0x20, EXTENTS_FL);
        {
            let root = &mut inode[0x28..0x28 + 60];
            header(root, 1, 1);
            // Index entry: from logical 0, the leaf at block 77.
            put32(&mut root[12..], 0, 0);
            put32(&mut root[12..], 4, 77);
        }
        let mut read = |at: u64, buf: &mut [u8]| {
            if at != 77 * 4096 {
                return Err(IoError);
            }
            buf.fill(0);
            header(buf, 3, 0);
            leaf(buf, 0, 0, 2, 500);
            leaf(buf, 1, 2, UNWRITTEN_LEN + 3, 600);
            leaf(buf, 2, 10, 1, 0x2_0000_0000);
            Ok(())
        };
        let map = block_map(&geo, &inode, &mut read).unwrap();
        assert_eq!(map.physical(1), Some(501));
        assert_eq!(map.physical(3), None, "unwritten extents read as zeroes");
        assert_eq!(map.physical(10), Some(0x2_0000_0000));
        assert_eq!(
            map.run(0, 8),
            Run::Device {
                byte: 500 * 4096,
                pages: 2
            }
        );

        let mut failing = |_: u64, _: &mut [u8]| Err(IoError);
        assert_eq!(
            block_map(&geo, &inode, &mut failing).unwrap_err(),
            Ext4MapError::Io
        );
        inode[0x28] = 0;
        assert_eq!(
            block_map(&geo, &inode, &mut read).unwrap_err(),
            Ext4MapError::Corrupt
        );
        put32(&mut inode, 0x20, 0);
        assert_eq!(
            block_map(&geo, &inode, &mut read).unwrap_err(),
            Ext4MapError::Unsupported
        );
    }

    #[test]
    fn wrong_child_depth_is_corrupt() {
        let geo = Geometry::from_superblock(&superblock(2, 256, 0)).unwrap();
        let mut inode = vec![0u8; 256];
        put32(&mut inode, 0x20, EXTENTS_FL);
        header(&mut inode[0x28..0x28 + 60], 1, 2);
        put32(&mut inode[0x28 + 12..], 4, 9);
        let mut read = |_: u64, buf: &mut [u8]| {
            buf.fill(0);
            header(buf, 0, 0);
            Ok(())
        };
        assert_eq!(
            block_map(&geo, &inode, &mut read).unwrap_err(),
            Ext4MapError::Corrupt
        );
    }
}
