//! `chmod` and `chown` on files whose permissions are a security descriptor built
//! from Linux mode bits (tmpfs, hugetlbfs, memfd: [`SecurityDescriptor::for_file`]
//! documents the mapping). Linux's ownership rules, the Peios way:
//!
//! - **chmod**: the caller needs `WRITE_DAC`, which the owner holds implicitly and
//!   SYSTEM and Administrators through the DACL (Linux's owner or `CAP_FOWNER`); the
//!   DACL is rebuilt from the new bits for the same owner and group.
//! - **chown**: a new owner needs `WRITE_OWNER`, which only SYSTEM and Administrators
//!   hold (Linux's `CAP_CHOWN`); the owner may keep itself as owner and set the group
//!   to one it is a member of (or keep the group): `security::ownership`, host-tested. The DACL is rebuilt from the mode
//!   for the new owner and group; a regular file loses its set-user-ID bit, and its
//!   set-group-ID bit when group-executable, as on Linux.
//!
//! A restricted token holds SYSTEM and Administrators deny-only, so it passes neither
//! way on a file it does not own: EPERM.

use super::Caller;
use errno::{Errno, SysResult};
use security::{access_check, AccessMask, GenericMapping, SecurityDescriptor, Sid};

/// A change of a file's attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetAttr {
    /// `chmod`: new permission bits (`0o7777`).
    Mode(u32),
    /// `chown`: a new owner and group (`None`: unchanged, Linux's -1).
    Owner(Option<u32>, Option<u32>),
}

/// The SID standing for Linux uid `uid` (SYSTEM for 0).
pub fn user_sid(uid: u32) -> Sid {
    if uid == 0 {
        Sid::SYSTEM
    } else {
        Sid::user(uid)
    }
}

/// The SID standing for Linux gid `gid` (SYSTEM for 0).
pub fn group_sid(gid: u32) -> Sid {
    if gid == 0 {
        Sid::SYSTEM
    } else {
        Sid::group(gid)
    }
}

/// A file's mode, owner and descriptor.
#[derive(Clone, Debug)]
pub struct Owned {
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Linux uid.
    pub uid: u32,
    /// Linux gid.
    pub gid: u32,
    /// The descriptor the bits and owner map onto.
    pub sd: SecurityDescriptor,
}

impl Owned {
    /// Applies `change` for `caller` (EPERM when the rules above refuse it); `dir`:
    /// the file is a directory (its set-ID bits survive a chown).
    pub fn apply(&mut self, change: SetAttr, caller: &Caller, dir: bool) -> SysResult<()> {
        let token = &caller.token;
        let holds =
            |right: AccessMask| access_check(token, &self.sd, right, &GenericMapping::FILE).is_ok();
        match change {
            SetAttr::Mode(mode) => {
                if !holds(AccessMask::WRITE_DAC) {
                    return Err(Errno::EPERM);
                }
                self.mode = mode & 0o7777;
            }
            SetAttr::Owner(uid, gid) => {
                if !security::ownership::may_change_owner(
                    token,
                    &self.sd,
                    uid.map(user_sid),
                    gid.map(group_sid),
                ) {
                    return Err(Errno::EPERM);
                }
                if let Some(u) = uid {
                    self.uid = u;
                    self.sd.owner = user_sid(u);
                }
                if let Some(g) = gid {
                    self.gid = g;
                    self.sd.group = group_sid(g);
                }
                if !dir {
                    const S_ISUID: u32 = 0o4000;
                    const S_ISGID: u32 = 0o2000;
                    const S_IXGRP: u32 = 0o010;
                    self.mode &= !S_ISUID;
                    if self.mode & S_IXGRP != 0 {
                        self.mode &= !S_ISGID;
                    }
                }
            }
        }
        self.sd = self.sd.with_file_mode(self.mode & 0o777);
        Ok(())
    }
}
