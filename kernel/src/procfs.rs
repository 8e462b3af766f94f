//! Read-only `/proc` and `/sys` text files, generated at open in Linux's formats.

use crate::{mem::frames, proc};
use alloc::{format, string::String};
use mm::frame::{report::{self, MeminfoExtra}, NodeId};

/// The text of a generated file, if `path` names one.
pub fn read(path: &str) -> Option<String> {
    let alloc = frames::allocator();
    let extra = MeminfoExtra::default();
    match path {
        "/proc/meminfo" => Some(report::meminfo(alloc, &extra)),
        "/proc/zoneinfo" => Some(report::zoneinfo(alloc)),
        "/proc/buddyinfo" => Some(report::buddyinfo(alloc)),
        _ => {
            if let Some(rest) = path.strip_prefix("/sys/devices/system/node/node") {
                let (node, file) = rest.split_once('/')?;
                let node = NodeId(node.parse().ok()?);
                return match file {
                    "meminfo" => report::node_meminfo(alloc, node, &extra),
                    "numastat" => report::node_numastat(alloc, node),
                    _ => None,
                };
            }
            let rest = path.strip_prefix("/proc/")?;
            let (who, file) = rest.split_once('/')?;
            let process = if who == "self" {
                proc::current_thread().map(|t| t.process.clone())?
            } else {
                proc::lookup(who.parse().ok()?)?
            };
            match file {
                "status" => Some(status(&process)),
                _ => None,
            }
        }
    }
}

fn status(p: &proc::Process) -> String {
    let space = p.aspace.read().clone();
    let rss_kb = space.resident_pages() * 4;
    format!(
        "Name:\t{}\nPid:\t{}\nPPid:\t{}\nThreads:\t{}\nVmRSS:\t{:>8} kB\nRssAnon:\t{:>8} kB\n",
        p.name.lock(),
        p.pid,
        p.ppid.load(core::sync::atomic::Ordering::Relaxed),
        p.live_threads.load(core::sync::atomic::Ordering::Relaxed),
        rss_kb,
        rss_kb
    )
}
