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
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use peios_bins::files::{open, write_file};
use peios_rt::prelude::*;
use peios_rt::sys::fs::{close, read, O_RDONLY};
use peios_rt::sys::mm::{mmap, munmap, MapFlags, Prot};
use peios_rt::syscall::syscall4;
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

fn main(args: &peios_rt::Args) -> i32 {
    let dir = args.opt("--dir").unwrap_or("/mnt").trim_end_matches('/');
    let random = args.opt_u64("--random", 4096).unwrap_or(4096);
    let rounds = args.opt_u64("--rounds", 3).unwrap_or(3);
    let path: &'static str = alloc::format!("{dir}/seq.bin").leak();
    let size = file_size(path);
    if size < MAP_BYTES as u64 {
        println!("file_bench: {path} must hold at least 128 MiB (mkext4.sh --seq-mib 128)");
        return 1;
    }
    seq_read(path);
    rand_read(path, size, random);
    for threads in [1, 2] {
        page_fault2(path, threads, rounds);
    }
    0
}
