//! The initramfs as the root filesystem: its directories and read-only files, each
//! file mappable through its page-cache object.

use super::{
    dir::{with_dots, DirFile},
    path_inode_number,
    text::TextFile,
    Caller, File, Filesystem, Node, OpenRequest, Stat, Whence,
};
use crate::initramfs;
use alloc::{borrow::Cow, string::String, sync::Arc, vec::Vec};
use errno::{Errno, SysResult};

/// The initramfs filesystem (mounted at `/`).
pub struct InitramfsFs;

const NAME: &str = "rootfs";

/// Device number of the root filesystem.
const DEV: u64 = super::stat::encode_dev(0, 1);

fn absolute(rel: &str) -> String {
    String::from("/") + rel
}

/// A file of the initramfs.
struct InitramfsFile {
    text: TextFile,
    object: Option<Arc<mm::pagecache::FileObject>>,
}

impl File for InitramfsFile {
    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        self.text.read(buf, count)
    }

    fn pread(&self, buf: u64, count: u64, offset: u64) -> SysResult<u64> {
        self.text.pread(buf, count, offset)
    }

    fn seek(&self, offset: i64, whence: Whence) -> SysResult<u64> {
        self.text.seek(offset, whence)
    }

    fn mmap_object(&self) -> SysResult<Arc<mm::pagecache::FileObject>> {
        self.object.clone().ok_or(Errno::ENODEV)
    }

    fn stat(&self) -> Stat {
        self.text.stat()
    }
}

impl Filesystem for InitramfsFs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn read_only(&self) -> bool {
        true
    }

    fn lookup(&self, rel: &str, _caller: &Caller) -> SysResult<Node> {
        let path = absolute(rel);
        if initramfs::lookup(&path).is_some() {
            Ok(Node::File)
        } else if initramfs::is_dir(&path) {
            Ok(Node::Dir)
        } else {
            Err(Errno::ENOENT)
        }
    }

    fn open(
        &self,
        rel: &str,
        node: &Node,
        req: &OpenRequest,
        caller: &Caller,
    ) -> SysResult<Arc<dyn File>> {
        let path = absolute(rel);
        if *node == Node::Dir {
            self.readdir(rel, caller)?;
            let stat = self.stat(rel, node, caller)?;
            let (rel, caller, path) = (String::from(rel), caller.clone(), path.clone());
            let lister = move || Ok(with_dots(NAME, &path, InitramfsFs.readdir(&rel, &caller)?));
            return Ok(Arc::new(DirFile::new(stat, alloc::boxed::Box::new(lister))));
        }
        if req.write() || req.flags & super::flags::O_TRUNC != 0 {
            return Err(Errno::EROFS);
        }
        let data = initramfs::lookup(&path).ok_or(Errno::ENOENT)?;
        let stat = Stat::regular(initramfs::perm(&path), 0).at(DEV, path_inode_number(NAME, &path));
        Ok(Arc::new(InitramfsFile {
            text: TextFile::with_stat(Cow::Borrowed(data), stat),
            object: initramfs::file_object(&path),
        }))
    }

    fn readdir(&self, rel: &str, _caller: &Caller) -> SysResult<Vec<(String, Node)>> {
        let path = absolute(rel);
        if !initramfs::is_dir(&path) {
            return Err(Errno::ENOTDIR);
        }
        Ok(initramfs::children(&path)
            .into_iter()
            .map(|(name, dir)| (name, if dir { Node::Dir } else { Node::File }))
            .collect())
    }

    fn stat(&self, rel: &str, node: &Node, _caller: &Caller) -> SysResult<Stat> {
        let path = absolute(rel);
        let ino = path_inode_number(NAME, &path);
        match node {
            Node::Dir => Ok(Stat::directory(0o755).at(DEV, ino)),
            _ => {
                let data = initramfs::lookup(&path).ok_or(Errno::ENOENT)?;
                Ok(Stat::regular(initramfs::perm(&path), data.len() as u64).at(DEV, ino))
            }
        }
    }
}
