//! `capget` and `capset`: Linux capabilities as a view of the token's privileges.
//! Peios has no capability sets; each capability whose Linux check a privilege replaces
//! reads as *permitted* while the token holds that privilege and as *effective* while it
//! is enabled (the other capabilities are never set, inheritable is always empty).
//! `capset` is NT's privilege adjustment in Linux words: clearing an effective bit
//! disables the privilege, setting one re-enables a held one, and clearing a permitted
//! bit removes the privilege from the token for good. Nothing can be raised past what
//! the token holds (EPERM).

use crate::{
    arch::uaccess::{copy_from_user, copy_to_user, read_user, write_user},
    proc::{self, thread::Thread},
};
use alloc::sync::Arc;
use errno::{Errno, SysResult};
use security::{AccessMask, Privilege};

/// `_LINUX_CAPABILITY_VERSION_1`: one 32-bit word per set.
const VERSION_1: u32 = 0x1998_0330;
/// `_LINUX_CAPABILITY_VERSION_2` (deprecated, same layout as 3).
const VERSION_2: u32 = 0x2007_1026;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

/// Each privilege and the capability (bit number) whose Linux check it replaces.
const CAPABILITY_OF: [(Privilege, u32); 9] = [
    (Privilege::SeLoadDriverPrivilege, 16),     // CAP_SYS_MODULE
    (Privilege::SeTcbPrivilege, 17),            // CAP_SYS_RAWIO
    (Privilege::SeDebugPrivilege, 19),          // CAP_SYS_PTRACE
    (Privilege::SeCreatePagefilePrivilege, 21), // CAP_SYS_ADMIN (swapon's check)
    (Privilege::SeShutdownPrivilege, 22),       // CAP_SYS_BOOT
    (Privilege::SeIncreaseBasePriorityPrivilege, 23), // CAP_SYS_NICE
    (Privilege::SeIncreaseQuotaPrivilege, 24),  // CAP_SYS_RESOURCE
    (Privilege::SeSystemtimePrivilege, 25),     // CAP_SYS_TIME
    (Privilege::SeLockMemoryPrivilege, 14),     // CAP_IPC_LOCK
];

/// Reads `N` 32-bit words.
fn read_words<const N: usize>(addr: u64) -> SysResult<[u32; N]> {
    let mut bytes = [[0u8; 4]; N];
    copy_from_user(bytes.as_flattened_mut(), addr)?;
    Ok(bytes.map(u32::from_ne_bytes))
}

/// Writes 32-bit words.
fn write_words(addr: u64, words: &[u32]) -> SysResult<()> {
    let mut bytes = [0u8; 24];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    copy_to_user(addr, &bytes[..words.len() * 4])
}

/// The `pid` of a `__user_cap_header_struct` (`{ u32 version; int pid; }`).
fn header_pid(header: u64) -> SysResult<i32> {
    let [_, pid] = read_words::<2>(header)?;
    Ok(pid as i32)
}

/// The number of `__user_cap_data_struct`s `version` uses; for an unknown version the
/// header is rewritten with the one the kernel prefers and the call fails EINVAL.
fn data_words(header: u64) -> SysResult<usize> {
    let version: u32 = read_user(header)?;
    match version {
        VERSION_1 => Ok(1),
        VERSION_2 | VERSION_3 => Ok(2),
        _ => {
            write_user(header, &VERSION_3)?;
            Err(Errno::EINVAL)
        }
    }
}

/// The capability mask (64 bits) of the privileges in `held`.
fn capabilities(held: impl Fn(Privilege) -> bool) -> u64 {
    CAPABILITY_OF
        .iter()
        .filter(|(p, _)| held(*p))
        .fold(0, |mask, (_, bit)| mask | 1 << bit)
}

/// `capget(header, data)`.
pub fn capget(thread: &Arc<Thread>, header: u64, data: u64) -> SysResult {
    let words = match data_words(header) {
        Ok(words) => words,
        // Asking for the preferred version with a NULL data pointer is not an error.
        Err(Errno::EINVAL) if data == 0 => return Ok(0),
        Err(e) => return Err(e),
    };
    let pid = header_pid(header)?;
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let target = if pid == 0 || pid as u32 == thread.process.pid {
        thread.process.clone()
    } else {
        let target = proc::lookup(pid as u32).ok_or(Errno::ESRCH)?;
        proc::check_access(
            &thread.process,
            &target,
            AccessMask::PROCESS_QUERY_LIMITED_INFORMATION,
        )?;
        target
    };
    if data == 0 {
        return Ok(0);
    }
    let token = target.token.read().clone();
    let permitted = capabilities(|p| token.privileges().holds(p));
    let effective = capabilities(|p| token.privileges().is_enabled(p));
    // { effective, permitted, inheritable } per 32-bit word.
    let sets: [u32; 6] = [
        effective as u32,
        permitted as u32,
        0,
        (effective >> 32) as u32,
        (permitted >> 32) as u32,
        0,
    ];
    write_words(data, &sets[..words * 3])?;
    Ok(0)
}

/// `capset(header, data)`: only the caller's own sets (another pid: EPERM).
pub fn capset(thread: &Arc<Thread>, header: u64, data: u64) -> SysResult {
    let words = data_words(header)?;
    let pid = header_pid(header)?;
    if pid != 0 && pid as u32 != thread.process.pid {
        return Err(Errno::EPERM);
    }
    let mut sets = [0u32; 6];
    if words == 1 {
        sets[..3].copy_from_slice(&read_words::<3>(data)?);
    } else {
        sets = read_words::<6>(data)?;
    }
    let effective = u64::from(sets[0]) | u64::from(sets[3]) << 32;
    let permitted = u64::from(sets[1]) | u64::from(sets[4]) << 32;
    let inheritable = u64::from(sets[2]) | u64::from(sets[5]) << 32;
    let process = &thread.process;
    let mut token_slot = process.token.write();
    let mut token = (**token_slot).clone();
    let held = capabilities(|p| token.privileges().holds(p));
    // Nothing raised past what is held; effective within permitted (as Linux checks).
    if permitted & !held != 0 || effective & !permitted != 0 || inheritable & !held != 0 {
        return Err(Errno::EPERM);
    }
    for (privilege, bit) in CAPABILITY_OF {
        if !token.privileges().holds(privilege) {
            continue;
        }
        if permitted & 1 << bit == 0 {
            token.remove_privilege(privilege);
        } else if effective & 1 << bit == 0 {
            // Held: the calls cannot fail.
            let _ = token.disable_privilege(privilege);
        } else {
            let _ = token.enable_privilege(privilege);
        }
    }
    *token_slot = Arc::new(token);
    Ok(0)
}
