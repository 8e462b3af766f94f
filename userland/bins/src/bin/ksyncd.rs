//! `ksyncd [FILE]`: applies the boot-time registry file to the kernel (default
//! `/etc/registry.conf`). Format: one `name = value` per line; `#` starts a comment;
//! blank lines are ignored. Names are registry keys (`vm.max_map_count`,
//! `mm.transparent_hugepage.enabled`, ...); each is written to the file the kernel
//! serves it at (`/proc/sys/vm/...`, `/sys/kernel/mm/...`), so the key's security
//! descriptor decides whether the write is allowed. Prints one line per key and exits
//! with the number of keys that could not be applied. A missing file is not an error.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::files::{read_file, write_file};
use peios_rt::prelude::*;

peios_rt::main!(main);

/// Where a registry name is served.
fn path_of(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("vm.") {
        return Some(format!("/proc/sys/vm/{}", rest));
    }
    let table = [
        (
            "mm.transparent_hugepage.enabled",
            "/sys/kernel/mm/transparent_hugepage/enabled",
        ),
        (
            "mm.transparent_hugepage.defrag",
            "/sys/kernel/mm/transparent_hugepage/defrag",
        ),
        ("mm.ksm.run", "/sys/kernel/mm/ksm/run"),
        (
            "mm.damon.nr_kdamonds",
            "/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds",
        ),
        (
            "mm.damon.pageout_min_age",
            "/sys/kernel/mm/damon/admin/kdamonds/pageout_min_age",
        ),
    ];
    if let Some(p) = table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| String::from(*p))
    {
        return Some(p);
    }
    // mm.hugepages.nodeN.hugepages-SIZE.nr_hugepages -> the per-node sysfs pool file.
    let rest = name.strip_prefix("mm.hugepages.node")?;
    let mut parts = rest.splitn(3, '.');
    let (node, size, file) = (parts.next()?, parts.next()?, parts.next()?);
    Some(format!(
        "/sys/devices/system/node/node{}/hugepages/{}/{}",
        node, size, file
    ))
}

fn main(args: &Args) -> i32 {
    let file = args.get(1).unwrap_or("/etc/registry.conf");
    let text = match read_file(file) {
        Ok(t) => t,
        Err(Errno::ENOENT) => {
            println!("ksyncd: no {}: nothing to apply", file);
            return 0;
        }
        Err(e) => {
            eprintln!("ksyncd: cannot read {}: {}", file, e);
            return 1;
        }
    };
    let mut failed = 0;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            eprintln!("ksyncd: {}:{}: expected `name = value`", file, n + 1);
            failed += 1;
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        let Some(path) = path_of(name) else {
            eprintln!("ksyncd: {}:{}: unknown key {}", file, n + 1, name);
            failed += 1;
            continue;
        };
        match write_file(&path, value) {
            Ok(()) => println!("ksyncd: {} = {} applied ({})", name, value, path),
            Err(e) => {
                eprintln!("ksyncd: {} = {}: {}", name, value, e);
                failed += 1;
            }
        }
    }
    failed
}
