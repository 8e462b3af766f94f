//! Memory services that act on processes: reclaim (a kswapd task per node) and swap
//! I/O, the OOM killer and reaper, the khugepaged, ksmd and DAMON scanners, and
//! userfaultfd. They sit above `proc` (they walk processes and park threads) and below
//! the system calls and files that drive them; `mem` below them knows nothing of
//! processes.

#![deny(unsafe_code)]

pub mod damon;
pub mod hugetlb_unmap;
pub mod hung;
pub mod khugepaged;
pub mod ksmd;
pub mod oom;
pub mod reclaim;
pub mod shmem_hole;
pub mod swap;
pub mod userfaultfd;
pub mod vmstat;
