//! Physical and virtual memory in the kernel: usable ranges from the memory map, a bump
//! allocator for the page tables and the heap, the kernel heap itself, per-node accounting
//! from SRAT, the binding of the NUMA frame allocator, and user address spaces.

pub mod aspace;
pub mod bootstrap;
pub mod frames;
pub mod heap;
pub mod hugetlb;
pub mod kbuf;
pub mod numa;
pub mod pagetable;
pub mod thp_pool;
pub mod thp_ready;
