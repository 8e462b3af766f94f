//! The Peios security model: tokens, security descriptors, PIP levels and the access check.
//!
//! Peios replaces Linux capability checks with NT's model. A thread runs with a
//! [`Token`] (user SID, groups, privileges, PIP level); an object carries a
//! [`SecurityDescriptor`] (owner, DACL, mandatory label). The kernel asks two
//! questions, each answered in one place:
//!
//! - "may this caller do X to that process?": [`check_process_access`]
//!   (PIP dominance, then [`access_check()`] against the target's SD);
//! - "does this caller hold privilege P?": [`require_privilege`].
//!
//! Refusals are [`Denied`] values that name the reason and suggest the Linux
//! errno. The crate is `no_std` + `alloc` and has no `unsafe`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

extern crate alloc;

pub mod access_check;
pub mod access_mask;
pub mod descriptor;
pub mod error;
pub mod generic_mapping;
pub mod integrity;
pub mod ownership;
pub mod privilege;
pub mod process_rights;
pub mod sid;
pub mod token;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod scenarios;

pub use access_check::{access_check, access_check_with_granted};
pub use access_mask::AccessMask;
pub use descriptor::{Ace, AceFlags, AceKind, Acl, SecurityDescriptor};
pub use error::{AccessDenied, DenialReason, Denied, Operation, SidError, EACCES, EPERM};
pub use generic_mapping::GenericMapping;
pub use integrity::{dominates, IntegrityLevel, MandatoryLabel, MandatoryPolicy};
pub use privilege::{NotHeld, Privilege, PrivilegeMask, PrivilegeSet};
pub use process_rights::{check_process_access, require_privilege, PIP_EXEMPT_RIGHTS};
pub use sid::Sid;
pub use token::{Group, SidAttributes, Token};
