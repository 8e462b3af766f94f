//! The name of a file object in the page cache and in fault waits: a leaf, so the
//! fault path's wait seam can name a file without the page cache.

/// Identifies a file object (the inode number for real files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u64);
