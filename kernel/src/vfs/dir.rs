//! An open directory: its entries (taken at open, with `.` and `..`) read as
//! `linux_dirent64` records by `getdents64`; `read` is EISDIR.

use super::{path_inode_number, File, Node, Stat, Whence};
use crate::arch::uaccess::copy_to_user;
use alloc::{string::String, vec::Vec};
use errno::{Errno, SysResult};
use spin::Mutex;

/// `d_type` values.
const DT_CHR: u8 = 2;
const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;
const DT_LNK: u8 = 10;

/// One directory entry.
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// Name.
    pub name: String,
    /// What it is.
    pub node: Node,
}

/// Lists a directory's entries (`.` and `..` first) when it is read.
pub type Lister = alloc::boxed::Box<dyn Fn() -> SysResult<Vec<DirEntry>> + Send + Sync>;

/// An open directory: listed when read from its start (so a rewind sees what changed,
/// and the listing of `/proc/self/fd` includes the descriptor reading it).
pub struct DirFile {
    lister: Lister,
    /// The listing being read and the index of the next entry `getdents64` returns.
    state: Mutex<(Vec<DirEntry>, usize)>,
    stat: Stat,
}

impl DirFile {
    /// A directory with attributes `stat` whose entries `lister` gives.
    pub fn new(stat: Stat, lister: Lister) -> DirFile {
        DirFile {
            lister,
            state: Mutex::new((Vec::new(), 0)),
            stat,
        }
    }
}

/// The size of a `linux_dirent64` record for a name of `len` bytes: 19 bytes of header,
/// the name, its NUL, rounded up to 8.
fn record_len(len: usize) -> usize {
    (19 + len + 1).next_multiple_of(8)
}

impl File for DirFile {
    fn read(&self, _buf: u64, _count: u64) -> SysResult<u64> {
        Err(Errno::EISDIR)
    }

    fn getdents(&self, buf: u64, count: u64) -> SysResult<u64> {
        let mut state = self.state.lock();
        if state.1 == 0 {
            state.0 = (self.lister)()?;
        }
        let (entries, pos) = &mut *state;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let mut out: Vec<u8> = Vec::new();
        let first = *pos;
        while let Some(e) = entries.get(*pos) {
            let len = record_len(e.name.len());
            if out.len() + len > count {
                break;
            }
            if let Err(e) = crate::mem::kbuf::reserve(&mut out, len) {
                *pos = first; // nothing was read
                return Err(e);
            }
            let d_type = match e.node {
                Node::Dir => DT_DIR,
                Node::File => DT_REG,
                Node::Device => DT_CHR,
                Node::Symlink(_) => DT_LNK,
            };
            let start = out.len();
            out.extend_from_slice(&e.ino.to_le_bytes());
            out.extend_from_slice(&(*pos as u64 + 1).to_le_bytes()); // d_off: the next entry
            out.extend_from_slice(&(len as u16).to_le_bytes());
            out.push(d_type);
            out.extend_from_slice(e.name.as_bytes());
            out.resize(start + len, 0);
            *pos += 1;
        }
        if out.is_empty() && entries.get(*pos).is_some() {
            return Err(Errno::EINVAL); // the buffer cannot hold the next entry
        }
        if let Err(e) = copy_to_user(buf, &out) {
            *pos = first; // nothing was read
            return Err(e);
        }
        Ok(out.len() as u64)
    }

    fn seek(&self, offset: i64, whence: Whence) -> SysResult<u64> {
        let mut state = self.state.lock();
        let pos = &mut state.1;
        let new = match whence {
            Whence::Set => offset,
            Whence::Current => (*pos as i64).checked_add(offset).ok_or(Errno::EINVAL)?,
            _ => return Err(Errno::EINVAL),
        };
        if new < 0 {
            return Err(Errno::EINVAL);
        }
        *pos = usize::try_from(new).unwrap_or(usize::MAX);
        Ok(new as u64)
    }

    fn stat(&self) -> Stat {
        self.stat
    }
}

/// `entries` of directory `path` of filesystem `fs`, after `.` and `..`, with their
/// inode numbers.
pub fn with_dots(fs: &str, path: &str, entries: Vec<(String, Node)>) -> Vec<DirEntry> {
    let parent = pathwalk::split_last(path).map_or("/", |(dir, _)| dir);
    let mut out = Vec::with_capacity(entries.len() + 2);
    out.push(DirEntry {
        ino: path_inode_number(fs, path),
        name: String::from("."),
        node: Node::Dir,
    });
    out.push(DirEntry {
        ino: path_inode_number(fs, parent),
        name: String::from(".."),
        node: Node::Dir,
    });
    for (name, node) in entries {
        let child = if path == "/" {
            String::from("/") + &name
        } else {
            alloc::format!("{path}/{name}")
        };
        out.push(DirEntry {
            ino: path_inode_number(fs, &child),
            name,
            node,
        });
    }
    out
}
