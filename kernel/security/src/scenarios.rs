//! Whole-model tests: the questions the kernel will ask, with real tokens and descriptors.

use alloc::vec;

use crate::*;

const TERM: AccessMask = AccessMask::PROCESS_TERMINATE;
const QUERY: AccessMask = AccessMask::PROCESS_QUERY_INFORMATION;
const QUERY_LIMITED: AccessMask = AccessMask::PROCESS_QUERY_LIMITED_INFORMATION;

/// A process started by `token`: its SD and PIP level, as the kernel will keep them.
fn process_of(token: &Token) -> (SecurityDescriptor, IntegrityLevel) {
    (SecurityDescriptor::for_process(token), token.integrity())
}

/// A token for uid `uid` at `level` with the given privileges held and enabled.
fn token_at(uid: u32, level: IntegrityLevel, privileges: PrivilegeMask) -> Token {
    Token::new(
        Sid::user(uid),
        Sid::group(uid),
        vec![Group::enabled(Sid::USERS)],
        PrivilegeSet::new(privileges, privileges),
        level,
    )
}

/// An administrator's token (member of Administrators) at High, no privileges.
fn admin(uid: u32) -> Token {
    Token::new(
        Sid::user(uid),
        Sid::group(uid),
        vec![
            Group::enabled(Sid::USERS),
            Group::enabled(Sid::ADMINISTRATORS),
        ],
        PrivilegeSet::none(),
        IntegrityLevel::High,
    )
}

fn reason(r: Result<(), Denied>) -> Option<DenialReason> {
    r.err().map(|d| d.reason)
}

#[test]
fn held_but_disabled_privilege_is_refused() {
    let mut init = Token::system();
    assert_eq!(
        require_privilege(&init, Privilege::SeCreatePagefilePrivilege),
        Ok(())
    );
    init.disable_privilege(Privilege::SeCreatePagefilePrivilege)
        .expect("held");
    assert_eq!(
        reason(require_privilege(
            &init,
            Privilege::SeCreatePagefilePrivilege
        )),
        Some(DenialReason::NoPrivilege(
            Privilege::SeCreatePagefilePrivilege
        ))
    );
    init.enable_privilege(Privilege::SeCreatePagefilePrivilege)
        .expect("held");
    assert_eq!(
        require_privilege(&init, Privilege::SeCreatePagefilePrivilege),
        Ok(())
    );
}

#[test]
fn restricted_child_is_refused_where_init_is_allowed() {
    let init = Token::system();
    let child = init.restricted();
    for p in Privilege::ALL {
        assert_eq!(require_privilege(&init, p), Ok(()));
        assert_eq!(
            reason(require_privilege(&child, p)),
            Some(DenialReason::NoPrivilege(p))
        );
    }
    // Init's own process: the child is below it.
    let (init_sd, init_level) = process_of(&init);
    assert!(matches!(
        reason(check_process_access(&child, &init_sd, init_level, TERM)),
        Some(DenialReason::IntegrityTooLow { .. })
    ));
    // A user's process at the child's own level: SYSTEM no longer opens the DACL.
    let (user_sd, user_level) = process_of(&Token::user(1000));
    assert_eq!(
        check_process_access(&init, &user_sd, user_level, TERM),
        Ok(())
    );
    assert_eq!(
        reason(check_process_access(&child, &user_sd, user_level, TERM)),
        Some(DenialReason::AccessDenied { missing: TERM })
    );
}

#[test]
fn medium_caller_cannot_terminate_higher_target_even_if_dacl_allows() {
    let caller = Token::user(1000);
    for level in [IntegrityLevel::High, IntegrityLevel::System] {
        let target_token = token_at(1000, level, PrivilegeMask::empty());
        let mut sd = SecurityDescriptor::for_process(&target_token);
        sd.dacl = None; // the DACL allows everything
        assert_eq!(
            reason(check_process_access(&caller, &sd, level, TERM)),
            Some(DenialReason::IntegrityTooLow {
                caller: IntegrityLevel::Medium,
                target: level
            })
        );
        // The label alone refuses too, for callers of the access check itself.
        assert!(access_check(&caller, &sd, TERM, &GenericMapping::PROCESS).is_err());
    }
}

#[test]
fn protected_target_refuses_everyone_not_protected() {
    let protected = token_at(0, IntegrityLevel::Protected, PrivilegeMask::empty());
    let (sd, level) = process_of(&protected);
    let debug_system = Token::system(); // holds SeDebug, enabled, at System
    for caller in [Token::user(1000), admin(1), debug_system] {
        for desired in [
            TERM,
            QUERY,
            AccessMask::PROCESS_VM_READ,
            AccessMask::MAXIMUM_ALLOWED,
        ] {
            assert!(
                matches!(
                    reason(check_process_access(&caller, &sd, level, desired)),
                    Some(DenialReason::IntegrityTooLow { .. })
                ),
                "{:?} got {desired:?}",
                caller.user_sid()
            );
        }
        // Pure observation stays possible (NT lets anyone query limited info).
        assert_eq!(
            check_process_access(&caller, &sd, level, QUERY_LIMITED),
            Ok(())
        );
    }
    // Another protected process with rights on the DACL may act.
    let peer = Token::new(
        Sid::SYSTEM,
        Sid::SYSTEM,
        vec![],
        PrivilegeSet::none(),
        IntegrityLevel::Protected,
    );
    assert_eq!(check_process_access(&peer, &sd, level, TERM), Ok(()));
}

#[test]
fn se_debug_bypasses_dacl_but_not_pip() {
    let (victim_sd, victim_level) = process_of(&Token::user(1000));
    let mut debugger = token_at(2000, IntegrityLevel::High, PrivilegeMask::DEBUG);
    let desired = TERM | AccessMask::PROCESS_VM_READ | AccessMask::PROCESS_VM_WRITE;
    assert_eq!(
        check_process_access(&debugger, &victim_sd, victim_level, desired),
        Ok(())
    );

    // Held but disabled: the DACL applies again.
    debugger
        .disable_privilege(Privilege::SeDebugPrivilege)
        .expect("held");
    assert!(matches!(
        reason(check_process_access(
            &debugger,
            &victim_sd,
            victim_level,
            TERM
        )),
        Some(DenialReason::AccessDenied { .. })
    ));

    // Enabled, but the target is above the debugger: PIP wins.
    let medium_debugger = token_at(2000, IntegrityLevel::Medium, PrivilegeMask::DEBUG);
    let (high_sd, high_level) = process_of(&admin(3000));
    assert!(matches!(
        reason(check_process_access(
            &medium_debugger,
            &high_sd,
            high_level,
            TERM
        )),
        Some(DenialReason::IntegrityTooLow { .. })
    ));

    // Same level, but the target's label is above the caller's (the kernel's
    // level and the SD's label disagree): the label still filters SeDebug.
    let mut labelled = victim_sd.clone();
    labelled.label.level = IntegrityLevel::High;
    assert!(matches!(
        reason(check_process_access(
            &medium_debugger,
            &labelled,
            IntegrityLevel::Medium,
            TERM
        )),
        Some(DenialReason::AccessDenied { .. })
    ));
}

#[test]
fn system_may_do_everything_to_a_medium_process() {
    let init = Token::system();
    let (sd, level) = process_of(&Token::user(1000));
    for desired in [
        AccessMask::PROCESS_ALL_ACCESS,
        AccessMask::GENERIC_ALL,
        AccessMask::MAXIMUM_ALLOWED,
        TERM | QUERY | AccessMask::PROCESS_SET_QUOTA | AccessMask::PROCESS_VM_WRITE,
    ] {
        assert_eq!(
            check_process_access(&init, &sd, level, desired),
            Ok(()),
            "{desired:?}"
        );
    }
    assert_eq!(
        access_check(
            &init,
            &sd,
            AccessMask::MAXIMUM_ALLOWED,
            &GenericMapping::PROCESS
        ),
        Ok(AccessMask::PROCESS_ALL_ACCESS)
    );
}

#[test]
fn user_acts_on_own_process_not_on_another_users() {
    let alice = Token::user(1000);
    let bob = Token::user(1001);
    let (alice_sd, alice_level) = process_of(&alice);
    let (bob_sd, bob_level) = process_of(&bob);
    let influence = [
        TERM,
        QUERY,
        AccessMask::PROCESS_VM_READ,
        AccessMask::PROCESS_SET_QUOTA,
    ];
    for desired in influence {
        assert_eq!(
            check_process_access(&alice, &alice_sd, alice_level, desired),
            Ok(())
        );
        assert_eq!(
            reason(check_process_access(&alice, &bob_sd, bob_level, desired)),
            Some(DenialReason::AccessDenied { missing: desired })
        );
    }
    // Everyone may see the limited facts and wait on a process.
    assert_eq!(
        check_process_access(&alice, &bob_sd, bob_level, QUERY_LIMITED),
        Ok(())
    );
    // An administrator at High may act on both.
    assert_eq!(
        check_process_access(&admin(1), &bob_sd, bob_level, TERM),
        Ok(())
    );
}

#[test]
fn registry_key_everyone_reads_only_admins_write() {
    let key = SecurityDescriptor::for_registry_key(true);
    let k = GenericMapping::KEY;
    let readers = [
        Token::user(1000),
        Token::system(),
        admin(1),
        Token::system().restricted(),
    ];
    for t in &readers {
        assert_eq!(
            access_check(t, &key, AccessMask::KEY_READ, &k),
            Ok(AccessMask::KEY_READ)
        );
        assert!(access_check(t, &key, AccessMask::GENERIC_READ, &k).is_ok());
    }
    for t in [Token::system(), admin(1)] {
        assert_eq!(
            access_check(&t, &key, AccessMask::KEY_SET_VALUE, &k),
            Ok(AccessMask::KEY_SET_VALUE)
        );
    }
    for t in [Token::user(1000), Token::system().restricted()] {
        assert_eq!(
            access_check(&t, &key, AccessMask::KEY_SET_VALUE, &k),
            Err(AccessDenied {
                missing: AccessMask::KEY_SET_VALUE
            })
        );
    }
    // A user-writable key still refuses callers below its Medium label.
    let open = SecurityDescriptor::for_registry_key(false);
    assert!(access_check(&Token::user(1000), &open, AccessMask::KEY_SET_VALUE, &k).is_ok());
    let low = Token::user(1000).restricted_to(IntegrityLevel::Low);
    assert!(access_check(&low, &open, AccessMask::KEY_SET_VALUE, &k).is_err());
    assert!(access_check(&low, &open, AccessMask::KEY_QUERY_VALUE, &k).is_ok());
}

#[test]
fn errno_hints_follow_linux() {
    let no_priv = Denied::new(DenialReason::NoPrivilege(Privilege::SeLockMemoryPrivilege));
    let pip = Denied::new(DenialReason::IntegrityTooLow {
        caller: IntegrityLevel::Medium,
        target: IntegrityLevel::System,
    });
    let dacl = Denied::from(AccessDenied { missing: TERM });
    assert_eq!(
        (no_priv.errno_hint(), pip.errno_hint(), dacl.errno_hint()),
        (EPERM, EPERM, EACCES)
    );
    for d in [no_priv, pip, dacl] {
        assert_eq!(d.errno_for(Operation::ProcessControl), EPERM);
        assert_eq!(d.errno_for(Operation::Privileged), EPERM);
        assert_eq!(d.errno_for(Operation::Open), EACCES);
    }
    assert_eq!((EPERM, EACCES), (1, 13));
}

#[test]
fn restricted_session_manages_its_own_children_only() {
    // A restricted init child with a logon SID (the kernel adds one when it restricts a
    // token) starts a child: the child's descriptor grants that logon SID, so the
    // creator may terminate it although SYSTEM is deny-only in its token.
    let init = Token::system();
    let session = init.restricted().with_group(Group::enabled(Sid::logon(7)));
    let (child_sd, child_level) = process_of(&session);
    assert_eq!(
        check_process_access(&session, &child_sd, child_level, TERM),
        Ok(())
    );
    // Another restricted session does not hold that logon SID.
    let other = init.restricted().with_group(Group::enabled(Sid::logon(8)));
    assert!(check_process_access(&other, &child_sd, child_level, TERM).is_err());
    // And init stays out of reach.
    let (init_sd, init_level) = process_of(&init);
    assert!(check_process_access(&session, &init_sd, init_level, TERM).is_err());
}
