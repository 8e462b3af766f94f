//! Error enums of the frame allocator, independent of the syscall `Errno`.

use core::fmt;

use super::types::{NodeId, Order, Pfn};

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// No permitted node can supply the block without going under its `min` watermark.
    /// An `alloc_wait` caller waits instead of seeing this.
    NoMemory,
    /// The policy names no node that exists (an empty or out-of-range mask or node).
    InvalidPolicy,
    /// The CPU is not one the allocator was built with.
    UnknownCpu,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::NoMemory => f.write_str("no memory on any permitted node"),
            AllocError::InvalidPolicy => f.write_str("placement policy names no existing node"),
            AllocError::UnknownCpu => f.write_str("unknown CPU"),
        }
    }
}

/// Why a free was refused. Every variant is a caller bug; the frame is left untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The frame is not in any range the allocator manages.
    NotManaged(Pfn),
    /// The frame is not aligned to the order it was freed with.
    Misaligned(Pfn, Order),
    /// The block is not allocated with this order (a double free, or the wrong order).
    NotAllocated(Pfn, Order),
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreeError::NotManaged(pfn) => write!(f, "{pfn} is not managed by the frame allocator"),
            FreeError::Misaligned(pfn, order) => write!(f, "{pfn} is not aligned to {order}"),
            FreeError::NotAllocated(pfn, order) => {
                write!(f, "{pfn} is not an allocated block of {order}")
            }
        }
    }
}

/// Why the memory topology handed to the constructor was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyError {
    /// The distance matrix is empty, not square, or has more than `MAX_NUMNODES` nodes.
    BadDistanceMatrix,
    /// A range names a node outside the distance matrix.
    UnknownNode(NodeId),
    /// A CPU is mapped to a node outside the distance matrix.
    UnknownCpuNode(u32, NodeId),
    /// More CPUs than `sched::MAX_CPUS`.
    TooManyCpus,
    /// Two ranges overlap.
    Overlap(Pfn),
    /// A node spans more frames than the metadata can index (2^32).
    NodeTooLarge(NodeId),
    /// No node has any memory.
    NoMemory,
    /// The per-CPU cache tunables are out of range (`batch` 1..=high, `high + batch` within capacity).
    BadCacheTunables,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyError::BadDistanceMatrix => f.write_str("bad SLIT distance matrix"),
            TopologyError::UnknownNode(n) => write!(f, "memory range on unknown {n}"),
            TopologyError::UnknownCpuNode(c, n) => write!(f, "cpu{c} on unknown {n}"),
            TopologyError::TooManyCpus => f.write_str("more CPUs than MAX_CPUS"),
            TopologyError::Overlap(pfn) => write!(f, "memory ranges overlap at {pfn}"),
            TopologyError::NodeTooLarge(n) => write!(f, "{n} spans too many frames"),
            TopologyError::NoMemory => f.write_str("no usable memory"),
            TopologyError::BadCacheTunables => f.write_str("bad per-CPU cache batch/high"),
        }
    }
}
