//! `pipebomb`: what a restricted process makes the kernel hold through pipes and
//! system-call buffers is refused with ENOMEM near the kernel heap's cap, never a
//! kernel panic. Restricted processes, forked first, each make [`PIPES_PER_PROCESS`]
//! pipes; then one after another they fill theirs to 64 KiB each until the kernel
//! refuses a write with ENOMEM; the process refused then checks, with the heap still full, that the other
//! buffers a call sizes from its arguments are refused or served (a 64 KiB memfd read,
//! a 64 KiB write to a fresh pipe, an exec argument of 100 KiB), never a panic. Once
//! every process has exited, the heap's use is back near where it started and a pipe
//! takes 64 KiB again. Peios-only (restricted tokens, /proc/sys/peios/heap); meant
//! for a 1 GiB guest. Before pipe queues and syscall buffers were allocated fallibly,
//! the flood ran the heap to its cap and the kernel panicked ("memory allocation of
//! 65536 bytes failed").
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicU32, Ordering};
use peios_bins::files::read_file;
use peios_bins::peios::in_restricted_child;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::sys::fs::{close, read, write};
use peios_rt::sys::futex::{futex_wait, futex_wake};
use peios_rt::sys::mm::{mmap, MapFlags, Prot};
use peios_rt::sys::nr;
use peios_rt::sys::process::exit_group;
use peios_rt::syscall::{syscall2, syscall3, syscall4};

peios_rt::main!(main);

const PAGE: usize = 4096;
/// A pipe's capacity.
const PIPE_BYTES: usize = 64 << 10;
/// Pipes one process fills (two descriptors each, under the 1024-descriptor limit,
/// with room left for the probes).
const PIPES_PER_PROCESS: usize = 480;
/// Processes forked: 14 of 30 MiB of full pipes are past a 1 GiB guest's 256 MiB cap.
const PROCESSES: usize = 14;
/// Slack allowed between the heap's use before the flood and after it (KiB).
const HEAP_MARGIN_KIB: u64 = 8 * 1024;
/// A child's result: its pipes are made (it waits for its turn to fill them).
const READY: u32 = 3;
/// A child's result: every pipe filled.
const FILLED: u32 = 1;
/// A child's result: a write was refused with ENOMEM and the probes passed.
const REFUSED_AND_PROBED: u32 = 2;
/// A child's result: something else (the code is 16 + the errno, or 8 + the probe).
const OTHER: u32 = 16;

/// `pipe2`.
const SYS_PIPE2: usize = 293;
/// `pread64`.
const SYS_PREAD64: usize = 17;
const O_NONBLOCK: usize = 0o4000;
const O_CLOEXEC: usize = 0o2000000;

fn pipe2(flags: usize) -> Result<(i32, i32), Errno> {
    let mut fds = [0i32; 2];
    // SAFETY: the kernel writes two descriptors into `fds`.
    Errno::result(unsafe { syscall2(SYS_PIPE2, fds.as_mut_ptr() as usize, flags) })?;
    Ok((fds[0], fds[1]))
}

fn memfd() -> Result<i32, Errno> {
    // SAFETY: a NUL-terminated name; flags 0.
    Errno::result(unsafe { syscall2(nr::MEMFD_CREATE, c"pipebomb".as_ptr() as usize, 0) })
        .map(|fd| fd as i32)
}

fn pread(fd: i32, buf: &mut [u8], at: usize) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for its length.
    Errno::result(unsafe {
        syscall4(
            SYS_PREAD64,
            fd as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
            at,
        )
    })
}

/// A figure from /proc/sys/peios/heap (KiB).
fn heap_kib(name: &str) -> Option<u64> {
    let text = read_file("/proc/sys/peios/heap").ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn heap_line() -> String {
    read_file("/proc/sys/peios/heap")
        .map(|t| t.replace('\n', " "))
        .unwrap_or_default()
}

/// Makes [`PIPES_PER_PROCESS`] pipes and returns their write ends (the read ends stay
/// open too, so the pipes hold what is written).
fn make_pipes() -> Result<Vec<i32>, Errno> {
    (0..PIPES_PER_PROCESS)
        .map(|_| pipe2(O_NONBLOCK | O_CLOEXEC).map(|(_, w)| w))
        .collect()
}

/// Fills every pipe of `writers` with 64 KiB: `Ok` once all are full, the errno of the
/// first refused write otherwise.
fn fill_pipes(writers: &[i32], chunk: &[u8]) -> Result<(), Errno> {
    for &w in writers {
        let mut put = 0;
        while put < PIPE_BYTES {
            match write(w, &chunk[..PIPE_BYTES - put]) {
                Ok(n) => put += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// With the heap near its cap: each buffer a call sizes from its arguments is either
/// served or refused with ENOMEM. `Err(n)` names the probe that got anything else.
fn probes(chunk: &mut [u8], filled_memfd: i32) -> Result<(), u32> {
    let served_or_enomem = |r: Result<usize, Errno>, want: usize| match r {
        Ok(n) => n == want,
        Err(e) => e == Errno::ENOMEM,
    };
    // A 64 KiB read of a memfd (the bounce buffer).
    if !served_or_enomem(pread(filled_memfd, chunk, 0), PIPE_BYTES) {
        return Err(1);
    }
    // A 64 KiB write to a fresh pipe (the queue and the copy).
    let (r, w) = pipe2(O_NONBLOCK | O_CLOEXEC).map_err(|_| 2u32)?;
    if !served_or_enomem(write(w, chunk), PIPE_BYTES) {
        return Err(3);
    }
    let _ = close(r);
    let _ = close(w);
    // An exec whose one argument is 100 KiB (the copied string) of a missing program:
    // ENOMEM while copying, or ENOENT once the copy was made.
    let arg = vec![b'a'; 100 << 10]
        .into_iter()
        .chain([0])
        .collect::<Vec<u8>>();
    let argv = [arg.as_ptr() as usize, 0usize];
    let envp = [0usize];
    // SAFETY: NUL-terminated path and argument, NULL-terminated arrays.
    let r = unsafe {
        syscall3(
            nr::EXECVE,
            c"/no/such/program".as_ptr() as usize,
            argv.as_ptr() as usize,
            envp.as_ptr() as usize,
        )
    };
    match Errno::result(r) {
        Err(Errno::ENOMEM | Errno::ENOENT) => {}
        _ => return Err(4),
    }
    Ok(())
}

/// The flood, in a restricted process: [`PROCESSES`] children are forked first, each
/// with its pipes made and empty (forking later would be refused once the heap is
/// full, before any pipe is); then they fill their pipes one child after another
/// until one is refused; all are then released.
fn flood() -> i32 {
    let mut checks = Checks::new("pipebomb");
    let before = heap_kib("allocated_kB");
    // SAFETY: a fresh shared anonymous page: word 0 is "go", word 1+i child i's result,
    // word 1+PROCESSES+i child i's turn to fill.
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
        checks.check("setup", false, format_args!("{:?}", page.err()));
        return checks.finish();
    };
    // SAFETY: the page stays mapped in parent and children until they exit; its words
    // are only used atomically.
    let words = unsafe { core::slice::from_raw_parts(page as *const AtomicU32, PAGE / 4) };
    let go = &words[0];
    let wait_until_set = |word: &AtomicU32| {
        while word.load(Ordering::SeqCst) == 0 {
            let _ = futex_wait(word, 0, None, false);
        }
    };
    let set = |word: &AtomicU32, value: u32| {
        word.store(value, Ordering::SeqCst);
        let _ = futex_wake(word, i32::MAX as u32, false);
    };
    let mut pids = Vec::new();
    let mut fork_error = None;
    for i in 0..PROCESSES {
        let (result, turn) = (&words[1 + i], &words[1 + PROCESSES + i]);
        match fork() {
            Ok(Fork::Child) => {
                let mut chunk = vec![0x5au8; PIPE_BYTES];
                // Written before the flood, read back with the heap full.
                let probe_file = memfd().and_then(|fd| write(fd, &chunk).map(|_| fd));
                let writers = make_pipes();
                set(result, READY);
                wait_until_set(turn);
                let code = match (probe_file, writers) {
                    (Ok(fd), Ok(writers)) => match fill_pipes(&writers, &chunk) {
                        Ok(()) => FILLED,
                        Err(Errno::ENOMEM) => match probes(&mut chunk, fd) {
                            Ok(()) => REFUSED_AND_PROBED,
                            Err(n) => 8 + n,
                        },
                        Err(e) => OTHER + e.raw() as u32,
                    },
                    (Err(e), _) | (_, Err(e)) => OTHER + e.raw() as u32,
                };
                set(result, code);
                wait_until_set(go);
                exit_group(0)
            }
            Ok(Fork::Parent(pid)) => {
                pids.push(pid);
                while result.load(Ordering::SeqCst) == 0 {
                    let _ = futex_wait(result, 0, None, false);
                }
            }
            Err(e) => {
                fork_error = Some(e);
                break;
            }
        }
    }
    let mut end = None;
    for i in 0..pids.len() {
        let result = &words[1 + i];
        if result.load(Ordering::SeqCst) != READY {
            end = Some(result.load(Ordering::SeqCst));
            break;
        }
        result.store(0, Ordering::SeqCst);
        set(&words[1 + PROCESSES + i], 1);
        wait_until_set(result);
        match result.load(Ordering::SeqCst) {
            FILLED => {}
            code => {
                end = Some(code);
                break;
            }
        }
    }
    checks.check(
        "children-forked",
        fork_error.is_none(),
        format_args!("{} children, then {:?}", pids.len(), fork_error),
    );
    let heap = heap_line();
    go.store(1, Ordering::SeqCst);
    let _ = futex_wake(go, i32::MAX as u32, false);
    for i in 0..pids.len() {
        // A child still waiting for its turn is let go too.
        set(&words[1 + PROCESSES + i], 1);
    }
    let mut reaped = true;
    for &pid in &pids {
        reaped &= matches!(wait_pid(pid), Ok(WaitStatus::Exited(0)));
    }
    checks.check(
        "pipe-flood-refused-with-enomem",
        end == Some(REFUSED_AND_PROBED),
        format_args!(
            "{} processes of {} pipes, then {:?}; heap: {}",
            pids.len(),
            PIPES_PER_PROCESS,
            end,
            heap
        ),
    );
    checks.check(
        "children-reaped",
        reaped,
        format_args!("{} children", pids.len()),
    );
    let after = heap_kib("allocated_kB");
    checks.check(
        "heap-use-back",
        matches!((before, after), (Some(b), Some(a)) if a <= b + HEAP_MARGIN_KIB),
        format_args!("allocated_kB before {:?}, after {:?}", before, after),
    );
    // A pipe takes its 64 KiB again.
    let chunk = vec![1u8; PIPE_BYTES];
    let again = pipe2(O_NONBLOCK).and_then(|(r, w)| {
        let n = write(w, &chunk)?;
        let mut back = vec![0u8; PIPE_BYTES];
        let got = read(r, &mut back)?;
        let _ = close(r);
        let _ = close(w);
        Ok((n, got, back == chunk))
    });
    checks.check(
        "pipe-works-again",
        again == Ok((PIPE_BYTES, PIPE_BYTES, true)),
        format_args!("{:?}", again),
    );
    checks.finish()
}

fn main(_args: &Args) -> i32 {
    let status = in_restricted_child(flood);
    println!("pipebomb: restricted flood {:?}", status);
    match status {
        Ok(WaitStatus::Exited(0)) => 0,
        _ => 1,
    }
}
