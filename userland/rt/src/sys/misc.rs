//! Odds and ends: getrandom, uname, arch_prctl.

use super::nr;
use crate::syscall::*;
use crate::Errno;

/// `GRND_NONBLOCK`.
pub const GRND_NONBLOCK: u32 = 1;
/// `ARCH_SET_GS`.
pub const ARCH_SET_GS: u32 = 0x1001;
/// `ARCH_SET_FS`.
pub const ARCH_SET_FS: u32 = 0x1002;
/// `ARCH_GET_FS`.
pub const ARCH_GET_FS: u32 = 0x1003;
/// `ARCH_GET_GS`.
pub const ARCH_GET_GS: u32 = 0x1004;

/// Fills `buf` with random bytes; returns how many were written.
pub fn getrandom(buf: &mut [u8], flags: u32) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for its length.
    Errno::result(unsafe {
        syscall3(
            nr::GETRANDOM,
            buf.as_mut_ptr() as usize,
            buf.len(),
            flags as usize,
        )
    })
}

/// `struct utsname`: six NUL-padded 65-byte fields.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UtsName {
    /// Operating system name, e.g. "Linux".
    pub sysname: [u8; 65],
    /// Host name.
    pub nodename: [u8; 65],
    /// Kernel release.
    pub release: [u8; 65],
    /// Kernel version string.
    pub version: [u8; 65],
    /// Hardware name, e.g. "x86_64".
    pub machine: [u8; 65],
    /// NIS domain name.
    pub domainname: [u8; 65],
}

/// The text of a NUL-padded `utsname` field.
pub fn field_str(field: &[u8; 65]) -> &str {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    core::str::from_utf8(&field[..end]).unwrap_or("?")
}

/// Describes the running kernel.
pub fn uname() -> Result<UtsName, Errno> {
    let mut u = UtsName {
        sysname: [0; 65],
        nodename: [0; 65],
        release: [0; 65],
        version: [0; 65],
        machine: [0; 65],
        domainname: [0; 65],
    };
    // SAFETY: `u` is a writable utsname.
    let r = unsafe { syscall1(nr::UNAME, &mut u as *mut UtsName as usize) };
    Errno::result(r).map(|_| u)
}

/// Sets the FS base of the calling thread.
///
/// # Safety
/// Code that reads `fs:`-relative memory (this runtime's thread block) must find
/// valid memory there for as long as the thread runs.
pub unsafe fn arch_prctl_set_fs(base: usize) -> Result<(), Errno> {
    // SAFETY: the caller keeps `base` valid (contract above).
    Errno::result(unsafe { syscall2(nr::ARCH_PRCTL, ARCH_SET_FS as usize, base) }).map(|_| ())
}

/// Reads the FS base of the calling thread.
pub fn arch_prctl_get_fs() -> Result<usize, Errno> {
    let mut base: usize = 0;
    // SAFETY: `base` is a writable usize.
    let r = unsafe {
        syscall2(
            nr::ARCH_PRCTL,
            ARCH_GET_FS as usize,
            &mut base as *mut usize as usize,
        )
    };
    Errno::result(r).map(|_| base)
}
