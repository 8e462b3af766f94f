//! `readahead`: the page cache of an ext4 disk (`--disk IMAGE` from
//! `tools/mkext4.sh --seq-mib N`, mounted at `--dir`, default `/mnt`, on the virtio
//! disk `--dev`, default `vda`). Runs as root.
//!
//! - A cold sequential read of `seq.bin` in 4 KiB reads issues far fewer device
//!   requests (`/proc/diskstats`) than the same read after `POSIX_FADV_RANDOM`; the
//!   data is checked word by word both times.
//! - `drop_caches` (3) empties the cache: `mincore` of a mapping of the file shows no
//!   page resident, where it showed every page after the read.
//! - `O_DIRECT` reads give the disk's bytes and leave the cache empty; a misaligned
//!   offset, length or buffer is EINVAL.
//! - `readahead(2)` and `POSIX_FADV_WILLNEED` bring a range in (seen by `mincore`),
//!   `POSIX_FADV_DONTNEED` drops it; unknown advice is EINVAL, a pipe ESPIPE.
//! - `--stream` instead: the file, larger than the guest's memory, read once and
//!   checked (reclaim drops clean cache pages, without swap).
//!
//! Runs on Linux too (the anchor's `--disk`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use peios_bins::files::{open, read_file, write_file};
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::sys::fs::{close, read, O_RDONLY};
use peios_rt::sys::mm::{mincore, mmap, mmap_anon, munmap, MapFlags, Prot};
use peios_rt::syscall::{syscall2, syscall3, syscall4};

peios_rt::main!(main);

const PAGE: usize = 4096;
const O_DIRECT: u32 = 0o40000;
const NR_PREAD64: usize = 17;
const NR_READAHEAD: usize = 187;
const NR_FADVISE64: usize = 221;
const NR_PIPE2: usize = 293;
const FADV_RANDOM: usize = 1;
const FADV_WILLNEED: usize = 3;
const FADV_DONTNEED: usize = 4;

/// The word at byte `offset` of the pattern files `mkext4.sh` writes.
fn word(offset: u64) -> u64 {
    offset.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed
}

fn pattern_ok(at: u64, data: &[u8]) -> bool {
    data.chunks_exact(8)
        .enumerate()
        .all(|(i, w)| u64::from_le_bytes(w.try_into().unwrap()) == word(at + 8 * i as u64))
}

/// Reads completed on disk `dev` (`/proc/diskstats`, the fourth field).
fn disk_reads(dev: &str) -> u64 {
    let text = read_file("/proc/diskstats").unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&dev)).then(|| f.get(3)?.parse().ok())?
        })
        .unwrap_or(0)
}

fn drop_caches() -> Result<(), Errno> {
    write_file("/proc/sys/vm/drop_caches", "3\n")
}

fn fadvise(fd: i32, offset: u64, len: u64, advice: usize) -> Result<usize, Errno> {
    // SAFETY: no pointers.
    Errno::result(unsafe {
        syscall4(
            NR_FADVISE64,
            fd as usize,
            offset as usize,
            len as usize,
            advice,
        )
    })
}

fn pread(fd: i32, buf: *mut u8, len: usize, offset: u64) -> Result<usize, Errno> {
    // SAFETY: the caller passes a buffer writable for `len` bytes.
    Errno::result(unsafe { syscall4(NR_PREAD64, fd as usize, buf as usize, len, offset as usize) })
}

/// Reads the whole file in `chunk`-byte reads; returns (bytes, pattern intact).
fn read_through(fd: i32, chunk: usize) -> (u64, bool) {
    let mut buf = vec![0u8; chunk];
    let mut at = 0u64;
    let mut ok = true;
    loop {
        match read(fd, &mut buf) {
            Ok(0) => return (at, ok),
            Ok(n) => {
                ok &= pattern_ok(at, &buf[..n]);
                at += n as u64;
            }
            Err(_) => return (at, false),
        }
    }
}

/// Resident pages of `pages` pages of `path` mapped at `offset` (bytes).
fn resident(path: &str, offset: u64, pages: usize) -> Result<usize, Errno> {
    let fd = open(path, O_RDONLY)?;
    // SAFETY: no MAP_FIXED; the file is open for reading.
    let map = unsafe { mmap(0, pages * PAGE, Prot::READ, MapFlags::SHARED, fd, offset) };
    let _ = close(fd);
    let map = map?;
    let mut vec = vec![0u8; pages];
    let r = mincore(map as usize, pages * PAGE, &mut vec);
    // SAFETY: unmapping what was mapped above.
    let _ = unsafe { munmap(map, pages * PAGE) };
    r.map(|()| vec.iter().filter(|&&b| b & 1 != 0).count())
}

/// Polls `resident` until it reaches `want` or 10 s pass.
fn wait_resident(path: &str, offset: u64, pages: usize, want: usize) -> usize {
    let deadline = peios_rt::time::monotonic_ns() + 10_000_000_000;
    loop {
        let n = resident(path, offset, pages).unwrap_or(0);
        if n >= want || peios_rt::time::monotonic_ns() > deadline {
            return n;
        }
        peios_rt::time::sleep_ms(10);
    }
}

fn main(args: &peios_rt::Args) -> i32 {
    let dir = args.opt("--dir").unwrap_or("/mnt").trim_end_matches('/');
    let dev = args.opt("--dev").unwrap_or("vda");
    let path = alloc::format!("{dir}/seq.bin");
    let mut c = Checks::new("readahead");
    let Ok(fd) = open(&path, O_RDONLY) else {
        println!("readahead: cannot open {path}");
        return 1;
    };
    let mut st = [0u64; 18];
    // SAFETY: `st` is 144 writable bytes.
    let _ = unsafe { syscall2(5, fd as usize, st.as_mut_ptr() as usize) };
    let size = st[6];
    let pages = (size as usize).div_ceil(PAGE);
    let _ = close(fd);

    if args.iter().any(|a| a == "--stream") {
        // A file larger than memory: reclaim must drop clean cache pages, not kill.
        let fd = open(&path, O_RDONLY).unwrap_or(-1);
        let (bytes, intact) = read_through(fd, 64 << 10);
        let _ = close(fd);
        let free_kb = peios_bins::files::meminfo_kb("MemTotal").unwrap_or(0);
        c.check(
            "stream_bigger_than_ram",
            bytes == size && intact,
            format_args!(
                "{} of {} MiB read, pattern {intact}, MemTotal {} MiB",
                bytes >> 20,
                size >> 20,
                free_kb >> 10
            ),
        );
        return c.finish();
    }

    // Sequential, then random, both cold.
    let dropped = drop_caches();
    let before = disk_reads(dev);
    let fd = open(&path, O_RDONLY).unwrap_or(-1);
    let (bytes, seq_ok) = read_through(fd, PAGE);
    let _ = close(fd);
    let sequential = disk_reads(dev) - before;
    let all_in = resident(&path, 0, pages);
    let _ = drop_caches();
    let after_drop = resident(&path, 0, pages);
    c.check(
        "drop_caches_mincore",
        dropped.is_ok() && all_in == Ok(pages) && after_drop == Ok(0),
        format_args!(
            "resident after the read {all_in:?} of {pages}, after drop_caches {after_drop:?}"
        ),
    );
    let before = disk_reads(dev);
    let fd = open(&path, O_RDONLY).unwrap_or(-1);
    let advised = fadvise(fd, 0, 0, FADV_RANDOM);
    let (rbytes, random_ok) = read_through(fd, PAGE);
    let _ = close(fd);
    let random = disk_reads(dev) - before;
    println!(
        "readahead: {} MiB in 4 KiB reads: {sequential} device reads sequential, {random} after FADV_RANDOM",
        size >> 20
    );
    c.check(
        "sequential_vs_random",
        seq_ok
            && random_ok
            && bytes == size
            && rbytes == size
            && advised.is_ok()
            && sequential * 8 <= random
            && sequential > 0,
        format_args!(
            "{sequential} requests sequential, {random} random; data {seq_ok}/{random_ok}"
        ),
    );

    // O_DIRECT.
    let _ = drop_caches();
    let buf = mmap_anon(1 << 20, Prot::RW).unwrap_or(core::ptr::null_mut());
    let direct_fd = open(&path, O_RDONLY | O_DIRECT);
    match direct_fd {
        Ok(fd) => {
            let len = 256 << 10;
            let at = 1 << 20;
            let got = pread(fd, buf, len, at);
            // SAFETY: `buf` is a 1 MiB mapping.
            let data = unsafe { core::slice::from_raw_parts(buf, len) };
            let intact = got == Ok(len) && pattern_ok(at, data);
            let cached = resident(&path, 0, pages);
            c.check(
                "direct_read",
                intact && cached == Ok(0),
                format_args!("read {got:?}, pattern {intact}, cached pages after {cached:?}"),
            );
            // SAFETY: inside the 1 MiB buffer.
            let odd_buf = pread(fd, unsafe { buf.add(1) }, 4096, 0);
            let odd_off = pread(fd, buf, 4096, 100);
            let odd_len = pread(fd, buf, 100, 0);
            c.check(
                "direct_alignment",
                odd_buf == Err(Errno::EINVAL)
                    && odd_off == Err(Errno::EINVAL)
                    && odd_len == Err(Errno::EINVAL),
                format_args!("buffer {odd_buf:?}, offset {odd_off:?}, length {odd_len:?}"),
            );
            let _ = close(fd);
        }
        Err(e) => {
            c.check("direct_read", false, format_args!("open O_DIRECT: {e}"));
        }
    }

    // readahead(2), WILLNEED, DONTNEED.
    let _ = drop_caches();
    let fd = open(&path, O_RDONLY).unwrap_or(-1);
    let span = 256; // pages (1 MiB)
                    // SAFETY: no pointers.
    let ra = Errno::result(unsafe { syscall3(NR_READAHEAD, fd as usize, 0, span * PAGE) });
    let brought = wait_resident(&path, 0, span, span);
    c.check(
        "readahead_syscall",
        ra.is_ok() && brought == span,
        format_args!("readahead {ra:?}, then {brought} of {span} pages resident"),
    );
    let at = 4u64 << 20;
    let will = fadvise(fd, at, (span * PAGE) as u64, FADV_WILLNEED);
    let wanted = wait_resident(&path, at, span, span);
    let dont = fadvise(fd, at, (span * PAGE) as u64, FADV_DONTNEED);
    let left = resident(&path, at, span);
    c.check(
        "fadvise_willneed_dontneed",
        will.is_ok() && wanted == span && dont.is_ok() && left == Ok(0),
        format_args!("WILLNEED {will:?} -> {wanted} resident; DONTNEED {dont:?} -> {left:?}"),
    );
    c.expect_errno("fadvise_bad_advice", fadvise(fd, 0, 0, 99), Errno::EINVAL);
    let _ = close(fd);
    let mut pipe = [0i32; 2];
    // SAFETY: `pipe` has room for two descriptors.
    let made = Errno::result(unsafe { syscall2(NR_PIPE2, pipe.as_mut_ptr() as usize, 0) });
    if made.is_ok() {
        c.expect_errno("fadvise_pipe", fadvise(pipe[0], 0, 0, 0), Errno::ESPIPE);
        let _ = close(pipe[0]);
        let _ = close(pipe[1]);
    }
    c.finish()
}
