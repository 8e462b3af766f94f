//! swapon and swapoff.

use crate::syscall::*;
use crate::Errno;
use core::ffi::CStr;

/// `__NR_swapon`.
pub const SWAPON: usize = 167;
/// `__NR_swapoff`.
pub const SWAPOFF: usize = 168;
/// `SWAP_FLAG_PREFER`: the low 15 bits of the flags are the priority.
pub const SWAP_FLAG_PREFER: u32 = 0x8000;

/// Turns on swapping to the device or file at `path`.
pub fn swapon(path: &CStr, flags: u32) -> Result<(), Errno> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    Errno::result(unsafe { syscall2(SWAPON, path.as_ptr() as usize, flags as usize) }).map(|_| ())
}

/// Turns off swapping to `path`, bringing its pages back into memory first.
pub fn swapoff(path: &CStr) -> Result<(), Errno> {
    // SAFETY: as for `swapon`.
    Errno::result(unsafe { syscall1(SWAPOFF, path.as_ptr() as usize) }).map(|_| ())
}
