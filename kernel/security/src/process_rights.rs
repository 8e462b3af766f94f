//! The kernel's two gates: "may this caller do X to that process?" and "does it hold privilege P?".
//!
//! [`check_process_access`] is the single answer to every cross-process
//! question (kill, `/proc/<pid>/*`, process_vm_readv, process_mrelease,
//! migrate_pages...). It requires, in this order:
//!
//! 1. **PIP dominance**: the caller's level must dominate the target's, unless
//!    every requested right is in [`PIP_EXEMPT_RIGHTS`] (pure observation that
//!    NT also allows against protected processes). No privilege overrides this.
//! 2. **The access check** against the target's SD with the process generic
//!    mapping. An enabled `SeDebugPrivilege` pre-grants `PROCESS_ALL_ACCESS`, so
//!    it bypasses the DACL, but the mandatory label still filters (and step 1
//!    has already applied).
//!
//! Self-targeting is not special-cased here: the kernel decides which
//! operations on oneself need no check (and which are refused, as
//! process_mrelease on oneself is).

use crate::access_check::access_check_with_granted;
use crate::access_mask::AccessMask;
use crate::descriptor::SecurityDescriptor;
use crate::error::{DenialReason, Denied};
use crate::generic_mapping::GenericMapping;
use crate::integrity::IntegrityLevel;
use crate::privilege::Privilege;
use crate::token::Token;

/// Rights that do not influence the target, so PIP dominance is not required
/// for them (the DACL and label still are): `PROCESS_QUERY_LIMITED_INFORMATION`
/// and `SYNCHRONIZE`. A user can see that init exists and wait for a process,
/// but never touch a process above its level.
pub const PIP_EXEMPT_RIGHTS: AccessMask =
    AccessMask::PROCESS_QUERY_LIMITED_INFORMATION.union(AccessMask::SYNCHRONIZE);

/// Whether `caller` may have `desired` (process rights, generic allowed) on a
/// process at `target_level` with descriptor `target_sd`: PIP dominance (see
/// [`PIP_EXEMPT_RIGHTS`]) and the access check, SeDebug bypassing only the DACL.
pub fn check_process_access(
    caller: &Token,
    target_sd: &SecurityDescriptor,
    target_level: IntegrityLevel,
    desired: AccessMask,
) -> Result<(), Denied> {
    let mapping = GenericMapping::PROCESS;
    let influencing = mapping.map(desired - AccessMask::MAXIMUM_ALLOWED) - PIP_EXEMPT_RIGHTS;
    let needs_dominance = !influencing.is_empty() || desired.contains(AccessMask::MAXIMUM_ALLOWED);
    if needs_dominance && !caller.integrity().dominates(target_level) {
        return Err(Denied::new(DenialReason::IntegrityTooLow {
            caller: caller.integrity(),
            target: target_level,
        }));
    }
    let pre_granted = if caller.has_privilege(Privilege::SeDebugPrivilege) {
        AccessMask::PROCESS_ALL_ACCESS
    } else {
        AccessMask::empty()
    };
    access_check_with_granted(caller, target_sd, desired, &mapping, pre_granted)?;
    Ok(())
}

/// `Ok` if `token` holds `privilege` *enabled*; `Err(NoPrivilege)` otherwise.
pub fn require_privilege(token: &Token, privilege: Privilege) -> Result<(), Denied> {
    if token.has_privilege(privilege) {
        Ok(())
    } else {
        Err(Denied::new(DenialReason::NoPrivilege(privilege)))
    }
}
