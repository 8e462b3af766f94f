//! The `/sys` filesystem: the registry's sysfs keys (transparent hugepages, KSM, huge
//! page pools, DAMON's `nr_kdamonds`), DAMON's per-kdamond control files, KSM's
//! counters, the huge page pools' free counts, the NUMA nodes' `meminfo` and
//! `numastat`, and the CPU lists of `devices/system/cpu`. The tree is the list of its files, taken at each lookup.

use super::{tree_children, tree_lookup};
use crate::vfs::{path_inode_number, Caller, File, Filesystem, Node, OpenRequest, Stat};
use alloc::{format, string::String, sync::Arc, vec::Vec};
use errno::{Errno, SysResult};
use mm::{frame::NodeId, hugetlb::HugeSize};

const NAME: &str = "sysfs";
const DEV: u64 = crate::vfs::stat::encode_dev(0, 6);
/// Most kdamonds and NUMA nodes listed.
const MAX_LISTED: usize = 64;

/// The `/sys` filesystem.
#[derive(Clone, Copy)]
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
        for file in ["free_hugepages", "resv_hugepages"] {
            files.push(format!(
                "kernel/mm/hugepages/hugepages-{}kB/{file}",
                size.kib()
            ));
        }
    }
    for i in 0..MAX_LISTED {
        let dir = format!("kernel/mm/damon/admin/kdamonds/{i}");
        if crate::memd::damon::control(&format!("/sys/{dir}/state")).is_none() {
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
        super::open_generated_node(
            SysFs,
            "/sys",
            Stat::directory(0o755).at(DEV, 0),
            rel,
            node,
            req,
            caller,
        )
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
                    || crate::memd::damon::control(&full).is_some();
                Stat::regular(if write { 0o644 } else { 0o444 }, 4096)
            }
        }
        .at(DEV, ino))
    }
}
