//! Physical frame allocation: per-node buddy allocators, per-CPU caches, remote
//! frees, NUMA placement, watermarks with waiting allocations, zeroing, statistics
//! and Linux-format reports.
//!
//! The kernel builds one [`FrameAllocator`] at boot from the memory map intersected
//! with the SRAT ([`NodeRange`]s), the SLIT ([`DistanceMatrix`]) and the CPU-to-node
//! map; each CPU then allocates and frees through its [`CpuHandle`]. The kernel
//! supplies [`FrameZeroer`], and later [`Reclaimer`] and [`OomHandler`].
//!
//! ```
//! use mm::frame::{report, DistanceMatrix, FrameAllocator, FrameConfig, NodeId, NodeRange, Order, Policy};
//! use sched::CpuId;
//!
//! // Two nodes of 64 MiB, CPUs 0-1 on node 0 and 2-3 on node 1, SLIT 10/21.
//! let ranges = [
//!     NodeRange { node: NodeId(0), phys_start: 1 << 20, phys_end: 65 << 20 },
//!     NodeRange { node: NodeId(1), phys_start: 1 << 32, phys_end: (1 << 32) + (64 << 20) },
//! ];
//! let slit = DistanceMatrix::new(2, vec![10, 21, 21, 10]).unwrap();
//! let cpus = [NodeId(0), NodeId(0), NodeId(1), NodeId(1)];
//! let frames = FrameAllocator::new(&ranges, slit, &cpus, FrameConfig::default()).unwrap();
//!
//! // On CPU 2 (the kernel uses `cpu_unchecked` with interrupts off):
//! let mut cpu = frames.try_cpu(CpuId(2)).unwrap();
//! let pfn = cpu.alloc_frame().unwrap();
//! assert_eq!(frames.node_of(pfn), Some(NodeId(1)));
//! let huge = cpu.alloc(Order::HUGE_2M, Policy::Preferred(NodeId(0))).unwrap();
//! cpu.free_frame(pfn).unwrap();
//! cpu.free(huge, Order::HUGE_2M).unwrap();
//! assert!(report::zoneinfo(&frames).starts_with("Node 0, zone   Normal\n"));
//! ```

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
mod wait_list;
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
    NodeId, Order, PageCount, Pfn, HUGE_PAGE_SIZE, MAX_NUMNODES, MAX_ORDER, NR_ORDERS, PAGE_SHIFT,
    PAGE_SIZE,
};
pub use wait::AllocWait;
pub use watermark::{
    default_min_free_kbytes, NoOom, NoReclaim, OomHandler, OomRequest, Reclaimer, Watermarks,
    DEFAULT_WATERMARK_SCALE_FACTOR,
};
pub use zero::FrameZeroer;
