//! `stdhello`: an ordinary Rust program on the standard library, built as a static-PIE
//! musl binary and run unmodified. It exercises what std's start-up and common APIs
//! need from the kernel: argv and the environment, the randomly keyed HashMap
//! (getrandom), threads and their join, sleeping, the clock, files (/proc/meminfo), and
//! the exit status. Prints one line per check and exits with the number that failed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

fn check(failed: &mut u32, name: &str, ok: bool, detail: impl std::fmt::Debug) {
    println!(
        "stdhello: check {}: {} ({:?})",
        name,
        if ok { "ok" } else { "FAILED" },
        detail
    );
    if !ok {
        *failed += 1;
    }
}

fn main() {
    let mut failed = 0;
    let args: Vec<String> = std::env::args().collect();
    check(
        &mut failed,
        "argv",
        !args.is_empty() && args[0].ends_with("stdhello") || args.len() >= 1,
        &args,
    );
    check(
        &mut failed,
        "env",
        std::env::var("PATH").is_ok(),
        std::env::var("PATH"),
    );
    let mut counts: HashMap<char, usize> = HashMap::new();
    for c in "hello from the standard library".chars() {
        *counts.entry(c).or_default() += 1;
    }
    check(
        &mut failed,
        "hashmap",
        counts.get(&'l') == Some(&3),
        counts.get(&'l'),
    );
    let workers: Vec<_> = (0..4u64)
        .map(|i| std::thread::spawn(move || (i * 100..(i + 1) * 100).sum::<u64>()))
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    check(
        &mut failed,
        "threads",
        total == (0..400u64).sum::<u64>(),
        total,
    );
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    let slept = start.elapsed();
    check(
        &mut failed,
        "sleep",
        slept >= Duration::from_millis(20) && slept < Duration::from_secs(5),
        slept,
    );
    let meminfo = std::fs::read_to_string("/proc/meminfo");
    check(
        &mut failed,
        "read-file",
        meminfo.as_ref().is_ok_and(|m| m.contains("MemTotal:")),
        meminfo.as_ref().map(|m| m.len()),
    );
    let missing = std::fs::read("/no/such/file").map_err(|e| e.kind());
    check(
        &mut failed,
        "missing-file",
        missing == Err(std::io::ErrorKind::NotFound),
        missing.err(),
    );
    if failed == 0 {
        println!("stdhello: all checks passed");
    }
    std::process::exit(failed as i32);
}
