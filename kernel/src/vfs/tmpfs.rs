//! tmpfs: a writable filesystem in memory (mounted at `/tmp` and `/dev/shm`). Each
//! regular file's bytes are a shared-memory [`FileObject`] in the page cache, as a
//! memfd's are, so `read`/`write` and a shared mapping see the same pages.
//!
//! Every name carries a security descriptor made from its creator's token and the
//! mode bits ([`SecurityDescriptor::for_file`] documents the mapping); opening checks
//! `FILE_READ_DATA` / `FILE_WRITE_DATA` against it, and creating, removing or renaming
//! a name checks `FILE_WRITE_DATA` (add a file) on the directory. The sticky bit of
//! `/tmp` is shown but not enforced: removal is decided by the directory's descriptor.
//!
//! The same tree serves hugetlbfs ([`Tmpfs::hugetlbfs`]): its regular files hold huge
//! pages from the pools ([`mm::hugetlb_file::HugetlbFile`]) instead of page-cache
//! pages, are sized in whole huge pages, and give their pages back to the pool when
//! their last name, descriptor and mapping are gone.

use super::{
    attrs::{Owned, SetAttr},
    dir::{DirEntry, DirFile},
    flags::O_TRUNC,
    memfd::Memfd,
    Caller, File, Filesystem, Node, OpenRequest, Stat,
};
use alloc::{collections::BTreeMap, string::String, sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use errno::{Errno, SysResult};
use mm::pagecache::FileObject;
use security::{
    access_check, AccessMask, GenericMapping, IntegrityLevel, MandatoryLabel, MandatoryPolicy,
    SecurityDescriptor,
};
use spin::Mutex;

/// The device minors tmpfs instances get (Linux gives anonymous minors from 0:20 on).
static NEXT_MINOR: AtomicU64 = AtomicU64::new(20);
/// Inode numbers (shared by every instance, as Linux's `get_next_ino`).
static NEXT_INO: AtomicU64 = AtomicU64::new(2);

/// What an inode holds.
enum Body {
    /// A directory's names.
    Dir(Mutex<BTreeMap<String, Arc<Inode>>>),
    /// A regular file's pages.
    File(Arc<FileObject>),
}

/// A file or directory of a tmpfs.
struct Inode {
    ino: u64,
    /// Permission bits (the type is the body's), owner and the descriptor they map
    /// onto, changed together by `chmod` and `chown`.
    owned: Mutex<Owned>,
    /// Still has a name (its `nlink` is 1, else 0).
    linked: AtomicBool,
    body: Body,
    /// A hugetlbfs mounted with `nr_inodes=`: its count of inodes still free, which
    /// this one gives back when it is gone (its last name, descriptor and mapping).
    quota: Option<Arc<AtomicU64>>,
}

impl Drop for Inode {
    fn drop(&mut self) {
        if let Some(free) = &self.quota {
            free.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Inode {
    /// A new inode made by `caller`, counted against `quota` if given.
    fn new(caller: &Caller, perm: u32, body: Body, quota: Option<Arc<AtomicU64>>) -> Arc<Inode> {
        Arc::new(Inode {
            ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
            owned: Mutex::new(Owned {
                mode: perm,
                uid: caller.token.uid(),
                gid: caller.token.gid(),
                sd: SecurityDescriptor::for_file(&caller.token, perm),
            }),
            linked: AtomicBool::new(true),
            body,
            quota,
        })
    }

    fn children(&self) -> SysResult<&Mutex<BTreeMap<String, Arc<Inode>>>> {
        match &self.body {
            Body::Dir(c) => Ok(c),
            Body::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn node(&self) -> Node {
        match self.body {
            Body::Dir(_) => Node::Dir,
            Body::File(_) => Node::File,
        }
    }

    fn stat(&self, dev: u64) -> Stat {
        let linked = u64::from(self.linked.load(Ordering::Relaxed));
        let (perm, uid, gid) = {
            let owned = self.owned.lock();
            (owned.mode, owned.uid, owned.gid)
        };
        let mut stat = match &self.body {
            Body::Dir(children) => {
                let subdirs = children
                    .lock()
                    .values()
                    .filter(|c| matches!(c.body, Body::Dir(_)))
                    .count() as u64;
                let mut s = Stat::directory(perm);
                s.nlink = if linked == 1 { 2 + subdirs } else { 0 };
                s
            }
            Body::File(object) => {
                let mut s = Stat::regular(perm, object.size_bytes()).with_shmem_blocks(object);
                s.nlink = linked;
                s
            }
        };
        stat.uid = uid;
        stat.gid = gid;
        stat.at(dev, self.ino)
    }

    /// Whether `caller` may have `want` (`FILE_READ_DATA`, `FILE_WRITE_DATA`); EACCES.
    fn check(&self, caller: &Caller, want: AccessMask) -> SysResult<()> {
        access_check(
            &caller.token,
            &self.owned.lock().sd,
            want,
            &GenericMapping::FILE,
        )
        .map(|_| ())
        .map_err(|_| Errno::EACCES)
    }

    /// `chmod` or `chown` for `caller`, by the rules [`super::attrs`] gives (EPERM).
    fn set_attr(&self, caller: &Caller, change: SetAttr) -> SysResult<()> {
        let dir = matches!(self.body, Body::Dir(_));
        self.owned.lock().apply(change, caller, dir)
    }
}

/// A tmpfs instance.
pub struct Tmpfs {
    /// The mount point (for the names /proc/<pid>/maps shows).
    at: String,
    frames: Arc<mm::phys::Frames>,
    dev: u64,
    root: Arc<Inode>,
    /// Held by `rename` across its two directories (Linux's `s_vfs_rename_mutex`).
    rename_lock: Mutex<()>,
    /// For a hugetlbfs: its page size and page limit.
    hugetlb: Option<HugetlbfsOptions>,
    /// For a hugetlbfs with `size=` or `min_size=`: its share of the pool, which its
    /// files take pages through.
    subpool: Option<Arc<mm::hugetlb_subpool::HugetlbSubpool>>,
    /// For a hugetlbfs with `nr_inodes=`: inodes that may still be made (the root
    /// counts as one, as Linux counts).
    free_inodes: Option<Arc<AtomicU64>>,
    /// For a hugetlbfs: `nr_inodes=`, if given.
    max_inodes: Option<u64>,
}

/// The rest of a hugetlbfs mount's options (`min_size=`, `nr_inodes=`, `uid=`,
/// `gid=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HugetlbfsLimits {
    /// Pages reserved for the mount's files from mount to unmount (`min_size=`).
    pub min_pages: Option<u64>,
    /// Inodes the mount may hold, its root included (`nr_inodes=`), if limited.
    pub max_inodes: Option<u64>,
    /// The root's owner (`uid=`; SYSTEM for 0).
    pub uid: u32,
    /// The root's group (`gid=`; SYSTEM for 0).
    pub gid: u32,
}

/// What a hugetlbfs mount was given (`pagesize=`, `size=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HugetlbfsOptions {
    /// The page size of its files.
    pub size: mm::hugetlb::HugeSize,
    /// Pages its files may hold (or reserve) together at most, if limited.
    pub max_pages: Option<u64>,
}

const NAME: &str = "tmpfs";
const HUGETLBFS_NAME: &str = "hugetlbfs";

impl Tmpfs {
    /// An empty tmpfs to be mounted at `at`, whose root has permission bits `perm`
    /// (`0o1777` for `/tmp`), its pages from `frames`.
    pub fn new(at: &str, perm: u32, frames: Arc<mm::phys::Frames>) -> Tmpfs {
        // Made by SYSTEM, but labelled Low so that restricted (Medium) callers may
        // still add names, as anyone may in Linux's 1777 `/tmp`.
        let mut sd = SecurityDescriptor::for_file(&security::Token::system(), perm & 0o777);
        sd.label = MandatoryLabel::new(IntegrityLevel::Low, MandatoryPolicy::NO_WRITE_UP);
        let root = Arc::new(Inode {
            ino: 1,
            owned: Mutex::new(Owned {
                mode: perm,
                uid: 0,
                gid: 0,
                sd,
            }),
            linked: AtomicBool::new(true),
            body: Body::Dir(Mutex::new(BTreeMap::new())),
            quota: None,
        });
        Tmpfs {
            at: String::from(at),
            frames,
            dev: super::stat::encode_dev(0, NEXT_MINOR.fetch_add(1, Ordering::Relaxed) as u32),
            root,
            rename_lock: Mutex::new(()),
            hugetlb: None,
            subpool: None,
            free_inodes: None,
            max_inodes: None,
        }
    }

    /// An empty hugetlbfs to be mounted at `at` (root permission bits `perm`), whose
    /// files take pages of `options.size` from the hugetlb pools.
    pub fn hugetlbfs(
        at: &str,
        perm: u32,
        options: HugetlbfsOptions,
        frames: Arc<mm::phys::Frames>,
    ) -> Tmpfs {
        match Tmpfs::hugetlbfs_limited(
            at,
            perm,
            options,
            HugetlbfsLimits::default(),
            frames.clone(),
        ) {
            Ok(fs) => fs,
            // Without `min_size=` or `nr_inodes=` nothing can fail; should the share
            // of the pool still be refused, each file keeps `size=` for itself.
            Err(_) => {
                let mut fs = Tmpfs::new(at, perm, frames);
                fs.hugetlb = Some(options);
                fs
            }
        }
    }

    /// [`hugetlbfs`](Self::hugetlbfs) with `limits`: the root owned by `limits.uid`
    /// and `limits.gid` (its DACL built from `perm` for them, as a file's), and with
    /// `size=` or `min_size=` a share of the pool for the files (`min_size=` pages
    /// reserved now: ENOMEM when the pool's free unreserved pages cannot cover them).
    pub fn hugetlbfs_limited(
        at: &str,
        perm: u32,
        options: HugetlbfsOptions,
        limits: HugetlbfsLimits,
        frames: Arc<mm::phys::Frames>,
    ) -> SysResult<Tmpfs> {
        let label = SecurityDescriptor::for_file(&security::Token::system(), 0).label;
        let sd = SecurityDescriptor::file_with_mode(
            super::attrs::user_sid(limits.uid),
            super::attrs::group_sid(limits.gid),
            label,
            perm & 0o777,
        );
        let subpool = match (options.max_pages, limits.min_pages) {
            (None, None) => None,
            (max, min) => Some(
                mm::hugetlb_subpool::HugetlbSubpool::new(
                    Arc::new(crate::mem::hugetlb::KernelHugetlb),
                    options.size,
                    max,
                    min.unwrap_or(0),
                )
                .ok_or(Errno::ENOMEM)?,
            ),
        };
        let mut fs = Tmpfs::new(at, perm, frames);
        fs.root = Arc::new(Inode {
            ino: 1,
            owned: Mutex::new(Owned {
                mode: perm,
                uid: limits.uid,
                gid: limits.gid,
                sd,
            }),
            linked: AtomicBool::new(true),
            body: Body::Dir(Mutex::new(BTreeMap::new())),
            quota: None,
        });
        fs.hugetlb = Some(options);
        fs.subpool = subpool;
        fs.max_inodes = limits.max_inodes;
        // The root is one of `nr_inodes` (none left for it: ENOMEM, as Linux).
        fs.free_inodes = match limits.max_inodes {
            None => None,
            Some(n) => Some(Arc::new(AtomicU64::new(
                n.checked_sub(1).ok_or(Errno::ENOMEM)?,
            ))),
        };
        Ok(fs)
    }

    /// A new regular file's object, named `path` in /proc.
    fn new_object(&self, path: &str) -> Arc<FileObject> {
        match self.hugetlb {
            Some(options) => {
                // The mount's share of the pool keeps `size=` for all its files.
                let (source, max_pages): (Arc<dyn mm::hugetlb::HugetlbSource>, _) =
                    match &self.subpool {
                        Some(subpool) => (subpool.clone(), None),
                        None => (
                            Arc::new(crate::mem::hugetlb::KernelHugetlb),
                            options.max_pages,
                        ),
                    };
                let pages = mm::hugetlb_file::HugetlbFile::new(
                    options.size,
                    source,
                    self.frames.clone(),
                    max_pages,
                );
                FileObject::new_hugetlb(path, pages, self.frames.clone())
            }
            None => FileObject::new_shmem_named(path, self.frames.clone()),
        }
    }

    /// The inode `rel` names.
    fn walk(&self, rel: &str) -> SysResult<Arc<Inode>> {
        let mut at = self.root.clone();
        for name in rel.split('/').filter(|n| !n.is_empty()) {
            let next = at.children()?.lock().get(name).cloned();
            at = next.ok_or(Errno::ENOENT)?;
        }
        Ok(at)
    }

    /// The directory holding `rel` and its last name (EINVAL/EBUSY for the root).
    fn parent_of<'a>(&self, rel: &'a str) -> SysResult<(Arc<Inode>, &'a str)> {
        let rel = rel.trim_end_matches('/');
        if rel.is_empty() {
            return Err(Errno::EBUSY);
        }
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let parent = self.walk(dir)?;
        parent.children()?;
        Ok((parent, name))
    }

    /// Adds `rel` as a new inode made by `body` (EEXIST if the name is taken).
    fn add(&self, rel: &str, perm: u32, caller: &Caller, body: Body) -> SysResult<Arc<Inode>> {
        let (parent, name) = self.parent_of(rel)?;
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        parent.check(caller, AccessMask::FILE_WRITE_DATA)?;
        let mut children = parent.children()?.lock();
        if children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let inode = Inode::new(caller, perm, body, self.take_inode()?);
        children.insert(String::from(name), inode.clone());
        Ok(inode)
    }

    /// Counts one more inode against `nr_inodes=` (ENOSPC past it); the quota the
    /// new inode gives back when it goes.
    fn take_inode(&self) -> SysResult<Option<Arc<AtomicU64>>> {
        let Some(free) = &self.free_inodes else {
            return Ok(None);
        };
        free.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .map_err(|_| Errno::ENOSPC)?;
        Ok(Some(free.clone()))
    }

    /// Opens `inode`, checking `caller`'s access (none for the open that creates it:
    /// as on Linux, the new file's permission bits do not apply to that open).
    fn open_inode(
        &self,
        inode: Arc<Inode>,
        req: &OpenRequest,
        caller: Option<&Caller>,
    ) -> SysResult<Arc<dyn File>> {
        if let Some(caller) = caller {
            let writing = req.write() || req.flags & O_TRUNC != 0;
            let reading = req.flags & super::flags::O_ACCMODE != super::flags::O_WRONLY;
            if reading {
                inode.check(caller, AccessMask::FILE_READ_DATA)?;
            }
            if writing {
                inode.check(caller, AccessMask::FILE_WRITE_DATA)?;
            }
        }
        let dev = self.dev;
        match &inode.body {
            Body::Dir(_) => {
                let stat = inode.stat(dev);
                let dir = inode.clone();
                let lister = move || {
                    let mut out = alloc::vec![
                        DirEntry {
                            ino: dir.ino,
                            name: String::from("."),
                            node: Node::Dir
                        },
                        DirEntry {
                            ino: dir.ino,
                            name: String::from(".."),
                            node: Node::Dir
                        },
                    ];
                    for (name, child) in dir.children()?.lock().iter() {
                        out.push(DirEntry {
                            ino: child.ino,
                            name: name.clone(),
                            node: child.node(),
                        });
                    }
                    Ok(out)
                };
                Ok(Arc::new(DirFile::new(stat, alloc::boxed::Box::new(lister))))
            }
            Body::File(object) => {
                if req.flags & O_TRUNC != 0 && req.write() {
                    object.set_size(0);
                }
                let object = object.clone();
                let stat_inode = inode.clone();
                let stat_of = move |_size: u64| stat_inode.stat(dev);
                let attr_inode = inode.clone();
                let set_attr =
                    move |change: SetAttr, caller: &Caller| attr_inode.set_attr(caller, change);
                Ok(Arc::new(Memfd::named_with_attrs(
                    object,
                    alloc::boxed::Box::new(stat_of),
                    alloc::boxed::Box::new(set_attr),
                )))
            }
        }
    }

    /// The object of a regular file (`truncate`).
    fn file_object(&self, rel: &str, caller: &Caller) -> SysResult<Arc<FileObject>> {
        let inode = self.walk(rel)?;
        match &inode.body {
            Body::File(object) => {
                inode.check(caller, AccessMask::FILE_WRITE_DATA)?;
                Ok(object.clone())
            }
            Body::Dir(_) => Err(Errno::EISDIR),
        }
    }
}

impl Filesystem for Tmpfs {
    fn name(&self) -> &'static str {
        if self.hugetlb.is_some() {
            HUGETLBFS_NAME
        } else {
            NAME
        }
    }

    /// A hugetlbfs reports its page size as the block size and, as Linux, its
    /// counts only when mounted with `size=` or `min_size=` (blocks: the `size=`
    /// limit, free: what its files have not reserved or taken; inodes: `nr_inodes=`
    /// and those left; -1 where unlimited).
    fn usage(&self) -> Option<super::FsUsage> {
        let options = self.hugetlb?;
        let mut usage = super::FsUsage {
            block_size: options.size.order().bytes(),
            ..Default::default()
        };
        if let Some(subpool) = &self.subpool {
            let (max, used) = subpool.usage();
            usage.blocks = max.unwrap_or(u64::MAX);
            usage.free_blocks = usage.blocks.wrapping_sub(used);
            usage.files = self.max_inodes.unwrap_or(u64::MAX);
            usage.free_files = self
                .free_inodes
                .as_ref()
                .map_or(u64::MAX, |free| free.load(Ordering::Relaxed));
        }
        Some(usage)
    }

    fn lookup(&self, rel: &str, _caller: &Caller) -> SysResult<Node> {
        Ok(self.walk(rel)?.node())
    }

    fn open(
        &self,
        rel: &str,
        _node: &Node,
        req: &OpenRequest,
        caller: &Caller,
    ) -> SysResult<Arc<dyn File>> {
        self.open_inode(self.walk(rel)?, req, Some(caller))
    }

    fn readdir(&self, rel: &str, _caller: &Caller) -> SysResult<Vec<(String, Node)>> {
        let dir = self.walk(rel)?;
        let children = dir.children()?.lock();
        Ok(children
            .iter()
            .map(|(n, c)| (n.clone(), c.node()))
            .collect())
    }

    fn stat(&self, rel: &str, _node: &Node, _caller: &Caller) -> SysResult<Stat> {
        Ok(self.walk(rel)?.stat(self.dev))
    }

    fn create(
        &self,
        rel: &str,
        perm: u32,
        req: &OpenRequest,
        caller: &Caller,
    ) -> SysResult<Arc<dyn File>> {
        let path = if self.at == "/" {
            String::from("/") + rel
        } else {
            alloc::format!("{}/{rel}", self.at)
        };
        let object = self.new_object(&path);
        let inode = self.add(rel, perm & 0o7777, caller, Body::File(object))?;
        self.open_inode(inode, req, None)
    }

    fn mkdir(&self, rel: &str, perm: u32, caller: &Caller) -> SysResult<()> {
        let body = Body::Dir(Mutex::new(BTreeMap::new()));
        self.add(rel, perm & 0o7777, caller, body).map(|_| ())
    }

    fn remove(&self, rel: &str, dir: bool, caller: &Caller) -> SysResult<()> {
        let (parent, name) = self.parent_of(rel)?;
        if dir && (name == "." || name == "..") {
            return Err(if name == "." {
                Errno::EINVAL
            } else {
                Errno::ENOTEMPTY
            });
        }
        parent.check(caller, AccessMask::FILE_WRITE_DATA)?;
        let mut children = parent.children()?.lock();
        let victim = children.get(name).ok_or(Errno::ENOENT)?;
        match (&victim.body, dir) {
            (Body::Dir(_), false) => return Err(Errno::EISDIR),
            (Body::File(_), true) => return Err(Errno::ENOTDIR),
            (Body::Dir(c), true) if !c.lock().is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        let victim = children.remove(name).ok_or(Errno::ENOENT)?;
        victim.linked.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn rename(&self, from: &str, to: &str, caller: &Caller) -> SysResult<()> {
        let from = from.trim_end_matches('/');
        let to = to.trim_end_matches('/');
        if from == to {
            return Ok(());
        }
        if to.starts_with(from) && to.as_bytes().get(from.len()) == Some(&b'/') {
            return Err(Errno::EINVAL); // a directory into itself
        }
        let _rename = self.rename_lock.lock();
        let (src_dir, src_name) = self.parent_of(from)?;
        let (dst_dir, dst_name) = self.parent_of(to)?;
        if dst_name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        src_dir.check(caller, AccessMask::FILE_WRITE_DATA)?;
        dst_dir.check(caller, AccessMask::FILE_WRITE_DATA)?;
        let moving = src_dir
            .children()?
            .lock()
            .get(src_name)
            .cloned()
            .ok_or(Errno::ENOENT)?;
        if from.starts_with(to) && from.as_bytes().get(to.len()) == Some(&b'/') {
            return Err(Errno::ENOTEMPTY); // onto an ancestor
        }
        let replaced = dst_dir.children()?.lock().get(dst_name).cloned();
        if let Some(old) = &replaced {
            if Arc::ptr_eq(old, &moving) {
                return Ok(());
            }
            match (&moving.body, &old.body) {
                (Body::Dir(_), Body::File(_)) => return Err(Errno::ENOTDIR),
                (Body::File(_), Body::Dir(_)) => return Err(Errno::EISDIR),
                (Body::Dir(_), Body::Dir(c)) if !c.lock().is_empty() => {
                    return Err(Errno::ENOTEMPTY)
                }
                _ => {}
            }
        }
        src_dir.children()?.lock().remove(src_name);
        if let Some(old) = dst_dir
            .children()?
            .lock()
            .insert(String::from(dst_name), moving)
        {
            old.linked.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    fn set_attr(&self, rel: &str, change: SetAttr, caller: &Caller) -> SysResult<()> {
        self.walk(rel)?.set_attr(caller, change)
    }

    fn truncate(&self, rel: &str, length: u64, caller: &Caller) -> SysResult<()> {
        let object = self.file_object(rel, caller)?;
        if let Some(pages) = object.hugetlb() {
            if !length.is_multiple_of(pages.page_bytes()) {
                return Err(Errno::EINVAL);
            }
        }
        object.set_size(length);
        Ok(())
    }
}
