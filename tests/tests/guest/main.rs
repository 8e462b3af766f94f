//! Every test that boots the kernel in QEMU, in one test binary (one module per area),
//! so the harness keeps its threads busy across areas instead of waiting at the end of
//! each binary for its slowest boot. Run one area with `cargo test --test guest swap::`.

mod block;
mod boot;
mod debian;
mod executor;
mod ext4;
mod frames;
mod heap;
mod hugepriv;
mod hugetrunc;
mod memctl;
mod privswap;
mod sharedfile;
mod shmem;
mod shmswap;
mod stressng;
mod swap;
mod swap_interop;
mod swapfile;
mod swappiness;
mod thp;
mod uffd_fork;
mod userfaultfd;
mod userland;
