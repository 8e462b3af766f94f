//! `procmem`: the kernel's memory reports read from user mode, in Linux's formats:
//! /proc/meminfo, /proc/zoneinfo, /proc/buddyinfo and the per-node
//! /sys/devices/system/node/node0/meminfo. Checks that the files open and read, that
//! MemTotal is non-zero and MemFree does not exceed it, that zoneinfo has a
//! "Node 0, zone" section with free pages and min/low/high watermarks, and that the
//! node file reports "Node 0 MemTotal".
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::files::read_file;
use peios_bins::Checks;
use peios_rt::prelude::*;

peios_rt::main!(main);

fn field_kb(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

fn main(_args: &Args) -> i32 {
    let mut checks = Checks::new("procmem");
    match read_file("/proc/meminfo") {
        Ok(text) => {
            let total = field_kb(&text, "MemTotal:");
            let free = field_kb(&text, "MemFree:");
            checks.check(
                "meminfo",
                matches!((total, free), (Some(t), Some(f)) if t > 0 && f <= t),
                format_args!("MemTotal {:?} kB, MemFree {:?} kB", total, free),
            );
        }
        Err(e) => {
            checks.check("meminfo", false, format_args!("open/read: {}", e));
        }
    }
    match read_file("/proc/zoneinfo") {
        Ok(text) => {
            let ok = text.contains("Node 0, zone")
                && ["pages free", "min", "low", "high"]
                    .iter()
                    .all(|k| text.contains(k));
            checks.check("zoneinfo", ok, format_args!("{} bytes", text.len()));
        }
        Err(e) => {
            checks.check("zoneinfo", false, format_args!("open/read: {}", e));
        }
    }
    match read_file("/proc/buddyinfo") {
        Ok(text) => {
            checks.check(
                "buddyinfo",
                text.starts_with("Node 0, zone"),
                format_args!("{:?}", text.lines().next()),
            );
        }
        Err(e) => {
            checks.check("buddyinfo", false, format_args!("open/read: {}", e));
        }
    }
    match read_file("/sys/devices/system/node/node0/meminfo") {
        Ok(text) => {
            checks.check(
                "node0-meminfo",
                text.contains("Node 0 MemTotal:"),
                format_args!("{:?}", text.lines().next()),
            );
        }
        Err(e) => {
            checks.check("node0-meminfo", false, format_args!("open/read: {}", e));
        }
    }
    checks.finish()
}
