//! Helpers shared by the test programs: a check recorder that prints one line per
//! check and a summary, fixed-point formatting for benchmark figures, running a check in
//! a (restricted) child, and whole-file helpers.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use peios_rt::{println, Errno};

/// Records named checks; [`Checks::finish`] prints a summary and gives the exit
/// status (0 when every check passed, 1 otherwise).
pub struct Checks {
    prog: &'static str,
    passed: u32,
    failed: Vec<String>,
}

impl Checks {
    /// A recorder for program `prog` (used as the line prefix).
    pub fn new(prog: &'static str) -> Checks {
        Checks {
            prog,
            passed: 0,
            failed: Vec::new(),
        }
    }

    /// Records check `name`: prints `ok` or `FAILED` with `detail`; returns `ok`.
    pub fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) -> bool {
        if ok {
            self.passed += 1;
            println!("{}: check {}: ok ({})", self.prog, name, detail);
        } else {
            self.failed.push(String::from(name));
            println!("{}: check {}: FAILED ({})", self.prog, name, detail);
        }
        ok
    }

    /// Records that `got` is exactly `Err(want)`.
    pub fn expect_errno<T: fmt::Debug>(
        &mut self,
        name: &str,
        got: Result<T, Errno>,
        want: Errno,
    ) -> bool {
        match got {
            Err(e) if e == want => self.check(name, true, format_args!("got {}", e.name())),
            Err(e) => self.check(
                name,
                false,
                format_args!("expected {}, got {}", want.name(), e),
            ),
            Ok(v) => self.check(
                name,
                false,
                format_args!("expected {}, got success {:?}", want.name(), v),
            ),
        }
    }

    /// Number of failed checks so far.
    pub fn failures(&self) -> usize {
        self.failed.len()
    }

    /// Prints the summary line and returns the exit status.
    pub fn finish(self) -> i32 {
        if self.failed.is_empty() {
            println!("{}: all {} checks passed", self.prog, self.passed);
            0
        } else {
            let names = self.failed.join(", ");
            println!(
                "{}: {} of {} checks FAILED: {}",
                self.prog,
                self.failed.len(),
                self.passed as usize + self.failed.len(),
                names
            );
            1
        }
    }
}

/// Displays `milli / 1000` with three decimals (integer-only, no floats needed).
#[derive(Clone, Copy, Debug)]
pub struct Milli(pub u64);

impl fmt::Display for Milli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// Parses a comma-separated list of unsigned integers such as `1,2,4`.
pub fn parse_list(s: &str) -> Option<Vec<u64>> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.trim().parse().ok())
        .collect()
}

/// The CPUs this process may run on, in order (just CPU 0 if affinity is unknown).
pub fn allowed_cpus() -> Vec<usize> {
    match peios_rt::sys::sched::sched_getaffinity(0) {
        Ok(set) if set.count() > 0 => set.iter().collect(),
        _ => alloc::vec![0],
    }
}

/// The address of a page that is guaranteed unmapped for the rest of the process:
/// a hole punched in the middle of three reserved PROT_NONE pages (which stay
/// mapped, so no later mapping larger than a page can land on the hole; the
/// runtime's allocator never maps single pages). `None` if mmap/munmap fail.
pub fn unmapped_page() -> Option<usize> {
    use peios_rt::sys::mm::{mmap_anon, munmap, Prot, PAGE_SIZE};
    let base = mmap_anon(3 * PAGE_SIZE, Prot::NONE).ok()?;
    let hole = base.wrapping_add(PAGE_SIZE);
    // SAFETY: the middle page of our own fresh PROT_NONE reservation is unused.
    unsafe { munmap(hole, PAGE_SIZE) }.ok()?;
    Some(hole as usize)
}

/// Whole-file helpers for `/proc` and `/sys` files.
pub mod files {
    use alloc::string::String;
    use alloc::vec::Vec;
    use peios_rt::sys::fs::{close, openat, read, write, AT_FDCWD, O_RDONLY, O_WRONLY};
    use peios_rt::Errno;

    /// A `/proc/vmstat` counter.
    pub fn vmstat(name: &str) -> Option<u64> {
        let text = read_file("/proc/vmstat").ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok())?
        })
    }

    /// Opens `path` (a Rust string; the NUL is added here) with `flags`.
    pub fn open(path: &str, flags: u32) -> Result<i32, Errno> {
        let mut p = Vec::from(path.as_bytes());
        p.push(0);
        let c = core::ffi::CStr::from_bytes_with_nul(&p).map_err(|_| Errno::EINVAL)?;
        openat(AT_FDCWD, c, flags, 0)
    }

    /// Reads a whole file.
    pub fn read_file(path: &str) -> Result<String, Errno> {
        let fd = open(path, O_RDONLY)?;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let result = loop {
            match read(fd, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        let _ = close(fd);
        result.map(|()| String::from_utf8_lossy(&out).into_owned())
    }

    /// Writes `text` to a file in one `write` (as `echo text > path` does).
    pub fn write_file(path: &str, text: &str) -> Result<(), Errno> {
        let fd = open(path, O_WRONLY)?;
        let result = write(fd, text.as_bytes()).map(|_| ());
        let _ = close(fd);
        result
    }

    /// A `/proc/meminfo` figure in kB (`name` without its colon: `"MemFree"`).
    pub fn meminfo_kb(name: &str) -> Option<u64> {
        let text = read_file("/proc/meminfo").ok()?;
        text.lines().find_map(|l| kb_field(l, name))
    }

    /// A `/proc/self/status` figure in kB (`name` without its colon: `"VmSwap"`).
    pub fn status_kb(name: &str) -> Option<u64> {
        let text = read_file("/proc/self/status").ok()?;
        text.lines().find_map(|l| kb_field(l, name))
    }

    /// `field` (kB) of the `/proc/self/smaps` block of the mapping starting at `start`.
    pub fn smaps_kb(start: usize, field: &str) -> Option<u64> {
        let text = read_file("/proc/self/smaps").ok()?;
        let head = alloc::format!("{:x}-", start);
        let mut lines = text.lines().skip_while(|l| !l.starts_with(&head));
        lines.next()?;
        lines
            .take_while(|l| !l.starts_with("VmFlags"))
            .find_map(|l| kb_field(l, field))
    }

    /// The value of a `NAME:   123 kB` line named `name`.
    fn kb_field(line: &str, name: &str) -> Option<u64> {
        line.strip_prefix(name)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    }

    /// Opens `path` with `flags` and closes it again: the open's result.
    pub fn try_open(path: &str, flags: u32) -> Result<(), Errno> {
        let fd = open(path, flags)?;
        let _ = close(fd);
        Ok(())
    }
}

/// Runs `child` in a forked child (its result is the exit status) and waits for it.
pub fn in_child(child: impl FnOnce() -> i32) -> Result<peios_rt::process::WaitStatus, Errno> {
    use peios_rt::process::{fork, wait_pid, Fork};
    match fork()? {
        Fork::Child => peios_rt::sys::process::exit_group(child()),
        Fork::Parent(pid) => wait_pid(pid),
    }
}

/// The Peios-only parts of the suite.
pub mod peios {
    use peios_rt::process::WaitStatus;
    use peios_rt::syscall::syscall0;
    use peios_rt::Errno;

    /// Runs `child` in a forked child that first restricts its token (exit status 99
    /// when it cannot: not Peios) and waits for it.
    pub fn in_restricted_child(child: impl FnOnce() -> i32) -> Result<WaitStatus, Errno> {
        super::in_child(|| match restrict_self() {
            Ok(()) => child(),
            Err(_) => 99,
        })
    }

    /// Peios syscall 1024: restrict the caller's token (drop every privilege, Medium
    /// integrity). ENOSYS on Linux.
    pub fn restrict_self() -> Result<(), Errno> {
        // SAFETY: the syscall takes no arguments and only drops rights.
        let r = unsafe { syscall0(1024) };
        Errno::result(r).map(|_| ())
    }
}

/// Anonymous memory filled with a per-page pattern and checked back (the swap tests'
/// data: every page that went out must come back byte-identical).
pub mod pattern {
    use peios_rt::sys::mm::{madvise, mmap, munmap, MapFlags, Prot, MADV_PAGEOUT};
    use peios_rt::Errno;

    const PAGE: usize = 4096;
    const WORDS: usize = PAGE / 8;

    /// Word `i` of page `page` under `seed`.
    pub fn word(seed: u64, page: usize, i: usize) -> u64 {
        (((page as u64) << 20) | i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed
    }

    /// A region of anonymous memory the test owns.
    #[derive(Clone, Copy)]
    pub struct Region {
        /// First byte.
        pub base: usize,
        /// Length in pages.
        pub pages: usize,
    }

    impl Region {
        /// `MAP_NORESERVE`: without swap a fill must reach the OOM killer, not be
        /// refused by the overcommit heuristic up front.
        pub fn new(pages: usize) -> Result<Region, Errno> {
            // SAFETY: no MAP_FIXED: the kernel picks a free range.
            let base = unsafe {
                mmap(
                    0,
                    pages * PAGE,
                    Prot::RW,
                    MapFlags::PRIVATE | MapFlags::ANONYMOUS | MapFlags::NORESERVE,
                    -1,
                    0,
                )
            }?;
            Ok(Region {
                base: base as usize,
                pages,
            })
        }

        /// The first word of page `p`.
        pub fn page(&self, p: usize) -> *mut u64 {
            (self.base + p * PAGE) as *mut u64
        }

        /// Writes the pattern into pages `first, first + step, ...`.
        pub fn fill(&self, seed: u64, first: usize, step: usize) {
            for p in (first..self.pages).step_by(step) {
                let ptr = self.page(p);
                for i in 0..WORDS {
                    // SAFETY: inside the region, which this process owns.
                    unsafe { ptr.add(i).write_volatile(word(seed, p, i)) };
                }
            }
        }

        /// Pages `first, first + step, ...` whose contents differ from the pattern.
        pub fn mismatches(&self, seed: u64, first: usize, step: usize) -> usize {
            (first..self.pages)
                .step_by(step)
                .filter(|&p| {
                    let ptr = self.page(p);
                    // SAFETY: as in `fill`.
                    !(0..WORDS).all(|i| unsafe { ptr.add(i).read_volatile() } == word(seed, p, i))
                })
                .count()
        }

        /// `MADV_PAGEOUT` of the whole region.
        pub fn page_out(&self) -> Result<(), Errno> {
            // SAFETY: the region is this process's own mapping.
            unsafe { madvise(self.base as *mut u8, self.pages * PAGE, MADV_PAGEOUT) }
        }

        /// Unmaps the region.
        pub fn unmap(self) {
            // SAFETY: nothing refers into the region any more.
            let _ = unsafe { munmap(self.base as *mut u8, self.pages * PAGE) };
        }
    }
}
