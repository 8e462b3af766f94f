//! Who may give a file a new owner or group (`chown`), Linux's rules the Peios way:
//! a new owner other than the current one needs `WRITE_OWNER`, which only SYSTEM and
//! Administrators hold on a file (through its DACL; Linux's `CAP_CHOWN`). Without it,
//! the file's owner (its owner SID is the caller's user SID, not deny-only, or an
//! enabled group) may keep itself as owner and set the group to one it is a member of,
//! or keep the group (Linux's `chown_ok`/`chgrp_ok` for the file's owner).

use crate::{access_check, AccessMask, GenericMapping, SecurityDescriptor, Sid, Token};

/// Whether `token` may set the owner of a file with descriptor `sd` to `owner` and
/// its group to `group` (`None`: unchanged, Linux's -1).
pub fn may_change_owner(
    token: &Token,
    sd: &SecurityDescriptor,
    owner: Option<Sid>,
    group: Option<Sid>,
) -> bool {
    let may_take = access_check(token, sd, AccessMask::WRITE_OWNER, &GenericMapping::FILE).is_ok();
    if may_take {
        return true;
    }
    let is_owner = token.is_member(&sd.owner);
    let owner_ok = owner.is_none_or(|o| is_owner && o == sd.owner);
    let group_ok = group.is_none_or(|g| is_owner && (g == sd.group || token.is_member(&g)));
    owner_ok && group_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Group, IntegrityLevel, MandatoryLabel, MandatoryPolicy};

    /// A 0644 file owned by `owner` with group `group`, as tmpfs makes one.
    fn file(owner: Sid, group: Sid) -> SecurityDescriptor {
        let label = MandatoryLabel::new(IntegrityLevel::Medium, MandatoryPolicy::NO_WRITE_UP);
        SecurityDescriptor::file_with_mode(owner, group, label, 0o644)
    }

    /// uid 1000, primary group 1000, also in group 1001.
    fn alice() -> Token {
        Token::user(1000).with_group(Group::enabled(Sid::group(1001)))
    }

    #[test]
    fn the_owner_changes_the_group_to_one_it_is_in() {
        let sd = file(Sid::user(1000), Sid::group(1000));
        let t = alice();
        assert!(may_change_owner(&t, &sd, None, Some(Sid::group(1001))));
        assert!(may_change_owner(&t, &sd, None, Some(Sid::group(1000))));
        assert!(!may_change_owner(&t, &sd, None, Some(Sid::group(1002))));
        assert!(!may_change_owner(&t, &sd, None, Some(Sid::SYSTEM)));
        // Keeping itself as owner is allowed, with or without a group change.
        assert!(may_change_owner(&t, &sd, Some(Sid::user(1000)), None));
        assert!(may_change_owner(
            &t,
            &sd,
            Some(Sid::user(1000)),
            Some(Sid::group(1001))
        ));
        assert!(may_change_owner(&t, &sd, None, None));
        // Giving the file away is not.
        assert!(!may_change_owner(&t, &sd, Some(Sid::user(1001)), None));
        assert!(!may_change_owner(
            &t,
            &sd,
            Some(Sid::user(1001)),
            Some(Sid::group(1001))
        ));
    }

    #[test]
    fn the_group_it_already_has_may_be_kept_even_when_not_a_member() {
        let sd = file(Sid::user(1000), Sid::group(1005));
        let t = alice();
        assert!(may_change_owner(&t, &sd, None, Some(Sid::group(1005))));
        assert!(may_change_owner(&t, &sd, None, Some(Sid::group(1001))));
    }

    #[test]
    fn others_need_write_owner() {
        let sd = file(Sid::user(1002), Sid::group(1001));
        let t = alice();
        // A member of the file's group, not its owner.
        assert!(!may_change_owner(&t, &sd, None, Some(Sid::group(1001))));
        assert!(!may_change_owner(&t, &sd, None, Some(Sid::group(1000))));
        assert!(!may_change_owner(&t, &sd, Some(Sid::user(1000)), None));
        // SYSTEM holds WRITE_OWNER through the DACL: anything goes.
        let system = Token::system();
        assert!(may_change_owner(
            &system,
            &sd,
            Some(Sid::user(7)),
            Some(Sid::group(8))
        ));
        // A restricted SYSTEM holds SYSTEM deny-only: not even the owner of SYSTEM's
        // files any more.
        let restricted = system.restricted();
        let own = file(Sid::SYSTEM, Sid::SYSTEM);
        assert!(!may_change_owner(
            &restricted,
            &own,
            None,
            Some(Sid::SYSTEM)
        ));
        assert!(!may_change_owner(
            &restricted,
            &sd,
            Some(Sid::user(7)),
            None
        ));
    }
}
