//! Identifiers shared by every crate that reasons about CPUs.

/// The most CPUs the kernel brings online.
pub const MAX_CPUS: usize = 64;

/// A logical CPU number: 0 is the boot CPU, the others follow MADT order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CpuId(pub u32);

impl CpuId {
    /// The CPU number as an index into per-CPU arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl core::fmt::Display for CpuId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cpu{}", self.0)
    }
}
