//! The access check: may this token have these rights on an object with that descriptor?
//!
//! This is the only place that evaluates a DACL. NT semantics, in this order:
//!
//! 1. **Generic mapping**: generic rights in the request and in every ACE are
//!    replaced by the object type's specific rights. `MAXIMUM_ALLOWED` is taken
//!    out of the request and switches to "grant whatever the descriptor allows".
//! 2. **Pre-granted rights** (NT's `PreviouslyGrantedAccess`): rights a
//!    privilege already granted (SeDebug for processes, see
//!    [`check_process_access`](crate::process_rights::check_process_access))
//!    bypass the DACL, but not the label.
//! 3. **Owner rights**: if the token's user or an enabled group is the owner,
//!    `READ_CONTROL | WRITE_DAC` are granted before the DACL is read, so no deny
//!    ACE takes them away (the owner can always repair its DACL).
//! 4. **DACL**: `None` grants every right of the type. Otherwise the ACEs are
//!    walked in order (`INHERIT_ONLY` ones skipped); for each right, the first
//!    applicable ACE that names it decides: a deny ACE refuses a right not yet
//!    granted, an allow ACE grants a right not yet denied. Allow ACEs apply to
//!    the user and enabled groups; deny ACEs also to deny-only SIDs.
//! 5. **Mandatory label**: a caller below the label keeps only the rights the
//!    label's policy leaves open ([`MandatoryLabel::permitted`]).
//!
//! An explicit request succeeds only if every requested right survives, and
//! then grants exactly the request. A `MAXIMUM_ALLOWED` request grants every
//! surviving right, fails if that is nothing, and fails if an explicitly
//! requested right alongside it did not survive. `ACCESS_SYSTEM_SECURITY` is
//! never granted (no privilege for SACLs exists here). An empty request is
//! granted (nothing was asked).
//!
//! [`MandatoryLabel::permitted`]: crate::integrity::MandatoryLabel::permitted

use crate::access_mask::AccessMask;
use crate::descriptor::{AceFlags, AceKind, SecurityDescriptor};
use crate::error::AccessDenied;
use crate::generic_mapping::GenericMapping;
use crate::token::Token;

/// Rights that an ACE or a privilege can never grant.
const UNGRANTABLE: AccessMask = AccessMask::ACCESS_SYSTEM_SECURITY
    .union(AccessMask::MAXIMUM_ALLOWED)
    .union(AccessMask::GENERIC_RIGHTS);

/// Checks `desired` against `sd` for `token`; returns the granted rights (the
/// mapped request, or everything allowed for `MAXIMUM_ALLOWED`).
pub fn access_check(
    token: &Token,
    sd: &SecurityDescriptor,
    desired: AccessMask,
    mapping: &GenericMapping,
) -> Result<AccessMask, AccessDenied> {
    access_check_with_granted(token, sd, desired, mapping, AccessMask::empty())
}

/// [`access_check()`] with rights a privilege has already granted: `pre_granted`
/// bypasses the DACL but is still filtered by the mandatory label.
pub fn access_check_with_granted(
    token: &Token,
    sd: &SecurityDescriptor,
    desired: AccessMask,
    mapping: &GenericMapping,
    pre_granted: AccessMask,
) -> Result<AccessMask, AccessDenied> {
    let maximum = desired.contains(AccessMask::MAXIMUM_ALLOWED);
    let wanted = mapping.map(desired - AccessMask::MAXIMUM_ALLOWED);
    if wanted.is_empty() && !maximum {
        return Ok(AccessMask::empty());
    }

    let mut granted = mapping.map(pre_granted);
    if token.is_member(&sd.owner) {
        granted |= AccessMask::READ_CONTROL | AccessMask::WRITE_DAC;
    }
    granted |= dacl_grants(token, sd, mapping, granted);
    granted &= sd.label.permitted(token.integrity(), mapping);
    granted -= UNGRANTABLE;

    let missing = wanted - granted;
    if !missing.is_empty() {
        return Err(AccessDenied { missing });
    }
    if !maximum {
        return Ok(wanted);
    }
    if granted.is_empty() {
        return Err(AccessDenied {
            missing: mapping.all,
        });
    }
    Ok(granted)
}

/// The rights the DACL grants `token`, given that `already` is granted (a deny
/// ACE cannot take those back).
fn dacl_grants(
    token: &Token,
    sd: &SecurityDescriptor,
    mapping: &GenericMapping,
    already: AccessMask,
) -> AccessMask {
    let Some(acl) = &sd.dacl else {
        return mapping.all;
    };
    let mut granted = already;
    let mut denied = AccessMask::empty();
    for ace in acl.aces() {
        if ace.flags.contains(AceFlags::INHERIT_ONLY) {
            continue;
        }
        let mask = mapping.map(ace.mask);
        match ace.kind {
            AceKind::Allowed if token.is_member(&ace.sid) => granted |= mask - denied,
            AceKind::Denied if token.is_member_for_deny(&ace.sid) => denied |= mask - granted,
            _ => {}
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::{Ace, Acl};
    use crate::integrity::{IntegrityLevel, MandatoryLabel, MandatoryPolicy};
    use crate::privilege::PrivilegeSet;
    use crate::sid::Sid;
    use crate::token::Group;
    use alloc::vec;
    use alloc::vec::Vec;

    const P: GenericMapping = GenericMapping::PROCESS;
    const TERM: AccessMask = AccessMask::PROCESS_TERMINATE;
    const VM_READ: AccessMask = AccessMask::PROCESS_VM_READ;

    /// A descriptor owned by uid 99 with `aces`, labelled Untrusted (no filtering).
    fn sd(aces: Vec<Ace>) -> SecurityDescriptor {
        SecurityDescriptor::new(
            Sid::user(99),
            Sid::group(99),
            Some(Acl::from_aces(aces)),
            MandatoryLabel::new(IntegrityLevel::Untrusted, MandatoryPolicy::NO_WRITE_UP),
        )
    }

    #[test]
    fn allow_ace_grants_only_what_it_names() {
        let alice = Token::user(1);
        let sd = sd(vec![Ace::allowed(Sid::user(1), TERM)]);
        assert_eq!(access_check(&alice, &sd, TERM, &P), Ok(TERM));
        assert_eq!(
            access_check(&alice, &sd, TERM | VM_READ, &P),
            Err(AccessDenied { missing: VM_READ })
        );
        assert!(access_check(&Token::user(2), &sd, TERM, &P).is_err());
    }

    #[test]
    fn deny_ace_beats_later_allow() {
        let alice = Token::user(1);
        let sd = sd(vec![
            Ace::denied(Sid::user(1), TERM),
            Ace::allowed(Sid::EVERYONE, AccessMask::PROCESS_ALL_ACCESS),
        ]);
        assert_eq!(
            access_check(&alice, &sd, TERM, &P),
            Err(AccessDenied { missing: TERM })
        );
        assert_eq!(access_check(&alice, &sd, VM_READ, &P), Ok(VM_READ));
        // Everyone else is unaffected by alice's deny.
        assert_eq!(access_check(&Token::user(2), &sd, TERM, &P), Ok(TERM));
    }

    #[test]
    fn allow_before_deny_wins_in_order() {
        // Non-canonical order: the earlier allow decides, as in NT.
        let alice = Token::user(1);
        let sd = sd(vec![
            Ace::allowed(Sid::user(1), TERM),
            Ace::denied(Sid::EVERYONE, TERM),
        ]);
        assert_eq!(access_check(&alice, &sd, TERM, &P), Ok(TERM));
    }

    #[test]
    fn null_dacl_grants_everything_empty_dacl_nothing() {
        let t = Token::user(1);
        let mut null = sd(vec![]);
        null.dacl = None;
        assert_eq!(
            access_check(&t, &null, TERM | VM_READ, &P),
            Ok(TERM | VM_READ)
        );
        assert_eq!(
            access_check(&t, &null, AccessMask::MAXIMUM_ALLOWED, &P),
            Ok(AccessMask::PROCESS_ALL_ACCESS)
        );
        let empty = sd(vec![]);
        assert_eq!(
            access_check(&t, &empty, TERM, &P),
            Err(AccessDenied { missing: TERM })
        );
        assert!(access_check(&t, &empty, AccessMask::MAXIMUM_ALLOWED, &P).is_err());
    }

    #[test]
    fn owner_gets_read_control_and_write_dac_even_past_deny() {
        let owner = Token::user(99);
        let rc_wd = AccessMask::READ_CONTROL | AccessMask::WRITE_DAC;
        let empty = sd(vec![]);
        assert_eq!(access_check(&owner, &empty, rc_wd, &P), Ok(rc_wd));
        assert_eq!(
            access_check(&owner, &empty, AccessMask::WRITE_OWNER, &P),
            Err(AccessDenied {
                missing: AccessMask::WRITE_OWNER
            })
        );
        let deny = sd(vec![Ace::denied(
            Sid::user(99),
            AccessMask::PROCESS_ALL_ACCESS,
        )]);
        assert_eq!(access_check(&owner, &deny, rc_wd, &P), Ok(rc_wd));
        assert_eq!(
            access_check(&owner, &deny, AccessMask::MAXIMUM_ALLOWED, &P),
            Ok(rc_wd)
        );
        assert!(access_check(&Token::user(1), &empty, AccessMask::READ_CONTROL, &P).is_err());
    }

    #[test]
    fn generic_rights_are_mapped_in_request_and_ace() {
        let t = Token::user(1);
        let sd = sd(vec![Ace::allowed(Sid::user(1), AccessMask::GENERIC_READ)]);
        let read = P.map(AccessMask::GENERIC_READ);
        assert_eq!(
            access_check(&t, &sd, AccessMask::GENERIC_READ, &P),
            Ok(read)
        );
        assert_eq!(access_check(&t, &sd, VM_READ, &P), Ok(VM_READ));
        assert!(access_check(&t, &sd, AccessMask::GENERIC_WRITE, &P).is_err());
        assert!(!access_check(&t, &sd, AccessMask::GENERIC_READ, &P)
            .expect("granted")
            .intersects(AccessMask::GENERIC_RIGHTS));
    }

    #[test]
    fn maximum_allowed_grants_all_survivors() {
        let t = Token::user(1);
        let sd = sd(vec![
            Ace::denied(Sid::user(1), TERM),
            Ace::allowed(Sid::USERS, TERM | VM_READ | AccessMask::SYNCHRONIZE),
        ]);
        let max = AccessMask::MAXIMUM_ALLOWED;
        assert_eq!(
            access_check(&t, &sd, max, &P),
            Ok(VM_READ | AccessMask::SYNCHRONIZE)
        );
        assert_eq!(
            access_check(&t, &sd, max | VM_READ, &P),
            Ok(VM_READ | AccessMask::SYNCHRONIZE)
        );
        assert_eq!(
            access_check(&t, &sd, max | TERM, &P),
            Err(AccessDenied { missing: TERM })
        );
    }

    #[test]
    fn label_strips_write_up_for_lower_callers() {
        let t = Token::user(1); // Medium
        let mut sd = sd(vec![Ace::allowed(
            Sid::EVERYONE,
            AccessMask::PROCESS_ALL_ACCESS,
        )]);
        sd.label = MandatoryLabel::new(IntegrityLevel::High, MandatoryPolicy::NO_WRITE_UP);
        assert_eq!(
            access_check(&t, &sd, TERM, &P),
            Err(AccessDenied { missing: TERM })
        );
        assert_eq!(access_check(&t, &sd, VM_READ, &P), Ok(VM_READ));
        let max = access_check(&t, &sd, AccessMask::MAXIMUM_ALLOWED, &P).expect("reads");
        assert!(max.contains(VM_READ) && !max.intersects(TERM | AccessMask::WRITE_DAC));
        // At or above the label, nothing is filtered.
        let high = Token::new(
            Sid::user(1),
            Sid::group(1),
            vec![],
            PrivilegeSet::none(),
            IntegrityLevel::High,
        );
        assert_eq!(access_check(&high, &sd, TERM, &P), Ok(TERM));
    }

    #[test]
    fn pre_granted_rights_bypass_dacl_not_label() {
        let t = Token::user(1);
        let mut sd = sd(vec![]);
        assert_eq!(
            access_check_with_granted(&t, &sd, TERM, &P, AccessMask::PROCESS_ALL_ACCESS),
            Ok(TERM)
        );
        sd.label = MandatoryLabel::new(IntegrityLevel::High, MandatoryPolicy::NO_WRITE_UP);
        assert!(
            access_check_with_granted(&t, &sd, TERM, &P, AccessMask::PROCESS_ALL_ACCESS).is_err()
        );
    }

    #[test]
    fn inherit_only_aces_and_disabled_groups_do_not_apply() {
        let mut t = Token::user(1);
        t = Token::new(
            t.user_sid(),
            t.primary_group(),
            vec![Group {
                sid: Sid::ADMINISTRATORS,
                attributes: Default::default(),
            }],
            PrivilegeSet::none(),
            IntegrityLevel::Medium,
        );
        let sd = sd(vec![
            Ace::allowed(Sid::user(1), TERM).with_flags(AceFlags::INHERIT_ONLY),
            Ace::allowed(Sid::ADMINISTRATORS, TERM),
        ]);
        assert!(access_check(&t, &sd, TERM, &P).is_err());
    }

    #[test]
    fn deny_only_group_denies_but_never_allows() {
        let admin = Token::new(
            Sid::user(1),
            Sid::group(1),
            vec![Group::deny_only(Sid::ADMINISTRATORS)],
            PrivilegeSet::none(),
            IntegrityLevel::Medium,
        );
        let allow = sd(vec![Ace::allowed(Sid::ADMINISTRATORS, TERM)]);
        assert!(access_check(&admin, &allow, TERM, &P).is_err());
        let deny = sd(vec![
            Ace::denied(Sid::ADMINISTRATORS, TERM),
            Ace::allowed(Sid::user(1), TERM),
        ]);
        assert!(access_check(&admin, &deny, TERM, &P).is_err());
    }

    #[test]
    fn system_security_is_never_granted_and_empty_request_is() {
        let t = Token::system();
        let mut null = sd(vec![]);
        null.dacl = None;
        assert!(access_check(&t, &null, AccessMask::ACCESS_SYSTEM_SECURITY, &P).is_err());
        assert_eq!(
            access_check(&Token::user(1), &sd(vec![]), AccessMask::empty(), &P),
            Ok(AccessMask::empty())
        );
    }
}
