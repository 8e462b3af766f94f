//! The vDSO: clock_gettime, gettimeofday, time and getcpu answered in user mode from the
//! [vvar] page the kernel maps just below this image (`__vvar_page` in `vdso.lds`).
//! Built by `kernel/build.rs` as an object for x86_64-unknown-none (position
//! independent, no core calls: a multiply and a shift turn ticks into nanoseconds)
//! and linked by rust-lld into a shared object the kernel maps into every program.
//! A clock it does not serve goes to the real system call.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::missing_safety_doc)]

use core::arch::asm;

#[path = "data.rs"]
mod data;

use data::{VdsoData, VDSO_HAS_RDTSCP, VDSO_MAGIC};

const CLOCK_REALTIME: i64 = 0;
const CLOCK_MONOTONIC: i64 = 1;
const CLOCK_MONOTONIC_RAW: i64 = 4;
const CLOCK_REALTIME_COARSE: i64 = 5;
const CLOCK_MONOTONIC_COARSE: i64 = 6;
const CLOCK_BOOTTIME: i64 = 7;
const SYS_GETTIMEOFDAY: u64 = 96;
const SYS_TIME: u64 = 201;
const SYS_CLOCK_GETTIME: u64 = 228;
const SYS_GETCPU: u64 = 309;
const NS_PER_SEC: u64 = 1_000_000_000;

/// `struct timespec`.
#[repr(C)]
pub struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// `struct timeval`.
#[repr(C)]
pub struct Timeval {
    tv_sec: i64,
    tv_usec: i64,
}

/// `struct timezone`.
#[repr(C)]
pub struct Timezone {
    tz_minuteswest: i32,
    tz_dsttime: i32,
}

/// The [vvar] page.
fn data() -> &'static VdsoData {
    let page: *const VdsoData;
    // SAFETY: computes the address of `__vvar_page` (defined by the linker script one
    // page below the image, where the kernel maps the data page read-only); no memory
    // is touched.
    unsafe {
        asm!("lea {}, [rip + __vvar_page]", out(reg) page, options(nomem, nostack, pure));
    }
    // SAFETY: the kernel maps [vvar] with every image it maps, filled before the
    // program starts and never changed after; `VdsoData` is plain integers.
    unsafe { &*page }
}

/// A raw two-argument system call.
fn syscall2(nr: u64, a: u64, b: u64) -> i64 {
    let ret: i64;
    // SAFETY: the syscall instruction with the Linux ABI; the kernel validates the
    // arguments and clobbers only rcx and r11 besides rax.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a, in("rsi") b,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// A raw three-argument system call.
fn syscall3(nr: u64, a: u64, b: u64, c: u64) -> i64 {
    let ret: i64;
    // SAFETY: as `syscall2`.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a, in("rsi") b,
             in("rdx") c, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// CLOCK_MONOTONIC in nanoseconds, as the kernel's `time::now_ns` computes it.
fn monotonic_ns(d: &VdsoData) -> u64 {
    // SAFETY: RDTSC is allowed in user mode (CR4.TSD clear) and has no side effects.
    let tsc = unsafe { core::arch::x86_64::_rdtsc() };
    let ticks = tsc.saturating_sub(d.tsc_at_boot);
    ((u128::from(ticks) * u128::from(d.tsc_ns_mult)) >> (d.ns_shift & 63)) as u64
}

/// Nanoseconds on `clock`, or `None` for a clock the vDSO leaves to the kernel.
fn clock_ns(clock: i64) -> Option<u64> {
    let d = data();
    if d.magic != VDSO_MAGIC {
        return None;
    }
    match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => {
            Some(d.realtime_at_boot_ns.wrapping_add(monotonic_ns(d)))
        }
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => {
            Some(monotonic_ns(d))
        }
        _ => None,
    }
}

/// `clock_gettime(2)`.
#[no_mangle]
pub unsafe extern "C" fn __vdso_clock_gettime(clock: i64, ts: *mut Timespec) -> i64 {
    match clock_ns(clock) {
        Some(ns) if !ts.is_null() => {
            // SAFETY: the caller passes a writable timespec, as for the system call (a
            // bad pointer faults in the caller's own memory).
            unsafe {
                (*ts).tv_sec = (ns / NS_PER_SEC) as i64;
                (*ts).tv_nsec = (ns % NS_PER_SEC) as i64;
            }
            0
        }
        _ => syscall2(SYS_CLOCK_GETTIME, clock as u64, ts as u64),
    }
}

/// `gettimeofday(2)`.
#[no_mangle]
pub unsafe extern "C" fn __vdso_gettimeofday(tv: *mut Timeval, tz: *mut Timezone) -> i64 {
    let Some(ns) = clock_ns(CLOCK_REALTIME) else {
        return syscall2(SYS_GETTIMEOFDAY, tv as u64, tz as u64);
    };
    // SAFETY: non-null pointers are the caller's writable structures, as for the
    // system call.
    unsafe {
        if !tv.is_null() {
            (*tv).tv_sec = (ns / NS_PER_SEC) as i64;
            (*tv).tv_usec = ((ns % NS_PER_SEC) / 1000) as i64;
        }
        if !tz.is_null() {
            (*tz).tz_minuteswest = 0;
            (*tz).tz_dsttime = 0;
        }
    }
    0
}

/// `time(2)`.
#[no_mangle]
pub unsafe extern "C" fn __vdso_time(t: *mut i64) -> i64 {
    let Some(ns) = clock_ns(CLOCK_REALTIME) else {
        return syscall2(SYS_TIME, t as u64, 0);
    };
    let secs = (ns / NS_PER_SEC) as i64;
    if !t.is_null() {
        // SAFETY: the caller's writable time_t, as for the system call.
        unsafe { *t = secs };
    }
    secs
}

/// `getcpu(2)`: from IA32_TSC_AUX through RDTSCP, where the kernel set it.
#[no_mangle]
pub unsafe extern "C" fn __vdso_getcpu(cpu: *mut u32, node: *mut u32, cache: *mut u8) -> i64 {
    let d = data();
    if d.magic != VDSO_MAGIC || d.flags & VDSO_HAS_RDTSCP == 0 {
        return syscall3(SYS_GETCPU, cpu as u64, node as u64, cache as u64);
    }
    let mut aux = 0u32;
    // SAFETY: RDTSCP is available (the kernel set the flag after checking CPUID) and
    // writes only `aux`.
    unsafe { core::arch::x86_64::__rdtscp(&mut aux) };
    // SAFETY: non-null pointers are the caller's writable integers.
    unsafe {
        if !cpu.is_null() {
            *cpu = aux & 0xfff;
        }
        if !node.is_null() {
            *node = aux >> 12;
        }
    }
    0
}
