//! Access tokens: the identity, groups, privileges and PIP level a thread runs with.
//!
//! SID matching follows NT: an *allow* ACE applies to the user SID and to the
//! enabled groups; a *deny* ACE applies to those and also to *deny-only* SIDs.
//! A deny-only SID can therefore take rights away but never give any.

use alloc::vec::Vec;

use bitflags::bitflags;

use crate::integrity::IntegrityLevel;
use crate::privilege::NotHeld;
use crate::privilege::{Privilege, PrivilegeSet};
use crate::sid::Sid;

/// Linux's `overflowuid`/`overflowgid`: what getuid answers for a SID that has
/// no Linux id.
pub const OVERFLOW_ID: u32 = 65534;

bitflags! {
    /// How a token uses one of its SIDs (NT `SE_GROUP_*` subset).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct SidAttributes: u32 {
        /// The SID counts for allow ACEs and ownership.
        const ENABLED = 0x0000_0004;
        /// The SID counts only for deny ACEs (`SE_GROUP_USE_FOR_DENY_ONLY`).
        const DENY_ONLY = 0x0000_0010;
    }
}

/// A group a token belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    /// The group's SID.
    pub sid: Sid,
    /// Whether it is enabled or deny-only; a group with neither is ignored.
    pub attributes: SidAttributes,
}

impl Group {
    /// An enabled group.
    pub const fn enabled(sid: Sid) -> Self {
        Self {
            sid,
            attributes: SidAttributes::ENABLED,
        }
    }

    /// A group that only counts for deny ACEs.
    pub const fn deny_only(sid: Sid) -> Self {
        Self {
            sid,
            attributes: SidAttributes::DENY_ONLY,
        }
    }

    fn counts_for_allow(&self) -> bool {
        self.attributes.contains(SidAttributes::ENABLED)
            && !self.attributes.contains(SidAttributes::DENY_ONLY)
    }

    fn counts_for_deny(&self) -> bool {
        self.attributes
            .intersects(SidAttributes::ENABLED | SidAttributes::DENY_ONLY)
    }
}

/// The SIDs that confer administrative power; [`Token::restricted`] makes them
/// deny-only, as a user SID or as a group.
const ADMINISTRATIVE_SIDS: [Sid; 2] = [Sid::SYSTEM, Sid::ADMINISTRATORS];

/// A security token: who a thread is and what it may do. Cloned on fork.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    user: Sid,
    user_attributes: SidAttributes,
    primary_group: Sid,
    groups: Vec<Group>,
    privileges: PrivilegeSet,
    integrity: IntegrityLevel,
    restricted: bool,
}

impl Token {
    /// A token for `user` with the given primary group, groups, privileges and level.
    pub fn new(
        user: Sid,
        primary_group: Sid,
        groups: Vec<Group>,
        privileges: PrivilegeSet,
        integrity: IntegrityLevel,
    ) -> Self {
        Self {
            user,
            user_attributes: SidAttributes::ENABLED,
            primary_group,
            groups,
            privileges,
            integrity,
            restricted: false,
        }
    }

    /// Init's token: user SYSTEM, primary group SYSTEM, member of Administrators
    /// and Everyone, every privilege held and enabled, level System.
    pub fn system() -> Self {
        Self::new(
            Sid::SYSTEM,
            Sid::SYSTEM,
            alloc::vec![
                Group::enabled(Sid::ADMINISTRATORS),
                Group::enabled(Sid::EVERYONE)
            ],
            PrivilegeSet::all_enabled(),
            IntegrityLevel::System,
        )
    }

    /// An ordinary user's token: user `Sid::user(uid)`, primary group
    /// `Sid::group(uid)` (the user-private-group convention), member of Everyone
    /// and Users, no privileges, level Medium.
    pub fn user(uid: u32) -> Self {
        Self::new(
            Sid::user(uid),
            Sid::group(uid),
            alloc::vec![
                Group::enabled(Sid::EVERYONE),
                Group::enabled(Sid::USERS),
                Group::enabled(Sid::group(uid)),
            ],
            PrivilegeSet::none(),
            IntegrityLevel::Medium,
        )
    }

    /// [`Token::restricted_to`] Medium.
    pub fn restricted(&self) -> Token {
        self.restricted_to(IntegrityLevel::Medium)
    }

    /// A restricted copy of this token:
    /// - every privilege removed (not just disabled: it cannot be re-enabled);
    /// - the level lowered to `level` (never raised: the lower of the two);
    /// - SYSTEM and Administrators, as user or group, made deny-only, so a
    ///   restricted init child cannot use init's identity to pass a DACL;
    /// - marked restricted ([`Token::is_restricted`]).
    ///
    /// The user SID itself stays, so getuid answers as before.
    pub fn restricted_to(&self, level: IntegrityLevel) -> Token {
        let mut t = self.clone();
        t.privileges = PrivilegeSet::none();
        t.integrity = t.integrity.min(level);
        if ADMINISTRATIVE_SIDS.contains(&t.user) {
            t.user_attributes = SidAttributes::DENY_ONLY;
        }
        for g in &mut t.groups {
            if ADMINISTRATIVE_SIDS.contains(&g.sid) {
                g.attributes = SidAttributes::DENY_ONLY;
            }
        }
        t.restricted = true;
        t
    }

    /// This token with `group` added (a logon SID, when a session starts).
    pub fn with_group(mut self, group: Group) -> Token {
        self.groups.push(group);
        self
    }

    /// The token's logon SID ([`Sid::logon`]), if it has an enabled one.
    pub fn logon_sid(&self) -> Option<Sid> {
        self.groups
            .iter()
            .find(|g| g.sid.is_logon() && g.counts_for_allow())
            .map(|g| g.sid)
    }

    /// The user SID.
    pub fn user_sid(&self) -> Sid {
        self.user
    }

    /// The primary group SID (the group of objects this token creates; getgid).
    pub fn primary_group(&self) -> Sid {
        self.primary_group
    }

    /// The groups.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The privileges, held and enabled.
    pub fn privileges(&self) -> &PrivilegeSet {
        &self.privileges
    }

    /// The PIP level.
    pub fn integrity(&self) -> IntegrityLevel {
        self.integrity
    }

    /// Whether this token came from [`Token::restricted_to`].
    pub fn is_restricted(&self) -> bool {
        self.restricted
    }

    /// Whether `p` is held *and enabled*: a held but disabled privilege does not count.
    pub fn has_privilege(&self, p: Privilege) -> bool {
        self.privileges.is_enabled(p)
    }

    /// Enables a held privilege; fails if the token does not hold it.
    pub fn enable_privilege(&mut self, p: Privilege) -> Result<(), NotHeld> {
        self.privileges.enable(p)
    }

    /// Disables a held privilege (it stays held); fails if the token does not hold it.
    pub fn disable_privilege(&mut self, p: Privilege) -> Result<(), NotHeld> {
        self.privileges.disable(p)
    }

    /// Drops a privilege altogether (NT's `SE_PRIVILEGE_REMOVED`): the token can never
    /// enable it again. Dropping one it does not hold changes nothing.
    pub fn remove_privilege(&mut self, p: Privilege) {
        self.privileges.remove(p)
    }

    /// The Linux uid (getuid/geteuid): from the user SID, [`OVERFLOW_ID`] if it has none.
    pub fn uid(&self) -> u32 {
        self.user.uid().unwrap_or(OVERFLOW_ID)
    }

    /// The Linux gid (getgid/getegid): from the primary group, [`OVERFLOW_ID`] if it has none.
    pub fn gid(&self) -> u32 {
        self.primary_group.gid().unwrap_or(OVERFLOW_ID)
    }

    /// Whether an *allow* ACE for `sid` applies to this token: `sid` is its
    /// (non-deny-only) user SID or an enabled group. `Everyone` always applies.
    pub fn is_member(&self, sid: &Sid) -> bool {
        if *sid == Sid::EVERYONE {
            return true;
        }
        (self.user == *sid && !self.user_attributes.contains(SidAttributes::DENY_ONLY))
            || self
                .groups
                .iter()
                .any(|g| g.sid == *sid && g.counts_for_allow())
    }

    /// Whether a *deny* ACE for `sid` applies to this token: as
    /// [`Token::is_member`], plus deny-only SIDs.
    pub fn is_member_for_deny(&self, sid: &Sid) -> bool {
        *sid == Sid::EVERYONE
            || self.user == *sid
            || self
                .groups
                .iter()
                .any(|g| g.sid == *sid && g.counts_for_deny())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_token_has_everything() {
        let t = Token::system();
        for p in Privilege::ALL {
            assert!(t.has_privilege(p), "{p}");
        }
        assert_eq!(t.integrity(), IntegrityLevel::System);
        assert!(t.is_member(&Sid::ADMINISTRATORS));
        assert!(t.is_member(&Sid::SYSTEM));
        assert_eq!((t.uid(), t.gid()), (0, 0));
        assert!(!t.is_restricted());
    }

    #[test]
    fn user_token_has_nothing_special() {
        let t = Token::user(1000);
        for p in Privilege::ALL {
            assert!(!t.has_privilege(p), "{p}");
        }
        assert_eq!(t.integrity(), IntegrityLevel::Medium);
        assert!(!t.is_member(&Sid::ADMINISTRATORS));
        assert!(t.is_member(&Sid::USERS) && t.is_member(&Sid::EVERYONE));
        assert!(!t.is_member(&Sid::user(1001)));
        assert_eq!((t.uid(), t.gid()), (1000, 1000));
    }

    #[test]
    fn held_but_disabled_privilege_does_not_count() {
        let mut t = Token::system();
        t.disable_privilege(Privilege::SeDebugPrivilege)
            .expect("held");
        assert!(!t.has_privilege(Privilege::SeDebugPrivilege));
        assert!(t.privileges().holds(Privilege::SeDebugPrivilege));
        t.enable_privilege(Privilege::SeDebugPrivilege)
            .expect("held");
        assert!(t.has_privilege(Privilege::SeDebugPrivilege));
        let mut u = Token::user(5);
        assert_eq!(
            u.enable_privilege(Privilege::SeTcbPrivilege),
            Err(NotHeld(Privilege::SeTcbPrivilege))
        );
    }

    #[test]
    fn restricted_token_loses_privileges_and_admin_power() {
        let r = Token::system().restricted();
        assert!(r.is_restricted());
        for p in Privilege::ALL {
            assert!(!r.has_privilege(p), "{p}");
            assert!(
                !r.privileges().holds(p),
                "{p} must be gone, not just disabled"
            );
        }
        let mut r2 = r.clone();
        assert!(r2.enable_privilege(Privilege::SeTcbPrivilege).is_err());
        assert_eq!(r.integrity(), IntegrityLevel::Medium);
        // Identity kept for getuid, but it no longer passes allow ACEs.
        assert_eq!(r.uid(), 0);
        assert!(!r.is_member(&Sid::SYSTEM) && r.is_member_for_deny(&Sid::SYSTEM));
        assert!(!r.is_member(&Sid::ADMINISTRATORS) && r.is_member_for_deny(&Sid::ADMINISTRATORS));
        assert!(r.is_member(&Sid::EVERYONE));
    }

    #[test]
    fn restriction_never_raises_the_level() {
        let low = Token::user(1).restricted_to(IntegrityLevel::Low);
        assert_eq!(low.integrity(), IntegrityLevel::Low);
        assert_eq!(
            low.restricted_to(IntegrityLevel::High).integrity(),
            IntegrityLevel::Low
        );
        // An ordinary user keeps its own SID enabled.
        assert!(low.is_member(&Sid::user(1)));
    }

    #[test]
    fn unmapped_sids_give_overflow_ids() {
        let t = Token::new(
            Sid::ADMINISTRATORS,
            Sid::USERS,
            Vec::new(),
            PrivilegeSet::none(),
            IntegrityLevel::High,
        );
        assert_eq!((t.uid(), t.gid()), (OVERFLOW_ID, OVERFLOW_ID));
    }
}
