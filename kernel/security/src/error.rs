//! Why a security decision said no, and which Linux errno that becomes.

use core::fmt;

use crate::access_mask::AccessMask;
use crate::integrity::IntegrityLevel;
use crate::privilege::{NotHeld, Privilege};

/// Linux `EPERM` ("operation not permitted"), as the kernel's `Errno` spells it.
pub const EPERM: u16 = 1;
/// Linux `EACCES` ("permission denied"), as the kernel's `Errno` spells it.
pub const EACCES: u16 = 13;

/// The access check refused: the rights the caller asked for but was not granted.
///
/// This is what [`access_check`](crate::access_check::access_check) returns; it
/// converts into [`Denied`] for callers that also gate on privileges and PIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessDenied {
    /// Requested (generic-mapped) rights that were not granted.
    pub missing: AccessMask,
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenialReason {
    /// The token does not hold this privilege, or holds it disabled.
    NoPrivilege(Privilege),
    /// The caller's PIP level does not dominate the target's.
    IntegrityTooLow {
        /// The caller's level.
        caller: IntegrityLevel,
        /// The target's level.
        target: IntegrityLevel,
    },
    /// The target's security descriptor does not grant these rights.
    AccessDenied {
        /// Requested rights that were not granted.
        missing: AccessMask,
    },
}

/// How a refused operation looks to userland, which decides its errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Acting on another process: kill, ptrace-like access, process_vm_readv/writev,
    /// process_mrelease, migrate_pages, setpriority on another process... Linux
    /// answers these with `EPERM` whatever the reason.
    ProcessControl,
    /// Opening an object by name: a `/proc` file, a `/proc/sys` (registry) key, a
    /// shared-memory object. Linux answers a permission failure with `EACCES`.
    Open,
    /// A privileged operation with no target object (swapon, mlock beyond the
    /// limit, mapping below mmap_min_addr...): `EPERM`.
    Privileged,
}

/// A security decision that said no. Carries the reason; converts to an errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denied {
    /// Why the request was refused.
    pub reason: DenialReason,
}

impl Denied {
    /// A refusal for `reason`.
    pub const fn new(reason: DenialReason) -> Self {
        Self { reason }
    }

    /// The errno implied by the reason alone: a missing privilege or a PIP
    /// failure is `EPERM` (the caller is not *allowed* to do this kind of thing);
    /// a DACL refusal is `EACCES` (the object's permissions say no), as for files.
    ///
    /// Process-control syscalls (kill, ptrace-like, process_mrelease...) answer
    /// `EPERM` for every reason in Linux; use [`Denied::errno_for`] with
    /// [`Operation::ProcessControl`] there.
    pub const fn errno_hint(&self) -> u16 {
        match self.reason {
            DenialReason::NoPrivilege(_) | DenialReason::IntegrityTooLow { .. } => EPERM,
            DenialReason::AccessDenied { .. } => EACCES,
        }
    }

    /// The errno Linux would give for this refusal in an operation of kind `op`:
    /// `EPERM` for [`Operation::ProcessControl`] and [`Operation::Privileged`],
    /// `EACCES` for [`Operation::Open`].
    pub const fn errno_for(&self, op: Operation) -> u16 {
        match op {
            Operation::ProcessControl | Operation::Privileged => EPERM,
            Operation::Open => EACCES,
        }
    }
}

impl From<AccessDenied> for Denied {
    fn from(e: AccessDenied) -> Self {
        Self::new(DenialReason::AccessDenied { missing: e.missing })
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            DenialReason::NoPrivilege(p) => write!(f, "{p} not held or not enabled"),
            DenialReason::IntegrityTooLow { caller, target } => {
                write!(f, "PIP level {caller} does not dominate {target}")
            }
            DenialReason::AccessDenied { missing } => {
                write!(f, "access denied (missing {:#x})", missing.bits())
            }
        }
    }
}

/// A SID could not be built from the given parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SidError {
    /// More than [`MAX_SUB_AUTHORITIES`](crate::sid::MAX_SUB_AUTHORITIES) sub-authorities.
    TooManySubAuthorities,
    /// The identifier authority does not fit in 48 bits.
    AuthorityTooLarge,
}

impl fmt::Display for SidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SidError::TooManySubAuthorities => f.write_str("too many sub-authorities"),
            SidError::AuthorityTooLarge => f.write_str("identifier authority exceeds 48 bits"),
        }
    }
}

impl From<NotHeld> for Denied {
    fn from(e: NotHeld) -> Self {
        Self::new(DenialReason::NoPrivilege(e.0))
    }
}

impl fmt::Display for AccessDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "access denied (missing {:#x})", self.missing.bits())
    }
}

impl core::error::Error for Denied {}
impl core::error::Error for AccessDenied {}
impl core::error::Error for SidError {}
