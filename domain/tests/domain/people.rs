//! A tenant's people: the sign-up's first admin, invitations, role changes, disabling — and
//! the rule that a tenant always keeps an enabled admin.

use casebook_domain::actor::{Actor, Role};
use casebook_domain::error::{AccessError, DomainError, ErrorKind};
use casebook_domain::ids::UserId;
use casebook_domain::policy::PlanTier;
use casebook_domain::tenant::{Invitee, Tenant, TenantCommand, TenantError, TenantEvent};
use casebook_domain::values::Email;
use cqrs_es::test::TestFramework;

use crate::support::{actor, v, OTHER_TENANT, TENANT};

fn tenant() -> TestFramework<Tenant> {
    TestFramework::with(())
}

fn admin() -> Actor {
    actor(Role::Admin, TENANT)
}

fn email(address: &str) -> Email {
    Email::parse(address).expect("test address")
}

fn invitee(address: &str) -> Invitee {
    Invitee {
        email: email(address),
        name: v("Ann Lee"),
    }
}

/// `TENANT` as the public sign-up leaves it: its first admin is `founder@acme.test`.
fn signed_up() -> Vec<TenantEvent> {
    vec![TenantEvent::TenantSignedUp {
        tenant_id: TENANT,
        name: v("Acme Audit"),
        plan: PlanTier::Starter,
        admin: invitee("founder@acme.test"),
    }]
}

/// [`signed_up`] with a consultant, `kim@acme.test`.
fn with_consultant() -> Vec<TenantEvent> {
    let mut events = signed_up();
    events.push(TenantEvent::UserInvited {
        invitee: invitee("kim@acme.test"),
        role: Role::Consultant,
    });
    events
}

#[test]
fn the_sign_up_creates_the_tenant_with_its_first_admin() {
    tenant()
        .given_no_previous_events()
        .when(TenantCommand::SignUp {
            actor: Actor::system(TENANT),
            name: v("Acme Audit"),
            plan: PlanTier::Starter,
            admin: invitee("founder@acme.test"),
        })
        .then_expect_events(signed_up());
}

#[test]
fn a_repeated_sign_up_is_refused_and_only_the_platform_signs_up() {
    tenant()
        .given(signed_up())
        .when(TenantCommand::SignUp {
            actor: Actor::system(TENANT),
            name: v("Acme Audit"),
            plan: PlanTier::Starter,
            admin: invitee("founder@acme.test"),
        })
        .then_expect_error(TenantError::AlreadyOnboarded);
    tenant()
        .given_no_previous_events()
        .when(TenantCommand::SignUp {
            actor: admin(),
            name: v("Acme Audit"),
            plan: PlanTier::Starter,
            admin: invitee("founder@acme.test"),
        })
        .then_expect_error(TenantError::Access(AccessError::Forbidden {
            role: Role::Admin,
        }));
}

#[test]
fn an_admin_invites_someone_in_a_tenant_role() {
    tenant()
        .given(signed_up())
        .when(TenantCommand::InviteUser {
            actor: admin(),
            invitee: invitee("kim@acme.test"),
            role: Role::Consultant,
        })
        .then_expect_events(with_consultant()[1..].to_vec());
}

#[test]
fn an_invitation_is_refused_for_a_member_a_platform_role_another_role_or_another_tenant() {
    let invite = |actor: Actor, address: &str, role: Role| TenantCommand::InviteUser {
        actor,
        invitee: invitee(address),
        role,
    };
    tenant()
        .given(with_consultant())
        .when(invite(admin(), "KIM@acme.test", Role::Customer))
        .then_expect_error(TenantError::AlreadyMember(email("kim@acme.test")));
    for role in [Role::System, Role::Operator] {
        tenant()
            .given(signed_up())
            .when(invite(admin(), "x@acme.test", role))
            .then_expect_error(TenantError::NotATenantRole(role));
    }
    tenant()
        .given(signed_up())
        .when(invite(
            actor(Role::Consultant, TENANT),
            "x@acme.test",
            Role::Admin,
        ))
        .then_expect_error(TenantError::Access(AccessError::Forbidden {
            role: Role::Consultant,
        }));
    tenant()
        .given(signed_up())
        .when(invite(
            actor(Role::Admin, OTHER_TENANT),
            "x@acme.test",
            Role::Admin,
        ))
        .then_expect_error(TenantError::Access(AccessError::NotFound));
}

#[test]
fn a_role_change_names_the_previous_role() {
    tenant()
        .given(with_consultant())
        .when(TenantCommand::ChangeUserRole {
            actor: admin(),
            email: email("kim@acme.test"),
            role: Role::Auditor,
        })
        .then_expect_events(vec![TenantEvent::UserRoleChanged {
            email: email("kim@acme.test"),
            previous_role: Role::Consultant,
            role: Role::Auditor,
        }]);
    tenant()
        .given(with_consultant())
        .when(TenantCommand::ChangeUserRole {
            actor: admin(),
            email: email("kim@acme.test"),
            role: Role::Consultant,
        })
        .then_expect_error(TenantError::RoleUnchanged(email("kim@acme.test")));
    tenant()
        .given(with_consultant())
        .when(TenantCommand::ChangeUserRole {
            actor: admin(),
            email: email("nobody@acme.test"),
            role: Role::Consultant,
        })
        .then_expect_error(TenantError::NoSuchMember(email("nobody@acme.test")));
}

#[test]
fn the_last_enabled_admin_can_be_neither_demoted_nor_disabled() {
    let founder = email("founder@acme.test");
    tenant()
        .given(with_consultant())
        .when(TenantCommand::ChangeUserRole {
            actor: admin(),
            email: founder.clone(),
            role: Role::Consultant,
        })
        .then_expect_error(TenantError::LastAdmin);
    tenant()
        .given(with_consultant())
        .when(TenantCommand::DisableUser {
            actor: admin(),
            email: founder.clone(),
        })
        .then_expect_error(TenantError::LastAdmin);

    // With a second admin, the founder may step down.
    let mut two_admins = with_consultant();
    two_admins.push(TenantEvent::UserRoleChanged {
        email: email("kim@acme.test"),
        previous_role: Role::Consultant,
        role: Role::Admin,
    });
    tenant()
        .given(two_admins.clone())
        .when(TenantCommand::DisableUser {
            actor: admin(),
            email: founder.clone(),
        })
        .then_expect_events(vec![TenantEvent::UserDisabled {
            email: founder.clone(),
        }]);

    // A disabled admin doesn't count.
    two_admins.push(TenantEvent::UserDisabled {
        email: founder.clone(),
    });
    tenant()
        .given(two_admins)
        .when(TenantCommand::ChangeUserRole {
            actor: admin(),
            email: email("kim@acme.test"),
            role: Role::Customer,
        })
        .then_expect_error(TenantError::LastAdmin);
}

#[test]
fn disabling_and_enabling_are_transitions_not_repeats() {
    let kim = email("kim@acme.test");
    let mut disabled = with_consultant();
    disabled.push(TenantEvent::UserDisabled { email: kim.clone() });
    tenant()
        .given(disabled.clone())
        .when(TenantCommand::DisableUser {
            actor: admin(),
            email: kim.clone(),
        })
        .then_expect_error(TenantError::AlreadyDisabled(kim.clone()));
    tenant()
        .given(disabled)
        .when(TenantCommand::EnableUser {
            actor: admin(),
            email: kim.clone(),
        })
        .then_expect_events(vec![TenantEvent::UserEnabled { email: kim.clone() }]);
    tenant()
        .given(with_consultant())
        .when(TenantCommand::EnableUser {
            actor: admin(),
            email: kim.clone(),
        })
        .then_expect_error(TenantError::NotDisabled(kim));
}

#[test]
fn a_members_account_is_recorded_once_by_the_platform() {
    let kim = email("kim@acme.test");
    let sub = UserId::parse("0c2f6c1e-0000-4000-8000-00000000000a").unwrap();
    let provisioned = TenantEvent::UserProvisioned {
        email: kim.clone(),
        user_id: sub.clone(),
    };
    tenant()
        .given(with_consultant())
        .when(TenantCommand::RecordUserProvisioned {
            actor: Actor::system(TENANT),
            email: kim.clone(),
            user_id: sub.clone(),
        })
        .then_expect_events(vec![provisioned.clone()]);
    let mut events = with_consultant();
    events.push(provisioned);
    tenant()
        .given(events)
        .when(TenantCommand::RecordUserProvisioned {
            actor: Actor::system(TENANT),
            email: kim.clone(),
            user_id: sub.clone(),
        })
        .then_expect_error(TenantError::AlreadyProvisioned(kim.clone()));
    tenant()
        .given(with_consultant())
        .when(TenantCommand::RecordUserProvisioned {
            actor: admin(),
            email: kim,
            user_id: sub,
        })
        .then_expect_error(TenantError::Access(AccessError::Forbidden {
            role: Role::Admin,
        }));
}

#[test]
fn people_refusals_have_stable_codes_and_kinds() {
    let kim = email("kim@acme.test");
    for (error, code, kind) in [
        (
            TenantError::AlreadyMember(kim.clone()),
            "user_exists",
            ErrorKind::Conflict,
        ),
        (
            TenantError::NoSuchMember(kim.clone()),
            "user_not_found",
            ErrorKind::NotFound,
        ),
        (TenantError::LastAdmin, "last_admin", ErrorKind::Conflict),
        (
            TenantError::NotATenantRole(Role::System),
            "invalid_role",
            ErrorKind::Invalid,
        ),
    ] {
        assert_eq!(error.code(), Some(code));
        assert_eq!(error.kind(), kind);
    }
    assert_eq!(TenantError::AlreadyOnboarded.code(), None);
}
