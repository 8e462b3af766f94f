//! The `/sys` filesystem: the registry's sysfs keys (transparent hugepages, KSM, huge
//! page pools, DAMON's `nr_kdamonds`), DAMON's per-kdamond control files, KSM's
//! counters, the huge page pools' free counts, the NUMA nodes' `meminfo` and
//! `numastat`, and the CPU lists of `devices/system/cpu`. The tree is the list of its files, taken at each lookup.

use super::{procfs::open_generated, tree_children, tree_lookup};
use crate::vfs::{
    dir::{with_dots, DirFile},
    path_inode_number, Caller, File, Filesystem, Node, OpenRequest, Stat,
};
use alloc::{format, string::String, sync::Arc, vec::Vec};
use errno::{Errno, SysResult};
use mm::{frame::NodeId, hugetlb::HugeSize};

const NAME: &str = "sysfs";
const DEV: u64 = crate::vfs::stat::encode_dev(0, 6);
/// Most kdamonds and NUMA nodes listed.
const MAX_LISTED: usize = 64;

/// The `/sys` filesystem.
pub struct SysFs;

/// Every file, relative to `/sys`.
fn files() -> Vec<String> {
    let mut files: Vec<String> = crate::registry::all()
        .flat_map(|k| k.paths.iter())
        .filter_map(|p| p.strip_prefix("/sys/"))
        .map(String::from)
        .collect();
    for counter in ["pages_shared", "pages_sharing", "full_scans"] {
        files.push(format!("kernel/mm/ksm/{counter}"));
    }
    for size in HugeSize::ALL {
        files.push(format!(
            "kernel/mm/hugepages/hugepages-{}kB/free_hugepages",
            size.kib()
        ));
    }
    for i in 0..MAX_LISTED {
        let dir = format!("kernel/mm/damon/admin/kdamonds/{i}");
        if crate::mem::damon::control(&format!("/sys/{dir}/state")).is_none() {
            break;
        }
        files.push(format!("{dir}/state"));
        files.push(format!("{dir}/contexts/0/targets/0/pid_target"));
    }
    for list in ["online", "possible", "present"] {
        files.push(format!("devices/system/cpu/{list}"));
    }
    for cpu in 0..crate::smp::online_cpus() {
        files.push(format!("devices/system/cpu/cpu{cpu}/online"));
    }
    let alloc = crate::mem::frames::allocator();
    for n in 0..MAX_LISTED {
        if alloc.node_stats(NodeId(n as u32)).is_none() {
            break;
        }
        let dir = format!("devices/system/node/node{n}");
        files.push(format!("{dir}/meminfo"));
        files.push(format!("{dir}/numastat"));
        for size in HugeSize::ALL {
            files.push(format!(
                "{dir}/hugepages/hugepages-{}kB/free_hugepages",
                size.kib()
            ));
        }
    }
    files
}

impl Filesystem for SysFs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn lookup(&self, rel: &str, _caller: &Caller) -> SysResult<Node> {
        tree_lookup(&files(), rel)
    }

    fn open(
        &self,
        rel: &str,
        node: &Node,
        req: &OpenRequest,
        caller: &Caller,
    ) -> SysResult<Arc<dyn File>> {
        let full = if rel.is_empty() {
            String::from("/sys")
        } else {
            format!("/sys/{rel}")
        };
        if *node == Node::Dir {
            self.readdir(rel, caller)?;
            let (rel, caller, path) = (String::from(rel), caller.clone(), full.clone());
            let lister = move || Ok(with_dots(NAME, &path, SysFs.readdir(&rel, &caller)?));
            return Ok(Arc::new(DirFile::new(
                Stat::directory(0o755).at(DEV, path_inode_number(NAME, &full)),
                alloc::boxed::Box::new(lister),
            )));
        }
        open_generated(&full, req, caller)
    }

    fn readdir(&self, rel: &str, _caller: &Caller) -> SysResult<Vec<(String, Node)>> {
        let files = files();
        if tree_lookup(&files, rel)? != Node::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(tree_children(&files, rel))
    }

    fn stat(&self, rel: &str, node: &Node, _caller: &Caller) -> SysResult<Stat> {
        let full = format!("/sys/{rel}");
        let ino = path_inode_number(NAME, &full);
        Ok(match node {
            Node::Dir => Stat::directory(0o755),
            _ => {
                let write = crate::registry::lookup_path(&full).is_some()
                    || crate::mem::damon::control(&full).is_some();
                Stat::regular(if write { 0o644 } else { 0o444 }, 4096)
            }
        }
        .at(DEV, ino))
    }
}
