//! Scheduling: sched_yield, CPU affinity, getcpu.

use super::nr;
use crate::syscall::*;
use crate::Errno;

/// A CPU mask of up to 1024 CPUs (`cpu_set_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuSet {
    bits: [u64; 16],
}

impl CpuSet {
    /// The largest CPU index + 1 a set can hold.
    pub const CAPACITY: usize = 1024;

    /// An empty set.
    pub const fn new() -> CpuSet {
        CpuSet { bits: [0; 16] }
    }

    /// A set holding only `cpu`.
    pub fn single(cpu: usize) -> CpuSet {
        let mut s = CpuSet::new();
        s.set(cpu);
        s
    }

    /// Adds `cpu` (ignored past [`CpuSet::CAPACITY`]).
    pub fn set(&mut self, cpu: usize) {
        if cpu < Self::CAPACITY {
            self.bits[cpu / 64] |= 1 << (cpu % 64);
        }
    }

    /// True when `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        cpu < Self::CAPACITY && self.bits[cpu / 64] & (1 << (cpu % 64)) != 0
    }

    /// Number of CPUs in the set.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The CPUs in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..Self::CAPACITY).filter(move |&c| self.contains(c))
    }
}

impl Default for CpuSet {
    fn default() -> Self {
        CpuSet::new()
    }
}

/// Yields the CPU.
pub fn sched_yield() {
    // SAFETY: no arguments, no memory effects.
    unsafe {
        syscall0(nr::SCHED_YIELD);
    }
}

/// Restricts thread `tid` (0 = caller) to the CPUs in `set`.
pub fn sched_setaffinity(tid: i32, set: &CpuSet) -> Result<(), Errno> {
    // SAFETY: `set` is a valid CpuSet of the size passed; the kernel only reads it.
    let r = unsafe {
        syscall3(
            nr::SCHED_SETAFFINITY,
            tid as usize,
            core::mem::size_of::<CpuSet>(),
            set as *const CpuSet as usize,
        )
    };
    Errno::result(r).map(|_| ())
}

/// The CPUs thread `tid` (0 = caller) may run on.
pub fn sched_getaffinity(tid: i32) -> Result<CpuSet, Errno> {
    let mut set = CpuSet::new();
    // SAFETY: `set` is writable for the size passed.
    let r = unsafe {
        syscall3(
            nr::SCHED_GETAFFINITY,
            tid as usize,
            core::mem::size_of::<CpuSet>(),
            &mut set as *mut CpuSet as usize,
        )
    };
    Errno::result(r).map(|_| set)
}

/// `getcpu(&cpu, &node, NULL)`: the CPU and NUMA node the caller runs on.
pub fn getcpu() -> Result<(u32, u32), Errno> {
    let (mut cpu, mut node) = (0u32, 0u32);
    // SAFETY: both outputs are valid writable u32s; the cache argument is null.
    let r = unsafe {
        syscall3(
            nr::GETCPU,
            &mut cpu as *mut u32 as usize,
            &mut node as *mut u32 as usize,
            0,
        )
    };
    Errno::result(r).map(|_| (cpu, node))
}
