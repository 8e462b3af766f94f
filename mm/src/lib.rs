//! Hardware-independent memory management for the Peios kernel, `no_std` + `alloc`,
//! unit-tested on the host.
//!
//! The kernel binds to:
//! * [`frame`]: the NUMA frame allocator;
//! * [`addr`]: [`addr::VirtAddr`], the user virtual address the page-table seam takes;
//! * [`aspace::AddressSpace`]: a process's address space (mmap family, fork,
//!   teardown), generic over the [`pagetable::PageTable`] the kernel implements,
//!   using a [`phys::FrameSource`] and a [`tlb::TlbFlush`] the kernel also supplies;
//! * [`fault`]: the page-fault entry point [`aspace::AddressSpace::fault`] and its
//!   wait seam ([`fault::FaultFuture`]);
//! * [`hugetlb`]: the per-node huge-page pools;
//! * [`ksm`]: same-page merging (the stable frames and their statistics);
//! * [`oom`]: the OOM killer's badness and victim choice;
//! * [`pagecache`]: file objects and their page caches;
//! * [`procfs`]: `/proc/<pid>/maps`, `smaps` and `status` text;
//! * [`block`]: the block-device seam (async sector I/O) and a RAM disk;
//! * [`swap`]: swap areas, swap entries, the swap cache, swap-in faults and reclaim;
//! * [`commit`]: the overcommit policy and the commit charge;
//! * [`damon`]: the data-access monitor (regions, sampling, aggregation);
//! * [`userfaultfd`]: the missing-mode userfaultfd context (a fault interceptor);
//! * [`cpu`]: the "which CPU am I on?" hook ([`cpu::set_current_cpu_hook`]).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(test)]
extern crate std;

pub mod addr;
pub mod aspace;
pub mod block;
pub mod commit;
pub mod cpu;
pub mod damon;
pub mod errno;
pub mod fault;
pub mod frame;
pub mod hugetlb;
pub mod hugetlb_file;
pub mod hugetlb_map;
pub mod hugetlb_subpool;
pub mod kmem;
pub mod ksm;
pub mod oom;
pub mod pagecache;
pub mod pagetable;
pub mod phys;
pub mod procfs;
pub mod swap;
pub mod thp;
pub mod tlb;
pub mod userfaultfd;
pub mod vma;

pub use errno::MmError;
