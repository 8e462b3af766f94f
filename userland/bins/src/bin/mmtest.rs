//! `mmtest`: the mm test suite (issue 5). Every syscall, flag and errno of the mmap
//! family, checked by reading the values back:
//!
//! - anonymous memory reads zero and keeps writes; MAP_SHARED anonymous memory is
//!   shared with a forked child both ways, MAP_PRIVATE is copy-on-write isolated both
//!   ways; MAP_FIXED replaces, MAP_FIXED_NOREPLACE is EEXIST over a mapping and exact
//!   on a free range; MAP_POPULATE pages are resident (mincore); MAP_NORESERVE shows
//!   "nr" in smaps; MAP_32BIT lands below 2 GiB; MAP_STACK is ordinary memory;
//! - MAP_GROWSDOWN: a non-fixed hint inside the stack guard gap is not honoured, a
//!   fault below the stack grows it, growth stops one guard gap (256 pages) above the
//!   next accessible mapping (SIGSEGV, SEGV_MAPERR, exact si_addr), a MAP_FIXED
//!   mapping inside the gap is allowed and then blocks growth;
//! - mprotect splits VMAs (three /proc/self/maps lines) and merges them back, keeps
//!   the data, and a PROT_READ/PROT_NONE access is SIGSEGV SEGV_ACCERR at the exact
//!   si_addr; an unmapped access is SEGV_MAPERR; munmap splits and unmaps;
//! - madvise: DONTNEED zeroes private anonymous pages and keeps shared ones, FREE,
//!   REMOVE punches shared memory, the flag advice (RANDOM, SEQUENTIAL, DONTFORK,
//!   DONTDUMP, WIPEONFORK and their inverses) shows in smaps VmFlags and acts on fork,
//!   POPULATE_READ/WRITE make pages resident, every other value mm knows is accepted,
//!   unknown values are EINVAL, holes ENOMEM;
//! - mremap grows in place, refuses (ENOMEM) or moves (MAYMOVE) with the data, shrinks,
//!   moves to a chosen place (FIXED), DONTUNMAP leaves the old range mapped and empty;
//!   its errno (EINVAL, EFAULT);
//! - brk grows, the memory works, shrinks and unmaps, refuses to go below its start;
//! - msync flag validation; mincore values and errno;
//! - a private and a shared file mapping of /bin/hello (ELF magic, same bytes as
//!   read(), zeroed tail, SIGBUS past the end, EACCES for writable shared mappings of a
//!   read-only fd), memfd + ftruncate + MAP_SHARED across fork, remap_file_pages;
//! - limits: mmap_min_addr (EPERM for a restricted child, a privileged parent maps
//!   low, low hints are raised), max_map_count lowered through /proc makes mmap and a
//!   splitting mprotect/munmap ENOMEM;
//! - errno of malformed mmap/munmap calls;
//! - /proc/self/status VmSize, VmRSS and RssAnon follow mapping and touching pages,
//!   /proc/self/smaps has the exact Rss of a touched mapping.
//!
//! The same binary runs on Linux: checks of Peios-only behaviour (the restrict
//! syscall, MAP_UNINITIALIZED and unknown PROT bits being EINVAL, lowering the
//! system-wide max_map_count, which would disturb every other process on a shared host)
//! are skipped there.
//!
//! Test memory is only ever touched through raw addresses (`peek`, `poke` and the
//! fault probes), never through Rust references, and only inside mappings this
//! program made for a test (or deliberately unmapped ones).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::ffi::CStr;
use core::fmt;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use peios_bins::peios::restrict_self;
use peios_bins::{in_child, Checks};
use peios_rt::fault;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::signal::*;
use peios_rt::sys::fs::{self, AT_FDCWD, O_CLOEXEC, O_RDONLY, O_WRONLY};
use peios_rt::sys::mm::*;
use peios_rt::sys::process::exit_group;
use peios_rt::sys::signal::SigSet;
use peios_rt::sys::time::{nanosleep, Timespec};

peios_rt::main!(main);

const PAGE: usize = PAGE_SIZE;
/// The stack guard gap: Linux's default `stack_guard_gap`, always on in Peios.
const GUARD_GAP: usize = 256 * PAGE;
/// An address below the default `vm.mmap_min_addr` (65536).
const LOW_ADDR: usize = 0x8000;
/// `MAP_32BIT` mappings end at or below this.
const TWO_GIB: usize = 0x8000_0000;
const PRIV_ANON: MapFlags = MapFlags::PRIVATE.union(MapFlags::ANONYMOUS);
const SHARED_ANON: MapFlags = MapFlags::SHARED.union(MapFlags::ANONYMOUS);

// ---------------------------------------------------------------------------------
// Fault probes.

static FAULTS: AtomicU32 = AtomicU32::new(0);
static SIGNO: AtomicI32 = AtomicI32::new(0);
static CODE: AtomicI32 = AtomicI32::new(0);
static ADDR: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_fault(sig: i32, info: *mut SigInfo, uc: *mut UContext) {
    // SAFETY: the kernel passes valid siginfo and ucontext pointers to an
    // SA_SIGINFO handler; nothing else touches them while it runs.
    let (info, uc) = unsafe { (&*info, &mut *uc) };
    FAULTS.fetch_add(1, Ordering::AcqRel);
    SIGNO.store(sig, Ordering::Release);
    CODE.store(info.code, Ordering::Release);
    ADDR.store(info.addr(), Ordering::Release);
    if !fault::fixup(uc) {
        // A fault outside the probes: returning would loop on it forever.
        eprintln!(
            "mmtest: unexpected {} (si_code {}) at rip {:#x} addr {:#x}",
            signal_name(sig),
            info.code,
            uc.rip(),
            info.addr()
        );
        exit_group(99);
    }
}

/// One probed access: whether it faulted, what the handler recorded, the byte read.
#[derive(Clone, Copy, Debug)]
struct Probe {
    faulted: bool,
    calls: u32,
    signo: i32,
    code: i32,
    addr: usize,
    value: Option<u8>,
}

impl Probe {
    fn run(access: impl FnOnce() -> (bool, Option<u8>)) -> Probe {
        FAULTS.store(0, Ordering::Release);
        SIGNO.store(0, Ordering::Release);
        CODE.store(0, Ordering::Release);
        ADDR.store(0, Ordering::Release);
        let (faulted, value) = access();
        Probe {
            faulted,
            calls: FAULTS.load(Ordering::Acquire),
            signo: SIGNO.load(Ordering::Acquire),
            code: CODE.load(Ordering::Acquire),
            addr: ADDR.load(Ordering::Acquire),
            value,
        }
    }

    /// Reads the byte at `addr` (a test mapping or a deliberately unmapped address).
    fn read(addr: usize) -> Probe {
        Probe::run(|| {
            // SAFETY: a one-byte load from test memory (module invariant); a fault is
            // fixed up by `on_fault`.
            match unsafe { fault::probe_read(addr as *const u8) } {
                Ok(v) => (false, Some(v)),
                Err(fault::Faulted) => (true, None),
            }
        })
    }

    /// Writes `value` at `addr` (a test mapping or a deliberately unmapped address).
    fn write(addr: usize, value: u8) -> Probe {
        Probe::run(|| {
            // SAFETY: a one-byte store into test memory (module invariant) that no
            // reference points into; a fault is fixed up by `on_fault`.
            (unsafe { fault::probe_write(addr as *mut u8, value) }, None)
        })
    }

    /// The access faulted once with exactly this signal, si_code and si_addr.
    fn is(&self, signo: i32, code: i32, addr: usize) -> bool {
        self.faulted
            && self.calls == 1
            && self.signo == signo
            && self.code == code
            && self.addr == addr
    }

    /// The access completed without any signal.
    fn clean(&self) -> bool {
        !self.faulted && self.calls == 0
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.calls == 0 && !self.faulted {
            return write!(f, "no fault, value {:?}", self.value);
        }
        write!(
            f,
            "faulted={} handler calls={} {} si_code={} si_addr={:#x}",
            self.faulted,
            self.calls,
            signal_name(self.signo),
            self.code,
            self.addr
        )
    }
}

/// Reads a byte of test memory (module invariant: a live test mapping).
fn peek(addr: usize) -> u8 {
    // SAFETY: `addr` is inside a readable test mapping; volatile because a child
    // process or another mapping of the same pages may change it.
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}

/// Writes a byte of test memory (module invariant: a live writable test mapping that
/// no reference points into).
fn poke(addr: usize, value: u8) {
    // SAFETY: as for `peek`; the memory is the test's own.
    unsafe { core::ptr::write_volatile(addr as *mut u8, value) }
}

fn pattern(i: usize) -> u8 {
    (i % 251) as u8 ^ 0x5a
}

// ---------------------------------------------------------------------------------
// Mapping helpers.

/// `mmap` of anonymous memory (any flags). FIXED is only used inside ranges a test
/// reserved (or at a low address nothing uses).
fn map(addr: usize, len: usize, prot: Prot, flags: MapFlags) -> Result<usize, Errno> {
    // SAFETY: a FIXED mapping replaces only memory of the test that asked for it.
    unsafe { mmap(addr, len, prot, flags, -1, 0) }.map(|p| p as usize)
}

/// `mmap` of `fd`.
fn map_fd(len: usize, prot: Prot, flags: MapFlags, fd: i32, offset: u64) -> Result<usize, Errno> {
    // SAFETY: not FIXED: the kernel picks a free range.
    unsafe { mmap(0, len, prot, flags, fd, offset) }.map(|p| p as usize)
}

fn anon(len: usize, prot: Prot) -> Result<usize, Errno> {
    map(0, len, prot, PRIV_ANON)
}

fn unmap(addr: usize, len: usize) -> Result<(), Errno> {
    // SAFETY: only test mappings are unmapped; nothing refers into them.
    unsafe { munmap(addr as *mut u8, len) }
}

fn protect(addr: usize, len: usize, prot: Prot) -> Result<(), Errno> {
    // SAFETY: test memory; later faults are expected and probed.
    unsafe { mprotect(addr as *mut u8, len, prot) }
}

fn advise(addr: usize, len: usize, advice: i32) -> Result<(), Errno> {
    // SAFETY: test memory; the tests expect the advice to discard contents.
    unsafe { madvise(addr as *mut u8, len, advice) }
}

fn remap(
    old: usize,
    old_len: usize,
    new_len: usize,
    flags: MremapFlags,
    new_addr: usize,
) -> Result<usize, Errno> {
    // SAFETY: only test mappings are moved, into free or test-owned ranges.
    unsafe { mremap(old as *mut u8, old_len, new_len, flags, new_addr) }.map(|p| p as usize)
}

fn sync(addr: usize, len: usize, flags: MsyncFlags) -> Result<(), Errno> {
    // SAFETY: test memory; nothing relies on other mappings staying unchanged.
    unsafe { msync(addr as *mut u8, len, flags) }
}

/// mincore's residency byte for each page of `addr..addr+pages*PAGE`.
fn resident(addr: usize, pages: usize) -> Result<Vec<u8>, Errno> {
    let mut v = vec![0xeeu8; pages];
    mincore(addr, pages * PAGE, &mut v).map(|()| v)
}

/// A `len`-byte anonymous mapping (`flags`: PRIVATE or SHARED plus extras) with a
/// PROT_NONE page on each side, so it never merges with a neighbour and its /proc
/// lines are its own. [`release`] unmaps it with its guards.
fn isolated(len: usize, prot: Prot, flags: MapFlags) -> Result<usize, Errno> {
    let base = anon(len + 2 * PAGE, Prot::NONE)?;
    map(
        base + PAGE,
        len,
        prot,
        flags | MapFlags::ANONYMOUS | MapFlags::FIXED,
    )
}

fn release(start: usize, len: usize) {
    let _ = unmap(start - PAGE, len + 2 * PAGE);
}

/// Three pages whose middle one is unmapped: a range with a hole. [`release`] with
/// `3 * PAGE` frees it.
fn holed() -> Result<usize, Errno> {
    let a = isolated(3 * PAGE, Prot::RW, MapFlags::PRIVATE)?;
    unmap(a + PAGE, PAGE).map(|()| a)
}

/// Waits (up to ~20 s) until the byte at `addr` is `value`.
fn wait_for(addr: usize, value: u8) -> bool {
    for _ in 0..20_000 {
        if peek(addr) == value {
            return true;
        }
        let _ = nanosleep(&Timespec::from_ns(1_000_000));
    }
    false
}

fn open(path: &CStr) -> Result<i32, Errno> {
    fs::openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0)
}

fn write_sysctl(path: &CStr, text: &[u8]) -> Result<(), Errno> {
    let fd = fs::openat(AT_FDCWD, path, O_WRONLY | O_CLOEXEC, 0)?;
    let r = fs::write(fd, text).map(|_| ());
    let _ = fs::close(fd);
    r
}

// ---------------------------------------------------------------------------------
// /proc readers.

/// A buffer for /proc files, mapped and touched once, so reading a report neither
/// allocates nor faults in memory (which would change the figures being read).
struct ProcBuf {
    buf: Vec<u8>,
}

impl ProcBuf {
    fn new() -> ProcBuf {
        ProcBuf {
            buf: vec![1u8; 1 << 20],
        }
    }

    fn read(&mut self, path: &CStr) -> Result<&str, Errno> {
        let fd = open(path)?;
        let mut n = 0;
        let result = loop {
            if n == self.buf.len() {
                break Err(Errno::EFBIG);
            }
            match fs::read(fd, &mut self.buf[n..]) {
                Ok(0) => break Ok(()),
                Ok(k) => n += k,
                Err(Errno::EINTR) => {}
                Err(e) => break Err(e),
            }
        };
        let _ = fs::close(fd);
        result?;
        core::str::from_utf8(&self.buf[..n]).map_err(|_| Errno::EILSEQ)
    }

    /// The /proc/self/maps entry containing `addr`.
    fn vma(&mut self, addr: usize) -> Option<Vma> {
        let maps = self.read(c"/proc/self/maps").ok()?;
        maps.lines()
            .filter_map(Vma::parse)
            .find(|v| v.start <= addr && addr < v.end)
    }

    /// How many /proc/self/maps entries overlap `lo..hi` (None when unreadable).
    fn vmas_in(&mut self, lo: usize, hi: usize) -> Option<usize> {
        let maps = self.read(c"/proc/self/maps").ok()?;
        Some(
            maps.lines()
                .filter_map(Vma::parse)
                .filter(|v| v.start < hi && lo < v.end)
                .count(),
        )
    }

    /// Field `name` (e.g. `"Rss"`) of the /proc/self/smaps entry containing `addr`.
    fn smaps_field(&mut self, addr: usize, name: &str) -> Option<String> {
        let smaps = self.read(c"/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some(v) = Vma::parse(line) {
                inside = v.start <= addr && addr < v.end;
            } else if inside {
                if let Some(value) = line.strip_prefix(name).and_then(|r| r.strip_prefix(':')) {
                    return Some(String::from(value.trim()));
                }
            }
        }
        None
    }

    /// Field `name` of the smaps entry containing `addr`, in kB.
    fn smaps_kb(&mut self, addr: usize, name: &str) -> Option<u64> {
        kb(&self.smaps_field(addr, name)?)
    }

    /// Whether the smaps `VmFlags` of the entry containing `addr` has `flag`.
    fn has_vm_flag(&mut self, addr: usize, flag: &str) -> Option<bool> {
        Some(
            self.smaps_field(addr, "VmFlags")?
                .split_ascii_whitespace()
                .any(|f| f == flag),
        )
    }

    /// VmSize, VmRSS and RssAnon of /proc/self/status, in kB.
    fn status(&mut self) -> Option<Status> {
        let s = self.read(c"/proc/self/status").ok()?;
        let field = |name: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').and_then(kb))
        };
        Some(Status {
            vm_size: field("VmSize")?,
            vm_rss: field("VmRSS")?,
            rss_anon: field("RssAnon")?,
        })
    }

    fn number(&mut self, path: &CStr) -> Option<usize> {
        self.read(path).ok()?.trim().parse().ok()
    }
}

/// `"  1234 kB"` -> 1234.
fn kb(v: &str) -> Option<u64> {
    v.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// One /proc/self/maps entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Vma {
    start: usize,
    end: usize,
    perms: [u8; 4],
}

impl Vma {
    /// Parses `start-end perms ...` (None for smaps field lines).
    fn parse(line: &str) -> Option<Vma> {
        let mut it = line.split_ascii_whitespace();
        let (a, b) = it.next()?.split_once('-')?;
        let p = it.next()?.as_bytes();
        Some(Vma {
            start: usize::from_str_radix(a, 16).ok()?,
            end: usize::from_str_radix(b, 16).ok()?,
            perms: p.try_into().ok()?,
        })
    }

    fn perms(&self) -> &str {
        core::str::from_utf8(&self.perms).unwrap_or("????")
    }
}

impl fmt::Display for Vma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{:x} {}", self.start, self.end, self.perms())
    }
}

#[derive(Clone, Copy, Debug)]
struct Status {
    vm_size: u64,
    vm_rss: u64,
    rss_anon: u64,
}

// ---------------------------------------------------------------------------------
// The checks.

fn main(args: &Args) -> i32 {
    let mut c = Checks::new("mmtest");
    for sig in [SIGSEGV, SIGBUS] {
        // SAFETY: the handler only stores atomics, prints from a stack buffer and
        // applies the probe fix-up.
        let installed =
            unsafe { set_handler(sig, Handler::Siginfo(on_fault), SA_NODEFER, SigSet::EMPTY) };
        if !c.check(
            &format!("sigaction-{}", signal_name(sig)),
            installed.is_ok(),
            format_args!("{:?}", installed.map(|_| ())),
        ) {
            return c.finish();
        }
    }
    // Peios answers the restrict syscall (probed in a child: this process keeps its
    // privileges); Linux says ENOSYS.
    let peios = matches!(
        in_child(|| match restrict_self() {
            Ok(()) => 0,
            Err(Errno::ENOSYS) => 1,
            Err(_) => 2,
        }),
        Ok(WaitStatus::Exited(0))
    );
    println!(
        "mmtest: running on {}",
        if peios {
            "Peios"
        } else {
            "Linux (Peios-only checks skipped)"
        }
    );
    let mut pb = ProcBuf::new();

    anonymous(&mut c);
    fork_sharing(&mut c);
    fixed(&mut c, &mut pb);
    populate_and_flags(&mut c, &mut pb);
    growsdown(&mut c, &mut pb);
    protection(&mut c, &mut pb);
    unmapping(&mut c, &mut pb);
    advice(&mut c, &mut pb);
    remapping(&mut c);
    program_break(&mut c, &mut pb);
    msync_flags(&mut c);
    residency(&mut c);
    file_mapping(&mut c, &mut pb, args);
    memfd(&mut c);
    file_pages(&mut c);
    min_addr(&mut c, &mut pb, peios);
    map_count(&mut c, &mut pb, peios);
    errnos(&mut c, peios);
    proc_reports(&mut c, &mut pb);
    c.finish()
}

fn anonymous(c: &mut Checks) {
    let len = 4 * PAGE;
    let a = match anon(len, Prot::RW) {
        Ok(a) => a,
        Err(e) => {
            c.check("anon-map", false, format_args!("mmap: {}", e));
            return;
        }
    };
    let nonzero = (0..len).filter(|&i| peek(a + i) != 0).count();
    c.check(
        "anon-reads-zero",
        nonzero == 0,
        format_args!("{} of {} bytes non-zero", nonzero, len),
    );
    for i in 0..len {
        poke(a + i, pattern(i));
    }
    let bad = (0..len).filter(|&i| peek(a + i) != pattern(i)).count();
    c.check(
        "anon-keeps-writes",
        bad == 0,
        format_args!("{} of {} bytes differ", bad, len),
    );
    let _ = unmap(a, len);
    match anon(PAGE, Prot::READ) {
        Ok(r) => {
            let p = Probe::read(r + 100);
            c.check(
                "anon-readonly-reads-zero",
                p.clean() && p.value == Some(0),
                format_args!("{}", p),
            );
            let _ = unmap(r, PAGE);
        }
        Err(e) => {
            c.check(
                "anon-readonly-reads-zero",
                false,
                format_args!("mmap: {}", e),
            );
        }
    }
}

/// MAP_SHARED anonymous memory is shared with a forked child in both directions;
/// MAP_PRIVATE memory is inherited, then copy-on-write isolated in both directions.
fn fork_sharing(c: &mut Checks) {
    let (Ok(sh), Ok(pr)) = (map(0, PAGE, Prot::RW, SHARED_ANON), anon(PAGE, Prot::RW)) else {
        c.check("fork-setup", false, format_args!("mmap failed"));
        return;
    };
    // sh+0: child -> parent value; sh+8: child wrote; sh+16: parent wrote;
    // sh+24: parent -> child value.
    poke(sh, 1);
    poke(pr, 1);
    let pid = match fork() {
        Err(e) => {
            c.check("fork-setup", false, format_args!("fork: {}", e));
            return;
        }
        Ok(Fork::Child) => {
            let mut bad = 0;
            if peek(sh) != 1 {
                bad |= 1; // the shared page before the fork
            }
            if peek(pr) != 1 {
                bad |= 2; // the private page is inherited
            }
            poke(sh, 2);
            poke(pr + 1, 2);
            if peek(pr + 1) != 2 {
                bad |= 4; // the child's own copy keeps its write
            }
            poke(sh + 8, 1);
            if !wait_for(sh + 16, 1) {
                bad |= 32;
            }
            if peek(pr) != 1 {
                bad |= 8; // the parent's later private write must not show here
            }
            if peek(sh + 24) != 3 {
                bad |= 16; // the parent's later shared write must
            }
            exit_group(bad)
        }
        Ok(Fork::Parent(pid)) => pid,
    };
    let child_wrote = wait_for(sh + 8, 1);
    let shared_seen = peek(sh);
    let private_seen = peek(pr + 1);
    poke(pr, 7);
    poke(sh + 24, 3);
    poke(sh + 16, 1);
    let st = wait_pid(pid);
    let bits = match st {
        Ok(WaitStatus::Exited(b)) => b,
        _ => -1,
    };
    let fine = |mask: i32| bits >= 0 && bits & mask == 0;
    c.check(
        "shared-anon-parent-to-child",
        fine(1 | 16 | 32),
        format_args!(
            "child status {:?} (bits 1, 16: parent's writes not seen)",
            st
        ),
    );
    c.check(
        "shared-anon-child-to-parent",
        child_wrote && shared_seen == 2,
        format_args!("parent reads {} (want 2)", shared_seen),
    );
    c.check(
        "private-inherited-by-child",
        fine(2),
        format_args!("child status {:?}", st),
    );
    c.check(
        "private-cow-child-write-isolated",
        fine(4) && private_seen == 0,
        format_args!(
            "parent reads {} after the child's write (want 0), child status {:?}",
            private_seen, st
        ),
    );
    c.check(
        "private-cow-parent-write-isolated",
        fine(8) && peek(pr) == 7,
        format_args!(
            "child status {:?} (bit 8: saw the parent's write), parent reads {}",
            st,
            peek(pr)
        ),
    );
    let _ = unmap(sh, PAGE);
    let _ = unmap(pr, PAGE);
}

fn fixed(c: &mut Checks, pb: &mut ProcBuf) {
    let Ok(a) = isolated(3 * PAGE, Prot::RW, MapFlags::PRIVATE) else {
        c.check("fixed-setup", false, format_args!("mmap failed"));
        return;
    };
    for i in 0..3 {
        poke(a + i * PAGE, 0x11 * (i as u8 + 1));
    }
    let r = map(a + PAGE, PAGE, Prot::RW, PRIV_ANON | MapFlags::FIXED);
    c.check(
        "fixed-replaces",
        r == Ok(a + PAGE) && peek(a + PAGE) == 0 && peek(a) == 0x11 && peek(a + 2 * PAGE) == 0x33,
        format_args!(
            "mmap {:?} (want {:#x}); bytes {:#x} {:#x} {:#x} (want 0x11 0 0x33)",
            r,
            a + PAGE,
            peek(a),
            peek(a + PAGE),
            peek(a + 2 * PAGE)
        ),
    );
    poke(a + PAGE, 0x44);
    let r = map(
        a + PAGE,
        PAGE,
        Prot::RW,
        PRIV_ANON | MapFlags::FIXED_NOREPLACE,
    );
    c.check(
        "fixed-noreplace-eexist",
        r == Err(Errno::EEXIST) && peek(a + PAGE) == 0x44,
        format_args!("{:?}, byte {:#x} (want 0x44)", r, peek(a + PAGE)),
    );
    let r = map(
        a + 2 * PAGE,
        2 * PAGE,
        Prot::RW,
        PRIV_ANON | MapFlags::FIXED_NOREPLACE,
    );
    c.check(
        "fixed-noreplace-partial-eexist",
        r == Err(Errno::EEXIST),
        format_args!("{:?} over one mapped and one guard page", r),
    );
    let _ = unmap(a + PAGE, PAGE);
    let r = map(
        a + PAGE,
        PAGE,
        Prot::READ,
        PRIV_ANON | MapFlags::FIXED_NOREPLACE,
    );
    let v = pb.vma(a + PAGE);
    c.check(
        "fixed-noreplace-free",
        r == Ok(a + PAGE)
            && v.is_some_and(|v| {
                v.start == a + PAGE && v.end == a + 2 * PAGE && v.perms() == "r--p"
            }),
        format_args!(
            "mmap {:?} (want {:#x}), maps {:?}",
            r,
            a + PAGE,
            v.map(|v| format!("{}", v))
        ),
    );
    let r = map(a + 1, PAGE, Prot::RW, PRIV_ANON | MapFlags::FIXED);
    c.expect_errno("fixed-unaligned-einval", r, Errno::EINVAL);
    release(a, 3 * PAGE);
}

fn populate_and_flags(c: &mut Checks, pb: &mut ProcBuf) {
    match map(0, 8 * PAGE, Prot::RW, PRIV_ANON | MapFlags::POPULATE) {
        Ok(a) => {
            let r = resident(a, 8);
            c.check(
                "populate-resident",
                r.as_deref() == Ok(&[1u8; 8][..]),
                format_args!("mincore {:?}", r),
            );
            let nonzero = (0..8 * PAGE).filter(|&i| peek(a + i) != 0).count();
            c.check(
                "populate-reads-zero",
                nonzero == 0,
                format_args!("{} non-zero bytes", nonzero),
            );
            let _ = unmap(a, 8 * PAGE);
        }
        Err(e) => {
            c.check("populate-resident", false, format_args!("mmap: {}", e));
        }
    }
    match map(0, 4 * PAGE, Prot::RW, SHARED_ANON | MapFlags::POPULATE) {
        Ok(a) => {
            let r = resident(a, 4);
            c.check(
                "populate-shared-resident",
                r.as_deref() == Ok(&[1u8; 4][..]),
                format_args!("mincore {:?}", r),
            );
            let _ = unmap(a, 4 * PAGE);
        }
        Err(e) => {
            c.check(
                "populate-shared-resident",
                false,
                format_args!("mmap: {}", e),
            );
        }
    }
    match anon(8 * PAGE, Prot::RW) {
        Ok(a) => {
            let r = resident(a, 8);
            c.check(
                "unpopulated-not-resident",
                r.as_deref() == Ok(&[0u8; 8][..]),
                format_args!("mincore {:?}", r),
            );
            let _ = unmap(a, 8 * PAGE);
        }
        Err(e) => {
            c.check(
                "unpopulated-not-resident",
                false,
                format_args!("mmap: {}", e),
            );
        }
    }
    match isolated(4 * PAGE, Prot::RW, MapFlags::PRIVATE | MapFlags::NORESERVE) {
        Ok(a) => {
            poke(a + 3 * PAGE + 9, 0x99);
            let flag = pb.has_vm_flag(a, "nr");
            c.check(
                "noreserve-usable-and-flagged",
                peek(a + 3 * PAGE + 9) == 0x99 && flag == Some(true),
                format_args!(
                    "byte {:#x}, smaps VmFlags has nr: {:?}",
                    peek(a + 3 * PAGE + 9),
                    flag
                ),
            );
            release(a, 4 * PAGE);
        }
        Err(e) => {
            c.check(
                "noreserve-usable-and-flagged",
                false,
                format_args!("mmap: {}", e),
            );
        }
    }
    match map(0, 4 * PAGE, Prot::RW, PRIV_ANON | MapFlags::MAP_32BIT) {
        Ok(a) => {
            poke(a + 4 * PAGE - 1, 0x32);
            c.check(
                "map32bit-below-2gib",
                a + 4 * PAGE <= TWO_GIB && a >= 0x10000 && peek(a + 4 * PAGE - 1) == 0x32,
                format_args!("at {:#x}", a),
            );
            let _ = unmap(a, 4 * PAGE);
        }
        Err(e) => {
            c.check("map32bit-below-2gib", false, format_args!("mmap: {}", e));
        }
    }
    match map(0, 16 * PAGE, Prot::RW, PRIV_ANON | MapFlags::STACK) {
        Ok(a) => {
            poke(a + 16 * PAGE - 1, 0x5c);
            let zero = peek(a) == 0;
            c.check(
                "map-stack-usable",
                zero && peek(a + 16 * PAGE - 1) == 0x5c,
                format_args!("at {:#x}", a),
            );
            let _ = unmap(a, 16 * PAGE);
        }
        Err(e) => {
            c.check("map-stack-usable", false, format_args!("mmap: {}", e));
        }
    }
}

/// MAP_GROWSDOWN and the stack guard gap. Layout inside a reserved range, from low to
/// high: `low` (one readable page), a hole, the stack `s` (4 pages, growing down).
/// The stack may grow down to exactly one guard gap above `low`'s end.
fn growsdown(c: &mut Checks, pb: &mut ProcBuf) {
    const RESERVE: usize = 4 << 20;
    let Ok(base) = anon(RESERVE, Prot::NONE) else {
        c.check("growsdown-setup", false, format_args!("reserve failed"));
        return;
    };
    let s = base + RESERVE - 64 * PAGE;
    let low_end = s - GUARD_GAP - 16 * PAGE;
    let low = low_end - PAGE;
    let hole = unmap(low_end, s - low_end);
    let l = map(low, PAGE, Prot::READ, PRIV_ANON | MapFlags::FIXED);
    let st = map(
        s,
        4 * PAGE,
        Prot::RW,
        PRIV_ANON | MapFlags::FIXED | MapFlags::GROWSDOWN,
    );
    if !c.check(
        "growsdown-map",
        hole.is_ok() && l == Ok(low) && st == Ok(s),
        format_args!("hole {:?}, low {:?}, stack {:?}", hole, l, st),
    ) {
        let _ = unmap(base, RESERVE);
        return;
    }
    let gd = pb.has_vm_flag(s, "gd");
    c.check(
        "growsdown-flagged",
        gd == Some(true),
        format_args!("smaps VmFlags has gd: {:?}", gd),
    );

    // A non-fixed hint inside the gap below the stack is not honoured.
    let hint = s - 8 * PAGE;
    match map(hint, PAGE, Prot::READ, PRIV_ANON) {
        Ok(h) => {
            let in_gap = h < s && h + PAGE > s - GUARD_GAP;
            c.check(
                "hint-in-guard-gap-moved",
                !in_gap,
                format_args!("hint {:#x} -> {:#x} (stack at {:#x})", hint, h, s),
            );
            let _ = unmap(h, PAGE);
        }
        Err(e) => {
            c.check(
                "hint-in-guard-gap-moved",
                false,
                format_args!("mmap: {}", e),
            );
        }
    }

    // A fault just below the stack grows it.
    let p = Probe::write(s - PAGE + 0x10, 0x61);
    let v = pb.vma(s);
    c.check(
        "growsdown-grows",
        p.clean()
            && v.is_some_and(|v| v.start == s - PAGE && v.end == s + 4 * PAGE)
            && peek(s - PAGE + 0x10) == 0x61,
        format_args!("{}; maps {:?}", p, v.map(|v| format!("{}", v))),
    );
    // Growth stops a guard gap above the readable page below...
    let too_low = low_end + GUARD_GAP - PAGE + 0x20;
    let p = Probe::write(too_low, 1);
    let v = pb.vma(s);
    c.check(
        "growsdown-stops-at-guard-gap",
        p.is(SIGSEGV, SEGV_MAPERR, too_low) && v.is_some_and(|v| v.start == s - PAGE),
        format_args!(
            "{} (want SEGV_MAPERR at {:#x}); maps {:?}",
            p,
            too_low,
            v.map(|v| format!("{}", v))
        ),
    );
    // ...but reaches it exactly.
    let edge = low_end + GUARD_GAP;
    let p = Probe::write(edge + 0x30, 0x62);
    let v = pb.vma(s);
    c.check(
        "growsdown-grows-to-guard-gap",
        p.clean() && v.is_some_and(|v| v.start == edge && v.end == s + 4 * PAGE),
        format_args!(
            "{}; maps {:?} (want start {:#x})",
            p,
            v.map(|v| format!("{}", v)),
            edge
        ),
    );
    let p = Probe::read(edge - PAGE + 0x40);
    c.check(
        "growsdown-gap-kept",
        p.is(SIGSEGV, SEGV_MAPERR, edge - PAGE + 0x40),
        format_args!("{}", p),
    );
    // MAP_FIXED inside the gap is allowed, and then the stack cannot grow at all.
    let r = map(
        edge - 2 * PAGE,
        PAGE,
        Prot::READ,
        PRIV_ANON | MapFlags::FIXED,
    );
    c.check(
        "fixed-in-guard-gap-allowed",
        r == Ok(edge - 2 * PAGE),
        format_args!("{:?}", r),
    );
    let p = Probe::write(edge - PAGE + 0x50, 1);
    c.check(
        "growsdown-blocked-by-fixed-in-gap",
        p.is(SIGSEGV, SEGV_MAPERR, edge - PAGE + 0x50),
        format_args!("{}", p),
    );
    let _ = unmap(base, RESERVE);
}

/// mprotect splits and merges; PROT_READ and PROT_NONE accesses are SEGV_ACCERR; an
/// unmapped access is SEGV_MAPERR.
fn protection(c: &mut Checks, pb: &mut ProcBuf) {
    let len = 4 * PAGE;
    let Ok(a) = isolated(len, Prot::RW, MapFlags::PRIVATE) else {
        c.check("mprotect-setup", false, format_args!("mmap failed"));
        return;
    };
    for i in 0..4 {
        poke(a + i * PAGE + 0x123, 0xa0 + i as u8);
    }
    let before = pb.vmas_in(a, a + len);
    let r = protect(a + PAGE, PAGE, Prot::READ);
    let split = pb.vmas_in(a, a + len);
    let mid = pb.vma(a + PAGE);
    c.check(
        "mprotect-splits",
        r.is_ok()
            && before == Some(1)
            && split == Some(3)
            && mid.is_some_and(|v| {
                v.start == a + PAGE && v.end == a + 2 * PAGE && v.perms() == "r--p"
            }),
        format_args!(
            "{:?}; maps entries {:?} -> {:?}, middle {:?}",
            r,
            before,
            split,
            mid.map(|v| format!("{}", v))
        ),
    );
    let target = a + PAGE + 0x123;
    let p = Probe::write(target, 1);
    c.check(
        "readonly-write-accerr",
        p.is(SIGSEGV, SEGV_ACCERR, target),
        format_args!("{} (want SEGV_ACCERR at {:#x})", p, target),
    );
    let p = Probe::read(target);
    c.check(
        "readonly-read-ok",
        p.clean() && p.value == Some(0xa1),
        format_args!("{}", p),
    );

    let r = protect(a + PAGE, PAGE, Prot::NONE);
    let none = pb.vma(a + PAGE);
    c.check(
        "mprotect-none",
        r.is_ok() && none.is_some_and(|v| v.perms() == "---p"),
        format_args!("{:?}, maps {:?}", r, none.map(|v| format!("{}", v))),
    );
    let target = a + PAGE + 0x45;
    let p = Probe::read(target);
    c.check(
        "prot-none-read-accerr",
        p.is(SIGSEGV, SEGV_ACCERR, target),
        format_args!("{} (want SEGV_ACCERR at {:#x})", p, target),
    );
    let target = a + 2 * PAGE - 1;
    let p = Probe::write(target, 1);
    c.check(
        "prot-none-write-accerr",
        p.is(SIGSEGV, SEGV_ACCERR, target),
        format_args!("{} (want SEGV_ACCERR at {:#x})", p, target),
    );

    let r = protect(a + PAGE, PAGE, Prot::RW);
    let merged = pb.vmas_in(a, a + len);
    c.check(
        "mprotect-merges",
        r.is_ok() && merged == Some(1),
        format_args!("{:?}; maps entries {:?} (want 1)", r, merged),
    );
    let kept = (0..4).all(|i| peek(a + i * PAGE + 0x123) == 0xa0 + i as u8);
    c.check(
        "mprotect-keeps-data",
        kept,
        format_args!(
            "page bytes {:#x} {:#x} {:#x} {:#x}",
            peek(a + 0x123),
            peek(a + PAGE + 0x123),
            peek(a + 2 * PAGE + 0x123),
            peek(a + 3 * PAGE + 0x123)
        ),
    );
    c.expect_errno(
        "mprotect-unaligned-einval",
        protect(a + 1, PAGE, Prot::READ),
        Errno::EINVAL,
    );
    c.expect_errno(
        "mprotect-unknown-prot-einval",
        protect(a, PAGE, Prot::from_bits_retain(0x10)),
        Errno::EINVAL,
    );
    if let Ok(h) = holed() {
        c.expect_errno(
            "mprotect-hole-enomem",
            protect(h, 3 * PAGE, Prot::READ),
            Errno::ENOMEM,
        );
        release(h, 3 * PAGE);
    }
    c.expect_errno(
        "mprotect-growsdown-plain-einval",
        protect(a, PAGE, Prot::from_bits_retain(0x0100_0000 | 0x1)),
        Errno::EINVAL,
    );
    release(a, len);

    match peios_bins::unmapped_page() {
        Some(hole) => {
            let target = hole + 0x321;
            let p = Probe::read(target);
            c.check(
                "unmapped-read-maperr",
                p.is(SIGSEGV, SEGV_MAPERR, target),
                format_args!("{} (want SEGV_MAPERR at {:#x})", p, target),
            );
            let p = Probe::write(target + 1, 1);
            c.check(
                "unmapped-write-maperr",
                p.is(SIGSEGV, SEGV_MAPERR, target + 1),
                format_args!("{}", p),
            );
        }
        None => {
            c.check("unmapped-read-maperr", false, format_args!("no hole"));
        }
    }
}

fn unmapping(c: &mut Checks, pb: &mut ProcBuf) {
    let len = 3 * PAGE;
    let Ok(a) = isolated(len, Prot::RW, MapFlags::PRIVATE) else {
        c.check("munmap-setup", false, format_args!("mmap failed"));
        return;
    };
    poke(a, 1);
    poke(a + 2 * PAGE, 3);
    let r = unmap(a + PAGE, PAGE);
    let n = pb.vmas_in(a, a + len);
    let p = Probe::read(a + PAGE + 8);
    c.check(
        "munmap-splits",
        r.is_ok() && n == Some(2) && peek(a) == 1 && peek(a + 2 * PAGE) == 3,
        format_args!("{:?}; maps entries {:?} (want 2)", r, n),
    );
    c.check(
        "munmap-then-maperr",
        p.is(SIGSEGV, SEGV_MAPERR, a + PAGE + 8),
        format_args!("{}", p),
    );
    c.check(
        "munmap-unmapped-ok",
        unmap(a + PAGE, PAGE).is_ok(),
        format_args!("unmapping nothing is not an error"),
    );
    c.expect_errno("munmap-unaligned-einval", unmap(a + 1, PAGE), Errno::EINVAL);
    c.expect_errno("munmap-len0-einval", unmap(a, 0), Errno::EINVAL);
    release(a, len);
}

fn advice(c: &mut Checks, pb: &mut ProcBuf) {
    let len = 4 * PAGE;
    let Ok(a) = isolated(len, Prot::RW, MapFlags::PRIVATE) else {
        c.check("madvise-setup", false, format_args!("mmap failed"));
        return;
    };
    let fill = |v: u8| {
        for i in 0..4 {
            poke(a + i * PAGE + 7, v);
        }
    };
    fill(0x5a);
    let r = advise(a, len, MADV_DONTNEED);
    let res = resident(a, 4);
    c.check(
        "madvise-dontneed-drops",
        r.is_ok() && res.as_deref() == Ok(&[0u8; 4][..]),
        format_args!("{:?}, mincore {:?}", r, res),
    );
    let nonzero = (0..len).filter(|&i| peek(a + i) != 0).count();
    c.check(
        "madvise-dontneed-zeroes-private",
        nonzero == 0,
        format_args!("{} non-zero bytes", nonzero),
    );

    match isolated(2 * PAGE, Prot::RW, MapFlags::SHARED) {
        Ok(s) => {
            poke(s + 5, 0x77);
            let r = advise(s, 2 * PAGE, MADV_DONTNEED);
            c.check(
                "madvise-dontneed-keeps-shared",
                r.is_ok() && peek(s + 5) == 0x77,
                format_args!("{:?}, byte {:#x}", r, peek(s + 5)),
            );
            let r = advise(s, 2 * PAGE, MADV_REMOVE);
            c.check(
                "madvise-remove-punches-shared",
                r.is_ok() && peek(s + 5) == 0,
                format_args!("{:?}, byte {:#x} (want 0)", r, peek(s + 5)),
            );
            release(s, 2 * PAGE);
        }
        Err(e) => {
            c.check(
                "madvise-dontneed-keeps-shared",
                false,
                format_args!("mmap: {}", e),
            );
        }
    }
    c.expect_errno(
        "madvise-remove-private-anon-einval",
        advise(a, PAGE, MADV_REMOVE),
        Errno::EINVAL,
    );

    fill(0x3c);
    let r = advise(a, len, MADV_FREE);
    let ok = (0..4).all(|i| matches!(peek(a + i * PAGE + 7), 0 | 0x3c));
    c.check(
        "madvise-free",
        r.is_ok() && ok,
        format_args!("{:?}; bytes old or zero: {}", r, ok),
    );

    // Flag advice: splits, shows in VmFlags, merges back.
    let mid = a + PAGE;
    for (adv, name, flag) in [
        (MADV_RANDOM, "random", "rr"),
        (MADV_SEQUENTIAL, "sequential", "sr"),
        (MADV_DONTDUMP, "dontdump", "dd"),
        (MADV_DONTFORK, "dontfork", "dc"),
        (MADV_WIPEONFORK, "wipeonfork", "wf"),
    ] {
        let r = advise(mid, PAGE, adv);
        let n = pb.vmas_in(a, a + len);
        let f = pb.has_vm_flag(mid, flag);
        c.check(
            &format!("madvise-{}-flag", name),
            r.is_ok() && n == Some(3) && f == Some(true),
            format_args!(
                "{:?}; maps entries {:?} (want 3), VmFlags has {}: {:?}",
                r, n, flag, f
            ),
        );
        let undo = match adv {
            MADV_RANDOM | MADV_SEQUENTIAL => MADV_NORMAL,
            MADV_DONTDUMP => MADV_DODUMP,
            MADV_DONTFORK => MADV_DOFORK,
            _ => MADV_KEEPONFORK,
        };
        if adv == MADV_DONTFORK || adv == MADV_WIPEONFORK {
            fork_view(c, name, a, adv);
        }
        let r = advise(mid, PAGE, undo);
        let n = pb.vmas_in(a, a + len);
        let f = pb.has_vm_flag(mid, flag);
        c.check(
            &format!("madvise-un{}-merges", name),
            r.is_ok() && n == Some(1) && f == Some(false),
            format_args!(
                "{:?}; maps entries {:?} (want 1), VmFlags has {}: {:?}",
                r, n, flag, f
            ),
        );
        if adv == MADV_DONTFORK || adv == MADV_WIPEONFORK {
            fork_view(c, &format!("un{}", name), a, undo);
        }
    }

    fill(0x21);
    for (adv, name) in [
        (MADV_NORMAL, "normal"),
        (MADV_WILLNEED, "willneed"),
        (MADV_COLD, "cold"),
        (MADV_PAGEOUT, "pageout"),
    ] {
        let r = advise(a, len, adv);
        let kept = (0..4).all(|i| peek(a + i * PAGE + 7) == 0x21);
        c.check(
            &format!("madvise-{}-keeps-data", name),
            r.is_ok() && kept,
            format_args!("{:?}, data kept: {}", r, kept),
        );
    }
    let _ = advise(a, len, MADV_DONTNEED);
    let r = advise(a, 2 * PAGE, MADV_POPULATE_READ);
    let r2 = advise(a + 2 * PAGE, 2 * PAGE, MADV_POPULATE_WRITE);
    let res = resident(a, 4);
    c.check(
        "madvise-populate-resident",
        r.is_ok() && r2.is_ok() && res.as_deref() == Ok(&[1u8; 4][..]),
        format_args!("read {:?} write {:?}, mincore {:?}", r, r2, res),
    );
    for v in [5, 6, 7, 26, 99, 1000, -1] {
        c.expect_errno(
            &format!("madvise-unknown-{}-einval", v),
            advise(a, PAGE, v),
            Errno::EINVAL,
        );
    }
    c.expect_errno(
        "madvise-unaligned-einval",
        advise(a + 1, PAGE, MADV_NORMAL),
        Errno::EINVAL,
    );
    c.check(
        "madvise-len0-ok",
        advise(a, 0, MADV_DONTNEED).is_ok(),
        format_args!("len 0"),
    );
    if let Ok(h) = holed() {
        c.expect_errno(
            "madvise-hole-enomem",
            advise(h, 3 * PAGE, MADV_WILLNEED),
            Errno::ENOMEM,
        );
        release(h, 3 * PAGE);
    }
    release(a, len);
}

/// What a forked child sees of `a..a+4 pages` (whose pages hold 0x3c or 0 at +7)
/// after `adv` on its second page.
fn fork_view(c: &mut Checks, name: &str, a: usize, adv: i32) {
    poke(a + PAGE + 7, 0x4d);
    let st = in_child(|| {
        let mut v = [0u8; 1];
        match mincore(a + PAGE, PAGE, &mut v) {
            Err(Errno::ENOMEM) => 1, // not inherited
            Err(_) => 3,
            Ok(()) if peek(a + PAGE + 7) == 0 => 2, // wiped
            Ok(()) if peek(a + PAGE + 7) == 0x4d => 0,
            Ok(()) => 4,
        }
    });
    let want = match adv {
        MADV_DONTFORK => 1,
        MADV_WIPEONFORK => 2,
        _ => 0,
    };
    c.check(
        &format!("madvise-{}-child-view", name),
        st == Ok(WaitStatus::Exited(want)),
        format_args!(
            "child {:?} (0 inherited, 1 unmapped, 2 zeroed; want {})",
            st, want
        ),
    );
}

fn remapping(c: &mut Checks) {
    // r..r+16P reserved; r..r+2P becomes RW data, r+2P..r+8P is freed, the rest stays
    // PROT_NONE as a blocker.
    let Ok(r) = anon(16 * PAGE, Prot::NONE) else {
        c.check("mremap-setup", false, format_args!("reserve failed"));
        return;
    };
    let m = map(r, 2 * PAGE, Prot::RW, PRIV_ANON | MapFlags::FIXED);
    let freed = unmap(r + 2 * PAGE, 6 * PAGE);
    if !c.check(
        "mremap-setup",
        m == Ok(r) && freed.is_ok(),
        format_args!("{:?} {:?}", m, freed),
    ) {
        let _ = unmap(r, 16 * PAGE);
        return;
    }
    poke(r + 0x10, 0xd1);
    poke(r + PAGE + 0x10, 0xd2);
    let none = MremapFlags::empty();
    let g = remap(r, 2 * PAGE, 4 * PAGE, none, 0);
    c.check(
        "mremap-grow-in-place",
        g == Ok(r)
            && peek(r + 0x10) == 0xd1
            && peek(r + PAGE + 0x10) == 0xd2
            && peek(r + 3 * PAGE + 5) == 0,
        format_args!("{:?} (want {:#x})", g, r),
    );
    poke(r + 3 * PAGE + 5, 0xd4);
    c.expect_errno(
        "mremap-grow-blocked-enomem",
        remap(r, 4 * PAGE, 10 * PAGE, none, 0),
        Errno::ENOMEM,
    );
    let n = remap(r, 4 * PAGE, 10 * PAGE, MremapFlags::MAYMOVE, 0);
    let Ok(n) = n else {
        c.check("mremap-maymove-moves", false, format_args!("{:?}", n));
        let _ = unmap(r, 16 * PAGE);
        return;
    };
    let old_gone = resident(r, 1);
    c.check(
        "mremap-maymove-moves",
        n != r
            && peek(n + 0x10) == 0xd1
            && peek(n + PAGE + 0x10) == 0xd2
            && peek(n + 3 * PAGE + 5) == 0xd4
            && peek(n + 9 * PAGE) == 0
            && old_gone == Err(Errno::ENOMEM),
        format_args!(
            "moved to {:#x}; old range mincore {:?} (want ENOMEM)",
            n, old_gone
        ),
    );
    let s = remap(n, 10 * PAGE, 3 * PAGE, none, 0);
    let tail = resident(n + 3 * PAGE, 1);
    c.check(
        "mremap-shrink",
        s == Ok(n) && tail == Err(Errno::ENOMEM) && peek(n + PAGE + 0x10) == 0xd2,
        format_args!("{:?}, tail mincore {:?} (want ENOMEM)", s, tail),
    );
    let f = remap(
        n,
        3 * PAGE,
        3 * PAGE,
        MremapFlags::MAYMOVE | MremapFlags::FIXED,
        r,
    );
    let old_gone = resident(n, 1);
    c.check(
        "mremap-fixed",
        f == Ok(r)
            && peek(r + 0x10) == 0xd1
            && peek(r + PAGE + 0x10) == 0xd2
            && old_gone == Err(Errno::ENOMEM),
        format_args!("{:?} (want {:#x}); old range mincore {:?}", f, r, old_gone),
    );
    c.expect_errno(
        "mremap-fixed-needs-maymove-einval",
        remap(r, PAGE, PAGE, MremapFlags::FIXED, n),
        Errno::EINVAL,
    );
    match remap(
        r,
        3 * PAGE,
        3 * PAGE,
        MremapFlags::MAYMOVE | MremapFlags::DONTUNMAP,
        0,
    ) {
        Ok(d) => {
            let old = resident(r, 3);
            c.check(
                "mremap-dontunmap",
                d != r && peek(d + 0x10) == 0xd1 && peek(d + PAGE + 0x10) == 0xd2 && old.as_deref() == Ok(&[0u8; 3][..]) && peek(r + 0x10) == 0 && peek(r + PAGE + 0x10) == 0,
                format_args!("moved to {:#x}; old range mincore {:?} (want mapped, not resident), old bytes {:#x} {:#x}", d, old, peek(r + 0x10), peek(r + PAGE + 0x10)),
            );
            let _ = unmap(d, 3 * PAGE);
        }
        Err(e) => {
            c.check("mremap-dontunmap", false, format_args!("{}", e));
        }
    }
    let flags = MremapFlags::MAYMOVE | MremapFlags::DONTUNMAP;
    c.expect_errno(
        "mremap-dontunmap-resize-einval",
        remap(r, 2 * PAGE, 3 * PAGE, flags, 0),
        Errno::EINVAL,
    );
    c.expect_errno(
        "mremap-unaligned-einval",
        remap(r + 1, PAGE, 2 * PAGE, MremapFlags::MAYMOVE, 0),
        Errno::EINVAL,
    );
    c.expect_errno(
        "mremap-len0-einval",
        remap(r, PAGE, 0, MremapFlags::MAYMOVE, 0),
        Errno::EINVAL,
    );
    c.expect_errno(
        "mremap-bad-flags-einval",
        remap(r, PAGE, PAGE, MremapFlags::from_bits_retain(8), 0),
        Errno::EINVAL,
    );
    c.expect_errno(
        "mremap-beyond-vma-efault",
        remap(r, 4 * PAGE, 5 * PAGE, MremapFlags::MAYMOVE, 0),
        Errno::EFAULT,
    );
    if let Some(hole) = peios_bins::unmapped_page() {
        c.expect_errno(
            "mremap-unmapped-efault",
            remap(hole, PAGE, 2 * PAGE, MremapFlags::MAYMOVE, 0),
            Errno::EFAULT,
        );
    }
    let _ = unmap(r, 16 * PAGE);
}

fn program_break(c: &mut Checks, pb: &mut ProcBuf) {
    // SAFETY (brk calls below): the runtime never uses brk; the range between the
    // initial break and what this test sets is the test's own.
    let b0 = unsafe { brk(0) };
    let start = b0.next_multiple_of(PAGE);
    let want = start + 3 * PAGE;
    // SAFETY: as above.
    let b1 = unsafe { brk(want) };
    if !c.check(
        "brk-grows",
        b0 != 0 && b1 == want,
        format_args!("brk {:#x} -> {:#x} (want {:#x})", b0, b1, want),
    ) {
        return;
    }
    for i in 0..3 {
        poke(start + i * PAGE + 1, 0xb0 + i as u8);
    }
    let ok = (0..3).all(|i| peek(start + i * PAGE + 1) == 0xb0 + i as u8);
    c.check(
        "brk-memory-usable",
        ok,
        format_args!("3 pages above {:#x}", start),
    );
    let heap = pb.read(c"/proc/self/maps").ok().and_then(|m| {
        m.lines()
            .find(|l| l.ends_with("[heap]"))
            .and_then(Vma::parse)
    });
    c.check(
        "brk-heap-in-maps",
        heap.is_some_and(|v| v.start <= start && v.end == want && v.perms() == "rw-p"),
        format_args!(
            "[heap] {:?} (want end {:#x})",
            heap.map(|v| format!("{}", v)),
            want
        ),
    );
    // SAFETY: as above.
    let b2 = unsafe { brk(start) };
    let p = Probe::read(start + PAGE + 1);
    c.check(
        "brk-shrinks",
        b2 == start && p.is(SIGSEGV, SEGV_MAPERR, start + PAGE + 1),
        format_args!("brk -> {:#x} (want {:#x}); {}", b2, start, p),
    );
    // SAFETY: as above; a break below the start is refused.
    let b3 = unsafe { brk(b0 - 16 * PAGE) };
    c.check(
        "brk-below-start-refused",
        b3 == start,
        format_args!("brk -> {:#x} (want unchanged {:#x})", b3, start),
    );
    // SAFETY: as above.
    let b4 = unsafe { brk(b0) };
    c.check("brk-restored", b4 == b0, format_args!("brk -> {:#x}", b4));
}

fn msync_flags(c: &mut Checks) {
    let Ok(a) = anon(2 * PAGE, Prot::RW) else {
        c.check("msync-setup", false, format_args!("mmap failed"));
        return;
    };
    for (flags, name) in [
        (MsyncFlags::SYNC, "sync"),
        (MsyncFlags::ASYNC, "async"),
        (MsyncFlags::INVALIDATE, "invalidate"),
        (MsyncFlags::SYNC | MsyncFlags::INVALIDATE, "sync-invalidate"),
        (MsyncFlags::empty(), "none"),
    ] {
        let r = sync(a, 2 * PAGE, flags);
        c.check(
            &format!("msync-{}-ok", name),
            r.is_ok(),
            format_args!("{:?}", r),
        );
    }
    c.expect_errno(
        "msync-async-sync-einval",
        sync(a, PAGE, MsyncFlags::ASYNC | MsyncFlags::SYNC),
        Errno::EINVAL,
    );
    c.expect_errno(
        "msync-unaligned-einval",
        sync(a + 1, PAGE, MsyncFlags::SYNC),
        Errno::EINVAL,
    );
    c.expect_errno(
        "msync-unknown-flag-einval",
        sync(a, PAGE, MsyncFlags::from_bits_retain(8)),
        Errno::EINVAL,
    );
    let _ = unmap(a, 2 * PAGE);
    c.expect_errno(
        "msync-unmapped-enomem",
        sync(a, PAGE, MsyncFlags::SYNC),
        Errno::ENOMEM,
    );
}

fn residency(c: &mut Checks) {
    let Ok(a) = isolated(4 * PAGE, Prot::RW, MapFlags::PRIVATE) else {
        c.check("mincore-setup", false, format_args!("mmap failed"));
        return;
    };
    poke(a + 10, 1);
    poke(a + 2 * PAGE + 10, 1);
    let r = resident(a, 4);
    c.check(
        "mincore-values",
        r.as_deref() == Ok(&[1u8, 0, 1, 0][..]),
        format_args!("{:?} (want [1, 0, 1, 0])", r),
    );
    let mut v = [9u8; 2];
    let r = mincore(a + 2 * PAGE, PAGE + 1, &mut v);
    c.check(
        "mincore-partial-page-len",
        r.is_ok() && v == [1, 0],
        format_args!("{:?} {:?} (want [1, 0])", r, v),
    );
    c.expect_errno(
        "mincore-unaligned-einval",
        mincore(a + 1, PAGE, &mut v),
        Errno::EINVAL,
    );
    if let Ok(h) = holed() {
        c.expect_errno(
            "mincore-hole-enomem",
            mincore(h, 3 * PAGE, &mut [0u8; 3]),
            Errno::ENOMEM,
        );
        release(h, 3 * PAGE);
    }
    if let Some(hole) = peios_bins::unmapped_page() {
        c.expect_errno(
            "mincore-unmapped-enomem",
            mincore(hole, PAGE, &mut v),
            Errno::ENOMEM,
        );
        // SAFETY: the vector pointer is unmapped: the kernel must refuse it.
        let r = unsafe { mincore_raw(a, PAGE, hole as *mut u8) };
        c.expect_errno("mincore-bad-vec-efault", r, Errno::EFAULT);
    }
    release(a, 4 * PAGE);
}

/// The program's reference file: /bin/hello in the guest, this binary elsewhere.
fn reference_file(args: &Args) -> Option<(&'static CStr, Vec<u8>)> {
    let path = [Some(c"/bin/hello"), args.get_cstr(0)]
        .into_iter()
        .flatten()
        .find(|p| open(p).map(fs::close).is_ok())?;
    let fd = open(path).ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match fs::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => {}
            Err(_) => {
                let _ = fs::close(fd);
                return None;
            }
        }
    }
    let _ = fs::close(fd);
    Some((path, data))
}

fn file_mapping(c: &mut Checks, pb: &mut ProcBuf, args: &Args) {
    let Some((path, data)) = reference_file(args) else {
        c.check(
            "file-open",
            false,
            format_args!("cannot read /bin/hello or argv[0]"),
        );
        return;
    };
    let Ok(fd) = open(path) else {
        c.check("file-open", false, format_args!("cannot open {:?}", path));
        return;
    };
    let size = data.len();
    let span = size.next_multiple_of(PAGE);
    let name = path
        .to_str()
        .unwrap_or("?")
        .rsplit('/')
        .next()
        .unwrap_or("?");
    match map_fd(size, Prot::READ, MapFlags::PRIVATE, fd, 0) {
        Ok(m) => {
            let magic = [peek(m), peek(m + 1), peek(m + 2), peek(m + 3)];
            c.check(
                "file-map-elf-magic",
                magic == *b"\x7fELF",
                format_args!("{:?} of {:?} ({} bytes)", magic, path, size),
            );
            let bad = (0..size).filter(|&i| peek(m + i) != data[i]).count();
            c.check(
                "file-map-matches-read",
                bad == 0,
                format_args!("{} of {} bytes differ from read()", bad, size),
            );
            let tail = (size..span).filter(|&i| peek(m + i) != 0).count();
            c.check(
                "file-map-tail-zero",
                tail == 0,
                format_args!("{} non-zero bytes after the end of the file", tail),
            );
            let line = pb.read(c"/proc/self/maps").ok().and_then(|maps| {
                maps.lines()
                    .find(|l| Vma::parse(l).is_some_and(|v| v.start == m))
                    .map(String::from)
            });
            c.check(
                "file-map-in-maps",
                line.as_deref()
                    .is_some_and(|l| l.contains(" r--p 00000000 ") && l.ends_with(name)),
                format_args!("{:?}", line),
            );
            let _ = unmap(m, size);
        }
        Err(e) => {
            c.check(
                "file-map-elf-magic",
                false,
                format_args!("mmap {:?}: {}", path, e),
            );
        }
    }
    if size > 2 * PAGE {
        match map_fd(PAGE, Prot::READ, MapFlags::PRIVATE, fd, PAGE as u64) {
            Ok(m) => {
                let bad = (0..PAGE).filter(|&i| peek(m + i) != data[PAGE + i]).count();
                c.check(
                    "file-map-offset",
                    bad == 0,
                    format_args!("{} bytes differ from file offset 4096", bad),
                );
                let _ = unmap(m, PAGE);
            }
            Err(e) => {
                c.check("file-map-offset", false, format_args!("mmap: {}", e));
            }
        }
    }
    match map_fd(span + PAGE, Prot::READ, MapFlags::PRIVATE, fd, 0) {
        Ok(m) => {
            let target = m + span + 0x40;
            let p = Probe::read(target);
            c.check(
                "file-past-eof-sigbus",
                p.is(SIGBUS, BUS_ADRERR, target),
                format_args!("{} (want SIGBUS BUS_ADRERR at {:#x})", p, target),
            );
            let _ = unmap(m, span + PAGE);
        }
        Err(e) => {
            c.check("file-past-eof-sigbus", false, format_args!("mmap: {}", e));
        }
    }
    c.expect_errno(
        "file-shared-write-rdonly-eacces",
        map_fd(PAGE, Prot::RW, MapFlags::SHARED, fd, 0),
        Errno::EACCES,
    );
    match map_fd(PAGE, Prot::READ, MapFlags::SHARED, fd, 0) {
        Ok(m) => {
            let ok = peek(m) == 0x7f;
            c.check(
                "file-shared-read",
                ok,
                format_args!("first byte {:#x}", peek(m)),
            );
            c.expect_errno(
                "file-shared-mprotect-write-eacces",
                protect(m, PAGE, Prot::RW),
                Errno::EACCES,
            );
            let _ = unmap(m, PAGE);
        }
        Err(e) => {
            c.check("file-shared-read", false, format_args!("mmap: {}", e));
        }
    }
    match map_fd(PAGE, Prot::RW, MapFlags::PRIVATE, fd, 0) {
        Ok(m) => {
            poke(m, b'X');
            let mine = peek(m);
            let other = map_fd(PAGE, Prot::READ, MapFlags::PRIVATE, fd, 0);
            let theirs = other.map(peek);
            c.check(
                "file-private-write-cow",
                mine == b'X' && theirs == Ok(0x7f),
                format_args!(
                    "own copy {:#x} (want 'X'), a fresh mapping reads {:?} (want 0x7f)",
                    mine, theirs
                ),
            );
            if let Ok(o) = other {
                let _ = unmap(o, PAGE);
            }
            let _ = unmap(m, PAGE);
        }
        Err(e) => {
            c.check("file-private-write-cow", false, format_args!("mmap: {}", e));
        }
    }
    c.expect_errno(
        "file-offset-unaligned-einval",
        map_fd(PAGE, Prot::READ, MapFlags::PRIVATE, fd, 100),
        Errno::EINVAL,
    );
    let _ = fs::close(fd);
}

fn memfd(c: &mut Checks) {
    let fd = match fs::memfd_create(c"mmtest", fs::MFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => {
            c.check("memfd-create", false, format_args!("{}", e));
            return;
        }
    };
    let t = fs::ftruncate(fd, 2 * PAGE as u64);
    let m = map_fd(2 * PAGE, Prot::RW, MapFlags::SHARED, fd, 0);
    let Ok(m) = m else {
        c.check(
            "memfd-map",
            false,
            format_args!("ftruncate {:?}, mmap {:?}", t, m),
        );
        let _ = fs::close(fd);
        return;
    };
    // /proc/self/maps names the mapping as Linux does: /memfd:NAME (deleted).
    let named = peios_bins::files::read_file("/proc/self/maps").map(|maps| {
        let start = format!("{:x}-", m);
        maps.lines()
            .find(|l| l.starts_with(&start))
            .map(|l| l.ends_with(" /memfd:mmtest (deleted)"))
    });
    c.check(
        "memfd-maps-name",
        matches!(named, Ok(Some(true))),
        format_args!("{:?}", named),
    );
    let nonzero = (0..2 * PAGE).filter(|&i| peek(m + i) != 0).count();
    c.check(
        "memfd-ftruncate-map-zero",
        t.is_ok() && nonzero == 0,
        format_args!("ftruncate {:?}, {} non-zero bytes", t, nonzero),
    );
    poke(m + 50, 0x50);
    let st = in_child(|| {
        let seen = peek(m + 50) == 0x50;
        for (i, b) in b"child".iter().enumerate() {
            poke(m + 100 + i, *b);
        }
        poke(m + PAGE + 1, 0xc1);
        if seen {
            0
        } else {
            1
        }
    });
    let got: Vec<u8> = (0..5).map(|i| peek(m + 100 + i)).collect();
    c.check(
        "memfd-shared-across-fork",
        st == Ok(WaitStatus::Exited(0)) && got == b"child" && peek(m + PAGE + 1) == 0xc1,
        format_args!(
            "child {:?} (1: did not see the parent's byte); parent reads {:?}",
            st,
            String::from_utf8_lossy(&got)
        ),
    );
    match map_fd(2 * PAGE, Prot::RW, MapFlags::SHARED, fd, 0) {
        Ok(m2) => {
            poke(m2 + PAGE + 2, 0xc2);
            c.check(
                "memfd-mappings-coherent",
                peek(m2 + 100) == b'c' && peek(m + PAGE + 2) == 0xc2,
                format_args!(
                    "second mapping reads {:#x}, first sees {:#x}",
                    peek(m2 + 100),
                    peek(m + PAGE + 2)
                ),
            );
            let _ = unmap(m2, 2 * PAGE);
        }
        Err(e) => {
            c.check(
                "memfd-mappings-coherent",
                false,
                format_args!("mmap: {}", e),
            );
        }
    }
    let mut buf = [0u8; 105];
    let r = fs::read(fd, &mut buf);
    c.check(
        "memfd-read-sees-mapping",
        r == Ok(105) && &buf[100..] == b"child" && buf[50] == 0x50,
        format_args!("read {:?}, bytes 100.. {:?}", r, &buf[100..]),
    );
    // write() lands in the same pages (at the descriptor's offset, which read advanced).
    let w = fs::lseek_set(fd, 200).and_then(|_| fs::write(fd, b"written"));
    let mut back = [0u8; 7];
    let r2 = fs::lseek_set(fd, 200).and_then(|_| fs::read(fd, &mut back));
    c.check(
        "memfd-write-then-read",
        w == Ok(7) && r2 == Ok(7) && &back == b"written",
        format_args!(
            "write {:?}, read back {:?} {:?}",
            w,
            r2,
            core::str::from_utf8(&back)
        ),
    );
    match map_fd(4 * PAGE, Prot::RW, MapFlags::SHARED, fd, 0) {
        Ok(m4) => {
            let target = m4 + 3 * PAGE + 8;
            let p = Probe::read(target);
            c.check(
                "memfd-past-size-sigbus",
                p.is(SIGBUS, BUS_ADRERR, target),
                format_args!("{} (want SIGBUS BUS_ADRERR at {:#x})", p, target),
            );
            let t = fs::ftruncate(fd, 4 * PAGE as u64);
            let p = Probe::read(target);
            c.check(
                "memfd-ftruncate-grows",
                t.is_ok() && p.clean() && p.value == Some(0),
                format_args!("ftruncate {:?}; {}", t, p),
            );
            let _ = unmap(m4, 4 * PAGE);
        }
        Err(e) => {
            c.check("memfd-past-size-sigbus", false, format_args!("mmap: {}", e));
        }
    }
    let r = sync(m, 2 * PAGE, MsyncFlags::SYNC);
    c.check("msync-memfd-ok", r.is_ok(), format_args!("{:?}", r));
    let _ = unmap(m, 2 * PAGE);
    let _ = fs::close(fd);
}

fn file_pages(c: &mut Checks) {
    let fd = match fs::memfd_create(c"mmtest-rfp", fs::MFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => {
            c.check(
                "remap_file_pages-setup",
                false,
                format_args!("memfd: {}", e),
            );
            return;
        }
    };
    let t = fs::ftruncate(fd, 4 * PAGE as u64);
    let m = map_fd(4 * PAGE, Prot::RW, MapFlags::SHARED, fd, 0);
    let Ok(m) = m else {
        c.check(
            "remap_file_pages-setup",
            false,
            format_args!("ftruncate {:?}, mmap {:?}", t, m),
        );
        let _ = fs::close(fd);
        return;
    };
    for i in 0..4 {
        poke(m + i * PAGE, 0xa0 + i as u8);
    }
    // SAFETY: our shared memfd mapping; its first page now shows file page 3.
    let r = unsafe { remap_file_pages(m as *mut u8, PAGE, 0, 3, 0) };
    let view = [
        peek(m),
        peek(m + PAGE),
        peek(m + 2 * PAGE),
        peek(m + 3 * PAGE),
    ];
    c.check(
        "remap_file_pages-moves-pages",
        r.is_ok() && view == [0xa3, 0xa1, 0xa2, 0xa3],
        format_args!("{:?}; first bytes {:x?} (want [a3, a1, a2, a3])", r, view),
    );
    poke(m + 1, 0x77);
    c.check(
        "remap_file_pages-same-page",
        peek(m + 3 * PAGE + 1) == 0x77,
        format_args!("page 3 sees {:#x} (want 0x77)", peek(m + 3 * PAGE + 1)),
    );
    // SAFETY: refused (prot must be 0): nothing changes.
    let r = unsafe { remap_file_pages(m as *mut u8, PAGE, 1, 2, 0) };
    c.expect_errno("remap_file_pages-prot-einval", r, Errno::EINVAL);
    if let Ok(p) = anon(PAGE, Prot::RW) {
        // SAFETY: refused (not a shared file mapping): nothing changes.
        let r = unsafe { remap_file_pages(p as *mut u8, PAGE, 0, 1, 0) };
        c.expect_errno("remap_file_pages-private-einval", r, Errno::EINVAL);
        let _ = unmap(p, PAGE);
    }
    let _ = unmap(m, 4 * PAGE);
    let _ = fs::close(fd);
}

fn min_addr(c: &mut Checks, pb: &mut ProcBuf, peios: bool) {
    let min = pb.number(c"/proc/sys/vm/mmap_min_addr");
    if peios {
        c.check(
            "mmap_min_addr-default",
            min == Some(65536),
            format_args!("{:?}", min),
        );
    }
    let min = min.unwrap_or(65536);
    // This process is privileged (SeTcbPrivilege on Peios, root on Linux).
    let r = map(
        LOW_ADDR,
        PAGE,
        Prot::RW,
        PRIV_ANON | MapFlags::FIXED_NOREPLACE,
    );
    if let Ok(a) = r {
        poke(a + 3, 0x1c);
    }
    c.check(
        "mmap_min_addr-privileged-maps-low",
        r == Ok(LOW_ADDR) && peek(LOW_ADDR + 3) == 0x1c,
        format_args!("mmap at {:#x}: {:?} (mmap_min_addr {})", LOW_ADDR, r, min),
    );
    if r.is_ok() {
        let _ = unmap(LOW_ADDR, PAGE);
    }
    let r = map(0x2000, PAGE, Prot::READ, PRIV_ANON);
    c.check(
        "low-hint-raised",
        r.is_ok_and(|a| a >= min),
        format_args!(
            "hint 0x2000 -> {:?} (mmap_min_addr {:#x})",
            r.map(|a| a as *const u8),
            min
        ),
    );
    if let Ok(a) = r {
        let _ = unmap(a, PAGE);
    }
    if !peios {
        return;
    }
    let st = in_child(|| {
        if restrict_self().is_err() {
            return 64;
        }
        let mut bad = 0;
        if map(
            LOW_ADDR,
            PAGE,
            Prot::READ,
            PRIV_ANON | MapFlags::FIXED_NOREPLACE,
        ) != Err(Errno::EPERM)
        {
            bad |= 1;
        }
        if map(LOW_ADDR, PAGE, Prot::READ, PRIV_ANON | MapFlags::FIXED) != Err(Errno::EPERM) {
            bad |= 2;
        }
        match map(0x2000, PAGE, Prot::READ, PRIV_ANON) {
            Ok(a) if a >= min => {
                let _ = unmap(a, PAGE);
            }
            _ => bad |= 4,
        }
        match map(min, PAGE, Prot::READ, PRIV_ANON | MapFlags::FIXED_NOREPLACE) {
            Ok(a) if a == min => {}
            _ => bad |= 8,
        }
        bad
    });
    c.check(
        "mmap_min_addr-restricted-eperm",
        st == Ok(WaitStatus::Exited(0)),
        format_args!("restricted child {:?} (bits: 1 NOREPLACE, 2 FIXED below the minimum not EPERM, 4 low hint, 8 map at the minimum)", st),
    );
}

/// Lowers vm.max_map_count to a little above this process's count; mmap then fails with
/// ENOMEM, and so do an mprotect and a munmap that would split a VMA. Peios only: on a
/// shared Linux host the knob is system-wide.
fn map_count(c: &mut Checks, pb: &mut ProcBuf, peios: bool) {
    if !peios {
        println!("mmtest: max_map_count checks skipped (system-wide knob on a shared Linux host)");
        return;
    }
    let path = c"/proc/sys/vm/max_map_count";
    let old = pb.number(path);
    let count = pb.read(c"/proc/self/maps").map(|m| m.lines().count());
    let big = isolated(3 * PAGE, Prot::RW, MapFlags::PRIVATE);
    let (Some(old), Ok(count), Ok(big)) = (old, count, big) else {
        c.check(
            "max_map_count-setup",
            false,
            format_args!("limit {:?}, maps {:?}, mmap {:?}", old, count, big),
        );
        return;
    };
    c.check(
        "max_map_count-default",
        old == 65530,
        format_args!("{}", old),
    );
    let low = format!("{}", count + 20);
    let restore = format!("{}", old);
    let mut pages: Vec<usize> = Vec::with_capacity(256);
    // Nothing below allocates until the limit is restored.
    let lowered = write_sysctl(path, low.as_bytes());
    let mut mapped = Ok(());
    for i in 0..256 {
        // Alternate protections so neighbouring pages never merge into one VMA.
        let prot = if i % 2 == 0 { Prot::READ } else { Prot::RW };
        match anon(PAGE, prot) {
            Ok(p) => pages.push(p),
            Err(e) => {
                mapped = Err(e);
                break;
            }
        }
    }
    let split = protect(big + PAGE, PAGE, Prot::READ);
    let whole = protect(big, 3 * PAGE, Prot::READ);
    let punch = unmap(big + PAGE, PAGE);
    let restored = write_sysctl(path, restore.as_bytes());
    let now = pb.number(path);
    c.check(
        "max_map_count-lowered",
        lowered.is_ok(),
        format_args!("write {}: {:?}", low, lowered),
    );
    c.check(
        "max_map_count-mmap-enomem",
        mapped == Err(Errno::ENOMEM) && pages.len() < 256,
        format_args!("{} more mappings, then {:?}", pages.len(), mapped),
    );
    c.expect_errno("max_map_count-mprotect-split-enomem", split, Errno::ENOMEM);
    c.check(
        "max_map_count-mprotect-whole-ok",
        whole.is_ok(),
        format_args!("{:?} (no new VMA)", whole),
    );
    c.expect_errno("max_map_count-munmap-split-enomem", punch, Errno::ENOMEM);
    c.check(
        "max_map_count-restored",
        restored.is_ok() && now == Some(old),
        format_args!("{:?}, reads {:?}", restored, now),
    );
    let split = protect(big + PAGE, PAGE, Prot::RW);
    let n = pb.vmas_in(big, big + 3 * PAGE);
    c.check(
        "max_map_count-split-after-restore",
        split.is_ok() && n == Some(3),
        format_args!("{:?}, maps entries {:?}", split, n),
    );
    for p in pages {
        let _ = unmap(p, PAGE);
    }
    release(big, 3 * PAGE);
}

fn errnos(c: &mut Checks, peios: bool) {
    c.expect_errno("mmap-len0-einval", anon(0, Prot::RW), Errno::EINVAL);
    c.expect_errno(
        "mmap-no-type-einval",
        map(0, PAGE, Prot::RW, MapFlags::ANONYMOUS),
        Errno::EINVAL,
    );
    c.expect_errno(
        "mmap-shared-validate-anon-einval",
        map(
            0,
            PAGE,
            Prot::RW,
            MapFlags::SHARED_VALIDATE | MapFlags::ANONYMOUS,
        ),
        Errno::EINVAL,
    );
    c.expect_errno(
        "mmap-shared-growsdown-einval",
        map(0, PAGE, Prot::RW, SHARED_ANON | MapFlags::GROWSDOWN),
        Errno::EINVAL,
    );
    c.expect_errno(
        "mmap-huge-len-enomem",
        anon(1 << 47, Prot::RW),
        Errno::ENOMEM,
    );
    c.expect_errno(
        "mmap-fixed-past-top-enomem",
        map(
            (1 << 47) - PAGE,
            2 * PAGE,
            Prot::RW,
            PRIV_ANON | MapFlags::FIXED_NOREPLACE,
        ),
        Errno::ENOMEM,
    );
    // SAFETY (both): not MAP_FIXED, and the bad descriptor makes the call fail.
    let r = unsafe { mmap(0, PAGE, Prot::READ, MapFlags::PRIVATE, 9999, 0) };
    c.expect_errno("mmap-bad-fd-ebadf", r, Errno::EBADF);
    // SAFETY: as above.
    let r = unsafe { mmap(0, PAGE, Prot::READ, MapFlags::SHARED, -1, 0) };
    c.expect_errno("mmap-fd-minus1-ebadf", r, Errno::EBADF);
    if peios {
        // Linux ignores unknown PROT bits and MAP_UNINITIALIZED (without
        // CONFIG_MMAP_ALLOW_UNINITIALIZED); Peios refuses both.
        c.expect_errno(
            "mmap-unknown-prot-einval",
            map(0, PAGE, Prot::from_bits_retain(0x10), PRIV_ANON),
            Errno::EINVAL,
        );
        c.expect_errno(
            "mmap-uninitialized-einval",
            map(0, PAGE, Prot::RW, PRIV_ANON | MapFlags::UNINITIALIZED),
            Errno::EINVAL,
        );
    }
}

fn proc_reports(c: &mut Checks, pb: &mut ProcBuf) {
    let pages = 1024;
    let len = pages * PAGE;
    let want_kb = (len / 1024) as u64;
    let before = pb.status();
    let Ok(m) = isolated(len, Prot::RW, MapFlags::PRIVATE) else {
        c.check("status-setup", false, format_args!("mmap failed"));
        return;
    };
    let mapped = pb.status();
    for i in 0..pages {
        poke(m + i * PAGE + 1, 1);
    }
    let touched = pb.status();
    let size = pb.smaps_kb(m, "Size");
    let rss = pb.smaps_kb(m, "Rss");
    let anon_kb = pb.smaps_kb(m, "Anonymous");
    release(m, len);
    let after = pb.status();
    let (Some(before), Some(mapped), Some(touched), Some(after)) = (before, mapped, touched, after)
    else {
        c.check(
            "status-readable",
            false,
            format_args!("VmSize/VmRSS/RssAnon missing from /proc/self/status"),
        );
        return;
    };
    // RSS counters may lag by a per-CPU batch on Linux: allow 256 kB either way.
    let near = |got: u64, want: u64| got.abs_diff(want) <= 256;
    let guards_kb = (2 * PAGE / 1024) as u64;
    c.check(
        "status-vmsize-grows",
        mapped.vm_size.wrapping_sub(before.vm_size) == want_kb + guards_kb,
        format_args!(
            "VmSize {} -> {} kB (want +{})",
            before.vm_size,
            mapped.vm_size,
            want_kb + guards_kb
        ),
    );
    c.check(
        "status-untouched-no-rss",
        near(mapped.vm_rss, before.vm_rss),
        format_args!(
            "VmRSS {} -> {} kB after mapping",
            before.vm_rss, mapped.vm_rss
        ),
    );
    c.check(
        "status-vmrss-grows",
        near(touched.vm_rss.wrapping_sub(mapped.vm_rss), want_kb),
        format_args!(
            "VmRSS {} -> {} kB after touching {} kB",
            mapped.vm_rss, touched.vm_rss, want_kb
        ),
    );
    c.check(
        "status-rssanon-grows",
        near(touched.rss_anon.wrapping_sub(mapped.rss_anon), want_kb),
        format_args!(
            "RssAnon {} -> {} kB after touching {} kB",
            mapped.rss_anon, touched.rss_anon, want_kb
        ),
    );
    c.check(
        "smaps-touched",
        size == Some(want_kb) && rss == Some(want_kb) && anon_kb == Some(want_kb),
        format_args!(
            "Size {:?} Rss {:?} Anonymous {:?} kB (want {})",
            size, rss, anon_kb, want_kb
        ),
    );
    c.check(
        "status-vmsize-shrinks",
        after.vm_size == before.vm_size,
        format_args!(
            "VmSize {} kB after munmap (was {} before mapping)",
            after.vm_size, before.vm_size
        ),
    );
    c.check(
        "status-rssanon-shrinks",
        near(touched.rss_anon.wrapping_sub(after.rss_anon), want_kb),
        format_args!(
            "RssAnon {} -> {} kB after munmap",
            touched.rss_anon, after.rss_anon
        ),
    );
    match isolated(16 * PAGE, Prot::RW, MapFlags::PRIVATE) {
        Ok(p) => {
            for i in [0, 3, 4, 9, 15] {
                poke(p + i * PAGE, 1);
            }
            let rss = pb.smaps_kb(p, "Rss");
            c.check(
                "smaps-rss-partial",
                rss == Some(20),
                format_args!("Rss {:?} kB (want 20: 5 of 16 pages touched)", rss),
            );
            release(p, 16 * PAGE);
        }
        Err(e) => {
            c.check("smaps-rss-partial", false, format_args!("mmap: {}", e));
        }
    }
}
