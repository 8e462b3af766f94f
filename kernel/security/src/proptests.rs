//! Property tests of the access check over random tokens, DACLs and requests.

use alloc::vec::Vec;

use proptest::prelude::*;

use crate::*;

/// The SIDs tokens and ACEs are drawn from: small, so ACEs often apply.
fn sid() -> impl Strategy<Value = Sid> {
    prop_oneof![
        Just(Sid::EVERYONE),
        Just(Sid::SYSTEM),
        Just(Sid::ADMINISTRATORS),
        Just(Sid::USERS),
        (1u32..4).prop_map(Sid::user),
    ]
}

fn level() -> impl Strategy<Value = IntegrityLevel> {
    prop_oneof![
        Just(IntegrityLevel::Untrusted),
        Just(IntegrityLevel::Low),
        Just(IntegrityLevel::Medium),
        Just(IntegrityLevel::High),
        Just(IntegrityLevel::System),
        Just(IntegrityLevel::Protected),
    ]
}

/// Masks over the process rights, the standard rights and the generic rights,
/// with ACCESS_SYSTEM_SECURITY and MAXIMUM_ALLOWED now and then.
fn mask() -> impl Strategy<Value = AccessMask> {
    any::<u32>().prop_map(|bits| AccessMask::from_bits_retain(bits & 0xF31F_1FFB))
}

fn request() -> impl Strategy<Value = AccessMask> {
    mask().prop_map(|m| m - AccessMask::MAXIMUM_ALLOWED)
}

fn ace() -> impl Strategy<Value = Ace> {
    (any::<bool>(), sid(), mask(), any::<bool>()).prop_map(|(allow, sid, mask, inherit_only)| {
        let ace = if allow {
            Ace::allowed(sid, mask)
        } else {
            Ace::denied(sid, mask)
        };
        if inherit_only {
            ace.with_flags(AceFlags::INHERIT_ONLY)
        } else {
            ace
        }
    })
}

fn token() -> impl Strategy<Value = Token> {
    let group = (sid(), 0u32..4).prop_map(|(sid, a)| Group {
        sid,
        attributes: SidAttributes::from_bits_truncate(a << 2),
    });
    (
        sid(),
        proptest::collection::vec(group, 0..4),
        level(),
        any::<bool>(),
    )
        .prop_map(|(user, groups, level, restrict)| {
            let t = Token::new(
                user,
                Sid::group(1),
                groups,
                PrivilegeSet::all_enabled(),
                level,
            );
            if restrict {
                t.restricted_to(level)
            } else {
                t
            }
        })
}

fn descriptor() -> impl Strategy<Value = SecurityDescriptor> {
    (
        sid(),
        proptest::option::weighted(0.9, proptest::collection::vec(ace(), 0..6)),
        level(),
        0u32..8,
    )
        .prop_map(|(owner, aces, level, policy)| {
            SecurityDescriptor::new(
                owner,
                Sid::group(1),
                aces.map(Acl::from_aces),
                MandatoryLabel::new(level, MandatoryPolicy::from_bits_truncate(policy)),
            )
        })
}

const P: GenericMapping = GenericMapping::PROCESS;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Without MAXIMUM_ALLOWED, a grant is exactly the (mapped) request.
    #[test]
    fn never_grants_unrequested_rights(t in token(), sd in descriptor(), desired in request()) {
        if let Ok(granted) = access_check(&t, &sd, desired, &P) {
            prop_assert_eq!(granted, P.map(desired));
        }
    }

    /// An explicit request succeeds exactly when MAXIMUM_ALLOWED would cover it.
    #[test]
    fn explicit_agrees_with_maximum_allowed(t in token(), sd in descriptor(), desired in request()) {
        prop_assume!(!desired.is_empty());
        let explicit = access_check(&t, &sd, desired, &P).is_ok();
        let max = access_check(&t, &sd, AccessMask::MAXIMUM_ALLOWED, &P);
        prop_assert_eq!(explicit, max.is_ok_and(|m| m.contains(P.map(desired))));
    }

    /// Inserting a deny ACE anywhere never increases what is granted.
    #[test]
    fn deny_ace_never_increases_rights(
        t in token(),
        sd in descriptor(),
        deny_sid in sid(),
        deny_mask in mask(),
        at in any::<prop::sample::Index>(),
        desired in request(),
    ) {
        let mut denied_sd = sd.clone();
        let mut aces: Vec<Ace> = sd.dacl.as_ref().map_or_else(Vec::new, |a| a.aces().to_vec());
        aces.insert(at.index(aces.len() + 1), Ace::denied(deny_sid, deny_mask));
        denied_sd.dacl = Some(Acl::from_aces(aces));

        for d in [desired, desired | AccessMask::MAXIMUM_ALLOWED] {
            let before = access_check(&t, &sd, d, &P).unwrap_or(AccessMask::empty());
            let after = access_check(&t, &denied_sd, d, &P).unwrap_or(AccessMask::empty());
            prop_assert!(before.contains(after), "{:?} grew to {:?}", before, after);
        }
    }

    /// A leading deny for Everyone takes its rights away from every token,
    /// except the owner's implicit READ_CONTROL | WRITE_DAC.
    #[test]
    fn leading_deny_for_everyone_wins(t in token(), sd in descriptor(), deny_mask in mask()) {
        let mut denied_sd = sd.clone();
        let mut aces: Vec<Ace> = sd.dacl.as_ref().map_or_else(Vec::new, |a| a.aces().to_vec());
        aces.insert(0, Ace::denied(Sid::EVERYONE, deny_mask));
        denied_sd.dacl = Some(Acl::from_aces(aces));
        let owner_rights = AccessMask::READ_CONTROL | AccessMask::WRITE_DAC;
        if let Ok(granted) = access_check(&t, &denied_sd, AccessMask::MAXIMUM_ALLOWED, &P) {
            prop_assert!((granted & (P.map(deny_mask) - owner_rights)).is_empty());
        }
    }

    /// PIP: no process access at all reaches a target the caller does not
    /// dominate, beyond the exempt observation rights.
    #[test]
    fn pip_is_never_bypassed(t in token(), sd in descriptor(), target in level(), desired in request()) {
        if check_process_access(&t, &sd, target, desired).is_ok() && !t.integrity().dominates(target) {
            prop_assert!(PIP_EXEMPT_RIGHTS.contains(P.map(desired)));
        }
    }
}
