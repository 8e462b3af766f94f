//! `fuzz --mm`: storms of mmap/munmap/mprotect/mremap/madvise/mincore/msync/brk from
//! several threads sharing one address space, while other threads touch that memory,
//! a thread forks children that touch it and exit, and /proc/self/{maps,smaps,status,
//! numa_maps,pagemap} are read.
//!
//! Everything happens in an arena this program reserves at a fixed low address
//! ([`ARENA_BASE`], far below the top-down mmap area, so the kernel never places
//! the runtime's own mappings in its holes):
//!
//! ```text
//! [B][chaos zone][B][lane 0][B][lane 1][B]...[B]
//! ```
//!
//! `B` is a barrier page (a shared anonymous PROT_NONE mapping: no other mapping
//! merges with it or grows into it) that no call ever names. Every worker storms the
//! chaos zone with random, mostly plausible arguments (unaligned addresses, lengths
//! that overflow or exceed the address space, odd flags and advice) and checks only
//! that each call answers. Each worker also owns one lane, where it keeps a per-page
//! model (mapped, protection, shared, the byte at one offset, fork flags) and checks
//! after its calls that probed reads and writes fault exactly where the model says,
//! that data reads back, that `/proc/self/maps` agrees, and, through a fork, that a
//! child sees the lane as the model says and its writes stay private (or shared).
//!
//! Rules that keep the program alive on a correct kernel: `MAP_FIXED` (and
//! `MREMAP_FIXED`) only inside the arena, with lengths that stay inside it or that
//! every kernel refuses (at least 2^47 bytes, or wrapping past 2^64); mprotect and
//! madvise, which Linux applies up to the first hole, only get lengths inside the
//! arena or wrapping ones; anything a call maps outside the arena (a moved mremap, a
//! mmap whose hint was not taken) is unmapped again at once; brk only moves the
//! break, which the runtime's heap does not use.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use peios_rt::fault;
use peios_rt::prelude::*;
use peios_rt::process::{fork, Fork, WaitStatus};
use peios_rt::signal::{
    set_handler, signal_name, Handler, SigInfo, UContext, SA_NODEFER, SIGBUS, SIGKILL, SIGSEGV,
};
use peios_rt::sys::fs::{close, ftruncate, lseek_set, memfd_create, read_raw, O_RDONLY};
use peios_rt::sys::mm::{mmap, MapFlags, Prot, PAGE_SIZE};
use peios_rt::sys::nr;
use peios_rt::sys::process::{exit_group, kill, wait4, WNOHANG};
use peios_rt::sys::signal::SigSet;
use peios_rt::syscall::syscall6;
use peios_rt::thread;
use peios_rt::time::{monotonic_ns, sleep_ms};

use crate::Lcg;

/// Where the arena is reserved (64 GiB).
pub const ARENA_BASE: usize = 0x10_0000_0000;
/// Pages of the chaos zone.
const CHAOS_PAGES: usize = 1024;
/// Pages of one worker's lane.
const LANE_PAGES: usize = 48;
/// At most this many workers (lanes).
pub(crate) const MAX_WORKERS: usize = 6;
/// In-flight slots: workers, touchers and the misc thread.
const MAX_SLOTS: usize = 16;
/// A hang: no call finished for this long.
const STALL_S: u64 = 60;
/// Lengths every kernel refuses for munmap/mmap/mremap/mincore (beyond TASK_SIZE).
const HUGE_LENS: &[usize] = &[1 << 47, 1 << 48, 1 << 62, 1 << 63, usize::MAX >> 1];
/// Advice values for the chaos zone (never MADV_HWPOISON/SOFT_OFFLINE, 100/101).
const CHAOS_ADVICE: &[usize] = &[
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
    24,
    25,
    26,
    99,
    0xffff,
    usize::MAX,
];

const MS_ASYNC: usize = 1;
const MS_INVALIDATE: usize = 2;
const MS_SYNC: usize = 4;
const MREMAP_MAYMOVE: usize = 1;
const MREMAP_FIXED: usize = 2;
const MREMAP_DONTUNMAP: usize = 4;

/// The calls, for the statistics and the in-flight slots.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u64)]
enum Op {
    Idle = 0,
    Mmap,
    Munmap,
    Mprotect,
    Madvise,
    Mremap,
    Mincore,
    Msync,
    Brk,
    Getrandom,
    Fork,
    Proc,
}

const OP_NAMES: &[&str] = &[
    "idle",
    "mmap",
    "munmap",
    "mprotect",
    "madvise",
    "mremap",
    "mincore",
    "msync",
    "brk",
    "getrandom",
    "fork",
    "proc",
];
const OPS: usize = 12;

/// What one thread is doing (for a hang report).
#[repr(C)]
struct Slot {
    op: AtomicU64,
    args: [AtomicU64; 6],
}

/// What the fuzzing child reports to the watchdog through a shared page.
#[repr(C)]
pub struct MmReport {
    /// mm calls made by the workers.
    done: AtomicU64,
    calls: [AtomicU64; OPS],
    ok: [AtomicU64; OPS],
    errno: [AtomicU64; 134],
    failures: AtomicU64,
    touches: AtomicU64,
    faults: AtomicU64,
    checked_pages: AtomicU64,
    forks: AtomicU64,
    slots: [Slot; MAX_SLOTS],
}

/// The run's parameters.
#[derive(Clone, Copy)]
pub struct Params {
    pub count: u64,
    pub seed: u64,
    pub timeout_s: u64,
    /// A time budget (0: none): at its end the child is stopped and the run counts as
    /// passed if nothing failed and calls were still being answered.
    pub budget_s: u64,
    pub workers: usize,
    pub touchers: usize,
    pub fork: bool,
    pub trace: bool,
}

/// The arena's layout.
#[derive(Clone, Copy)]
struct Arena {
    base: usize,
    end: usize,
    chaos: usize,
    chaos_end: usize,
    ro_page: usize,
    unmapped: usize,
    memfd: i32,
}

impl Arena {
    fn total_pages(workers: usize) -> usize {
        1 + CHAOS_PAGES + 1 + workers * (LANE_PAGES + 1)
    }

    fn lane(&self, w: usize) -> usize {
        self.chaos_end + PAGE_SIZE + w * (LANE_PAGES + 1) * PAGE_SIZE
    }

    fn in_chaos(&self, a: usize, len: usize) -> bool {
        a >= self.chaos && len <= self.chaos_end - a.min(self.chaos_end)
    }

    fn reserve(workers: usize) -> Result<Arena, String> {
        let len = Self::total_pages(workers) * PAGE_SIZE;
        let flags = MapFlags::PRIVATE
            | MapFlags::ANONYMOUS
            | MapFlags::NORESERVE
            | MapFlags::FIXED_NOREPLACE;
        // SAFETY: FIXED_NOREPLACE never replaces an existing mapping.
        let base = unsafe { mmap(ARENA_BASE, len, Prot::NONE, flags, -1, 0) }
            .map_err(|e| format!("reserving the arena: {}", e))? as usize;
        if base != ARENA_BASE {
            return Err(format!(
                "arena placed at {:#x}, not {:#x}",
                base, ARENA_BASE
            ));
        }
        let chaos = base + PAGE_SIZE;
        let chaos_end = chaos + CHAOS_PAGES * PAGE_SIZE;
        let barriers = core::iter::once(base)
            .chain((0..=workers).map(|w| chaos_end + w * (LANE_PAGES + 1) * PAGE_SIZE));
        for b in barriers {
            // SAFETY: `b` is a page of the arena we just reserved; nothing uses it.
            unsafe {
                mmap(
                    b,
                    PAGE_SIZE,
                    Prot::NONE,
                    MapFlags::SHARED | MapFlags::ANONYMOUS | MapFlags::FIXED,
                    -1,
                    0,
                )
            }
            .map_err(|e| format!("barrier at {:#x}: {}", b, e))?;
        }
        let ro = peios_rt::sys::mm::mmap_anon(PAGE_SIZE, Prot::READ)
            .map_err(|e| format!("read-only page: {}", e))? as usize;
        let unmapped =
            peios_bins::unmapped_page().ok_or_else(|| String::from("no unmapped page"))?;
        let memfd = match memfd_create(c"fuzz-mm", 0) {
            Ok(fd) => {
                if ftruncate(fd, 1 << 20).is_ok() {
                    fd
                } else {
                    let _ = close(fd);
                    -1
                }
            }
            Err(_) => -1,
        };
        Ok(Arena {
            base,
            end: base + len,
            chaos,
            chaos_end,
            ro_page: ro,
            unmapped,
            memfd,
        })
    }

    /// Unmaps whatever part of `[a, a+len)` lies outside the chaos zone, where a
    /// non-fixed mmap or a moving mremap may have put it. A placement over a barrier
    /// or a lane is reported (a non-fixed placement must not replace anything).
    fn clip(&self, a: usize, len: usize, out: &Out) {
        const TASK_SIZE: usize = (1 << 47) - PAGE_SIZE;
        let end = a.checked_add(len.next_multiple_of(PAGE_SIZE));
        let Some(end) = end.filter(|&e| e <= TASK_SIZE) else {
            out.fail(format_args!(
                "a call reported a mapping at {:#x}+{:#x}, past user space",
                a, len
            ));
            return;
        };
        if a >= self.chaos && end <= self.chaos_end {
            return;
        }
        if a < self.end && end > self.base {
            // Only part in the chaos zone: over a barrier or a lane. Left alone.
            out.fail(format_args!(
                "a non-fixed mapping landed at {:#x}-{:#x}, over the arena's barriers or lanes",
                a, end
            ));
            return;
        }
        // SAFETY: the kernel just mapped this range, outside the arena, for us;
        // nothing uses it.
        unsafe { raw(nr::MUNMAP, [a, end - a, 0, 0, 0, 0]) };
    }
}

/// Raw system call.
///
/// # Safety
/// The caller vouches that the call cannot disturb memory the program uses.
unsafe fn raw(n: usize, a: [usize; 6]) -> isize {
    // SAFETY: the caller's contract.
    unsafe { syscall6(n, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

/// Output and failure counting shared by the threads of the fuzzing child.
struct Out {
    report: &'static MmReport,
    /// Calls this thread made.
    mine: Cell<u64>,
}

/// Failures printed in full; later ones are only counted.
const PRINTED_FAILURES: u64 = 30;

impl Out {
    fn new(report: &'static MmReport) -> Out {
        Out {
            report,
            mine: Cell::new(0),
        }
    }

    fn fail(&self, what: core::fmt::Arguments<'_>) {
        let n = self.report.failures.fetch_add(1, Ordering::AcqRel);
        if n < PRINTED_FAILURES {
            println!("fuzz-mm: FAILED: {}", what);
        }
    }

    /// Makes call `n` for `op` from thread `slot` and records its outcome.
    ///
    /// # Safety
    /// As [`raw`].
    unsafe fn call(&self, slot: usize, op: Op, n: usize, a: [usize; 6]) -> Result<usize, Errno> {
        let s = &self.report.slots[slot];
        for (i, v) in a.iter().enumerate() {
            s.args[i].store(*v as u64, Ordering::Relaxed);
        }
        s.op.store(op as u64, Ordering::Release);
        // SAFETY: the caller's contract.
        let r = unsafe { raw(n, a) };
        s.op.store(Op::Idle as u64, Ordering::Release);
        let i = op as usize;
        self.report.calls[i].fetch_add(1, Ordering::Relaxed);
        let res = if op == Op::Brk {
            Ok(r as usize)
        } else {
            Errno::result(r)
        };
        match res {
            Ok(_) => self.report.ok[i].fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                self.report.errno[(e.raw() as usize).min(133)].fetch_add(1, Ordering::Relaxed)
            }
        };
        self.report.done.fetch_add(1, Ordering::Relaxed);
        self.mine.set(self.mine.get() + 1);
        if TRACE.load(Ordering::Relaxed) {
            println!(
                "fuzz-mm: trace {} {}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x}) = {:?}",
                slot, OP_NAMES[i], a[0], a[1], a[2], a[3], a[4], a[5], res
            );
        }
        res
    }
}

// ---------------------------------------------------------------------------------
// Probes.

extern "C" fn on_fault(sig: i32, info: *mut SigInfo, uc: *mut UContext) {
    // SAFETY: the kernel passes valid siginfo and ucontext pointers to an
    // SA_SIGINFO handler; nothing else touches them while it runs.
    let (info, uc) = unsafe { (&*info, &mut *uc) };
    if !fault::fixup(uc) {
        // A fault outside the probes: returning would loop on it forever.
        println!(
            "fuzz-mm: FAILED: unexpected {} (si_code {}) at rip {:#x} addr {:#x}",
            signal_name(sig),
            info.code,
            uc.rip(),
            info.addr()
        );
        exit_group(99);
    }
}

/// Reads the byte at `a`; `None` when the load faulted.
fn peek(a: usize) -> Option<u8> {
    // SAFETY: `a` is in the arena (or the brk area), which only this program's
    // probes and calls use; a fault is fixed up by `on_fault`.
    unsafe { fault::probe_read(a as *const u8) }.ok()
}

/// Writes `v` at `a`; false when the store faulted.
fn poke(a: usize, v: u8) -> bool {
    // SAFETY: as `peek`; no Rust reference points into the arena.
    !unsafe { fault::probe_write(a as *mut u8, v) }
}

// ---------------------------------------------------------------------------------
// Random arguments.

impl Lcg {
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

/// A page count, mostly small: 1..=max.
fn pages(rng: &mut Lcg, max: usize) -> usize {
    if max == 0 {
        return 0;
    }
    match rng.below(8) {
        0..=4 => 1 + rng.below(max.min(4)),
        5 | 6 => 1 + rng.below(max.min(32)),
        _ => 1 + rng.below(max),
    }
}

/// An address in the chaos zone (unaligned one time in eight).
fn chaos_addr(rng: &mut Lcg, ar: &Arena) -> usize {
    let a = ar.chaos + rng.below(CHAOS_PAGES) * PAGE_SIZE;
    if rng.chance(8) {
        a + 1 + rng.below(PAGE_SIZE - 1)
    } else {
        a
    }
}

/// A length for a call at `a` that stays in the chaos zone (rounded up by the kernel),
/// or one that must be refused: beyond the address space (`huge`) or wrapping past
/// 2^64 (always).
fn chaos_len(rng: &mut Lcg, ar: &Arena, a: usize, huge: bool) -> usize {
    let room = (ar.chaos_end - (a & !(PAGE_SIZE - 1)).clamp(ar.chaos, ar.chaos_end)) / PAGE_SIZE;
    match rng.below(20) {
        0 => 0,
        1 if huge => rng.pick(HUGE_LENS) + rng.below(3) * (PAGE_SIZE / 2),
        2 => 0usize.wrapping_sub(a) + rng.below(3) * PAGE_SIZE,
        3 => usize::MAX - rng.below(2) * (PAGE_SIZE - 1),
        _ => {
            let n = pages(rng, room);
            if rng.chance(4) {
                n * PAGE_SIZE - rng.below(PAGE_SIZE - 1)
            } else {
                n * PAGE_SIZE
            }
        }
    }
}

fn chaos_prot(rng: &mut Lcg) -> usize {
    match rng.below(16) {
        0 => 0x0100_0000,         // PROT_GROWSDOWN
        1 => 0x0200_0000,         // PROT_GROWSUP
        2 => 8 | rng.below(8),    // PROT_SEM and friends
        3 => rng.next() as usize, // anything
        _ => rng.below(8),
    }
}

// ---------------------------------------------------------------------------------
// The chaos zone: any call, any thread, no model.

struct Worker {
    id: usize,
    slot: usize,
    rng: Lcg,
    ar: Arena,
    out: Out,
    mincore_buf: Vec<u8>,
    maps_buf: Vec<u8>,
    lane: Lane,
}

impl Worker {
    fn chaos_op(&mut self) {
        let ar = self.ar;
        match self.rng.below(16) {
            0..=3 => self.chaos_mmap(),
            4 | 5 => {
                let a = chaos_addr(&mut self.rng, &ar);
                let len = chaos_len(&mut self.rng, &ar, a, true);
                // SAFETY: the range is in the chaos zone, or a length every kernel
                // refuses.
                let _ = unsafe {
                    self.out
                        .call(self.slot, Op::Munmap, nr::MUNMAP, [a, len, 0, 0, 0, 0])
                };
            }
            6 | 7 => {
                let a = chaos_addr(&mut self.rng, &ar);
                let len = chaos_len(&mut self.rng, &ar, a, false);
                let prot = chaos_prot(&mut self.rng);
                // SAFETY: the range is in the chaos zone, or wraps (refused).
                let _ = unsafe {
                    self.out.call(
                        self.slot,
                        Op::Mprotect,
                        nr::MPROTECT,
                        [a, len, prot, 0, 0, 0],
                    )
                };
            }
            8 | 9 => {
                let a = chaos_addr(&mut self.rng, &ar);
                let len = chaos_len(&mut self.rng, &ar, a, false);
                let advice = self.rng.pick(CHAOS_ADVICE);
                // SAFETY: the range is in the chaos zone, or wraps (refused); no
                // advice value that poisons or offlines pages.
                let _ = unsafe {
                    self.out.call(
                        self.slot,
                        Op::Madvise,
                        nr::MADVISE,
                        [a, len, advice, 0, 0, 0],
                    )
                };
            }
            10 | 11 => self.chaos_mremap(),
            12 => self.chaos_mincore(),
            13 => {
                let a = chaos_addr(&mut self.rng, &ar);
                let len = chaos_len(&mut self.rng, &ar, a, true);
                let flags = self.rng.pick(&[
                    MS_ASYNC,
                    MS_SYNC,
                    MS_INVALIDATE,
                    MS_ASYNC | MS_INVALIDATE,
                    MS_SYNC | MS_INVALIDATE,
                    MS_ASYNC | MS_SYNC,
                    0,
                    8,
                ]);
                // SAFETY: msync changes no mapping.
                let _ = unsafe {
                    self.out
                        .call(self.slot, Op::Msync, nr::MSYNC, [a, len, flags, 0, 0, 0])
                };
            }
            14 => self.chaos_brk(),
            _ => {
                let a = chaos_addr(&mut self.rng, &ar);
                let len = chaos_len(&mut self.rng, &ar, a, false).min(ar.chaos_end - a);
                // SAFETY: the kernel writes at most `len` bytes at `a`, inside the
                // chaos zone, or fails with EFAULT.
                let _ = unsafe {
                    self.out.call(
                        self.slot,
                        Op::Getrandom,
                        nr::GETRANDOM,
                        [a, len, 1, 0, 0, 0],
                    )
                };
            }
        }
    }

    fn chaos_mmap(&mut self) {
        let ar = self.ar;
        let rng = &mut self.rng;
        let mut flags: usize = match rng.below(16) {
            0..=9 => 0x02,   // MAP_PRIVATE
            10..=13 => 0x01, // MAP_SHARED
            14 => 0x03,      // MAP_SHARED_VALIDATE
            _ => 0,          // neither: EINVAL
        };
        let file = ar.memfd >= 0 && rng.chance(8);
        if !file || rng.chance(16) {
            flags |= 0x20; // MAP_ANONYMOUS
        }
        let fixed = rng.below(8);
        if fixed < 4 {
            flags |= 0x10; // MAP_FIXED
        } else if fixed == 4 {
            flags |= 0x10_0000; // MAP_FIXED_NOREPLACE
        }
        for (bit, one_in) in [
            (0x8000usize, 4usize), // POPULATE
            (0x4000, 4),           // NORESERVE
            (0x100, 24),           // GROWSDOWN
            (0x20000, 16),         // STACK
            (0x2000, 48),          // LOCKED
            (0x40, 24),            // MAP_32BIT
            (0x40000, 48),         // HUGETLB
            (0x10000, 32),         // NONBLOCK
        ] {
            if rng.chance(one_in) {
                flags |= bit;
            }
        }
        if rng.chance(32) {
            // Unknown bits (never FIXED, FIXED_NOREPLACE or UNINITIALIZED).
            flags |= (rng.next() as usize) << 7 & !(0x10 | 0x10_0000 | 0x400_0000);
        }
        let placed = flags & (0x10 | 0x10_0000) != 0;
        let a = if placed || rng.below(3) > 0 {
            chaos_addr(rng, &ar)
        } else {
            0
        };
        let len = if !placed && rng.chance(16) {
            (1 + rng.below(16)) << 20
        } else {
            chaos_len(rng, &ar, a, true)
        };
        if len > 4 << 20 {
            // Populating or locking more than the arena is only slow.
            flags &= !(0x8000 | 0x2000);
        }
        if placed && flags & 0x40000 != 0 {
            // MAP_HUGETLB rounds the length up to a whole huge page (2 MiB here: the
            // size bits are cleared), which from the chaos zone's last 2 MiB boundary
            // would map over the barrier and every lane: kept only where the rounded
            // range stays in the chaos zone (seed 107 once lost all its lanes so).
            flags &= !(0x3f << 26);
            let huge = 2usize << 20;
            let end = len
                .div_ceil(huge)
                .checked_mul(huge)
                .and_then(|rounded| (a & !(PAGE_SIZE - 1)).checked_add(rounded));
            if !end.is_some_and(|e| e <= ar.chaos_end) {
                flags &= !0x40000;
            }
        }
        let prot = if rng.chance(8) {
            chaos_prot(rng)
        } else {
            rng.below(8)
        };
        let fd = if file {
            ar.memfd as usize
        } else if rng.chance(2) {
            usize::MAX
        } else {
            rng.below(8)
        };
        let off = match rng.below(8) {
            0 => rng.below(1 << 20),
            1 => rng.pick(HUGE_LENS),
            2..=4 => rng.below(256) * PAGE_SIZE,
            _ => 0,
        };
        // SAFETY: with FIXED or FIXED_NOREPLACE the range is in the chaos zone (or
        // its length is refused); otherwise the kernel picks a free range, which
        // `clip` gives back when it is outside the chaos zone.
        let r = unsafe {
            self.out.call(
                self.slot,
                Op::Mmap,
                nr::MMAP,
                [a, len, prot, flags, fd, off],
            )
        };
        if let Ok(got) = r {
            if flags & 0x10 != 0 && got != a & !(PAGE_SIZE - 1) && got != a {
                self.out.fail(format_args!(
                    "MAP_FIXED mmap({:#x}, {:#x}, {:#x}, {:#x}) returned {:#x}",
                    a, len, prot, flags, got
                ));
            }
            if flags & 0x10 == 0 {
                ar.clip(got, len, &self.out);
            } else if !ar.in_chaos(got, len.next_multiple_of(PAGE_SIZE)) {
                self.out.fail(format_args!(
                    "MAP_FIXED mmap({:#x}, {:#x}) mapped outside the requested range",
                    a, len
                ));
            }
        }
    }

    fn chaos_mremap(&mut self) {
        let ar = self.ar;
        let rng = &mut self.rng;
        let flags = match rng.below(16) {
            0..=2 => 0,
            3..=6 => MREMAP_MAYMOVE,
            7..=10 => MREMAP_MAYMOVE | MREMAP_FIXED,
            11 | 12 => MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
            13 => MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
            14 => rng.pick(&[MREMAP_FIXED, MREMAP_DONTUNMAP, 8, 0x10, 8 | MREMAP_MAYMOVE]),
            _ => rng.next() as usize & !(MREMAP_FIXED),
        };
        let old = chaos_addr(rng, &ar);
        let old_len = if rng.chance(12) {
            0
        } else {
            chaos_len(rng, &ar, old, true)
        };
        let mut new_addr = chaos_addr(rng, &ar);
        let new_len = if flags & MREMAP_DONTUNMAP != 0 && rng.below(4) > 0 {
            // Same size; with MREMAP_FIXED the target must still fit in the zone.
            let pages = old_len.div_ceil(PAGE_SIZE);
            if flags & MREMAP_FIXED != 0 && pages <= CHAOS_PAGES {
                new_addr = ar.chaos + rng.below(CHAOS_PAGES - pages + 1) * PAGE_SIZE;
            }
            old_len
        } else if flags & MREMAP_FIXED != 0 {
            chaos_len(rng, &ar, new_addr, true)
        } else if rng.chance(8) {
            (1 + rng.below(16)) << 20
        } else {
            chaos_len(rng, &ar, old, true)
        };
        // SAFETY: the old range is in the chaos zone (a longer one is refused); with
        // MREMAP_FIXED the new one is too; a move elsewhere is given back by `clip`.
        // In-place growth stops at the barrier above the zone.
        let r = unsafe {
            self.out.call(
                self.slot,
                Op::Mremap,
                nr::MREMAP,
                [old, old_len, new_len, flags, new_addr, 0],
            )
        };
        if let Ok(got) = r {
            if flags & MREMAP_FIXED != 0 {
                if got != new_addr || !ar.in_chaos(got, new_len.next_multiple_of(PAGE_SIZE)) {
                    self.out.fail(format_args!(
                        "MREMAP_FIXED to {:#x}+{:#x} returned {:#x}",
                        new_addr, new_len, got
                    ));
                }
            } else if got != old {
                // Moved (resized in place it stays in the zone: the barrier above
                // stops growth).
                ar.clip(got, new_len, &self.out);
            }
        }
    }

    fn chaos_mincore(&mut self) {
        let ar = self.ar;
        let a = chaos_addr(&mut self.rng, &ar);
        let len = chaos_len(&mut self.rng, &ar, a, true);
        let vec = match self.rng.below(12) {
            0 => 0,
            1 => ar.unmapped,
            2 => ar.ro_page,
            3 => 0xffff_8000_0000_0000,
            4 => 0x8000_0000_0000,
            _ => self.mincore_buf.as_mut_ptr() as usize,
        };
        // SAFETY: a bounded length needs at most CHAOS_PAGES + 1 bytes, the buffer's
        // size; other vectors are pointers the kernel must refuse to write.
        let _ = unsafe {
            self.out
                .call(self.slot, Op::Mincore, nr::MINCORE, [a, len, vec, 0, 0, 0])
        };
    }

    fn chaos_brk(&mut self) {
        // SAFETY: brk(0) only queries.
        let cur = unsafe { raw(nr::BRK, [0; 6]) } as usize;
        let start = BRK_START.load(Ordering::Relaxed);
        let rng = &mut self.rng;
        let want = match rng.below(16) {
            0 => 0,
            1 => rng.pick(HUGE_LENS),
            2 => usize::MAX - rng.below(PAGE_SIZE),
            3 => start.saturating_sub(rng.below(1 << 20)),
            4 => start,
            _ if cur > start + (64 << 20) => start + rng.below(1 << 20),
            _ => {
                let d = rng.below(4 << 20);
                if rng.chance(2) {
                    cur.saturating_sub(d).max(start)
                } else {
                    cur + d
                }
            }
        };
        // SAFETY: the break only moves within the brk area, which nothing but the
        // probes uses (the runtime's heap is made of mmap chunks).
        if let Ok(got) = unsafe {
            self.out
                .call(self.slot, Op::Brk, nr::BRK, [want, 0, 0, 0, 0, 0])
        } {
            BRK_CUR.store(got, Ordering::Relaxed);
        }
    }
}

/// The break when the fuzzer started, and the last one a call returned.
static BRK_START: AtomicUsize = AtomicUsize::new(0);
static BRK_CUR: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------------------------
// A lane: one worker's pages and its model of them.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    mapped: bool,
    prot: usize,
    shared: bool,
    /// The byte at [`byte_off`] of the page, when known.
    byte: Option<u8>,
    /// MADV_DONTFORK state, when known.
    dontcopy: Option<bool>,
    /// MADV_WIPEONFORK state, when known.
    wipe: Option<bool>,
}

const UNMAPPED: Page = Page {
    mapped: false,
    prot: 0,
    shared: false,
    byte: None,
    dontcopy: None,
    wipe: None,
};

impl Page {
    fn fresh(prot: usize, shared: bool) -> Page {
        Page {
            mapped: true,
            prot,
            shared,
            byte: Some(0),
            dontcopy: Some(false),
            wipe: Some(false),
        }
    }

    /// Whether a read must fault (`Some(true)`), must not (`Some(false)`), or may
    /// (exec-only pages: Linux with protection keys makes them unreadable).
    fn read_faults(&self) -> Option<bool> {
        if !self.mapped || self.prot == 0 {
            Some(true)
        } else if self.prot & 3 != 0 {
            Some(false)
        } else {
            None
        }
    }

    fn writable(&self) -> bool {
        self.mapped && self.prot & 2 != 0
    }
}

/// Where in a page the model's byte lives: one offset for every page, since mremap
/// carries contents from one lane page to another.
fn byte_off(_page: usize) -> usize {
    0x7a5
}

struct Lane {
    start: usize,
    pages: Vec<Page>,
    ops: u64,
    round: u8,
}

/// Parses `/proc/self/maps` into `(start, end, prot, shared)`, checking that the
/// lines are sorted and disjoint. `chunks` are the offsets where a `read` began:
/// Linux drops the mmap lock between reads, so lines from two reads of a changing
/// address space need not agree and are not compared.
fn parse_maps(text: &str, chunks: &[usize]) -> Result<Vec<(usize, usize, usize, bool)>, String> {
    let mut out: Vec<(usize, usize, usize, bool)> = Vec::new();
    let (mut off, mut prev) = (0, 0);
    for line in text.lines() {
        let new_chunk = chunks.iter().any(|&c| c > prev && c <= off);
        prev = off;
        off += line.len() + 1;
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            return Err(format!("bad maps line {:?}", line));
        };
        let Some((s, e)) = range.split_once('-') else {
            return Err(format!("bad maps range {:?}", line));
        };
        let (Ok(s), Ok(e)) = (usize::from_str_radix(s, 16), usize::from_str_radix(e, 16)) else {
            return Err(format!("bad maps numbers {:?}", line));
        };
        let p = perms.as_bytes();
        if p.len() != 4 || s >= e || s % PAGE_SIZE != 0 || e % PAGE_SIZE != 0 {
            return Err(format!("bad maps line {:?}", line));
        }
        if let Some(&(_, pe, _, _)) = out.last() {
            if s < pe && !new_chunk {
                return Err(format!("maps not sorted or overlapping at {:?}", line));
            }
        }
        let prot = (p[0] == b'r') as usize
            | ((p[1] == b'w') as usize) << 1
            | ((p[2] == b'x') as usize) << 2;
        out.push((s, e, prot, p[3] == b's'));
    }
    Ok(out)
}

/// Reads a whole /proc file into `buf`; `chunks` gets the offset each `read` began at.
fn read_proc(path: &str, buf: &mut Vec<u8>, chunks: &mut Vec<usize>) -> Result<usize, Errno> {
    let fd = peios_bins::files::open(path, O_RDONLY)?;
    let mut n = 0;
    chunks.clear();
    let r = loop {
        chunks.push(n);
        if buf.len() - n < 8192 {
            buf.resize(buf.len() * 2, 0);
        }
        // SAFETY: `buf[n..]` is ours and writable.
        match unsafe { read_raw(fd, buf.as_mut_ptr().add(n), buf.len() - n) } {
            Ok(0) => break Ok(n),
            Ok(k) => n += k,
            Err(e) => break Err(e),
        }
    };
    let _ = close(fd);
    r
}

impl Worker {
    fn lane_addr(&self, p: usize) -> usize {
        self.lane.start + p * PAGE_SIZE
    }

    fn lane_fail(&self, what: core::fmt::Arguments<'_>) {
        self.out.fail(format_args!(
            "worker {} lane op {}: {}",
            self.id, self.lane.ops, what
        ));
    }

    /// A range in the lane: (first page, pages), pages >= 1.
    fn lane_range(&mut self) -> (usize, usize) {
        let p = self.rng.below(LANE_PAGES);
        let n = pages(&mut self.rng, LANE_PAGES - p);
        (p, n)
    }

    /// A byte length for `n` pages, sometimes not a page multiple (rounded up).
    fn lane_len(&mut self, n: usize) -> usize {
        if self.rng.chance(4) {
            n * PAGE_SIZE - self.rng.below(PAGE_SIZE - 1)
        } else {
            n * PAGE_SIZE
        }
    }

    /// Checks one page against the model (read, and write when `write`); learns
    /// from the result so a single mismatch is reported once.
    fn check_page(&mut self, i: usize, write: bool) {
        let a = self.lane_addr(i) + byte_off(i);
        let pg = self.lane.pages[i];
        self.out
            .report
            .checked_pages
            .fetch_add(1, Ordering::Relaxed);
        let got = peek(a);
        match (pg.read_faults(), got) {
            (Some(true), Some(v)) => {
                self.lane_fail(format_args!(
                    "page {} ({:#x}) read {:#x}, model says it faults: {:?}",
                    i, a, v, pg
                ));
                self.resync();
                return;
            }
            (Some(false), None) => {
                self.lane_fail(format_args!(
                    "page {} ({:#x}) read faulted, model: {:?}",
                    i, a, pg
                ));
                self.resync();
                return;
            }
            (_, Some(v)) => {
                if let Some(b) = pg.byte {
                    if b != v {
                        self.lane_fail(format_args!(
                            "page {} ({:#x}) reads {:#x}, expected {:#x}: {:?}",
                            i, a, v, b, pg
                        ));
                        self.lane.pages[i].byte = Some(v);
                    }
                } else {
                    self.lane.pages[i].byte = Some(v);
                }
            }
            _ => {}
        }
        if write {
            let v = self.rng.next() as u8;
            let ok = poke(a, v);
            if ok != pg.writable() {
                self.lane_fail(format_args!(
                    "page {} ({:#x}) write {}, model: {:?}",
                    i,
                    a,
                    if ok { "succeeded" } else { "faulted" },
                    pg
                ));
                self.resync();
            } else if ok {
                if TRACE.load(Ordering::Relaxed) {
                    println!("fuzz-mm: trace {} lane page {} = {:#x}", self.slot, i, v);
                }
                self.lane.pages[i].byte = Some(v);
            }
        }
    }

    /// Adopts `/proc/self/maps` for the lane where it differs from the model (after
    /// a failed call, which Linux may have applied in part); pages that changed lose
    /// their known contents and fork flags.
    fn resync(&mut self) {
        let Some(maps) = self.lane_maps() else { return };
        for (i, m) in maps.iter().enumerate() {
            let pg = &mut self.lane.pages[i];
            let same = match m {
                None => !pg.mapped,
                Some((prot, shared)) => pg.mapped && pg.prot == *prot && pg.shared == *shared,
            };
            if !same {
                *pg = match m {
                    None => UNMAPPED,
                    Some((prot, shared)) => Page {
                        mapped: true,
                        prot: *prot,
                        shared: *shared,
                        byte: None,
                        dontcopy: None,
                        wipe: None,
                    },
                };
            }
        }
    }

    /// Resyncs, then forgets what the model knew of the contents and fork flags of
    /// pages `p..p+n` (after a call the model could not follow).
    fn forget(&mut self, p: usize, n: usize) {
        self.resync();
        for pg in &mut self.lane.pages[p..(p + n).min(LANE_PAGES)] {
            if pg.mapped {
                pg.byte = None;
                pg.dontcopy = None;
                pg.wipe = None;
            }
        }
    }

    /// The lane's pages as maps shows them.
    fn lane_maps(&mut self) -> Option<Vec<Option<(usize, bool)>>> {
        let mut buf = core::mem::take(&mut self.maps_buf);
        let mut chunks = Vec::new();
        let mut r = read_proc("/proc/self/maps", &mut buf, &mut chunks);
        if let Ok(n) = r {
            if parse_maps(&String::from_utf8_lossy(&buf[..n]), &chunks).is_err() {
                // Once more: Linux's maps is only consistent within one read.
                r = read_proc("/proc/self/maps", &mut buf, &mut chunks);
            }
        }
        let out = match r {
            Err(e) => {
                self.lane_fail(format_args!("reading /proc/self/maps: {}", e));
                None
            }
            Ok(n) => match parse_maps(&String::from_utf8_lossy(&buf[..n]), &chunks) {
                Err(e) => {
                    self.lane_fail(format_args!("/proc/self/maps: {}", e));
                    None
                }
                Ok(vmas) => Some(
                    (0..LANE_PAGES)
                        .map(|i| {
                            let a = self.lane_addr(i);
                            vmas.iter()
                                .find(|&&(s, e, _, _)| s <= a && a < e)
                                .map(|&(_, _, p, sh)| (p, sh))
                        })
                        .collect(),
                ),
            },
        };
        self.maps_buf = buf;
        out
    }

    /// Checks that maps agrees with the model page by page.
    fn check_maps(&mut self) {
        let Some(maps) = self.lane_maps() else { return };
        for (i, m) in maps.iter().enumerate() {
            let pg = self.lane.pages[i];
            let want = pg.mapped.then_some((pg.prot, pg.shared));
            if *m != want {
                self.lane_fail(format_args!(
                    "maps shows page {} ({:#x}) as {:?}, model {:?}",
                    i,
                    self.lane_addr(i),
                    m,
                    pg
                ));
                self.resync();
                return;
            }
        }
    }

    fn lane_op(&mut self) {
        self.lane.ops += 1;
        if TRACE.load(Ordering::Relaxed) {
            println!("fuzz-mm: trace {} lane op {}", self.slot, self.lane.ops);
        }
        match self.rng.below(32) {
            0..=5 => self.lane_mmap(),
            6..=9 => self.lane_munmap(),
            10..=13 => self.lane_mprotect(),
            14..=17 => self.lane_madvise(),
            18..=21 => self.lane_mremap(),
            22 | 23 => self.lane_mincore_msync(),
            24..=29 => {
                for _ in 0..4 {
                    let i = self.rng.below(LANE_PAGES);
                    let w = self.rng.chance(2);
                    self.check_page(i, w);
                }
            }
            30 => {
                for i in 0..LANE_PAGES {
                    self.check_page(i, false);
                }
            }
            _ => self.check_maps(),
        }
    }

    /// An unaligned address must get EINVAL and change nothing.
    fn expect_einval(&mut self, what: &str, r: Result<usize, Errno>) {
        if r != Err(Errno::EINVAL) {
            self.lane_fail(format_args!(
                "{} at an unaligned address: {:?}, expected EINVAL",
                what, r
            ));
            self.resync();
        }
    }

    fn lane_mmap(&mut self) {
        let (p, n) = self.lane_range();
        let len = self.lane_len(n);
        let prot = self.rng.below(8);
        let shared = self.rng.chance(4);
        let noreplace = self.rng.chance(6);
        let mut flags = if shared { 0x21 } else { 0x22 };
        flags |= if noreplace { 0x10_0000 } else { 0x10 };
        if self.rng.chance(4) {
            flags |= 0x8000; // POPULATE
        }
        if self.rng.chance(4) {
            flags |= 0x4000; // NORESERVE
        }
        let unaligned = !noreplace && self.rng.chance(16);
        let a = self.lane_addr(p) + unaligned as usize * (1 + self.rng.below(PAGE_SIZE - 1));
        // SAFETY: the range is in this worker's lane, which nothing else maps or uses.
        let r = unsafe {
            self.out.call(
                self.slot,
                Op::Mmap,
                nr::MMAP,
                [a, len, prot, flags, usize::MAX, 0],
            )
        };
        if unaligned {
            return self.expect_einval("MAP_FIXED mmap", r);
        }
        let free = self.lane.pages[p..p + n].iter().all(|pg| !pg.mapped);
        match r {
            Ok(got) if got == a && (free || !noreplace) => {
                self.lane.pages[p..p + n].fill(Page::fresh(prot, shared));
            }
            Err(Errno::EEXIST) if noreplace && !free => {}
            Err(Errno::ENOMEM) if !noreplace => {
                // Memory or map count ran out; Linux may have unmapped the range.
                self.resync();
            }
            r => {
                self.lane_fail(format_args!(
                    "mmap({:#x}, {:#x}, {:#x}, {:#x}): {:?} (range free: {})",
                    a, len, prot, flags, r, free
                ));
                if let Ok(got) = r {
                    if got != a {
                        self.ar.clip(got, len, &self.out);
                    }
                }
                self.resync();
            }
        }
    }

    fn lane_munmap(&mut self) {
        let (p, n) = self.lane_range();
        let len = self.lane_len(n);
        let unaligned = self.rng.chance(16);
        let a = self.lane_addr(p) + unaligned as usize * (1 + self.rng.below(PAGE_SIZE - 1));
        // SAFETY: the range is in this worker's lane.
        let r = unsafe {
            self.out
                .call(self.slot, Op::Munmap, nr::MUNMAP, [a, len, 0, 0, 0, 0])
        };
        if unaligned {
            return self.expect_einval("munmap", r);
        }
        match r {
            Ok(_) => self.lane.pages[p..p + n].fill(UNMAPPED),
            Err(e) => {
                self.lane_fail(format_args!("munmap({:#x}, {:#x}): {}", a, len, e));
                self.resync();
            }
        }
    }

    fn lane_mprotect(&mut self) {
        let (p, n) = self.lane_range();
        let len = self.lane_len(n);
        let prot = self.rng.below(8);
        let unaligned = self.rng.chance(16);
        let a = self.lane_addr(p) + unaligned as usize * (1 + self.rng.below(PAGE_SIZE - 1));
        // SAFETY: the range is in this worker's lane.
        let r = unsafe {
            self.out.call(
                self.slot,
                Op::Mprotect,
                nr::MPROTECT,
                [a, len, prot, 0, 0, 0],
            )
        };
        if unaligned {
            return self.expect_einval("mprotect", r);
        }
        let covered = self.lane.pages[p..p + n].iter().all(|pg| pg.mapped);
        match r {
            Ok(_) if covered => {
                for pg in &mut self.lane.pages[p..p + n] {
                    pg.prot = prot;
                }
            }
            // Linux applies the change up to the hole.
            Err(Errno::ENOMEM) if !covered => self.resync(),
            r => {
                self.lane_fail(format_args!(
                    "mprotect({:#x}, {:#x}, {}): {:?} (covered: {})",
                    a, len, prot, r, covered
                ));
                self.resync();
            }
        }
    }

    fn lane_madvise(&mut self) {
        const ADVICE: &[usize] = &[0, 1, 2, 3, 4, 4, 4, 8, 8, 10, 11, 18, 19, 20, 21, 22, 23];
        let (p, n) = self.lane_range();
        let len = self.lane_len(n);
        let advice = self.rng.pick(ADVICE);
        let unaligned = self.rng.chance(16);
        let a = self.lane_addr(p) + unaligned as usize * (1 + self.rng.below(PAGE_SIZE - 1));
        // SAFETY: the range is in this worker's lane; no advice that poisons pages.
        let r = unsafe {
            self.out.call(
                self.slot,
                Op::Madvise,
                nr::MADVISE,
                [a, len, advice, 0, 0, 0],
            )
        };
        if unaligned {
            return self.expect_einval("madvise", r);
        }
        let range = &self.lane.pages[p..p + n];
        let covered = range.iter().all(|pg| pg.mapped);
        let private = range.iter().all(|pg| !pg.shared);
        // Advice every mapped range takes.
        let simple = matches!(advice, 0..=4 | 10 | 11 | 20 | 21);
        match r {
            Ok(_) => {
                if !covered {
                    self.lane_fail(format_args!(
                        "madvise({:#x}, {:#x}, {}) succeeded over a hole",
                        a, len, advice
                    ));
                    self.resync();
                    return;
                }
                for pg in &mut self.lane.pages[p..p + n] {
                    match advice {
                        4 if !pg.shared => pg.byte = Some(0),
                        8 => pg.byte = if pg.shared { pg.byte } else { None },
                        10 => pg.dontcopy = Some(true),
                        11 => pg.dontcopy = Some(false),
                        18 => pg.wipe = Some(true),
                        19 => pg.wipe = Some(false),
                        _ => {}
                    }
                }
            }
            Err(e) => {
                if covered && simple || covered && private && matches!(advice, 8 | 18 | 19) {
                    self.lane_fail(format_args!(
                        "madvise({:#x}, {:#x}, {}) over mapped pages: {}",
                        a, len, advice, e
                    ));
                } else if !covered && simple && e != Errno::ENOMEM {
                    self.lane_fail(format_args!(
                        "madvise({:#x}, {:#x}, {}) over a hole: {}, expected ENOMEM",
                        a, len, advice, e
                    ));
                }
                // Applied in part (up to a hole or an unsuitable mapping).
                self.resync();
                for pg in &mut self.lane.pages[p..p + n] {
                    if matches!(advice, 4 | 8) {
                        pg.byte = None;
                    }
                    if matches!(advice, 10 | 11) {
                        pg.dontcopy = None;
                    }
                    if matches!(advice, 18 | 19) {
                        pg.wipe = None;
                    }
                }
            }
        }
    }

    fn lane_mremap(&mut self) {
        let (p, n) = self.lane_range();
        let old_len = self.lane_len(n);
        let mode = self.rng.below(5);
        let rng = &mut self.rng;
        // (flags, new first page, new pages)
        let (flags, q, m) = match mode {
            // In place: shrink or grow up to the lane's end.
            0 | 1 => (0, p, pages(rng, LANE_PAGES - p)),
            // May move (somewhere outside the lane when it cannot grow in place).
            2 => (MREMAP_MAYMOVE, p, pages(rng, LANE_PAGES - p)),
            // To a fixed place in the lane, with or without keeping the old range.
            _ => {
                let m = if mode == 4 { n } else { pages(rng, LANE_PAGES) };
                let q = rng.below(LANE_PAGES - m + 1);
                let f =
                    MREMAP_MAYMOVE | MREMAP_FIXED | if mode == 4 { MREMAP_DONTUNMAP } else { 0 };
                (f, q, m)
            }
        };
        let new_len = m * PAGE_SIZE;
        let old_pages = self.lane.pages[p..p + n].to_vec();
        let any_shared = old_pages.iter().any(|pg| pg.shared);
        if (any_shared && (m > n || flags & MREMAP_DONTUNMAP != 0))
            || (flags & MREMAP_FIXED != 0 && p < q + m && q < p + n)
        {
            // Not modelled (growing shared memory past its object; an overlap, EINVAL).
            return;
        }
        let a = self.lane_addr(p);
        let na = self.lane_addr(q);
        // SAFETY: both ranges are in this worker's lane; a move out of it is given
        // back below.
        let r = unsafe {
            self.out.call(
                self.slot,
                Op::Mremap,
                nr::MREMAP,
                [a, old_len, new_len, flags, na, 0],
            )
        };
        let got = match r {
            Ok(got) => got,
            Err(_) => {
                // EFAULT (not one mapping), ENOMEM (no room), ...: Linux may have
                // unmapped the target or the tail already.
                self.resync();
                return;
            }
        };
        // Linux shrinks in place without looking past the first page (it unmaps the
        // tail); growing or moving needs what stays of the old range in one mapping.
        let in_place = got == a && flags & MREMAP_FIXED == 0;
        let first = old_pages[0];
        let kept = if in_place && m <= n { 1 } else { m.min(n) };
        let one_vma = old_pages[..kept]
            .iter()
            .all(|pg| pg.mapped && pg.prot == first.prot && pg.shared == first.shared);
        if flags & MREMAP_FIXED != 0 && m == n && got == na {
            // Linux 6.17 and later move several mappings (and the gaps between them)
            // in one call when the size stays, so this may have been several moves;
            // page by page the result is the same. How DONTUNMAP combines with that
            // is not modelled (pages that look alike may still be separate mappings):
            // the result then comes from maps, contents unknown.
            if flags & MREMAP_DONTUNMAP != 0 || old_pages.iter().any(|pg| !pg.mapped) {
                // (Across a gap Linux leaves the target's part as it was.)
                self.forget(p, n);
                self.forget(q, m);
            } else {
                self.lane.pages[p..p + n].fill(UNMAPPED);
                self.lane.pages[q..q + m].copy_from_slice(&old_pages);
            }
            return;
        }
        if !one_vma {
            self.lane_fail(format_args!(
                "mremap({:#x}, {:#x}, {:#x}, {}, {:#x}) = {:#x} over pages that are not one mapping",
                a, old_len, new_len, flags, na, got
            ));
            if got != a && got != na {
                self.ar.clip(got, new_len, &self.out);
            }
            self.forget(p, n);
            self.forget(q, m);
            return;
        }
        let moved: Vec<Page> = (0..m)
            .map(|i| {
                if i < n {
                    old_pages[i]
                } else {
                    Page {
                        byte: Some(0),
                        ..old_pages[n - 1]
                    }
                }
            })
            .collect();
        if got != a && flags & MREMAP_MAYMOVE == 0 {
            self.lane_fail(format_args!(
                "mremap({:#x}, {:#x}, {:#x}, 0) moved the mapping to {:#x}",
                a, old_len, new_len, got
            ));
            self.ar.clip(got, new_len, &self.out);
            self.resync();
            return;
        }
        if in_place {
            // Resized in place.
            if m < n {
                self.lane.pages[p + m..p + n].fill(UNMAPPED);
            }
            self.lane.pages[p..p + m].copy_from_slice(&moved);
            return;
        }
        // Moved: the old range is gone (or left empty with DONTUNMAP).
        for pg in &mut self.lane.pages[p..p + n] {
            if flags & MREMAP_DONTUNMAP != 0 {
                pg.byte = Some(0);
            } else {
                *pg = UNMAPPED;
            }
        }
        if flags & MREMAP_FIXED != 0 {
            if got != na {
                self.lane_fail(format_args!(
                    "MREMAP_FIXED to {:#x} returned {:#x}",
                    na, got
                ));
                self.resync();
                return;
            }
            self.lane.pages[q..q + m].copy_from_slice(&moved);
        } else {
            // Somewhere else: check the data came along, then give it back.
            for (i, pg) in moved.iter().enumerate() {
                let addr = got + i * PAGE_SIZE + byte_off(p + i);
                if let (Some(b), Some(false)) = (pg.byte, pg.read_faults()) {
                    match peek(addr) {
                        Some(v) if v == b => {}
                        v => self.lane_fail(format_args!(
                            "mremap moved page {} to {:#x}: reads {:?}, expected {:#x}",
                            p + i,
                            got + i * PAGE_SIZE,
                            v,
                            b
                        )),
                    }
                }
            }
            if got >= self.ar.end || got + new_len <= self.ar.base {
                // SAFETY: the kernel moved the mapping there for us; nothing uses it.
                unsafe { raw(nr::MUNMAP, [got, new_len, 0, 0, 0, 0]) };
            } else {
                self.lane_fail(format_args!(
                    "mremap MAYMOVE moved {:#x} into the arena at {:#x}",
                    a, got
                ));
                self.resync();
            }
        }
    }

    fn lane_mincore_msync(&mut self) {
        let (p, n) = self.lane_range();
        let len = self.lane_len(n);
        let a = self.lane_addr(p);
        let covered = self.lane.pages[p..p + n].iter().all(|pg| pg.mapped);
        let (op, r) = if self.rng.chance(2) {
            let vec = self.mincore_buf.as_mut_ptr() as usize;
            // SAFETY: the buffer holds more than a lane's page count.
            let r = unsafe {
                self.out
                    .call(self.slot, Op::Mincore, nr::MINCORE, [a, len, vec, 0, 0, 0])
            };
            if r.is_ok() {
                for i in 0..n {
                    if self.mincore_buf[i] & !1 != 0 {
                        self.lane_fail(format_args!(
                            "mincore byte {:#x} for page {}",
                            self.mincore_buf[i],
                            p + i
                        ));
                    }
                }
            }
            ("mincore", r)
        } else {
            let flags = self.rng.pick(&[
                MS_ASYNC,
                MS_SYNC,
                MS_ASYNC | MS_INVALIDATE,
                MS_SYNC | MS_INVALIDATE,
            ]);
            // SAFETY: msync changes no mapping.
            ("msync", unsafe {
                self.out
                    .call(self.slot, Op::Msync, nr::MSYNC, [a, len, flags, 0, 0, 0])
            })
        };
        let expect_ok = covered;
        if r.is_ok() != expect_ok || (!covered && r != Err(Errno::ENOMEM)) {
            self.lane_fail(format_args!(
                "{}({:#x}, {:#x}): {:?}, range mapped: {}",
                op, a, len, r, covered
            ));
        }
    }

    /// Forks: the child checks the lane as fork leaves it (DONTFORK pages gone,
    /// WIPEONFORK pages zero, the rest as the model says), writes a new byte to every
    /// writable page and exits; the parent then finds its private pages unchanged and
    /// its shared ones with the child's bytes.
    fn fork_check(&mut self) {
        self.lane.round = self.lane.round.wrapping_add(1);
        let round = self.lane.round;
        let child_byte = |i: usize| (i as u8).wrapping_mul(31) ^ round ^ 0xa5;
        let s = &self.out.report.slots[self.slot];
        s.op.store(Op::Fork as u64, Ordering::Release);
        let f = fork();
        s.op.store(Op::Idle as u64, Ordering::Release);
        self.out.report.calls[Op::Fork as usize].fetch_add(1, Ordering::Relaxed);
        let pid = match f {
            Ok(Fork::Child) => {
                // Only this thread exists here: no allocation (another thread may
                // have held the heap lock), just probes and the model we inherited.
                let mut bad = 0;
                for (i, pg) in self.lane.pages.iter().enumerate() {
                    let a = self.lane.start + i * PAGE_SIZE + byte_off(i);
                    let Some(dc) = pg.dontcopy else { continue };
                    let got = peek(a);
                    let ok = if !pg.mapped || dc {
                        got.is_none()
                    } else {
                        match (pg.read_faults(), got) {
                            (Some(true), None) => true,
                            (Some(true), Some(_)) | (Some(false), None) => false,
                            (_, None) => true,
                            (_, Some(v)) => {
                                let want = match pg.wipe {
                                    Some(true) if !pg.shared => Some(0),
                                    Some(_) => pg.byte,
                                    None => None,
                                };
                                want.is_none_or(|w| w == v)
                            }
                        }
                    };
                    if !ok {
                        if bad < 3 {
                            println!(
                                "fuzz-mm: FAILED: worker {} fork child: page {} ({:#x}) reads {:?}, model {:?}",
                                self.id, i, a, got, pg
                            );
                        }
                        bad += 1;
                    }
                    if pg.writable() && !dc && !poke(a, child_byte(i)) {
                        if bad < 3 {
                            println!(
                                "fuzz-mm: FAILED: worker {} fork child: write to page {} ({:#x}) faulted, model {:?}",
                                self.id, i, a, pg
                            );
                        }
                        bad += 1;
                    }
                }
                exit_group(if bad > 0 { 1 } else { 0 })
            }
            Ok(Fork::Parent(pid)) => pid,
            Err(e) => {
                self.out.report.errno[(e.raw() as usize).min(133)].fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        self.out.report.ok[Op::Fork as usize].fetch_add(1, Ordering::Relaxed);
        self.out.report.forks.fetch_add(1, Ordering::Relaxed);
        match peios_rt::process::wait_pid(pid) {
            Ok(WaitStatus::Exited(0)) => {}
            st => {
                self.lane_fail(format_args!("fork check child: {:?}", st.map(|s| s.code())));
            }
        }
        for (i, pg) in self.lane.pages.iter_mut().enumerate() {
            if pg.shared && pg.writable() && pg.dontcopy == Some(false) {
                pg.byte = Some(child_byte(i));
            }
        }
        for i in 0..LANE_PAGES {
            self.check_page(i, false);
        }
    }
}

// ---------------------------------------------------------------------------------
// Threads.

static STOP: AtomicBool = AtomicBool::new(false);
/// `--trace`: print every call (for replaying a seed with one worker).
static TRACE: AtomicBool = AtomicBool::new(false);

fn worker_main(mut w: Worker, calls: u64, fork_every: u64) {
    while w.out.mine.get() < calls && !STOP.load(Ordering::Relaxed) {
        if w.rng.chance(2) {
            w.chaos_op();
        } else {
            w.lane_op();
            if fork_every > 0 && w.lane.ops.is_multiple_of(fork_every) {
                w.fork_check();
            }
        }
    }
    // Final: the whole lane reads back, and maps agrees.
    for p in 0..LANE_PAGES {
        w.check_page(p, false);
    }
    w.check_maps();
}

fn toucher_main(seed: u64, ar: Arena, report: &'static MmReport) {
    let mut rng = Lcg(seed);
    let (mut touches, mut faults) = (0u64, 0u64);
    while !STOP.load(Ordering::Relaxed) {
        let r = rng.below(16);
        let a = match r {
            0 | 1 => {
                let (s, e) = (
                    BRK_START.load(Ordering::Relaxed),
                    BRK_CUR.load(Ordering::Relaxed),
                );
                if e <= s {
                    continue;
                }
                s + rng.below(e - s)
            }
            2 | 3 => {
                // Reads anywhere in the arena (a lane's contents stay unchanged).
                let a = ar.base + rng.below(ar.end - ar.base);
                touches += 1;
                faults += peek(a).is_none() as u64;
                continue;
            }
            _ => ar.chaos + rng.below(CHAOS_PAGES * PAGE_SIZE),
        };
        let ok = if rng.chance(2) {
            peek(a).is_some()
        } else {
            poke(a, rng.next() as u8)
        };
        touches += 1;
        faults += !ok as u64;
        if touches % 256 == 0 {
            report.touches.fetch_add(256, Ordering::Relaxed);
            report
                .faults
                .fetch_add(core::mem::take(&mut faults), Ordering::Relaxed);
        }
    }
    report.faults.fetch_add(faults, Ordering::Relaxed);
}

/// Reads the /proc files and forks children that touch the arena, change their copy
/// of it and exit (or are killed).
fn misc_main(seed: u64, ar: Arena, out: Out, slot: usize, do_fork: bool) {
    let mut rng = Lcg(seed);
    let mut buf = vec![0u8; 256 << 10];
    let mut chunks = Vec::new();
    let pagemap_pages = (ar.end - ar.base) / PAGE_SIZE;
    while !STOP.load(Ordering::Relaxed) {
        let s = &out.report.slots[slot];
        s.op.store(Op::Proc as u64, Ordering::Release);
        let which = rng.below(6);
        let path = [
            "/proc/self/maps",
            "/proc/self/smaps",
            "/proc/self/status",
            "/proc/self/numa_maps",
            "/proc/self/smaps_rollup",
            "pagemap",
        ][which];
        s.args[0].store(which as u64, Ordering::Relaxed);
        let read = |buf: &mut Vec<u8>, chunks: &mut Vec<usize>| {
            if path == "pagemap" {
                read_pagemap(ar.base, pagemap_pages, buf)
            } else {
                read_proc(path, buf, chunks)
            }
        };
        let mut r = read(&mut buf, &mut chunks);
        if let (0, Ok(n)) = (which, r) {
            if parse_maps(&String::from_utf8_lossy(&buf[..n]), &chunks).is_err() {
                // Once more: Linux's maps is only consistent within one read.
                r = read(&mut buf, &mut chunks);
            }
        }
        s.op.store(Op::Idle as u64, Ordering::Release);
        out.report.calls[Op::Proc as usize].fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(n) => {
                out.report.ok[Op::Proc as usize].fetch_add(1, Ordering::Relaxed);
                let text = String::from_utf8_lossy(&buf[..n]);
                match which {
                    0 => {
                        if let Err(e) = parse_maps(&text, &chunks) {
                            out.fail(format_args!("/proc/self/maps: {}", e));
                        }
                    }
                    1 => {
                        let headers = text
                            .lines()
                            .filter(|l| {
                                l.split_whitespace()
                                    .next()
                                    .is_some_and(|w| w.contains('-') && !w.ends_with(':'))
                            })
                            .count();
                        let sizes = text.lines().filter(|l| l.starts_with("Size:")).count();
                        if headers == 0 || headers != sizes {
                            out.fail(format_args!(
                                "/proc/self/smaps: {} mappings, {} Size: lines",
                                headers, sizes
                            ));
                        }
                    }
                    2 if (!text.contains("VmRSS:") || !text.contains("VmSize:")) => {
                        out.fail(format_args!("/proc/self/status lacks VmRSS/VmSize"));
                    }
                    5 if n != pagemap_pages * 8 => {
                        out.fail(format_args!(
                            "pagemap read {} bytes, expected {}",
                            n,
                            pagemap_pages * 8
                        ));
                    }
                    _ => {}
                }
            }
            // numa_maps and smaps_rollup may be missing on some kernels.
            Err(Errno::ENOENT) if which == 3 || which == 4 => {}
            Err(e) => out.fail(format_args!("reading {}: {}", path, e)),
        }
        if do_fork && rng.chance(2) {
            fork_churn(&mut rng, &ar, &out, slot);
        }
    }
}

fn read_pagemap(base: usize, pages: usize, buf: &mut Vec<u8>) -> Result<usize, Errno> {
    let fd = peios_bins::files::open("/proc/self/pagemap", O_RDONLY)?;
    let want = pages * 8;
    if buf.len() < want {
        buf.resize(want, 0);
    }
    let r = lseek_set(fd, (base / PAGE_SIZE * 8) as u64).and_then(|_| {
        let mut n = 0;
        while n < want {
            // SAFETY: `buf[n..want]` is ours and writable.
            match unsafe { read_raw(fd, buf.as_mut_ptr().add(n), want - n) } {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    });
    let _ = close(fd);
    r
}

fn fork_churn(rng: &mut Lcg, ar: &Arena, out: &Out, slot: usize) {
    let s = &out.report.slots[slot];
    s.op.store(Op::Fork as u64, Ordering::Release);
    let child_seed = rng.next();
    let killed = rng.chance(4);
    out.report.calls[Op::Fork as usize].fetch_add(1, Ordering::Relaxed);
    match fork() {
        Ok(Fork::Child) => {
            // No allocation here (see `fork_check`).
            let mut r = Lcg(child_seed);
            for k in 0..256 {
                let a = ar.chaos + r.below(CHAOS_PAGES * PAGE_SIZE);
                if r.chance(2) {
                    let _ = peek(a);
                } else {
                    let _ = poke(a, k as u8);
                }
                if k % 32 == 0 {
                    let a = chaos_addr(&mut r, ar);
                    let len = chaos_len(&mut r, ar, a, false);
                    let (n, x) = match r.below(3) {
                        0 => (nr::MUNMAP, 0),
                        1 => (nr::MPROTECT, r.below(8)),
                        _ => (nr::MADVISE, r.pick(&[4usize, 8, 10, 18, 22, 23])),
                    };
                    // SAFETY: our own copy of the chaos zone (or a refused length).
                    unsafe { raw(n, [a, len, x, 0, 0, 0]) };
                }
            }
            exit_group(0)
        }
        Ok(Fork::Parent(pid)) => {
            out.report.ok[Op::Fork as usize].fetch_add(1, Ordering::Relaxed);
            if killed {
                let _ = kill(pid, SIGKILL);
            }
            let st = peios_rt::process::wait_pid(pid);
            match st {
                Ok(WaitStatus::Exited(0)) => {}
                Ok(WaitStatus::Signaled {
                    signal: SIGKILL, ..
                }) if killed => {}
                st => out.fail(format_args!("fork churn child: {:?}", st.map(|s| s.code()))),
            }
        }
        Err(e) => {
            out.report.errno[(e.raw() as usize).min(133)].fetch_add(1, Ordering::Relaxed);
        }
    }
    s.op.store(Op::Idle as u64, Ordering::Release);
}

fn child(report: &'static MmReport, p: Params) -> ! {
    TRACE.store(p.trace, Ordering::Relaxed);
    for sig in [SIGSEGV, SIGBUS] {
        // SAFETY: the handler only applies the probe fix-up (or prints and exits).
        if unsafe { set_handler(sig, Handler::Siginfo(on_fault), SA_NODEFER, SigSet::EMPTY) }
            .is_err()
        {
            println!(
                "fuzz-mm: FAILED: cannot install the {} handler",
                signal_name(sig)
            );
            exit_group(3);
        }
    }
    let ar = match Arena::reserve(p.workers) {
        Ok(a) => a,
        Err(e) => {
            println!("fuzz-mm: FAILED: {}", e);
            exit_group(3)
        }
    };
    // SAFETY: brk(0) only queries.
    let b = unsafe { raw(nr::BRK, [0; 6]) } as usize;
    BRK_START.store(b, Ordering::Relaxed);
    BRK_CUR.store(b, Ordering::Relaxed);
    let per = p.count / p.workers as u64;
    let mut handles = Vec::new();
    for w in 0..p.workers {
        let worker = Worker {
            id: w,
            slot: w,
            rng: Lcg(p.seed.wrapping_mul(0x9e37_79b9).wrapping_add(w as u64 + 1)),
            ar,
            out: Out::new(report),
            mincore_buf: vec![0; CHAOS_PAGES + 8],
            maps_buf: vec![0; 64 << 10],
            lane: Lane {
                start: ar.lane(w),
                pages: vec![Page::fresh(0, false); LANE_PAGES],
                ops: 0,
                round: 0,
            },
        };
        let fork_every = if p.fork { 97 } else { 0 };
        let calls = per + (w == 0) as u64 * (p.count % p.workers as u64);
        match thread::spawn(move || worker_main(worker, calls, fork_every)) {
            Ok(h) => handles.push(h),
            Err(e) => {
                println!("fuzz-mm: FAILED: spawning worker {}: {}", w, e);
                exit_group(3)
            }
        }
    }
    let mut helpers = Vec::new();
    for t in 0..p.touchers {
        let seed = p.seed ^ (0x7c << 56) ^ t as u64;
        match thread::spawn(move || toucher_main(seed, ar, report)) {
            Ok(h) => helpers.push(h),
            Err(e) => println!("fuzz-mm: spawning toucher {}: {}", t, e),
        }
    }
    let misc_slot = MAX_SLOTS - 1;
    let misc =
        thread::spawn(move || misc_main(p.seed ^ 0x315c, ar, Out::new(report), misc_slot, p.fork));
    for h in handles {
        h.join();
    }
    STOP.store(true, Ordering::Release);
    for h in helpers {
        h.join();
    }
    if let Ok(h) = misc {
        h.join();
    }
    // The arena goes; nothing of it may stay in maps.
    // SAFETY: every thread that used the arena has been joined.
    let r = unsafe { raw(nr::MUNMAP, [ar.base, ar.end - ar.base, 0, 0, 0, 0]) };
    let out = Out::new(report);
    if r != 0 {
        out.fail(format_args!("munmap of the whole arena: {}", r));
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut chunks = Vec::new();
    if let Ok(n) = read_proc("/proc/self/maps", &mut buf, &mut chunks) {
        match parse_maps(&String::from_utf8_lossy(&buf[..n]), &chunks) {
            Ok(v) => {
                if let Some(m) = v.iter().find(|&&(s, e, _, _)| s < ar.end && e > ar.base) {
                    out.fail(format_args!(
                        "after unmapping the arena maps still shows {:#x}-{:#x}",
                        m.0, m.1
                    ));
                }
            }
            Err(e) => out.fail(format_args!("/proc/self/maps: {}", e)),
        }
    }
    exit_group(if report.failures.load(Ordering::Acquire) > 0 {
        1
    } else {
        0
    })
}

/// `fuzz --mm`: forks the fuzzing child and watches it; returns the exit status.
pub fn run(p: Params) -> i32 {
    println!(
        "fuzz-mm: {} calls, seed {}, {} workers, {} touchers, fork {}, arena at {:#x} ({} pages), timeout {} s",
        p.count,
        p.seed,
        p.workers,
        p.touchers,
        if p.fork { "on" } else { "off" },
        ARENA_BASE,
        Arena::total_pages(p.workers),
        p.timeout_s
    );
    let len = core::mem::size_of::<MmReport>().next_multiple_of(PAGE_SIZE);
    // SAFETY: a fresh shared anonymous mapping (no MAP_FIXED), zero-filled, which is
    // a valid MmReport (all atomics zero).
    let page = match unsafe {
        mmap(
            0,
            len,
            Prot::RW,
            MapFlags::SHARED | MapFlags::ANONYMOUS,
            -1,
            0,
        )
    } {
        Ok(p) => p,
        Err(e) => {
            println!(
                "fuzz-mm: FAILED: MAP_SHARED|MAP_ANONYMOUS report page: {}",
                e
            );
            return 1;
        }
    };
    // SAFETY: zeroed, page-aligned, large enough, only accessed through atomics, and
    // never unmapped while this program runs.
    let report: &'static MmReport = unsafe { &*(page as *const MmReport) };
    let start = monotonic_ns();
    let pid = match fork() {
        Err(e) => {
            println!("fuzz-mm: FAILED: fork: {}", e);
            return 1;
        }
        Ok(Fork::Child) => child(report, p),
        Ok(Fork::Parent(pid)) => pid,
    };
    let deadline = start + p.timeout_s * 1_000_000_000;
    let (mut last_done, mut last_change, mut last_print) = (0u64, start, start);
    let status = loop {
        match wait4(pid, WNOHANG) {
            Ok((0, _)) | Err(Errno::EINTR) => {}
            Ok((_, raw)) => break Ok(Some(WaitStatus::from_raw(raw))),
            Err(e) => {
                println!("fuzz-mm: FAILED: wait4: {}", e);
                return 1;
            }
        }
        let now = monotonic_ns();
        let done = report.done.load(Ordering::Acquire);
        if done != last_done {
            (last_done, last_change) = (done, now);
        }
        if now - last_print > 60_000_000_000 {
            last_print = now;
            println!(
                "fuzz-mm: {} calls after {} s",
                done,
                (now - start) / 1_000_000_000
            );
        }
        if p.budget_s > 0 && now > start + p.budget_s * 1_000_000_000 {
            break Ok(None);
        }
        if p.timeout_s > 0 && now > deadline {
            break Err("timed out");
        }
        if now - last_change > STALL_S * 1_000_000_000 {
            break Err("stalled (no call finished for 60 s)");
        }
        sleep_ms(20);
    };
    let elapsed_ms = (monotonic_ns() - start) / 1_000_000;
    let done = report.done.load(Ordering::Acquire);
    let ok = match status {
        Err(why) => {
            println!(
                "fuzz-mm: FAILED: child {} after {} calls; in flight:",
                why, done
            );
            for (i, s) in report.slots.iter().enumerate() {
                let op = s.op.load(Ordering::Acquire) as usize;
                if op != 0 {
                    let a: [u64; 6] = core::array::from_fn(|k| s.args[k].load(Ordering::Acquire));
                    println!(
                        "fuzz-mm:   thread slot {}: {} {:#x} {:#x} {:#x} {:#x} {:#x} {:#x}",
                        i,
                        OP_NAMES.get(op).unwrap_or(&"?"),
                        a[0],
                        a[1],
                        a[2],
                        a[3],
                        a[4],
                        a[5]
                    );
                }
            }
            let _ = kill(pid, SIGKILL);
            let _ = wait4(pid, 0);
            false
        }
        Ok(None) => {
            println!(
                "fuzz-mm: budget of {} s spent after {} calls; stopping the child",
                p.budget_s, done
            );
            let _ = kill(pid, SIGKILL);
            let _ = wait4(pid, 0);
            true
        }
        Ok(Some(WaitStatus::Exited(0))) => true,
        Ok(Some(st)) => {
            println!("fuzz-mm: FAILED: child {} after {} calls", st, done);
            false
        }
    };
    let budget_spent = matches!(status, Ok(None));
    println!(
        "fuzz-mm: {} calls in {} ms; {} touches ({} faulted), {} lane pages checked, {} fork checks, {} failures",
        done,
        elapsed_ms,
        report.touches.load(Ordering::Acquire),
        report.faults.load(Ordering::Acquire),
        report.checked_pages.load(Ordering::Acquire),
        report.forks.load(Ordering::Acquire),
        report.failures.load(Ordering::Acquire)
    );
    for (i, name) in OP_NAMES.iter().enumerate().skip(1) {
        let c = report.calls[i].load(Ordering::Acquire);
        if c > 0 {
            println!(
                "fuzz.mm.{}: calls={} ok={}",
                name,
                c,
                report.ok[i].load(Ordering::Acquire)
            );
        }
    }
    for e in Errno::ALL {
        let n = report.errno[e.raw() as usize].load(Ordering::Acquire);
        if n > 0 {
            println!("fuzz.mm.errno.{}={}", e.name(), n);
        }
    }
    if ok && (done >= p.count || (budget_spent && report.failures.load(Ordering::Acquire) == 0)) {
        println!("fuzz-mm: ok: {} calls answered, memory consistent", done);
        0
    } else {
        if ok {
            println!(
                "fuzz-mm: FAILED: child reported {} of {} calls",
                done, p.count
            );
        }
        1
    }
}
