//! `file_bench`: reading files of an ext4 disk (`tools/mkext4.sh IMAGE --seq-mib 128`,
//! mounted at `--dir`, default `/mnt`), cold cache (`drop_caches` before each part;
//! run as root). Prints figures only; compare with Linux through the anchor's
//! `--disk` (same image, same `--cpus`/`--mem`).
//!
//! - `seq_read`: `seq.bin` read start to end in 4 KiB `read`s, MB/s.
//! - `rand_read`: `--random N` (default 4096) 4 KiB `pread`s at random page offsets,
//!   reads/s and MB/s.
//! - `page_fault2`: will-it-scale's page_fault2 on the disk file: each of 1, then 2
//!   threads maps 128 MiB of `seq.bin` `MAP_PRIVATE`, writes one byte in every page
//!   (a copy-on-write fault each), unmaps, `--rounds R` times (default 3); faults/s
//!   in total.
//! - `mmap_seq`: the whole of `seq.bin` mapped `MAP_SHARED`, `PROT_READ` and read
//!   start to end (one 8-byte word per 64-byte line), cold, twice (run in a guest
//!   with less RAM than the file, `--mmap-only`, the second pass reads from the disk
//!   again): MB/s and major faults (`getrusage`) of each pass; `--madvise seq|random`
//!   gives the mapping that advice first.
//!
//! `--mmap-only` runs `mmap_seq` alone (any size of `seq.bin`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use peios_bins::files::{open, write_file};
use peios_rt::prelude::*;
use peios_rt::sys::fs::{close, read, O_RDONLY};
use peios_rt::sys::mm::{madvise, mmap, munmap, MapFlags, Prot, MADV_RANDOM, MADV_SEQUENTIAL};
use peios_rt::syscall::{syscall2, syscall4};
use peios_rt::time::monotonic_ns;

peios_rt::main!(main);

const PAGE: usize = 4096;
const MAP_BYTES: usize = 128 << 20;

fn drop_caches() {
    if let Err(e) = write_file("/proc/sys/vm/drop_caches", "3\n") {
        println!("file_bench: drop_caches: {e} (the figures are not cold)");
    }
}

fn file_size(path: &str) -> u64 {
    let Ok(fd) = open(path, O_RDONLY) else {
        return 0;
    };
    let mut st = [0u64; 18];
    // SAFETY: `st` is 144 writable bytes.
    let _ = unsafe { peios_rt::syscall::syscall2(5, fd as usize, st.as_mut_ptr() as usize) };
    let _ = close(fd);
    st[6]
}

/// MB/s (10^6 bytes) for `bytes` in `ns`, with three decimals kept as thousandths.
fn mb_per_s(bytes: u64, ns: u64) -> peios_bins::Milli {
    peios_bins::Milli((bytes as u128 * 1_000_000 / ns.max(1) as u128) as u64)
}

fn seq_read(path: &str) {
    drop_caches();
    let fd = open(path, O_RDONLY).expect("open seq.bin");
    let mut buf = vec![0u8; PAGE];
    let start = monotonic_ns();
    let mut total = 0u64;
    while let Ok(n) = read(fd, &mut buf) {
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let ns = monotonic_ns() - start;
    let _ = close(fd);
    println!(
        "file_bench: seq_read {} MiB in 4 KiB reads: {} MB/s",
        total >> 20,
        mb_per_s(total, ns)
    );
}

fn rand_read(path: &str, size: u64, count: u64) {
    drop_caches();
    let fd = open(path, O_RDONLY).expect("open seq.bin");
    let pages = size / PAGE as u64;
    let mut buf = vec![0u8; PAGE];
    let mut seed = 0x1234_5678_9abc_def0u64;
    let start = monotonic_ns();
    for _ in 0..count {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let off = (seed % pages) * PAGE as u64;
        // SAFETY: `buf` is writable for PAGE bytes.
        let r = unsafe {
            syscall4(
                17,
                fd as usize,
                buf.as_mut_ptr() as usize,
                PAGE,
                off as usize,
            )
        };
        if r != PAGE as isize {
            println!("file_bench: pread at {off}: {r}");
            break;
        }
    }
    let ns = monotonic_ns() - start;
    let _ = close(fd);
    println!(
        "file_bench: rand_read {count} x 4 KiB: {} reads/s, {} MB/s",
        count * 1_000_000_000 / ns.max(1),
        mb_per_s(count * PAGE as u64, ns)
    );
}

/// One worker of page_fault2: `rounds` map-write-unmap cycles; returns faults.
fn fault_rounds(path: &str, rounds: u64) -> u64 {
    let fd = open(path, O_RDONLY).expect("open seq.bin");
    let mut faults = 0;
    for _ in 0..rounds {
        // SAFETY: no MAP_FIXED; the file is open for reading (a private mapping may
        // be written).
        let map = unsafe { mmap(0, MAP_BYTES, Prot::RW, MapFlags::PRIVATE, fd, 0) }
            .expect("mmap the file");
        for p in (0..MAP_BYTES).step_by(PAGE) {
            // SAFETY: inside the private mapping.
            unsafe { map.add(p).write_volatile(1) };
            faults += 1;
        }
        // SAFETY: unmapping what was mapped above.
        let _ = unsafe { munmap(map, MAP_BYTES) };
    }
    let _ = close(fd);
    faults
}

fn page_fault2(path: &'static str, threads: usize, rounds: u64) {
    drop_caches();
    // Warm the file's pages once (the benchmark measures private faults, as
    // will-it-scale's, whose file is in the page cache).
    fault_rounds(path, 1);
    let start = monotonic_ns();
    let workers: Vec<_> = (0..threads)
        .map(|_| peios_rt::thread::spawn(move || fault_rounds(path, rounds)).expect("thread"))
        .collect();
    let faults: u64 = workers.into_iter().map(|w| w.join()).sum();
    let ns = monotonic_ns() - start;
    println!(
        "file_bench: page_fault2 {threads} thread(s): {} faults/s ({faults} faults)",
        faults * 1_000_000_000 / ns.max(1)
    );
}

/// This process's (minor, major) fault counts (`getrusage(RUSAGE_SELF)`).
fn fault_counts() -> (u64, u64) {
    let mut usage = [0u64; 18];
    // SAFETY: `usage` is 144 writable bytes, a `struct rusage`.
    let _ = unsafe { syscall2(98, 0, usage.as_mut_ptr() as usize) };
    (usage[8], usage[9])
}

fn mmap_seq(path: &str, size: u64, advice: Option<i32>) {
    drop_caches();
    let fd = open(path, O_RDONLY).expect("open seq.bin");
    let len = (size as usize) & !(PAGE - 1);
    // SAFETY: no MAP_FIXED; a read-only shared mapping of a file open for reading.
    let map = unsafe { mmap(0, len, Prot::READ, MapFlags::SHARED, fd, 0) }.expect("mmap");
    if let Some(advice) = advice {
        // SAFETY: the advice only steers readahead of the mapping made above.
        unsafe { madvise(map, len, advice) }.expect("madvise");
    }
    for pass in 1..=2 {
        let (minor0, major0) = fault_counts();
        let start = monotonic_ns();
        let mut sum = 0u64;
        for off in (0..len).step_by(64) {
            // SAFETY: inside the mapping; aligned for a u64.
            sum = sum.wrapping_add(unsafe { map.add(off).cast::<u64>().read_volatile() });
        }
        let ns = monotonic_ns() - start;
        let (minor1, major1) = fault_counts();
        println!(
            "file_bench: mmap_seq pass {pass} {} MiB: {} MB/s, {} major and {} minor faults (sum {sum:#x})",
            len >> 20,
            mb_per_s(len as u64, ns),
            major1 - major0,
            minor1 - minor0,
        );
    }
    // SAFETY: unmapping what was mapped above.
    let _ = unsafe { munmap(map, len) };
    let _ = close(fd);
}

fn main(args: &peios_rt::Args) -> i32 {
    let dir = args.opt("--dir").unwrap_or("/mnt").trim_end_matches('/');
    let random = args.opt_u64("--random", 4096).unwrap_or(4096);
    let rounds = args.opt_u64("--rounds", 3).unwrap_or(3);
    let path: &'static str = alloc::format!("{dir}/seq.bin").leak();
    let size = file_size(path);
    let advice = match args.opt("--madvise") {
        Some("seq") => Some(MADV_SEQUENTIAL),
        Some("random") => Some(MADV_RANDOM),
        _ => None,
    };
    if args.has("--mmap-only") {
        if size < PAGE as u64 {
            println!("file_bench: {path} is missing or empty");
            return 1;
        }
        mmap_seq(path, size, advice);
        return 0;
    }
    if size < MAP_BYTES as u64 {
        println!("file_bench: {path} must hold at least 128 MiB (mkext4.sh --seq-mib 128)");
        return 1;
    }
    seq_read(path);
    rand_read(path, size, random);
    for threads in [1, 2] {
        page_fault2(path, threads, rounds);
    }
    mmap_seq(path, size, advice);
    0
}
