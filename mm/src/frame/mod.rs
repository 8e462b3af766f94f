//! Physical frame allocation: per-node buddy allocators, per-CPU caches, remote
//! frees, NUMA placement, watermarks with waiting allocations, zeroing, statistics
//! and Linux-format reports.
//!
//! The kernel builds one [`FrameAllocator`] at boot from the memory map intersected
//! with the SRAT ([`NodeRange`]s), the SLIT ([`DistanceMatrix`]) and the CPU-to-node
//! map; each CPU then allocates and frees through its [`CpuHandle`]. The kernel
//! supplies [`FrameZeroer`], and later [`Reclaimer`] and [`OomHandler`].

mod allocator;
mod buddy;
mod error;
mod node;
mod nodemask;
mod percpu_cache;
mod policy;
mod remote_free;
pub mod report;
mod stats;
mod topology;
mod types;
mod wait;
mod watermark;
mod zero;

#[cfg(test)]
mod tests;

pub use allocator::{CpuHandle, DrainReport, FrameAllocator, FrameConfig};
pub use error::{AllocError, FreeError, TopologyError};
pub use nodemask::NodeMask;
pub use percpu_cache::PCP_CAPACITY;
pub use policy::{InterleaveCursor, Policy};
pub use stats::{CpuCacheStats, NodeStats};
pub use topology::{DistanceMatrix, NodeRange, LOCAL_DISTANCE, REMOTE_DISTANCE};
pub use types::{
    NodeId, Order, PageCount, Pfn, MAX_NUMNODES, MAX_ORDER, NR_ORDERS, PAGE_SHIFT, PAGE_SIZE,
};
pub use wait::AllocWait;
pub use watermark::{
    default_min_free_kbytes, NoOom, NoReclaim, OomHandler, OomRequest, Reclaimer, Watermarks,
    DEFAULT_WATERMARK_SCALE_FACTOR,
};
pub use zero::FrameZeroer;
