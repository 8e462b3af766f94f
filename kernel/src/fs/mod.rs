//! The files and filesystems that reach into kernel state beyond the file layer
//! (`crate::vfs`): `/proc` and `/sys` (generated text, registry keys, DAMON controls,
//! another process's memory and page map), the userfaultfd descriptor and
//! `/dev/userfaultfd`. Each kind
//! of file is one file here; [`mount_all`] builds the namespace at boot.

#![deny(unsafe_code)]

pub mod blockdev;
pub mod damon;
pub mod dev_userfaultfd;
pub mod ext4;
pub mod oom_score_adj;
pub mod pagemap;
pub mod pidfd;
pub mod proc_mem;
pub mod procfs;
pub mod registry_key;
pub mod sysfs;
pub mod userfaultfd;
pub mod vma_text;

use crate::{
    proc::{self, Process},
    vfs::{self, Caller, Node},
};
use alloc::{string::String, sync::Arc, vec::Vec};
use errno::{Errno, SysResult};

/// Mounts the boot namespace: the initramfs at `/`, then `/proc`, `/sys` and `/dev`,
/// a tmpfs each at `/tmp` and `/dev/shm` (mode 1777, as Linux distributions), and a
/// hugetlbfs at `/dev/hugepages`.
pub fn mount_all() {
    vfs::mount::mount("/", Arc::new(vfs::initramfs::InitramfsFs));
    vfs::mount::mount("/proc", Arc::new(procfs::ProcFs));
    vfs::mount::mount("/sys", Arc::new(sysfs::SysFs));
    vfs::mount::mount("/dev", Arc::new(vfs::devfs::DevFs));
    vfs::devfs::register("userfaultfd", dev_userfaultfd::open);
    for at in ["/tmp", "/dev/shm"] {
        let frames = crate::mem::frames::mm_frames().clone();
        vfs::mount::mount(at, Arc::new(vfs::tmpfs::Tmpfs::new(at, 0o1777, frames)));
    }
    // hugetlbfs of the default page size at /dev/hugepages, as systemd mounts it.
    let options = vfs::tmpfs::HugetlbfsOptions {
        size: mm::hugetlb::HugeSize::Mib2,
        max_pages: None,
    };
    let frames = crate::mem::frames::mm_frames().clone();
    let hugepages = vfs::tmpfs::Tmpfs::hugetlbfs("/dev/hugepages", 0o755, options, frames);
    vfs::mount::mount("/dev/hugepages", Arc::new(hugepages));
}

/// The calling process.
fn caller_process(caller: &Caller) -> SysResult<Arc<Process>> {
    proc::lookup(caller.pid).ok_or(Errno::ESRCH)
}

/// What `rel` is in a tree given as the relative paths of its files: a file, a
/// directory (a prefix of some file's path; `""` is the root), or nothing.
fn tree_lookup(files: &[String], rel: &str) -> SysResult<Node> {
    if rel.is_empty() {
        return Ok(Node::Dir);
    }
    let mut dir = false;
    for f in files {
        if f == rel {
            return Ok(Node::File);
        }
        if f.len() > rel.len() && f.starts_with(rel) && f.as_bytes()[rel.len()] == b'/' {
            dir = true;
        }
    }
    if dir {
        Ok(Node::Dir)
    } else {
        Err(Errno::ENOENT)
    }
}

/// The names directly inside directory `rel` of such a tree.
fn tree_children(files: &[String], rel: &str) -> Vec<(String, Node)> {
    let mut out: Vec<(String, Node)> = Vec::new();
    for f in files {
        let rest = if rel.is_empty() {
            Some(f.as_str())
        } else {
            f.strip_prefix(rel).and_then(|r| r.strip_prefix('/'))
        };
        let Some(rest) = rest else { continue };
        let (name, node) = match rest.split_once('/') {
            Some((dir, _)) => (dir, Node::Dir),
            None => (rest, Node::File),
        };
        if !out.iter().any(|(n, _)| n == name) {
            out.push((String::from(name), node));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Opens `ROOT/rel` of a generated tree (`/proc`, `/sys`): a directory lists
/// `fs.readdir(rel)` again at every read (with `.` and `..`, `dir_stat` with its inode
/// number), a file is rendered at open by [`procfs::open_generated`].
fn open_generated_node<F: vfs::Filesystem + Copy + Send + Sync + 'static>(
    fs: F,
    root: &str,
    dir_stat: vfs::stat::Stat,
    rel: &str,
    node: &Node,
    req: &vfs::OpenRequest,
    caller: &Caller,
) -> SysResult<Arc<dyn vfs::File>> {
    let full = if rel.is_empty() {
        String::from(root)
    } else {
        alloc::format!("{root}/{rel}")
    };
    if *node == Node::Dir {
        fs.readdir(rel, caller)?;
        let name = fs.name();
        let stat = dir_stat.at(dir_stat.dev, vfs::path_inode_number(name, &full));
        let (rel, caller, path) = (String::from(rel), caller.clone(), full);
        let lister = move || Ok(vfs::dir::with_dots(name, &path, fs.readdir(&rel, &caller)?));
        return Ok(Arc::new(vfs::dir::DirFile::new(
            stat,
            alloc::boxed::Box::new(lister),
        )));
    }
    procfs::open_generated(&full, req, caller)
}
