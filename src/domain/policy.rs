//! The permission table of SPEC §4, in one place.
//!
//! Handlers ask [`Role::can`] (or [`require`]); they never compare roles
//! themselves. Rules that depend on the *target* of an action (an admin may
//! not touch owners, nobody grants above their own power) live here too, in
//! [`Role::may_manage`] and [`Role::may_grant`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Forbidden;

/// A member's role in an organization, from most to least powerful.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including deleting the organization.
    Owner,
    /// Manages boards, members (not owners) and invites.
    Admin,
    /// Works on tasks and lists.
    Member,
    /// Reads only.
    Viewer,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Power rank: higher is more powerful.
    fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Member => 1,
            Role::Viewer => 0,
        }
    }

    /// Whether this role may do `action`; `own` says whether the object is the
    /// caller's own in the sense the action needs (see [`Ownership`]).
    pub fn can(self, action: Action, own: Ownership) -> bool {
        use Action::*;
        use Role::*;
        let is_own = own == Ownership::Own;
        match action {
            ReadOrg => true,
            ManageBoard => matches!(self, Owner | Admin),
            ManageList => matches!(self, Owner | Admin | Member),
            DeleteList => matches!(self, Owner | Admin),
            CreateTask | CreateComment => matches!(self, Owner | Admin | Member),
            UpdateTask => match self {
                Owner | Admin => true,
                Member => is_own,
                Viewer => false,
            },
            DeleteTask => match self {
                Owner | Admin => true,
                Member => is_own,
                Viewer => false,
            },
            EditComment => self != Viewer && is_own,
            DeleteComment => match self {
                Owner | Admin => true,
                Member => is_own,
                Viewer => false,
            },
            ManageInvites | ManageMembers => matches!(self, Owner | Admin),
            Leave => true,
            ReadAuditLog => matches!(self, Owner | Admin),
            UpdateOrg => matches!(self, Owner | Admin),
            DeleteOrg | ManageBilling => self == Owner,
        }
    }

    /// Whether this role may give `target` to someone (invite or role change):
    /// never above one's own power, and only owners grant owner.
    pub fn may_grant(self, target: Role) -> bool {
        self.can(Action::ManageMembers, Ownership::NotOwn)
            && (self == Role::Owner || target.rank() < Role::Owner.rank())
            && target.rank() <= self.rank()
    }

    /// Whether this role may change or remove a member who holds `target`
    /// (admins never touch owners).
    pub fn may_manage(self, target: Role) -> bool {
        self.can(Action::ManageMembers, Ownership::NotOwn)
            && (self == Role::Owner || target != Role::Owner)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Whether the object of an action belongs to the caller (created by them or,
/// for task updates, assigned to them). Irrelevant actions ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The caller's own object.
    Own,
    /// Someone else's object (or ownership does not apply).
    NotOwn,
}

/// Everything a role may or may not do (the rows of SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read the organization, boards, lists, tasks, comments, members.
    ReadOrg,
    /// Create, rename, archive, delete a board.
    ManageBoard,
    /// Create, rename, reorder a list.
    ManageList,
    /// Delete a list.
    DeleteList,
    /// Create a task.
    CreateTask,
    /// Add a comment.
    CreateComment,
    /// Update, move, assign, complete a task (members: own tasks).
    UpdateTask,
    /// Delete a task (members: tasks they created).
    DeleteTask,
    /// Edit a comment (authors only).
    EditComment,
    /// Delete a comment (members: their own; admins and owners: any).
    DeleteComment,
    /// Invite and revoke invites.
    ManageInvites,
    /// Change roles and remove members.
    ManageMembers,
    /// Leave the organization.
    Leave,
    /// Read the audit log.
    ReadAuditLog,
    /// Rename the organization or change its slug.
    UpdateOrg,
    /// Delete the organization.
    DeleteOrg,
    /// Billing and plan.
    ManageBilling,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 17] = [
        Action::ReadOrg,
        Action::ManageBoard,
        Action::ManageList,
        Action::DeleteList,
        Action::CreateTask,
        Action::CreateComment,
        Action::UpdateTask,
        Action::DeleteTask,
        Action::EditComment,
        Action::DeleteComment,
        Action::ManageInvites,
        Action::ManageMembers,
        Action::Leave,
        Action::ReadAuditLog,
        Action::UpdateOrg,
        Action::DeleteOrg,
        Action::ManageBilling,
    ];
}

/// `Ok` when `role` may do `action`, else the refusal (`403` at the edge).
pub fn require(role: Role, action: Action, own: Ownership) -> Result<(), Forbidden> {
    if role.can(action, own) {
        Ok(())
    } else {
        Err(Forbidden(format!(
            "Your role ({}) does not allow this action.",
            role.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Ownership::*;

    /// SPEC §4 written out as data: for each action, the answer for
    /// (owner, admin, member, viewer) on someone else's object and on one's own.
    fn table() -> Vec<(Action, [bool; 4], [bool; 4])> {
        vec![
            (ReadOrg, [true, true, true, true], [true, true, true, true]),
            (
                ManageBoard,
                [true, true, false, false],
                [true, true, false, false],
            ),
            (
                ManageList,
                [true, true, true, false],
                [true, true, true, false],
            ),
            (
                DeleteList,
                [true, true, false, false],
                [true, true, false, false],
            ),
            (
                CreateTask,
                [true, true, true, false],
                [true, true, true, false],
            ),
            (
                CreateComment,
                [true, true, true, false],
                [true, true, true, false],
            ),
            (
                UpdateTask,
                [true, true, false, false],
                [true, true, true, false],
            ),
            (
                DeleteTask,
                [true, true, false, false],
                [true, true, true, false],
            ),
            (
                EditComment,
                [false, false, false, false],
                [true, true, true, false],
            ),
            (
                DeleteComment,
                [true, true, false, false],
                [true, true, true, false],
            ),
            (
                ManageInvites,
                [true, true, false, false],
                [true, true, false, false],
            ),
            (
                ManageMembers,
                [true, true, false, false],
                [true, true, false, false],
            ),
            (Leave, [true, true, true, true], [true, true, true, true]),
            (
                ReadAuditLog,
                [true, true, false, false],
                [true, true, false, false],
            ),
            (
                UpdateOrg,
                [true, true, false, false],
                [true, true, false, false],
            ),
            (
                DeleteOrg,
                [true, false, false, false],
                [true, false, false, false],
            ),
            (
                ManageBilling,
                [true, false, false, false],
                [true, false, false, false],
            ),
        ]
    }

    #[test]
    fn every_role_and_action_matches_the_spec_table() {
        let rows = table();
        assert_eq!(rows.len(), Action::ALL.len(), "every action has a row");
        for action in Action::ALL {
            let (_, not_own, own) = rows
                .iter()
                .find(|r| r.0 == action)
                .unwrap_or_else(|| panic!("no row for {action:?}"));
            for (i, role) in Role::ALL.into_iter().enumerate() {
                assert_eq!(
                    role.can(action, NotOwn),
                    not_own[i],
                    "{role:?} {action:?} not own"
                );
                assert_eq!(role.can(action, Own), own[i], "{role:?} {action:?} own");
            }
        }
    }

    #[test]
    fn grants_never_exceed_own_power() {
        use Role::*;
        let expect = [
            (Owner, [true, true, true, true]),
            (Admin, [false, true, true, true]),
            (Member, [false, false, false, false]),
            (Viewer, [false, false, false, false]),
        ];
        for (granter, row) in expect {
            for (i, target) in Role::ALL.into_iter().enumerate() {
                assert_eq!(
                    granter.may_grant(target),
                    row[i],
                    "{granter:?} grants {target:?}"
                );
            }
        }
    }

    #[test]
    fn admins_never_manage_owners() {
        use Role::*;
        let expect = [
            (Owner, [true, true, true, true]),
            (Admin, [false, true, true, true]),
            (Member, [false, false, false, false]),
            (Viewer, [false, false, false, false]),
        ];
        for (actor, row) in expect {
            for (i, target) in Role::ALL.into_iter().enumerate() {
                assert_eq!(
                    actor.may_manage(target),
                    row[i],
                    "{actor:?} manages {target:?}"
                );
            }
        }
    }

    #[test]
    fn roles_round_trip_through_text() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("superuser".parse::<Role>().is_err());
        assert!("Owner".parse::<Role>().is_err());
    }

    #[test]
    fn require_answers_forbidden() {
        let e = require(Role::Viewer, ManageBoard, NotOwn).expect_err("viewer cannot");
        assert!(e.0.contains("viewer"), "{e:?}");
        assert_eq!(
            crate::domain::DomainError::from(e).kind(),
            crate::domain::ErrorKind::Forbidden
        );
        assert!(require(Role::Admin, ManageBoard, NotOwn).is_ok());
    }
}
