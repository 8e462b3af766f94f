//! `fault_bench [--mode thread|process|shared|shared-process[,...]] [--workers 1,2,...] [--mb 16]
//! [--seconds 5] [--thp] [--fixed-layout]`: a will-it-scale page_fault-style benchmark.
//! `--fixed-layout` re-executes the program under `personality(ADDR_NO_RANDOMIZE)`, so
//! every boot maps at the same addresses (for telling layout effects from others).
//!
//! Each worker maps `mb` MiB, writes one byte to every 4 KiB page (one fault per
//! page), unmaps, and repeats until `seconds` pass. Modes: `thread` (workers are
//! threads of one process, private anonymous maps: page_fault1 threads), `process`
//! (forked processes, private anonymous maps: page_fault1 processes), `shared`
//! (threads, each mapping MAP_SHARED a memfd of its own, or an unlinked /tmp file
//! where memfd_create is missing: page_fault3 threads), `shared-process` (the same,
//! in forked processes: page_fault3 processes). Workers are pinned one per allowed
//! CPU with sched_setaffinity when that works. Each mapping gets
//! MADV_NOHUGEPAGE (errors ignored) so faults are 4 KiB faults; `--thp` skips that.
//!
//! Prints, per worker count, `fault_bench.<mode>.workers=<n> faults_per_sec=<x>
//! efficiency=<e>` where efficiency = rate(n) / (n * rate(1)) (relative to the first
//! count in the list when 1 is not in it).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use peios_bins::{allowed_cpus, parse_list, Milli};
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::sys::fs::{self, AT_FDCWD, O_CLOEXEC, O_CREAT, O_EXCL, O_RDWR};
use peios_rt::sys::futex::{futex_wait, futex_wake};
use peios_rt::sys::mm::{madvise, mmap, munmap, MapFlags, Prot, MADV_NOHUGEPAGE, PAGE_SIZE};
use peios_rt::sys::process::{exit_group, getpid};
use peios_rt::sys::sched::{sched_setaffinity, sched_yield, CpuSet};
use peios_rt::thread;
use peios_rt::time::{monotonic_ns, per_second};

peios_rt::main!(main);

const MAX_WORKERS: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Thread,
    Process,
    Shared,
    SharedProcess,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Thread => "thread",
            Mode::Process => "process",
            Mode::Shared => "shared",
            Mode::SharedProcess => "shared-process",
        }
    }

    /// Whether workers are forked processes (else threads of one process).
    fn forks(self) -> bool {
        matches!(self, Mode::Process | Mode::SharedProcess)
    }

    /// Whether each worker maps a shared file of its own (else private anonymous memory).
    fn shared_file(self) -> bool {
        matches!(self, Mode::Shared | Mode::SharedProcess)
    }
}

/// State shared by the workers of one run (in a MAP_SHARED page for processes).
#[repr(C)]
struct Board {
    ready: AtomicU32,
    go: AtomicU32,
    deadline_ns: AtomicU64,
    faults: [AtomicU64; MAX_WORKERS],
    end_ns: [AtomicU64; MAX_WORKERS],
    errors: AtomicU32,
}

#[derive(Clone, Copy)]
struct Config {
    mode: Mode,
    len: usize,
    thp: bool,
}

/// Where a worker's memory comes from.
enum Backing {
    Anonymous,
    File(i32),
}

fn open_backing(cfg: &Config, idx: usize) -> Result<Backing, Errno> {
    if !cfg.mode.shared_file() {
        return Ok(Backing::Anonymous);
    }
    let fd = match fs::memfd_create(c"fault_bench", fs::MFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::ENOSYS) => {
            let path = format!("/tmp/fault_bench.{}.{}\0", getpid(), idx);
            let cpath =
                core::ffi::CStr::from_bytes_with_nul(path.as_bytes()).map_err(|_| Errno::EINVAL)?;
            let fd = fs::openat(
                AT_FDCWD,
                cpath,
                O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                0o600,
            )?;
            let _ = fs::unlinkat(AT_FDCWD, cpath, 0);
            fd
        }
        Err(e) => return Err(e),
    };
    fs::ftruncate(fd, cfg.len as u64)?;
    Ok(Backing::File(fd))
}

/// One map / touch-every-page / unmap cycle; returns the pages touched.
fn cycle(cfg: &Config, backing: &Backing) -> Result<u64, Errno> {
    let (flags, fd) = match backing {
        Backing::Anonymous => (MapFlags::PRIVATE | MapFlags::ANONYMOUS, -1),
        Backing::File(fd) => (MapFlags::SHARED, *fd),
    };
    // SAFETY: no MAP_FIXED: a fresh range that nothing else uses.
    let p = unsafe { mmap(0, cfg.len, Prot::RW, flags, fd, 0) }?;
    if !cfg.thp {
        // SAFETY: advice on our own fresh mapping; contents are not relied on.
        let _ = unsafe { madvise(p, cfg.len, MADV_NOHUGEPAGE) };
    }
    let mut off = 0;
    while off < cfg.len {
        // SAFETY: `p + off` is inside our RW mapping.
        unsafe { p.add(off).write_volatile(1) };
        off += PAGE_SIZE;
    }
    // SAFETY: the mapping is ours and no longer used.
    unsafe { munmap(p, cfg.len) }?;
    Ok((cfg.len / PAGE_SIZE) as u64)
}

fn worker(cfg: Config, board: &Board, idx: usize, cpu: usize, private_futex: bool) {
    let _ = sched_setaffinity(0, &CpuSet::single(cpu));
    let backing = open_backing(&cfg, idx);
    board.ready.fetch_add(1, Ordering::AcqRel);
    while board.go.load(Ordering::Acquire) == 0 {
        let _ = futex_wait(&board.go, 0, None, private_futex);
    }
    let deadline = board.deadline_ns.load(Ordering::Acquire);
    let mut faults = 0u64;
    match backing {
        Err(e) => {
            eprintln!(
                "fault_bench: worker {}: cannot create the shared file: {}",
                idx, e
            );
            board.errors.fetch_add(1, Ordering::AcqRel);
        }
        Ok(backing) => {
            loop {
                match cycle(&cfg, &backing) {
                    Ok(n) => faults += n,
                    Err(e) => {
                        eprintln!("fault_bench: worker {}: map/unmap failed: {}", idx, e);
                        board.errors.fetch_add(1, Ordering::AcqRel);
                        break;
                    }
                }
                if monotonic_ns() >= deadline {
                    break;
                }
            }
            if let Backing::File(fd) = backing {
                let _ = fs::close(fd);
            }
        }
    }
    board.faults[idx].store(faults, Ordering::Release);
    board.end_ns[idx].store(monotonic_ns(), Ordering::Release);
}

/// Runs `n` workers for `seconds`; returns (faults, elapsed ns).
fn run(cfg: Config, n: usize, seconds: u64, cpus: &[usize]) -> Result<(u64, u64), String> {
    let board_len = core::mem::size_of::<Board>().next_multiple_of(PAGE_SIZE);
    let flags = if cfg.mode.forks() {
        MapFlags::SHARED
    } else {
        MapFlags::PRIVATE
    };
    // SAFETY: a fresh zero-filled mapping (no MAP_FIXED); all-zero is a valid Board.
    let page = unsafe { mmap(0, board_len, Prot::RW, flags | MapFlags::ANONYMOUS, -1, 0) }
        .map_err(|e| format!("mapping the board: {}", e))?;
    // SAFETY: the mapping is page-aligned, large enough, zeroed and only accessed
    // through atomics; it is unmapped only after every worker is done.
    let board: &'static Board = unsafe { &*(page as *const Board) };
    let mut threads = Vec::new();
    let mut children = Vec::new();
    for idx in 0..n {
        let cpu = cpus[idx % cpus.len()];
        if cfg.mode.forks() {
            match fork() {
                Ok(Fork::Child) => {
                    worker(cfg, board, idx, cpu, false);
                    exit_group(0);
                }
                Ok(Fork::Parent(pid)) => children.push(pid),
                Err(e) => return Err(format!("fork: {}", e)),
            }
        } else {
            match thread::spawn(move || worker(cfg, board, idx, cpu, true)) {
                Ok(h) => threads.push(h),
                Err(e) => return Err(format!("spawning a thread: {}", e)),
            }
        }
    }
    while (board.ready.load(Ordering::Acquire) as usize) < n {
        sched_yield();
    }
    let start = monotonic_ns();
    board
        .deadline_ns
        .store(start + seconds * 1_000_000_000, Ordering::Release);
    board.go.store(1, Ordering::Release);
    let _ = futex_wake(&board.go, i32::MAX as u32, !cfg.mode.forks());
    for h in threads {
        h.join();
    }
    for pid in children {
        match wait_pid(pid) {
            Ok(WaitStatus::Exited(0)) => {}
            other => return Err(format!("worker process {} ended: {:?}", pid, other)),
        }
    }
    let end = (0..n)
        .map(|i| board.end_ns[i].load(Ordering::Acquire))
        .max()
        .unwrap_or(start);
    let faults: u64 = (0..n)
        .map(|i| board.faults[i].load(Ordering::Acquire))
        .sum();
    let errors = board.errors.load(Ordering::Acquire);
    // SAFETY: every worker has finished with the board.
    let _ = unsafe { munmap(page, board_len) };
    if errors > 0 {
        return Err(format!("{} workers failed", errors));
    }
    Ok((faults, end.saturating_sub(start)))
}

fn usage() -> i32 {
    eprintln!("usage: fault_bench [--mode thread|process|shared|shared-process[,...]] [--workers 1,2,...] [--mb 16] [--seconds 5] [--thp]");
    2
}

fn parse_mode(s: &str) -> Option<Mode> {
    match s {
        "thread" | "threads" => Some(Mode::Thread),
        "process" | "processes" => Some(Mode::Process),
        "shared" => Some(Mode::Shared),
        "shared-process" | "shared-processes" => Some(Mode::SharedProcess),
        _ => None,
    }
}

/// `personality(2)`'s flag for a fixed (unrandomised) address-space layout.
const ADDR_NO_RANDOMIZE: usize = 0x0004_0000;

/// Re-executes this program with the same arguments but `--fixed-layout`, under
/// `personality(ADDR_NO_RANDOMIZE)`. Returns only on failure.
fn exec_fixed_layout(args: &Args) -> i32 {
    // SAFETY: personality takes a plain integer and touches no memory of ours.
    let old = unsafe { peios_rt::syscall::syscall1(135, ADDR_NO_RANDOMIZE) };
    if old < 0 {
        eprintln!("fault_bench: personality: {}", old);
        return 1;
    }
    let argv: Vec<&str> = (0..args.len())
        .filter_map(|i| args.get(i))
        .filter(|a| *a != "--fixed-layout")
        .collect();
    let e = peios_rt::process::execve("/proc/self/exe", &argv, &[]);
    eprintln!("fault_bench: execve: {:?}", e);
    1
}

fn main(args: &Args) -> i32 {
    if args.has("--fixed-layout") {
        return exec_fixed_layout(args);
    }
    let modes: Option<Vec<Mode>> = args
        .opt("--mode")
        .unwrap_or("thread")
        .split(',')
        .map(parse_mode)
        .collect();
    let Some(modes) = modes else { return usage() };
    let Some(workers) = parse_list(args.opt("--workers").unwrap_or("1,2")) else {
        return usage();
    };
    let (Ok(mb), Ok(seconds)) = (args.opt_u64("--mb", 16), args.opt_u64("--seconds", 5)) else {
        return usage();
    };
    if workers.is_empty() || workers.iter().any(|&w| w == 0 || w as usize > MAX_WORKERS) || mb == 0
    {
        return usage();
    }
    let cpus = allowed_cpus();
    let mut status = 0;
    for mode in modes {
        let cfg = Config {
            mode,
            len: (mb as usize) << 20,
            thp: args.has("--thp"),
        };
        status |= bench_mode(cfg, &workers, seconds, &cpus);
    }
    status
}

/// Runs one mode for every worker count; returns 0, or 1 when a run failed.
fn bench_mode(cfg: Config, workers: &[u64], seconds: u64, cpus: &[usize]) -> i32 {
    let mode = cfg.mode;
    let mb = cfg.len >> 20;
    println!(
        "fault_bench.config mode={} mb={} seconds={} cpus={} pages_per_cycle={} thp={}",
        mode.name(),
        mb,
        seconds,
        cpus.len(),
        cfg.len / PAGE_SIZE,
        if cfg.thp { "allowed" } else { "nohugepage" }
    );
    let mut base: Option<(u64, u64)> = None; // (workers, rate)
    let mut status = 0;
    for &n in workers {
        match run(cfg, n as usize, seconds, cpus) {
            Ok((faults, ns)) => {
                let rate = per_second(faults, ns);
                let (bn, brate) = *base.get_or_insert((n, rate));
                let eff = if brate == 0 {
                    0
                } else {
                    (rate as u128 * 1000 * bn as u128 / (n as u128 * brate as u128)) as u64
                };
                println!(
                    "fault_bench.{}.workers={} faults_per_sec={} efficiency={} faults={} elapsed_ms={}",
                    mode.name(),
                    n,
                    rate,
                    Milli(eff),
                    faults,
                    ns / 1_000_000
                );
            }
            Err(e) => {
                println!("fault_bench.{}.workers={} FAILED: {}", mode.name(), n, e);
                status = 1;
            }
        }
    }
    status
}
