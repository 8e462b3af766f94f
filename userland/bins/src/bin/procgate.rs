//! `procgate`: /proc introspection gated by the target's security descriptor. A
//! restricted process may read its own maps/smaps/status/pagemap (pagemap without
//! physical frame numbers) but not a privileged sibling's (EACCES), nor its memory
//! through /proc/<pid>/mem (EACCES) or process_vm_readv (EPERM). The privileged parent
//! reads the sibling's maps, and its memory through /proc/<pid>/mem and
//! process_vm_readv, and sees real frame numbers in its own pagemap. Peios-only.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::sync::atomic::{AtomicU64, Ordering};
use peios_bins::files::{read_file, try_open};
use peios_bins::peios::restrict_self;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::process::{fork, wait_pid, Fork, WaitStatus};
use peios_rt::sys::fs::{close, lseek_set, openat, read, AT_FDCWD, O_RDONLY};
use peios_rt::sys::process::{exit_group, kill};
use peios_rt::syscall::syscall6;
use peios_rt::time::sleep_ms;

peios_rt::main!(main);

/// A value the sibling keeps in memory; the parent reads it across processes.
static MARKER: AtomicU64 = AtomicU64::new(0);
const MARK: u64 = 0x5045_494f_535f_4d4b;

fn process_vm_readv(pid: i32, addr: usize, out: &mut [u8]) -> Result<usize, Errno> {
    let local = [out.as_mut_ptr() as usize, out.len()];
    let remote = [addr, out.len()];
    // SAFETY: both iovecs describe valid memory of the right length (ours and the
    // target's address); the kernel copies into `out` only.
    let r = unsafe {
        syscall6(
            310,
            pid as usize,
            local.as_ptr() as usize,
            1,
            remote.as_ptr() as usize,
            1,
            0,
        )
    };
    Errno::result(r)
}

fn read_at(path: &str, offset: u64, out: &mut [u8]) -> Result<usize, Errno> {
    let mut p = Vec::from(path.as_bytes());
    p.push(0);
    let c = core::ffi::CStr::from_bytes_with_nul(&p).map_err(|_| Errno::EINVAL)?;
    let fd = openat(AT_FDCWD, c, O_RDONLY, 0)?;
    let r = lseek_set(fd, offset).and_then(|_| read(fd, out));
    let _ = close(fd);
    r
}

fn pagemap_of(addr: usize) -> Result<u64, Errno> {
    let mut entry = [0u8; 8];
    read_at("/proc/self/pagemap", (addr / 4096 * 8) as u64, &mut entry)?;
    Ok(u64::from_le_bytes(entry))
}

fn restricted(sibling: i32) -> i32 {
    let mut checks = Checks::new("procgate(restricted)");
    if let Err(e) = restrict_self() {
        checks.check("restrict", false, format_args!("{}", e));
        return checks.finish();
    }
    for file in [
        "maps",
        "smaps",
        "status",
        "numa_maps",
        "pagemap",
        "oom_score",
        "mem",
    ] {
        let path = format!("/proc/{}/{}", sibling, file);
        checks.expect_errno(
            &format!("{}-eacces", file),
            try_open(&path, O_RDONLY),
            Errno::EACCES,
        );
    }
    let mut buf = [0u8; 8];
    checks.expect_errno(
        "process_vm_readv-eperm",
        process_vm_readv(sibling, MARKER.as_ptr() as usize, &mut buf),
        Errno::EPERM,
    );
    let own = read_file("/proc/self/maps");
    checks.check(
        "own-maps",
        own.as_ref().is_ok_and(|m| m.contains("[stack]")),
        format_args!("{} bytes", own.map(|m| m.len()).unwrap_or(0)),
    );
    MARKER.store(1, Ordering::SeqCst);
    let entry = pagemap_of(MARKER.as_ptr() as usize);
    checks.check(
        "own-pagemap-no-pfn",
        matches!(entry, Ok(e) if e >> 63 == 1 && e & ((1 << 55) - 1) == 0),
        format_args!("entry {:x?}", entry),
    );
    checks.finish()
}

fn main(_args: &Args) -> i32 {
    let mut checks = Checks::new("procgate");
    match fork() {
        Ok(Fork::Child) => exit_group(if restrict_self() == Err(Errno::ENOSYS) {
            38
        } else {
            0
        }),
        Ok(Fork::Parent(pid)) => {
            if wait_pid(pid) == Ok(WaitStatus::Exited(38)) {
                println!("procgate: not Peios: nothing to check");
                return 0;
            }
        }
        Err(e) => {
            checks.check("fork", false, format_args!("{}", e));
            return checks.finish();
        }
    }
    let sibling = match fork() {
        Ok(Fork::Child) => {
            MARKER.store(MARK, Ordering::SeqCst);
            loop {
                sleep_ms(20);
            }
        }
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            checks.check("fork", false, format_args!("{}", e));
            return checks.finish();
        }
    };
    sleep_ms(50);
    let st = match fork() {
        Ok(Fork::Child) => exit_group(restricted(sibling)),
        Ok(Fork::Parent(pid)) => wait_pid(pid),
        Err(e) => Err(e),
    };
    checks.check(
        "restricted-refused",
        st == Ok(WaitStatus::Exited(0)),
        format_args!("{:?}", st),
    );

    let maps = read_file(&format!("/proc/{}/maps", sibling));
    checks.check(
        "privileged-reads-maps",
        maps.as_ref().is_ok_and(|m| m.contains("[stack]")),
        format_args!("{:?}", maps.as_ref().map(|m| m.len())),
    );
    let mut buf = [0u8; 8];
    let via_mem = read_at(
        &format!("/proc/{}/mem", sibling),
        MARKER.as_ptr() as u64,
        &mut buf,
    )
    .map(|_| u64::from_le_bytes(buf));
    checks.check(
        "privileged-reads-mem",
        via_mem == Ok(MARK),
        format_args!("{:x?}", via_mem),
    );
    let mut buf2 = [0u8; 8];
    let via_vm = process_vm_readv(sibling, MARKER.as_ptr() as usize, &mut buf2)
        .map(|_| u64::from_le_bytes(buf2));
    checks.check(
        "privileged-process_vm_readv",
        via_vm == Ok(MARK),
        format_args!("{:x?}", via_vm),
    );
    MARKER.store(2, Ordering::SeqCst);
    let entry = pagemap_of(MARKER.as_ptr() as usize);
    checks.check(
        "privileged-pagemap-pfn",
        matches!(entry, Ok(e) if e >> 63 == 1 && e & ((1 << 55) - 1) != 0),
        format_args!("entry {:x?}", entry),
    );
    let _ = kill(sibling, 9);
    let _ = wait_pid(sibling);
    checks.finish()
}
