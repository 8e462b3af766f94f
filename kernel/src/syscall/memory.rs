//! Memory syscalls: anonymous mmap, munmap, mprotect, brk, madvise (the basic forms; the
//! full mm surface is the address-space issue's).

use super::errno::{Errno, SysResult};
use crate::{
    mem::aspace::{Prot, MMAP_TOP, PAGE},
    proc::thread::Thread,
    arch::usermode::USER_ADDRESS_END,
};
use core::sync::atomic::Ordering;

const PROT_MASK: u64 = 0x7;
const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_32BIT: u64 = 0x40;
const MAP_GROWSDOWN: u64 = 0x100;
const MAP_DENYWRITE: u64 = 0x800;
const MAP_EXECUTABLE: u64 = 0x1000;
const MAP_LOCKED: u64 = 0x2000;
const MAP_NORESERVE: u64 = 0x4000;
const MAP_POPULATE: u64 = 0x8000;
const MAP_NONBLOCK: u64 = 0x1_0000;
const MAP_STACK: u64 = 0x2_0000;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
/// Refused on this kernel (privacy: pages would not be zeroed).
const MAP_UNINITIALIZED: u64 = 0x400_0000;
const KNOWN_FLAGS: u64 = MAP_SHARED_VALIDATE | MAP_FIXED | MAP_ANONYMOUS | MAP_32BIT | MAP_GROWSDOWN | MAP_DENYWRITE
    | MAP_EXECUTABLE | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_FIXED_NOREPLACE;

fn page_aligned(x: u64) -> bool {
    x.is_multiple_of(PAGE)
}

pub fn mmap(thread: &Thread, addr: u64, len: u64, prot: u64, flags: u64, fd: u64, offset: u64) -> SysResult {
    if len == 0 || prot & !PROT_MASK != 0 || flags & MAP_UNINITIALIZED != 0 {
        return Err(Errno::EINVAL);
    }
    let kind = flags & MAP_SHARED_VALIDATE;
    if kind == 0 || (kind == MAP_SHARED_VALIDATE && flags & !KNOWN_FLAGS != 0) {
        return Err(Errno::EINVAL);
    }
    let _ = MAP_SHARED;
    if flags & MAP_ANONYMOUS == 0 {
        // File mappings come with the page cache.
        let _ = (fd, offset);
        return Err(Errno::ENODEV);
    }
    let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::ENOMEM)?;
    if len > USER_ADDRESS_END {
        return Err(Errno::ENOMEM);
    }
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    if fixed && !page_aligned(addr) {
        return Err(Errno::EINVAL);
    }
    let min_addr = crate::registry::mmap_min_addr();
    let space = thread.process.aspace.read().clone();
    let prot = Prot::from_bits(prot);
    let shared = kind != MAP_PRIVATE;
    let start = if fixed {
        if addr.checked_add(len).is_none_or(|end| end > USER_ADDRESS_END) {
            return Err(Errno::ENOMEM);
        }
        if addr < min_addr && !thread.process.token.read().has_privilege(security::Privilege::SeTcbPrivilege) {
            return Err(Errno::EPERM);
        }
        space.map_fixed_shared(addr, len, prot, flags & MAP_FIXED != 0, shared)?;
        addr
    } else {
        let below = if flags & MAP_32BIT != 0 { 1 << 31 } else { MMAP_TOP };
        space.map_anywhere(len, addr & !(PAGE - 1), min_addr, below, prot, shared)?
    };
    // Shared anonymous pages exist from the start, so a fork shares every one of them
    // (until shared memory objects back them).
    if (flags & MAP_POPULATE != 0 || shared) && (prot.read || prot.write || prot.exec) {
        let mut page = start;
        while page < start + len {
            let _ = space.populate(page, &[], PAGE, prot);
            page += PAGE;
        }
    }
    Ok(start)
}

pub fn munmap(thread: &Thread, addr: u64, len: u64) -> SysResult {
    if !page_aligned(addr) || len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::EINVAL)?;
    if addr.checked_add(len).is_none_or(|end| end > USER_ADDRESS_END) {
        return Err(Errno::EINVAL);
    }
    thread.process.aspace.read().clone().unmap(addr, len)?;
    Ok(0)
}

pub fn mprotect(thread: &Thread, addr: u64, len: u64, prot: u64) -> SysResult {
    if !page_aligned(addr) || prot & !PROT_MASK & !0x0300_0000 != 0 {
        return Err(Errno::EINVAL);
    }
    let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::ENOMEM)?;
    if len == 0 {
        return Ok(0);
    }
    if addr.checked_add(len).is_none_or(|end| end > USER_ADDRESS_END) {
        return Err(Errno::ENOMEM);
    }
    thread.process.aspace.read().clone().protect(addr, len, Prot::from_bits(prot & PROT_MASK))?;
    Ok(0)
}

pub fn brk(thread: &Thread, addr: u64) -> SysResult {
    Ok(thread.process.aspace.read().clone().set_brk(addr))
}

pub fn madvise(thread: &Thread, addr: u64, len: u64, advice: u64) -> SysResult {
    const MADV_DONTNEED: u64 = 4;
    if !page_aligned(addr) {
        return Err(Errno::EINVAL);
    }
    match advice {
        0..=3 | 8..=19 | 100..=101 => Ok(0),
        MADV_DONTNEED => {
            // Drop the pages; the mapping stays and refaults zero-filled.
            let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::EINVAL)?;
            let space = thread.process.aspace.read().clone();
            if let Some(v) = space.vma_at(addr) {
                let end = (addr + len).min(v.end);
                space.unmap(addr, end - addr)?;
                space.map_fixed(addr, end - addr, v.prot, false)?;
            }
            let _ = thread.process.live_threads.load(Ordering::Relaxed);
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

fn read_iovecs(addr: u64, count: u64) -> SysResult<alloc::vec::Vec<(u64, u64)>> {
    if count > 1024 {
        return Err(Errno::EINVAL);
    }
    let mut out = alloc::vec::Vec::with_capacity(count as usize);
    for i in 0..count {
        let [base, len]: [u64; 2] = crate::arch::uaccess::read_user(addr + i * 16)?;
        if len > isize::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        out.push((base, len));
    }
    Ok(out)
}

/// `process_vm_readv` / `process_vm_writev`: gated by PROCESS_VM_READ / PROCESS_VM_WRITE on
/// the target (EPERM); copies through a kernel buffer, stopping at the first fault.
#[allow(clippy::too_many_arguments)]
pub fn process_vm_rw(thread: &Thread, pid: u64, local: u64, local_count: u64, remote: u64, remote_count: u64, flags: u64, write: bool) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let local = read_iovecs(local, local_count)?;
    let remote = read_iovecs(remote, remote_count)?;
    let target = crate::proc::lookup(u32::try_from(pid).map_err(|_| Errno::ESRCH)?).ok_or(Errno::ESRCH)?;
    let want = if write { security::AccessMask::PROCESS_VM_WRITE } else { security::AccessMask::PROCESS_VM_READ };
    crate::proc::check_access(&thread.process, &target, want)?;
    let space = target.aspace.read().clone();
    let mut total = 0u64;
    let (mut li, mut loff, mut ri, mut roff) = (0usize, 0u64, 0usize, 0u64);
    let mut buf = [0u8; 4096];
    while li < local.len() && ri < remote.len() {
        let (lbase, llen) = local[li];
        let (rbase, rlen) = remote[ri];
        if loff == llen {
            li += 1;
            loff = 0;
            continue;
        }
        if roff == rlen {
            ri += 1;
            roff = 0;
            continue;
        }
        let n = ((llen - loff).min(rlen - roff) as usize).min(buf.len());
        let moved = if write {
            crate::arch::uaccess::copy_from_user(&mut buf[..n], lbase + loff)?;
            space.access(rbase + roff, &mut buf[..n], true)
        } else {
            let got = space.access(rbase + roff, &mut buf[..n], false);
            crate::arch::uaccess::copy_to_user(lbase + loff, &buf[..got])?;
            got
        };
        total += moved as u64;
        if moved < n {
            break;
        }
        loff += n as u64;
        roff += n as u64;
    }
    if total == 0 && local.iter().any(|l| l.1 > 0) && remote.iter().any(|r| r.1 > 0) {
        return Err(Errno::EFAULT);
    }
    Ok(total)
}
