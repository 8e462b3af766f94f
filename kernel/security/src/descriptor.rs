//! Security descriptors: an object's owner, group, DACL (ACL of ACEs) and mandatory label.
//!
//! A `None` DACL (NT's NULL DACL) grants everyone everything; an empty DACL
//! grants nothing (except the owner's implicit rights). ACEs are evaluated in
//! order, so a DACL should be *canonical*: deny ACEs before allow ACEs
//! ([`Acl::is_canonical`], [`Acl::canonicalize`]); the constructors here build
//! canonical DACLs.

use alloc::vec::Vec;

use bitflags::bitflags;

use crate::access_mask::AccessMask;
use crate::integrity::{MandatoryLabel, MandatoryPolicy};
use crate::sid::Sid;
use crate::token::Token;

/// Whether an ACE grants or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AceKind {
    /// `ACCESS_ALLOWED_ACE`: grants its mask.
    Allowed,
    /// `ACCESS_DENIED_ACE`: refuses its mask.
    Denied,
}

bitflags! {
    /// ACE inheritance flags (NT values). Only `INHERIT_ONLY` affects the access
    /// check (such an ACE is skipped); the others are for child objects.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct AceFlags: u8 {
        /// Inherited by child objects that are not containers.
        const OBJECT_INHERIT = 0x01;
        /// Inherited by child containers (registry subkeys).
        const CONTAINER_INHERIT = 0x02;
        /// Inherited by direct children only.
        const NO_PROPAGATE_INHERIT = 0x04;
        /// Only for inheritance: ignored when checking access to this object.
        const INHERIT_ONLY = 0x08;
        /// This ACE was inherited from a parent.
        const INHERITED = 0x10;
    }
}

/// An access control entry: allow or deny `mask` to `sid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ace {
    /// Allow or deny.
    pub kind: AceKind,
    /// Inheritance flags.
    pub flags: AceFlags,
    /// Whom it applies to.
    pub sid: Sid,
    /// The rights (generic rights are mapped at check time).
    pub mask: AccessMask,
}

impl Ace {
    /// An allow ACE without inheritance flags.
    pub const fn allowed(sid: Sid, mask: AccessMask) -> Self {
        Self {
            kind: AceKind::Allowed,
            flags: AceFlags::empty(),
            sid,
            mask,
        }
    }

    /// A deny ACE without inheritance flags.
    pub const fn denied(sid: Sid, mask: AccessMask) -> Self {
        Self {
            kind: AceKind::Denied,
            flags: AceFlags::empty(),
            sid,
            mask,
        }
    }

    /// The same ACE with `flags`.
    pub const fn with_flags(self, flags: AceFlags) -> Self {
        Self { flags, ..self }
    }
}

/// An access control list: ACEs evaluated in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    aces: Vec<Ace>,
}

impl Acl {
    /// An empty ACL (as a DACL: grants nothing).
    pub const fn new() -> Self {
        Self { aces: Vec::new() }
    }

    /// An ACL of `aces`, in the given order.
    pub fn from_aces(aces: Vec<Ace>) -> Self {
        Self { aces }
    }

    /// Appends `ace`.
    pub fn push(&mut self, ace: Ace) {
        self.aces.push(ace);
    }

    /// The ACEs, in evaluation order.
    pub fn aces(&self) -> &[Ace] {
        &self.aces
    }

    /// Whether every deny ACE comes before every allow ACE.
    pub fn is_canonical(&self) -> bool {
        let first_allow = self.aces.iter().position(|a| a.kind == AceKind::Allowed);
        match first_allow {
            None => true,
            Some(i) => self.aces[i..].iter().all(|a| a.kind == AceKind::Allowed),
        }
    }

    /// Moves deny ACEs before allow ACEs, keeping the order within each kind.
    pub fn canonicalize(&mut self) {
        self.aces.sort_by_key(|a| a.kind == AceKind::Allowed);
    }
}

/// An object's security descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityDescriptor {
    /// The owner: implicitly granted `READ_CONTROL | WRITE_DAC`.
    pub owner: Sid,
    /// The primary group (kept for Linux's gid view; not used by the check).
    pub group: Sid,
    /// The DACL: `None` grants everything, `Some(empty)` nothing.
    pub dacl: Option<Acl>,
    /// The mandatory integrity label.
    pub label: MandatoryLabel,
}

impl SecurityDescriptor {
    /// A descriptor from its parts.
    pub fn new(owner: Sid, group: Sid, dacl: Option<Acl>, label: MandatoryLabel) -> Self {
        Self {
            owner,
            group,
            dacl,
            label,
        }
    }

    /// The default descriptor of a process created by `creator`:
    /// - owner and group: the creator's user and primary group;
    /// - DACL: `PROCESS_ALL_ACCESS` to the owner, the creator's logon SID (if it
    ///   has one), SYSTEM and Administrators, `PROCESS_QUERY_LIMITED_INFORMATION`
    ///   to Everyone;
    /// - label: the creator's level with `NO_WRITE_UP | NO_READ_UP`.
    pub fn for_process(creator: &Token) -> Self {
        let all = AccessMask::PROCESS_ALL_ACCESS;
        let mut aces = alloc::vec![Ace::allowed(creator.user_sid(), all)];
        // A restricted creator's user SID is deny-only (SYSTEM, Administrators): its
        // logon SID is what lets it manage the processes it starts (NT's default DACL
        // grants the logon SID for the same reason).
        if let Some(logon) = creator.logon_sid() {
            aces.push(Ace::allowed(logon, all));
        }
        aces.extend([
            Ace::allowed(Sid::SYSTEM, all),
            Ace::allowed(Sid::ADMINISTRATORS, all),
            Ace::allowed(Sid::EVERYONE, AccessMask::PROCESS_QUERY_LIMITED_INFORMATION),
        ]);
        let dacl = Acl::from_aces(aces);
        Self::new(
            creator.user_sid(),
            creator.primary_group(),
            Some(dacl),
            MandatoryLabel::new(
                creator.integrity(),
                MandatoryPolicy::NO_WRITE_UP | MandatoryPolicy::NO_READ_UP,
            ),
        )
    }

    /// The descriptor of a file a tmpfs (or `/dev/shm`) name holds, created by
    /// `creator` with Linux permission bits `mode` (after the umask). Mode bits map
    /// onto the DACL the Peios way:
    /// - owner and group: the creator's user and primary group;
    /// - the owner triplet (`0o700`) grants the creator's user SID, the group triplet
    ///   (`0o070`) its primary group, the other triplet (`0o007`) Everyone: `r` is
    ///   `FILE_GENERIC_READ`, `w` is `FILE_GENERIC_WRITE`, `x` is
    ///   `FILE_GENERIC_EXECUTE` (an ACE with no right is left out);
    /// - SYSTEM and Administrators get `FILE_ALL_ACCESS` (Linux's DAC override for
    ///   root; a restricted token holds those SIDs deny-only, so it does not pass);
    /// - label: the creator's level with `NO_WRITE_UP`.
    pub fn for_file(creator: &Token, mode: u32) -> Self {
        Self::file_with_mode(
            creator.user_sid(),
            creator.primary_group(),
            MandatoryLabel::new(creator.integrity(), MandatoryPolicy::NO_WRITE_UP),
            mode,
        )
    }

    /// This file descriptor after a `chmod` to `mode`: the same owner, group and
    /// label, the DACL rebuilt from `mode` as [`for_file`](Self::for_file) builds it
    /// (the owner triplet for the owner SID, the group triplet for the group SID).
    pub fn with_file_mode(&self, mode: u32) -> Self {
        Self::file_with_mode(self.owner, self.group, self.label, mode)
    }

    /// A file descriptor with the given owner, group and label, its DACL built from
    /// permission bits `mode` as [`for_file`](Self::for_file) builds it (a hugetlbfs
    /// root mounted with `uid=`/`gid=`).
    pub fn file_with_mode(owner: Sid, group: Sid, label: MandatoryLabel, mode: u32) -> Self {
        let rights = |bits: u32| {
            let mut m = AccessMask::empty();
            if bits & 4 != 0 {
                m |= AccessMask::FILE_GENERIC_READ;
            }
            if bits & 2 != 0 {
                m |= AccessMask::FILE_GENERIC_WRITE;
            }
            if bits & 1 != 0 {
                m |= AccessMask::FILE_GENERIC_EXECUTE;
            }
            m
        };
        let mut aces = alloc::vec::Vec::new();
        for (sid, bits) in [
            (owner, mode >> 6),
            (group, mode >> 3),
            (Sid::EVERYONE, mode),
        ] {
            let mask = rights(bits & 7);
            if !mask.is_empty() {
                aces.push(Ace::allowed(sid, mask));
            }
        }
        aces.push(Ace::allowed(Sid::SYSTEM, AccessMask::FILE_ALL_ACCESS));
        aces.push(Ace::allowed(
            Sid::ADMINISTRATORS,
            AccessMask::FILE_ALL_ACCESS,
        ));
        Self::new(owner, group, Some(Acl::from_aces(aces)), label)
    }

    /// The descriptor of a registry key (a tunable):
    /// - owner and group SYSTEM;
    /// - DACL: `KEY_ALL_ACCESS` to SYSTEM and Administrators; `KEY_READ` to
    ///   Everyone, plus `KEY_WRITE` when `admin_only_write` is false;
    /// - label: the default (Medium, `NO_WRITE_UP`), so Low and Untrusted
    ///   callers never write a key, whatever the DACL says.
    pub fn for_registry_key(admin_only_write: bool) -> Self {
        let everyone = if admin_only_write {
            AccessMask::KEY_READ
        } else {
            AccessMask::KEY_READ | AccessMask::KEY_WRITE
        };
        let dacl = Acl::from_aces(alloc::vec![
            Ace::allowed(Sid::SYSTEM, AccessMask::KEY_ALL_ACCESS),
            Ace::allowed(Sid::ADMINISTRATORS, AccessMask::KEY_ALL_ACCESS),
            Ace::allowed(Sid::EVERYONE, everyone),
        ]);
        Self::new(
            Sid::SYSTEM,
            Sid::SYSTEM,
            Some(dacl),
            MandatoryLabel::default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::IntegrityLevel;

    #[test]
    fn canonicalize_moves_denies_first_stably() {
        let a1 = Ace::allowed(Sid::user(1), AccessMask::PROCESS_TERMINATE);
        let d1 = Ace::denied(Sid::user(2), AccessMask::PROCESS_VM_READ);
        let a2 = Ace::allowed(Sid::user(3), AccessMask::PROCESS_VM_WRITE);
        let d2 = Ace::denied(Sid::user(4), AccessMask::PROCESS_SET_QUOTA);
        let mut acl = Acl::from_aces(alloc::vec![a1, d1, a2, d2]);
        assert!(!acl.is_canonical());
        acl.canonicalize();
        assert!(acl.is_canonical());
        assert_eq!(acl.aces(), &[d1, d2, a1, a2]);
        assert!(Acl::new().is_canonical());
    }

    #[test]
    fn file_descriptor_maps_mode_bits() {
        use crate::{access_check, GenericMapping};
        let owner = Token::user(1000);
        let other = Token::user(1001);
        let sd = SecurityDescriptor::for_file(&owner, 0o640);
        let read = AccessMask::FILE_READ_DATA;
        let write = AccessMask::FILE_WRITE_DATA;
        assert!(access_check(&owner, &sd, read | write, &GenericMapping::FILE).is_ok());
        assert!(access_check(&other, &sd, read, &GenericMapping::FILE).is_err());
        let sd = SecurityDescriptor::for_file(&owner, 0o604);
        assert!(access_check(&other, &sd, read, &GenericMapping::FILE).is_ok());
        assert!(access_check(&other, &sd, write, &GenericMapping::FILE).is_err());
        // Root passes whatever the bits; a restricted root does not.
        let sd = SecurityDescriptor::for_file(&owner, 0);
        assert!(access_check(&Token::system(), &sd, write, &GenericMapping::FILE).is_ok());
        let restricted = Token::system().restricted();
        let sd = SecurityDescriptor::for_file(&Token::system(), 0o600);
        assert!(access_check(&restricted, &sd, read, &GenericMapping::FILE).is_err());
    }

    #[test]
    fn a_new_file_mode_keeps_owner_group_and_label() {
        use crate::{access_check, GenericMapping};
        let owner = Token::user(1000);
        let other = Token::user(1001);
        let sd = SecurityDescriptor::for_file(&owner, 0o600);
        let read = AccessMask::FILE_READ_DATA;
        assert!(access_check(&other, &sd, read, &GenericMapping::FILE).is_err());
        let opened = sd.with_file_mode(0o604);
        assert_eq!(
            (opened.owner, opened.group, opened.label),
            (sd.owner, sd.group, sd.label)
        );
        assert!(access_check(&other, &opened, read, &GenericMapping::FILE).is_ok());
        let closed = opened.with_file_mode(0o000);
        assert!(access_check(&owner, &closed, read, &GenericMapping::FILE).is_err());
        // The owner may still change it again; another user may not.
        let dac = AccessMask::WRITE_DAC;
        assert!(access_check(&owner, &closed, dac, &GenericMapping::FILE).is_ok());
        assert!(access_check(&other, &opened, dac, &GenericMapping::FILE).is_err());
    }

    #[test]
    fn process_descriptor_follows_its_creator() {
        let sd = SecurityDescriptor::for_process(&Token::user(1000));
        assert_eq!(sd.owner, Sid::user(1000));
        assert_eq!(sd.group, Sid::group(1000));
        assert_eq!(sd.label.level, IntegrityLevel::Medium);
        let dacl = sd.dacl.as_ref().expect("a process has a DACL");
        assert!(dacl.is_canonical());
        assert_eq!(dacl.aces().len(), 4);
    }

    #[test]
    fn registry_descriptor_is_system_owned() {
        let sd = SecurityDescriptor::for_registry_key(true);
        assert_eq!(sd.owner, Sid::SYSTEM);
        assert!(sd.dacl.as_ref().is_some_and(Acl::is_canonical));
    }
}
