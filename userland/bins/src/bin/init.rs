//! `init`: PID 1 of the guest.
//!
//! - `init` (no arguments) runs the default suite: every entry of `/etc/suite` when
//!   that file exists (one program per line, arguments after it, `#` comments),
//!   else [`DEFAULT_SUITE`]. Each runs through fork + execve + wait4 and gets a
//!   `TEST <name> ... ok` or `TEST <name> ... FAILED (status N)` line; the last line
//!   is `N passed, N failed` and init exits with the number of failures.
//! - `init --run PATH ARGS...` runs one program and exits with its status
//!   (128 + signal when a signal killed it).
//! - `--bindir DIR` (before the mode) resolves bare suite names in DIR instead of
//!   `/bin`; `--suite FILE` reads another suite file. Both are for host runs.
//!
//! While waiting, init reaps any other child (orphans are re-parented to PID 1).
//!
//! First of all, init turns on the swap devices listed in `/etc/swapdev` (one path a
//! line; `qemu-run.sh --swap` writes it), as the Linux anchor's init does, and those
//! named by `--swapdev PATH` (repeatable, before the mode): with an ext4 root
//! (`--rootfs`) `/etc` is the image's, so the kernel passes the initramfs's list that
//! way.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_rt::prelude::*;
use peios_rt::process::{execve, fork, Fork, WaitStatus};
use peios_rt::sys::fs::{self, AT_FDCWD, O_CLOEXEC, O_RDONLY};
use peios_rt::sys::process::{exit_group, getpid, wait4};

peios_rt::main!(main);

/// The programs of the default suite, with their arguments.
pub const DEFAULT_SUITE: &[&[&str]] = &[
    &["ksyncd"],
    &["hello"],
    &["hello_c"],
    &["hello_pie"],
    &["hello_dyn"],
    &["vdso"],
    &["prctl"],
    &["aslr"],
    &["pidfd"],
    &["shm"],
    &["shmfalloc"],
    &["stdhello"],
    &["threads"],
    &["forkexec"],
    &["signals"],
    &["errno"],
    &["security"],
    &["procmem"],
    &["tunables"],
    &["procgate"],
    &["kaslrleak"],
    &["pgroups"],
    &["mmtest"],
    &["uffd"],
    &["memctl"],
    &["numa"],
    &["fuzz"],
    &["hostile"],
    &["posix"],
    // The mm fuzzer, short (a few seconds under TCG; see userland/README.md for the
    // long run).
    &["fuzz", "--mm", "--count", "2000", "--timeout", "120"],
];

/// What `--demo` runs after the suite: the multi-threaded fault benchmark, briefly.
pub const DEMO_BENCH: &[&str] = &[
    "fault_bench",
    "--mode",
    "thread",
    "--workers",
    "1,2,4",
    "--seconds",
    "1",
];

const DEFAULT_ENV: &[&str] = &["PATH=/bin", "HOME=/"];

fn main(args: &Args) -> i32 {
    let argv: Vec<&str> = args.iter().collect();
    let mut bindir = "/bin";
    let mut suite_file = "/etc/suite";
    let mut demo = false;
    let mut swapdevs: Vec<&str> = Vec::new();
    let mut i = 1;
    while i < argv.len() {
        match argv[i] {
            "--swapdev" if i + 1 < argv.len() => {
                swapdevs.push(argv[i + 1]);
                i += 2;
            }
            "--bindir" if i + 1 < argv.len() => {
                bindir = argv[i + 1];
                i += 2;
            }
            "--suite" if i + 1 < argv.len() => {
                suite_file = argv[i + 1];
                i += 2;
            }
            "--demo" => {
                demo = true;
                i += 1;
            }
            _ => break,
        }
    }
    swap_on_boot_devices(&swapdevs);
    let env: Vec<&str> = if args.env_iter().next().is_some() {
        args.env_iter().collect()
    } else {
        DEFAULT_ENV.to_vec()
    };
    match argv.get(i).copied() {
        Some("--run") => match argv.get(i + 1) {
            Some(_) => run_one(&argv[i + 1..], &env),
            None => usage(),
        },
        Some(_) => usage(),
        None => run_suite(bindir, suite_file, &env, demo),
    }
}

/// swapon for every device in `given` and in `/etc/swapdev` (each once).
fn swap_on_boot_devices(given: &[&str]) {
    let listed = read_suite("/etc/swapdev").unwrap_or_default();
    let mut paths: Vec<String> = given.iter().map(|p| String::from(*p)).collect();
    for words in listed {
        if let Some(path) = words.into_iter().next() {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    for path in paths {
        let cpath = format!("{}\0", path);
        let Ok(cstr) = core::ffi::CStr::from_bytes_with_nul(cpath.as_bytes()) else {
            continue;
        };
        match peios_rt::sys::swap::swapon(cstr, 0) {
            Ok(()) => println!("init: swapon {}", path),
            Err(e) => println!("init: swapon {}: {}", path, e),
        }
    }
}

fn usage() -> i32 {
    eprintln!(
        "usage: init [--bindir DIR] [--suite FILE] [--swapdev PATH]... [--demo] [--run PATH ARGS...]"
    );
    2
}

fn run_one(argv: &[&str], env: &[&str]) -> i32 {
    match spawn_and_wait(argv[0], argv, env) {
        Ok(status) => {
            println!(
                "init: {}: {}; exiting with {}",
                argv[0],
                status,
                status.code()
            );
            status.code()
        }
        Err(e) => {
            println!("init: cannot run {}: {}", argv[0], e);
            127
        }
    }
}

fn run_suite(bindir: &str, suite_file: &str, env: &[&str], demo: bool) -> i32 {
    let mut entries: Vec<Vec<String>> = match read_suite(suite_file) {
        Some(list) => {
            println!("init: suite from {} ({} programs)", suite_file, list.len());
            list
        }
        None => DEFAULT_SUITE
            .iter()
            .map(|e| e.iter().map(|s| String::from(*s)).collect())
            .collect(),
    };
    if demo {
        entries.push(DEMO_BENCH.iter().map(|s| String::from(*s)).collect());
    }
    println!("init: pid {}, running {} tests", getpid(), entries.len());
    let (mut passed, mut failed) = (0, 0);
    for entry in &entries {
        let name = entry[0].as_str();
        let path = if name.contains('/') {
            String::from(name)
        } else {
            format!("{}/{}", bindir, name)
        };
        let mut argv: Vec<&str> = vec![path.as_str()];
        argv.extend(entry[1..].iter().map(|s| s.as_str()));
        println!("RUN  {}", argv.join(" "));
        match spawn_and_wait(&path, &argv, env) {
            Ok(WaitStatus::Exited(0)) => {
                passed += 1;
                println!("TEST {} ... ok", name);
            }
            Ok(status) => {
                failed += 1;
                println!(
                    "TEST {} ... FAILED (status {}) {}",
                    name,
                    status.code(),
                    status
                );
            }
            Err(e) => {
                failed += 1;
                println!("TEST {} ... FAILED (status 127) cannot start: {}", name, e);
            }
        }
    }
    println!("{} passed, {} failed", passed, failed);
    failed
}

/// Reads a suite file: one program per line with its arguments; `#` starts a comment.
fn read_suite(path: &str) -> Option<Vec<Vec<String>>> {
    let cpath = format!("{}\0", path);
    let cstr = core::ffi::CStr::from_bytes_with_nul(cpath.as_bytes()).ok()?;
    let fd = fs::openat(AT_FDCWD, cstr, O_RDONLY | O_CLOEXEC, 0).ok()?;
    let mut text = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match fs::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    let _ = fs::close(fd);
    let text = core::str::from_utf8(&text).ok()?;
    Some(
        text.lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .map(|l| {
                l.split_whitespace()
                    .map(String::from)
                    .collect::<Vec<String>>()
            })
            .filter(|words| !words.is_empty())
            .collect(),
    )
}

/// Forks, execs `path` with `argv` and `env` in the child, and waits for it while
/// reaping any other child that exits meanwhile.
fn spawn_and_wait(path: &str, argv: &[&str], env: &[&str]) -> Result<WaitStatus, Errno> {
    match fork()? {
        Fork::Child => {
            let e = execve(path, argv, env);
            eprintln!("init: execve {}: {}", path, e);
            exit_group(127)
        }
        Fork::Parent(pid) => loop {
            match wait4(-1, 0) {
                Ok((p, raw)) if p == pid => return Ok(WaitStatus::from_raw(raw)),
                Ok((p, raw)) => {
                    println!("init: reaped orphan {} ({})", p, WaitStatus::from_raw(raw))
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        },
    }
}
