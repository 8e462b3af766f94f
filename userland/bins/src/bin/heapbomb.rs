//! `heapbomb`: what an unprivileged process can make the kernel allocate is bounded.
//! From restricted children: `mincore` over 64 GiB from two threads (ENOMEM over a hole,
//! the right answer over a 64 GiB mapping); 64,000 VMAs, then `/proc/self/maps` opened
//! twice and read to the end, and three forks; processes of 64,000 VMAs each until the
//! kernel refuses one (ENOMEM near its heap cap, not a panic); a fork bomb of sleeping children until
//! fork fails with EAGAIN (RLIMIT_NPROC); threads until clone fails with EAGAIN. Each
//! shape ends with an errno (or an OOM kill), never a kernel panic, and the parent goes
//! on. As the privileged parent: `kernel.pid_max` and `kernel.threads-max` lowered make
//! fork and clone fail with EAGAIN. At the end MemFree is back within a small margin
//! of where it started. Peios-only (restricted tokens, /proc/sys/peios/heap); meant for
//! a 1 GiB guest.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicU32, Ordering};
use peios_bins::files::{meminfo_kb, open, read_file, write_file};
use peios_bins::peios::in_restricted_child;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::sys::fs::{close, read, O_RDONLY};
use peios_rt::sys::futex::{futex_wait, futex_wake};
use peios_rt::sys::mm::{mincore_raw, mmap, mmap_anon, mprotect, munmap, MapFlags, Prot};
use peios_rt::sys::process::exit_group;
use peios_rt::thread::{spawn_with_stack, wake_all, JoinHandle};

peios_rt::main!(main);

const PAGE: usize = 4096;
const GIB: usize = 1 << 30;
/// The mincore range.
const MINCORE_BYTES: usize = 64 * GIB;
/// VMAs made for the maps and fork shapes (max_map_count is 65530).
const VMAS: usize = 64_000;
/// Slack allowed between MemFree before and after (KiB): the heap keeps blocks that
/// still hold a long-lived object, and CPU frame caches hold a few pages.
const MEMFREE_MARGIN_KIB: u64 = 16 * 1024;

fn heap_line() -> String {
    read_file("/proc/sys/peios/heap")
        .map(|t| t.replace('\n', " "))
        .unwrap_or_default()
}

/// Runs a shape in a restricted child; a clean exit or an OOM kill both pass.
fn shape(checks: &mut Checks, name: &str, child: impl FnOnce() -> i32) {
    let status = in_restricted_child(child);
    checks.check(
        name,
        matches!(
            status,
            Ok(WaitStatus::Exited(0)) | Ok(WaitStatus::Signaled { signal: 9, .. })
        ),
        format_args!("restricted child {:?}; heap: {}", status, heap_line()),
    );
}

/// mincore over 64 GiB in `thread`: ENOMEM over a hole, the touched pages over a mapping.
fn mincore_64g(hole: usize, mapped: usize, touched: &[usize]) -> Result<(), String> {
    let pages = MINCORE_BYTES / PAGE;
    let vec = mmap_anon(pages, Prot::RW).map_err(|e| format!("result vector: {}", e))?;
    // SAFETY: `vec` is our own fresh mapping of `pages` bytes.
    let over_hole = unsafe { mincore_raw(hole, MINCORE_BYTES, vec) };
    if over_hole != Err(Errno::ENOMEM) {
        return Err(format!("over a hole: {:?}", over_hole));
    }
    // SAFETY: as above.
    let over_mapping = unsafe { mincore_raw(mapped, MINCORE_BYTES, vec) };
    let result = match over_mapping {
        // A kernel short of memory may say so; it must not fall over.
        Err(Errno::ENOMEM) | Err(Errno::EAGAIN) => Ok(()),
        Err(e) => Err(format!("over the mapping: {}", e)),
        Ok(()) => {
            // SAFETY: the vector is mapped for `pages` bytes.
            let v = unsafe { core::slice::from_raw_parts(vec, pages) };
            let resident = v.iter().filter(|b| **b & 1 != 0).count();
            let all_touched = touched.iter().all(|&i| v[i] & 1 != 0);
            if all_touched && resident == touched.len() {
                Ok(())
            } else {
                Err(format!(
                    "{} resident pages, touched ones set: {}",
                    resident, all_touched
                ))
            }
        }
    };
    // SAFETY: ours, unused now.
    let _ = unsafe { munmap(vec, pages) };
    result
}

fn mincore_shape() -> i32 {
    let mut checks = Checks::new("heapbomb");
    // A 64 GiB hole: reserve it, then give it back.
    // SAFETY: a fresh reservation, unmapped at once.
    let hole = unsafe {
        mmap(
            0,
            MINCORE_BYTES,
            Prot::NONE,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::NORESERVE,
            -1,
            0,
        )
    };
    // SAFETY: a fresh private mapping.
    let mapped = unsafe {
        mmap(
            0,
            MINCORE_BYTES,
            Prot::RW,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::NORESERVE,
            -1,
            0,
        )
    };
    let (Ok(hole), Ok(mapped)) = (hole, mapped) else {
        checks.check(
            "mincore-setup",
            false,
            format_args!("{:?} {:?}", hole, mapped),
        );
        return checks.finish();
    };
    // SAFETY: ours; nothing uses it.
    let _ = unsafe { munmap(hole, MINCORE_BYTES) };
    let pages = MINCORE_BYTES / PAGE;
    let touched = [0, GIB / PAGE, pages / 2 + 7, pages - 1];
    for &i in &touched {
        // SAFETY: inside our own writable mapping.
        unsafe { mapped.add(i * PAGE).write_volatile(1) };
    }
    let (hole, mapped) = (hole as usize, mapped as usize);
    let workers: Vec<Result<JoinHandle<Result<(), String>>, Errno>> = (0..2)
        .map(|_| spawn_with_stack(64 << 10, move || mincore_64g(hole, mapped, &touched)))
        .collect();
    for (i, w) in workers.into_iter().enumerate() {
        let result = w
            .map_err(|e| format!("spawn: {}", e))
            .and_then(|h| h.join());
        checks.check(
            &format!("mincore-64g-thread-{}", i),
            result.is_ok(),
            format_args!("{:?}", result),
        );
    }
    checks.finish()
}

/// Reads `fd` to the end in 4 KiB pieces; lines and bytes.
fn count_lines(fds: [i32; 2]) -> [Result<(usize, usize), Errno>; 2] {
    let mut counts = [Ok((0usize, 0usize)), Ok((0, 0))];
    let mut open = [true, true];
    let mut buf = [0u8; 4096];
    // The two descriptors are read in turn, so both renderings are in flight together.
    while open.iter().any(|o| *o) {
        for i in 0..2 {
            if !open[i] {
                continue;
            }
            match read(fds[i], &mut buf) {
                Ok(0) => open[i] = false,
                Ok(n) => {
                    if let Ok((lines, bytes)) = &mut counts[i] {
                        *lines += buf[..n].iter().filter(|b| **b == b'\n').count();
                        *bytes += n;
                    }
                }
                Err(e) => {
                    counts[i] = Err(e);
                    open[i] = false;
                }
            }
        }
    }
    counts
}

/// Maps `VMAS` pages PROT_NONE and makes every other one readable, so that they never
/// merge: one VMA each. The first error, with the page it came at.
fn make_vmas() -> Result<(), (usize, Errno)> {
    let base = mmap_anon(VMAS * PAGE, Prot::NONE).map_err(|e| (0, e))?;
    for i in (1..VMAS).step_by(2) {
        // SAFETY: a page of our own PROT_NONE reservation.
        unsafe { mprotect(base.add(i * PAGE), PAGE, Prot::READ) }.map_err(|e| (i, e))?;
    }
    Ok(())
}

fn vma_shape() -> i32 {
    let mut checks = Checks::new("heapbomb");
    let made = make_vmas();
    checks.check(
        "vmas-made",
        made.is_ok(),
        format_args!("{} VMAs: {:?}", VMAS, made),
    );
    let fds = [
        open("/proc/self/maps", O_RDONLY),
        open("/proc/self/maps", O_RDONLY),
    ];
    match fds {
        [Ok(a), Ok(b)] => {
            let counts = count_lines([a, b]);
            let _ = close(a);
            let _ = close(b);
            checks.check(
                "maps-twice-read-whole",
                matches!(counts, [Ok((l1, b1)), Ok((l2, b2))] if l1 >= VMAS && l1 == l2 && b1 == b2),
                format_args!("(lines, bytes) {:?}", counts),
            );
        }
        other => {
            checks.check(
                "maps-twice-read-whole",
                false,
                format_args!("open {:?}", other),
            );
        }
    }
    // smaps: its first 64 KiB (a whole smaps of 64,000 VMAs is 60 MB of text). Reads
    // may be short (one batch of VMAs each, as Linux's seq_file gives a page).
    let smaps = open("/proc/self/smaps", O_RDONLY).and_then(|fd| {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < 16 * 4096 {
            let want = buf.len().min(16 * 4096 - total);
            match read(fd, &mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => {
                    let _ = close(fd);
                    return Err(e);
                }
            }
        }
        let _ = close(fd);
        Ok(total)
    });
    checks.check(
        "smaps-first-64k",
        smaps == Ok(16 * 4096),
        format_args!("{:?}", smaps),
    );
    // Three forks, each copying the 64,000 VMAs: each succeeds or gets an errno.
    for round in 0..3 {
        let result = match fork() {
            Ok(Fork::Child) => exit_group(0),
            Ok(Fork::Parent(pid)) => wait_pid(pid).map(|s| format!("{:?}", s)),
            Err(e) => Ok(format!("errno {}", e)),
        };
        checks.check(
            &format!("fork-with-64000-vmas-{}", round),
            matches!(&result, Ok(s) if s.contains("Exited(0)") || s.starts_with("errno")),
            format_args!("{:?}; heap: {}", result, heap_line()),
        );
    }
    checks.finish()
}

/// Forks children that wait (on a shared futex) until fork fails; then lets them go
/// and reaps them. The count and the error. (A restricted process may not kill its own
/// children: its user SID is deny-only, so they are told to exit instead.)
fn fork_until_failure(limit: usize) -> (usize, Option<Errno>) {
    // SAFETY: a fresh shared anonymous page for the "go" word.
    let page = unsafe {
        mmap(
            0,
            PAGE,
            Prot::RW,
            MapFlags::SHARED | MapFlags::ANONYMOUS,
            -1,
            0,
        )
    };
    let Ok(page) = page else {
        return (0, page.err());
    };
    // SAFETY: the page stays mapped in parent and children until they exit; it is only
    // used atomically.
    let go = unsafe { &*(page as *const AtomicU32) };
    let mut pids = Vec::new();
    let error = loop {
        if pids.len() >= limit {
            break None;
        }
        match fork() {
            Ok(Fork::Child) => {
                while go.load(Ordering::SeqCst) == 0 {
                    let _ = futex_wait(go, 0, None, false);
                }
                exit_group(0)
            }
            Ok(Fork::Parent(pid)) => pids.push(pid),
            Err(e) => break Some(e),
        }
    };
    println!(
        "heapbomb: {} children, then {:?}, at {} ms; heap: {}",
        pids.len(),
        error,
        peios_rt::time::monotonic_ns() / 1_000_000,
        heap_line()
    );
    go.store(1, Ordering::SeqCst);
    let _ = futex_wake(go, i32::MAX as u32, false);
    for &pid in &pids {
        let _ = wait_pid(pid);
    }
    println!(
        "heapbomb: reaped at {} ms",
        peios_rt::time::monotonic_ns() / 1_000_000
    );
    // SAFETY: every child is gone; nothing uses the page.
    let _ = unsafe { munmap(page, PAGE) };
    (pids.len(), error)
}

/// Processes of 64,000 VMAs each, forked one after another until the kernel refuses
/// (ENOMEM from mprotect or fork, when its heap nears its cap, or EAGAIN from the task
/// limits): the VMAs of many processes together must not exhaust the kernel heap.
fn vma_flood_shape() -> i32 {
    const MAX_PROCESSES: usize = 64;
    let mut checks = Checks::new("heapbomb");
    // SAFETY: a fresh shared anonymous page: word 0 is "go", word 1+i child i's result.
    let page = unsafe {
        mmap(
            0,
            PAGE,
            Prot::RW,
            MapFlags::SHARED | MapFlags::ANONYMOUS,
            -1,
            0,
        )
    };
    let Ok(page) = page else {
        checks.check("vma-flood-setup", false, format_args!("{:?}", page.err()));
        return checks.finish();
    };
    // SAFETY: the page stays mapped in parent and children until they exit; its words
    // are only used atomically.
    let words = unsafe { core::slice::from_raw_parts(page as *const AtomicU32, PAGE / 4) };
    let go = &words[0];
    let mut pids = Vec::new();
    let end = loop {
        if pids.len() >= MAX_PROCESSES {
            break Ok(None);
        }
        let result = &words[1 + pids.len()];
        match fork() {
            Ok(Fork::Child) => {
                let code = match make_vmas() {
                    Ok(()) => 1,
                    Err((_, Errno::ENOMEM)) => 2,
                    Err(_) => 3,
                };
                result.store(code, Ordering::SeqCst);
                let _ = futex_wake(result, 1, false);
                while go.load(Ordering::SeqCst) == 0 {
                    let _ = futex_wait(go, 0, None, false);
                }
                exit_group(0)
            }
            Ok(Fork::Parent(pid)) => {
                pids.push(pid);
                while result.load(Ordering::SeqCst) == 0 {
                    let _ = futex_wait(result, 0, None, false);
                }
                match result.load(Ordering::SeqCst) {
                    1 => {}
                    2 => break Ok(Some(Errno::ENOMEM)),
                    other => break Err(other),
                }
            }
            Err(e) => break Ok(Some(e)),
        }
    };
    let heap = heap_line();
    go.store(1, Ordering::SeqCst);
    let _ = futex_wake(go, i32::MAX as u32, false);
    for &pid in &pids {
        let _ = wait_pid(pid);
    }
    checks.check(
        "vma-flood-refused-before-the-heap-ran-out",
        matches!(end, Ok(Some(Errno::ENOMEM | Errno::EAGAIN))),
        format_args!(
            "{} processes of {} VMAs, then {:?}; heap: {}",
            pids.len(),
            VMAS,
            end,
            heap
        ),
    );
    checks.finish()
}

fn fork_bomb_shape() -> i32 {
    let mut checks = Checks::new("heapbomb");
    let (n, error) = fork_until_failure(100_000);
    checks.check(
        "fork-bomb-eagain",
        error == Some(Errno::EAGAIN) && n > 100,
        format_args!("{} children, then {:?}; heap: {}", n, error, heap_line()),
    );
    checks.finish()
}

/// Spawns threads that wait on `go` until spawning fails; releases and joins them.
fn spawn_until_failure(limit: usize) -> (usize, Option<Errno>) {
    static GO: AtomicU32 = AtomicU32::new(0);
    GO.store(0, Ordering::SeqCst);
    let mut threads = Vec::new();
    let error = loop {
        if threads.len() >= limit {
            break None;
        }
        match spawn_with_stack(16 << 10, || {
            while GO.load(Ordering::SeqCst) == 0 {
                let _ = futex_wait(&GO, 0, None, true);
            }
        }) {
            Ok(h) => threads.push(h),
            Err(e) => break Some(e),
        }
    };
    println!(
        "heapbomb: {} threads, then {:?}, at {} ms",
        threads.len(),
        error,
        peios_rt::time::monotonic_ns() / 1_000_000
    );
    GO.store(1, Ordering::SeqCst);
    wake_all(&GO);
    let n = threads.len();
    for t in threads {
        t.join();
    }
    println!(
        "heapbomb: joined at {} ms",
        peios_rt::time::monotonic_ns() / 1_000_000
    );
    (n, error)
}

fn thread_bomb_shape() -> i32 {
    let mut checks = Checks::new("heapbomb");
    let (n, error) = spawn_until_failure(100_000);
    checks.check(
        "thread-bomb-eagain",
        error == Some(Errno::EAGAIN) && n > 100,
        format_args!("{} threads, then {:?}; heap: {}", n, error, heap_line()),
    );
    checks.finish()
}

/// Sets a `/proc/sys/kernel` knob for the duration of `f`.
fn with_knob<T>(path: &str, value: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    let old = read_file(path).map_err(|e| format!("read {}: {}", path, e))?;
    write_file(path, value).map_err(|e| format!("write {} = {}: {}", path, value, e))?;
    let result = f();
    write_file(path, old.trim()).map_err(|e| format!("restore {}: {}", path, e))?;
    Ok(result)
}

/// The task count and last pid from `/proc/loadavg`.
fn loadavg() -> Option<(u64, u64)> {
    let text = read_file("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().skip(3);
    let tasks = fields.next()?.split('/').nth(1)?.parse().ok()?;
    let last = fields.next()?.parse().ok()?;
    Some((tasks, last))
}

fn main(args: &Args) -> i32 {
    if args.has("--flood-only") {
        return vma_flood(Checks::new("heapbomb"));
    }
    let mut checks = Checks::new("heapbomb");
    let free_before = meminfo_kb("MemFree");
    let tasks_before = loadavg();
    println!(
        "heapbomb: start: MemFree {:?} kB, heap: {}",
        free_before,
        heap_line()
    );

    shape(&mut checks, "mincore-shape", mincore_shape);
    shape(&mut checks, "vma-shape", vma_shape);
    shape(&mut checks, "fork-bomb-shape", fork_bomb_shape);
    shape(&mut checks, "thread-bomb-shape", thread_bomb_shape);

    // Privileged (exempt from RLIMIT_NPROC): the system-wide knobs still hold.
    let pid_max = with_knob("/proc/sys/kernel/pid_max", "400", || {
        fork_until_failure(1000)
    });
    checks.check(
        "pid_max-exhausted-eagain",
        matches!(pid_max, Ok((n, Some(Errno::EAGAIN))) if n > 0 && n <= 100),
        format_args!("(children, error) with pid_max 400: {:?}", pid_max),
    );
    println!(
        "heapbomb: shapes done at {} ms",
        peios_rt::time::monotonic_ns() / 1_000_000
    );
    let tasks = loadavg().map_or(0, |(t, _)| t);
    let limit = format!("{}", tasks + 32);
    let threads_max = with_knob("/proc/sys/kernel/threads-max", &limit, || {
        spawn_until_failure(1000)
    });
    checks.check(
        "threads-max-eagain",
        matches!(threads_max, Ok((n, Some(Errno::EAGAIN))) if (24..=32).contains(&n)),
        format_args!(
            "(threads, error) with threads-max {}: {:?}",
            limit, threads_max
        ),
    );

    // Everything is reaped: the task count and free memory come back.
    let tasks_after = loadavg();
    checks.check(
        "tasks-back",
        tasks_after.map(|t| t.0) == tasks_before.map(|t| t.0),
        format_args!(
            "(tasks, last pid) before {:?}, after {:?}",
            tasks_before, tasks_after
        ),
    );
    let free_after = meminfo_kb("MemFree");
    checks.check(
        "memfree-back",
        matches!((free_before, free_after), (Some(b), Some(a)) if a + MEMFREE_MARGIN_KIB >= b),
        format_args!(
            "MemFree before {:?} kB, after {:?} kB; heap: {}",
            free_before,
            free_after,
            heap_line()
        ),
    );

    if args.has("--no-flood") {
        return checks.finish();
    }
    vma_flood(checks)
}

/// VMAs of many processes up to the heap's cap (`--flood-only` runs just this, in a
/// smaller guest whose cap is reached with fewer processes). The heap grows by up to a
/// quarter of RAM and gives back only the blocks that are wholly free again (others
/// keep a long-lived object), so MemFree is not compared after it; the heap's own use
/// must come back.
fn vma_flood(mut checks: Checks) -> i32 {
    let allocated_before = heap_kib("allocated_kB");
    shape(&mut checks, "vma-flood-shape", vma_flood_shape);
    let allocated_after = heap_kib("allocated_kB");
    checks.check(
        "vma-flood-heap-use-back",
        matches!((allocated_before, allocated_after), (Some(b), Some(a)) if a <= b + 8 * 1024),
        format_args!(
            "heap allocated before {:?} kB, after {:?} kB; heap: {}",
            allocated_before,
            allocated_after,
            heap_line()
        ),
    );
    checks.finish()
}

/// One figure of /proc/sys/peios/heap.
fn heap_kib(name: &str) -> Option<u64> {
    let text = read_file("/proc/sys/peios/heap").ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
