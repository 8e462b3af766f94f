//! The `/proc` filesystem: system files (`meminfo`, `zoneinfo`, ...), `self` (a link to
//! the caller's pid), one directory per process (`status`, `maps`, `smaps`,
//! `numa_maps`, `pagemap`, `mem`, `oom_score`, `oom_score_adj`, `damon`, the links
//! `exe` and `cwd`, and `fd/` with a link per open descriptor: its path, or
//! `pipe:[INO]`, `anon_inode:[...]` for a file without one; following such a link
//! reopens the path, and one without a path is ENOENT here), and `sys/` (the
//! registry's sysctl keys). The text comes from `crate::procfs`; files
//! about another process are access-checked at open, as before.

use super::{
    caller_process, damon::DamonControlFile, oom_score_adj::OomScoreAdjFile, pagemap::PageMapFile,
    proc_mem::ProcMemFile, registry_key::RegistryKeyFile, tree_children, tree_lookup,
    vma_text::VmaTextFile,
};
use crate::{
    proc::{self, Process},
    procfs::{check_introspection, VmaFile, VmaText},
    vfs::{path_inode_number, text::TextFile, Caller, File, Filesystem, Node, OpenRequest, Stat},
};
use alloc::{format, string::String, sync::Arc, vec::Vec};
use errno::{Errno, SysResult};
use security::{AccessMask, Privilege};

const NAME: &str = "proc";
const DEV: u64 = crate::vfs::stat::encode_dev(0, 4);

/// System-wide files at the top of `/proc`.
const TOP_FILES: [&str; 11] = [
    "buddyinfo",
    "diskstats",
    "interrupts",
    "kallsyms",
    "loadavg",
    "meminfo",
    "mounts",
    "stat",
    "swaps",
    "vmstat",
    "zoneinfo",
];
/// Files in `/proc/<pid>/` (`exe` is a link).
const PID_FILES: [&str; 12] = [
    "cmdline",
    "comm",
    "damon",
    "maps",
    "mem",
    "numa_maps",
    "oom_score",
    "oom_score_adj",
    "pagemap",
    "smaps",
    "stat",
    "status",
];
/// Generated files under `/proc/sys/` beside the registry's keys.
const SYS_FILES: [&str; 2] = ["peios/registry", "peios/heap"];

/// The `/proc` filesystem.
#[derive(Clone, Copy)]
pub struct ProcFs;

/// `sys/...` files: the registry's `/proc/sys` keys and the generated ones.
fn sys_files() -> Vec<String> {
    let mut files: Vec<String> = crate::registry::all()
        .flat_map(|k| k.paths.iter())
        .filter_map(|p| p.strip_prefix("/proc/"))
        .map(String::from)
        .collect();
    files.extend(SYS_FILES.iter().map(|f| format!("sys/{f}")));
    files
}

/// The process a `/proc` directory name (`<pid>`, or a thread's tid) names.
fn process_named(name: &str) -> Option<Arc<Process>> {
    let id: u32 = name.parse().ok()?;
    if name.starts_with('0') || name.starts_with('+') {
        return None;
    }
    proc::process_by_id(u64::from(id)).ok()
}

impl Filesystem for ProcFs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn lookup(&self, rel: &str, caller: &Caller) -> SysResult<Node> {
        if rel.is_empty() {
            return Ok(Node::Dir);
        }
        let (first, rest) = match rel.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (rel, None),
        };
        match (first, rest) {
            ("self", None) => return Ok(Node::Symlink(format!("{}", caller.pid))),
            (name, None) if TOP_FILES.contains(&name) => return Ok(Node::File),
            ("sys", _) => return tree_lookup(&sys_files(), rel),
            _ => {}
        }
        let target = process_named(first).ok_or(Errno::ENOENT)?;
        let introspect = || {
            let me = caller_process(caller)?;
            check_introspection(&me, &target, AccessMask::PROCESS_QUERY_INFORMATION)
        };
        match rest {
            None => Ok(Node::Dir),
            Some("exe") => {
                introspect()?;
                Ok(Node::Symlink(target.exe.lock().clone()))
            }
            Some("cwd") => {
                introspect()?;
                Ok(Node::Symlink(target.fs.lock().cwd.clone()))
            }
            Some("fd") => Ok(Node::Dir),
            Some(name) if PID_FILES.contains(&name) => Ok(Node::File),
            Some(other) => {
                // fd/N: a link to what descriptor N has open.
                let n = other.strip_prefix("fd/").ok_or(Errno::ENOENT)?;
                if n.starts_with('0') && n != "0" {
                    return Err(Errno::ENOENT);
                }
                let fd: u64 = n.parse().map_err(|_| Errno::ENOENT)?;
                introspect()?;
                let file = target.files.lock().get(fd).map_err(|_| Errno::ENOENT)?;
                Ok(Node::Symlink(file.proc_name()))
            }
        }
    }

    fn open(
        &self,
        rel: &str,
        node: &Node,
        req: &OpenRequest,
        caller: &Caller,
    ) -> SysResult<Arc<dyn File>> {
        super::open_generated_node(
            ProcFs,
            "/proc",
            Stat::directory(0o555).at(DEV, 0),
            rel,
            node,
            req,
            caller,
        )
    }

    fn readdir(&self, rel: &str, caller: &Caller) -> SysResult<Vec<(String, Node)>> {
        if rel.is_empty() {
            let mut out: Vec<(String, Node)> = TOP_FILES
                .iter()
                .map(|n| (String::from(*n), Node::File))
                .collect();
            out.push((
                String::from("self"),
                Node::Symlink(format!("{}", caller.pid)),
            ));
            out.push((String::from("sys"), Node::Dir));
            out.extend(
                proc::all()
                    .iter()
                    .map(|p| (format!("{}", p.pid), Node::Dir)),
            );
            return Ok(out);
        }
        if rel == "sys" || rel.starts_with("sys/") {
            if tree_lookup(&sys_files(), rel)? != Node::Dir {
                return Err(Errno::ENOTDIR);
            }
            return Ok(tree_children(&sys_files(), rel));
        }
        if self.lookup(rel, caller)? != Node::Dir {
            return Err(Errno::ENOTDIR);
        }
        if let Some(pid) = rel.strip_suffix("/fd") {
            let target = process_named(pid).ok_or(Errno::ENOENT)?;
            let me = caller_process(caller)?;
            check_introspection(&me, &target, AccessMask::PROCESS_QUERY_INFORMATION)?;
            let fds = target.files.lock().open_fds();
            return Ok(fds
                .into_iter()
                .map(|(fd, file)| (format!("{fd}"), Node::Symlink(file.proc_name())))
                .collect());
        }
        let mut out: Vec<(String, Node)> = PID_FILES
            .iter()
            .map(|n| (String::from(*n), Node::File))
            .collect();
        out.push((String::from("cwd"), Node::Symlink(String::new())));
        out.push((String::from("exe"), Node::Symlink(String::new())));
        out.push((String::from("fd"), Node::Dir));
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn stat(&self, rel: &str, node: &Node, caller: &Caller) -> SysResult<Stat> {
        let full = format!("/proc/{rel}");
        let ino = path_inode_number(NAME, &full);
        Ok(match node {
            Node::Dir => Stat::directory(0o555),
            Node::Symlink(target) => Stat::symlink(target.len() as u64),
            _ => {
                // Attributes without generating the text: the mode the open would give.
                let write = crate::registry::lookup_path(&full).is_some();
                let _ = caller;
                Stat::regular(if write { 0o644 } else { 0o444 }, 0)
            }
        }
        .at(DEV, ino))
    }
}

/// Opens a generated `/proc` or `/sys` file at absolute `full`: a registry key (its
/// security descriptor decides), a DAMON control (writing needs SeTcbPrivilege), a
/// process's file (its security descriptor decides), or system text. Writing a file
/// that takes no writes is EACCES.
pub fn open_generated(full: &str, req: &OpenRequest, caller: &Caller) -> SysResult<Arc<dyn File>> {
    let write = req.write();
    let me = caller_process(caller)?;
    if let Some(key) = crate::registry::lookup_path(full) {
        crate::registry::check_access(key, &caller.token, write)?;
        return Ok(if write {
            Arc::new(RegistryKeyFile::new(key, full.starts_with("/proc/sys/")))
        } else {
            Arc::new(TextFile::new(key.render().into_bytes()))
        });
    }
    if let Some(control) = crate::memd::damon::control(full) {
        return Ok(if write {
            // DAMON is driven by a TCB daemon.
            if !caller.token.has_privilege(Privilege::SeTcbPrivilege) {
                return Err(Errno::EACCES);
            }
            Arc::new(DamonControlFile(control))
        } else {
            Arc::new(TextFile::new(
                crate::memd::damon::read_control(control)?.into_bytes(),
            ))
        });
    }
    if let Some((target, file)) = crate::procfs::process_file(&me, full)? {
        match file {
            "mem" => {
                let mut want = AccessMask::PROCESS_VM_READ;
                if write {
                    want |= AccessMask::PROCESS_VM_WRITE;
                }
                check_introspection(&me, &target, want)?;
                return Ok(Arc::new(ProcMemFile::new(target)));
            }
            "pagemap" => {
                check_introspection(&me, &target, AccessMask::PROCESS_QUERY_INFORMATION)?;
                let show_pfn = crate::procfs::may_see_pfns(&me);
                return Ok(Arc::new(PageMapFile::new(target, show_pfn)));
            }
            name if !write && VmaFile::from_name(name).is_some() => {
                check_introspection(&me, &target, AccessMask::PROCESS_QUERY_INFORMATION)?;
                let kind = VmaFile::from_name(name).ok_or(Errno::ENOENT)?;
                return Ok(Arc::new(VmaTextFile::new(VmaText::new(target, kind))));
            }
            "oom_score_adj" if write => {
                check_introspection(&me, &target, AccessMask::PROCESS_SET_QUOTA)?;
                return Ok(Arc::new(OomScoreAdjFile(target)));
            }
            _ if write => return Err(Errno::EACCES),
            _ => {}
        }
    }
    match crate::procfs::open(&me, full)? {
        Some(_) if write => Err(Errno::EACCES),
        Some(text) => Ok(Arc::new(TextFile::new(text))),
        None => Err(Errno::ENOENT),
    }
}
