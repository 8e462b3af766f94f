//! Identity and system information: uname, getrandom, prlimit64, uids from the token.

use crate::{
    arch::uaccess::{copy_to_user, read_user, write_user},
    proc::{self, thread::Thread, Rlimit, RLIM_NLIMITS},
};
use errno::{Errno, SysResult};
use security::{AccessMask, Privilege};

pub fn uname(buf: u64) -> SysResult {
    let mut uts = [0u8; 6 * 65];
    for (i, field) in [
        "Peios",
        "peios",
        "6.12.0-peios",
        "#1 SMP",
        "x86_64",
        "(none)",
    ]
    .iter()
    .enumerate()
    {
        uts[i * 65..i * 65 + field.len()].copy_from_slice(field.as_bytes());
    }
    copy_to_user(buf, &uts)?;
    Ok(0)
}

/// `sysinfo(2)`: uptime, load, memory and swap in pages (`mem_unit` = 4096), and the
/// number of processes, in Linux's 112-byte `struct sysinfo`.
pub fn sysinfo(info: u64) -> SysResult {
    let alloc = crate::mem::frames::allocator();
    let (total, free, _, _) = mm::frame::report::totals(alloc);
    let (swap_total, swap_free) = crate::memd::swap::swap().totals();
    let (tasks, _) = crate::proc::limits::nr_tasks_and_last_pid();
    let uptime = crate::time::now_ns() / 1_000_000_000;
    let mut out = [0u8; 112];
    let mut put = |at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &uptime.to_le_bytes());
    // loads[3] at 8: 0 (no load average is kept).
    put(32, &total.0.to_le_bytes());
    put(40, &free.0.to_le_bytes());
    // sharedram, bufferram: 0.
    put(64, &swap_total.to_le_bytes());
    put(72, &swap_free.to_le_bytes());
    put(80, &u16::try_from(tasks).unwrap_or(u16::MAX).to_le_bytes());
    // totalhigh, freehigh: 0.
    put(104, &4096u32.to_le_bytes());
    copy_to_user(info, &out)?;
    Ok(0)
}

pub fn getrandom(buf: u64, len: u64, flags: u64) -> SysResult {
    if flags & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    let len = len.min(33_554_431);
    crate::arch::uaccess::check_user_range(buf, len as usize)?;
    let mut chunk = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = ((len - done) as usize).min(chunk.len());
        crate::random::fill(&mut chunk[..n]);
        copy_to_user(buf + done, &chunk[..n])?;
        done += n as u64;
    }
    Ok(len)
}

/// The caller's uid (from its token's user SID).
pub fn uid(thread: &Thread) -> u32 {
    thread.process.token.read().uid()
}

/// The caller's gid (from its token's primary group).
pub fn gid(thread: &Thread) -> u32 {
    thread.process.token.read().gid()
}

pub fn prlimit64(thread: &Thread, pid: u64, resource: u64, new: u64, old: u64) -> SysResult {
    let resource = usize::try_from(resource)
        .ok()
        .filter(|&r| r < RLIM_NLIMITS)
        .ok_or(Errno::EINVAL)?;
    let target = if pid == 0 || pid == u64::from(thread.process.pid) {
        thread.process.clone()
    } else {
        proc::process_by_id(pid)?
    };
    let wanted = if new != 0 {
        AccessMask::PROCESS_SET_QUOTA
    } else {
        AccessMask::PROCESS_QUERY_LIMITED_INFORMATION
    };
    proc::check_access(&thread.process, &target, wanted)?;
    let requested = if new != 0 {
        let [cur, max]: [u64; 2] = read_user(new)?;
        if cur > max {
            return Err(Errno::EINVAL);
        }
        Some(Rlimit { cur, max })
    } else {
        None
    };
    let previous = {
        let mut limits = target.rlimits.lock();
        let previous = limits[resource];
        if let Some(r) = requested {
            if r.max > previous.max
                && !thread
                    .process
                    .token
                    .read()
                    .has_privilege(Privilege::SeIncreaseQuotaPrivilege)
            {
                return Err(Errno::EPERM);
            }
            limits[resource] = r;
        }
        previous
    };
    if old != 0 {
        write_user(old, &[previous.cur, previous.max])?;
    }
    Ok(0)
}
