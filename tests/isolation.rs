//! Tenant isolation (SPEC §3) and the permission matrix (SPEC §4), both
//! driven by one table of every route under `/api/v1/orgs/{org}`.
//!
//! The table is checked against the OpenAPI document: a new tenant route
//! that is not listed here fails both tests until it is added (with the
//! action the policy decides it by).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use axum::http::Method;
use common::{Resp, TestApp, TestUser};
use orgboard::domain::{Action, Ownership, Role};
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    cross_tenant_access_answers_not_found,
    role_matrix_follows_the_policy,
);

/// Every tenant route starts with this.
const ORG_ROUTE: &str = "/api/v1/orgs/{org}";

/// What the `{user_id}` / `{invite_id}` of a route points at.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Nothing beyond the organization.
    Org,
    /// Another member, holding this role.
    Member(Role),
    /// The caller themself.
    Myself,
    /// A pending invite with this role.
    Invite(Role),
}

/// The request body a case sends.
#[derive(Debug, Clone, Copy)]
enum Body {
    Empty,
    /// `{"name": …}` (a rename).
    Rename,
    /// `{"role": …}` (a role change).
    SetRole(Role),
    /// `{"email": <fresh address>, "role": …}` (an invitation).
    Invite(Role),
}

impl Body {
    fn json(self) -> Option<Value> {
        match self {
            Body::Empty => None,
            Body::Rename => Some(json!({ "name": "Renamed" })),
            Body::SetRole(r) => Some(json!({ "role": r.as_str() })),
            Body::Invite(r) => Some(json!({
                "email": format!("invitee-{}@example.com", Uuid::now_v7().simple()),
                "role": r.as_str(),
            })),
        }
    }
}

/// One row of the table: a route, the SPEC §4 action that decides it, and
/// what it acts on. A route may have several rows (different targets).
#[derive(Debug, Clone)]
struct Case {
    method: Method,
    path: &'static str,
    action: Action,
    target: Target,
    body: Body,
}

impl Case {
    fn describe(&self) -> String {
        format!(
            "{} {} ({:?} on {:?}, body {:?})",
            self.method, self.path, self.action, self.target, self.body
        )
    }
}

/// Every route under `/api/v1/orgs/{org}`, with its action.
fn table() -> Vec<Case> {
    use Action::*;
    let case = |method: Method, path: &'static str, action, target, body| Case {
        method,
        path,
        action,
        target,
        body,
    };
    let org = "/api/v1/orgs/{org}";
    let members = "/api/v1/orgs/{org}/members";
    let member = "/api/v1/orgs/{org}/members/{user_id}";
    let invites = "/api/v1/orgs/{org}/invites";
    let invite = "/api/v1/orgs/{org}/invites/{invite_id}";
    let audit = "/api/v1/orgs/{org}/audit-log";
    vec![
        case(Method::GET, org, ReadOrg, Target::Org, Body::Empty),
        case(Method::PATCH, org, UpdateOrg, Target::Org, Body::Rename),
        case(Method::DELETE, org, DeleteOrg, Target::Org, Body::Empty),
        case(Method::GET, members, ReadOrg, Target::Org, Body::Empty),
        // A plain member demoted, then the grant and manage edges.
        case(
            Method::PATCH,
            member,
            ManageMembers,
            Target::Member(Role::Member),
            Body::SetRole(Role::Viewer),
        ),
        case(
            Method::PATCH,
            member,
            ManageMembers,
            Target::Member(Role::Viewer),
            Body::SetRole(Role::Admin),
        ),
        case(
            Method::PATCH,
            member,
            ManageMembers,
            Target::Member(Role::Admin),
            Body::SetRole(Role::Owner),
        ),
        case(
            Method::PATCH,
            member,
            ManageMembers,
            Target::Member(Role::Owner),
            Body::SetRole(Role::Member),
        ),
        case(
            Method::DELETE,
            member,
            ManageMembers,
            Target::Member(Role::Member),
            Body::Empty,
        ),
        case(
            Method::DELETE,
            member,
            ManageMembers,
            Target::Member(Role::Owner),
            Body::Empty,
        ),
        case(Method::DELETE, member, Leave, Target::Myself, Body::Empty),
        case(
            Method::GET,
            invites,
            ManageInvites,
            Target::Org,
            Body::Empty,
        ),
        case(
            Method::POST,
            invites,
            ManageInvites,
            Target::Org,
            Body::Invite(Role::Member),
        ),
        case(
            Method::POST,
            invites,
            ManageInvites,
            Target::Org,
            Body::Invite(Role::Admin),
        ),
        case(
            Method::POST,
            invites,
            ManageInvites,
            Target::Org,
            Body::Invite(Role::Owner),
        ),
        case(
            Method::DELETE,
            invite,
            ManageInvites,
            Target::Invite(Role::Member),
            Body::Empty,
        ),
        case(
            Method::DELETE,
            invite,
            ManageInvites,
            Target::Invite(Role::Owner),
            Body::Empty,
        ),
        case(Method::GET, audit, ReadAuditLog, Target::Org, Body::Empty),
    ]
}

/// Whether `role` may do `case`, asked of the policy only: the action's row
/// of the permission table, plus the target rules (nobody touches a role
/// they may not manage, nobody grants or revokes above their own power).
fn allowed(role: Role, case: &Case) -> bool {
    let own = match case.target {
        Target::Myself => Ownership::Own,
        _ => Ownership::NotOwn,
    };
    let mut ok = role.can(case.action, own);
    match case.target {
        Target::Member(target) => ok &= role.may_manage(target),
        Target::Invite(target) => ok &= role.may_grant(target),
        Target::Org | Target::Myself => {}
    }
    match case.body {
        Body::SetRole(granted) | Body::Invite(granted) => ok &= role.may_grant(granted),
        Body::Empty | Body::Rename => {}
    }
    ok
}

/// `(METHOD, path)` of every documented route under `/api/v1/orgs/{org}`.
fn documented_org_routes() -> BTreeSet<(String, String)> {
    let doc = orgboard::http::openapi();
    let mut out = BTreeSet::new();
    for (path, item) in doc.paths.paths.iter() {
        if path != ORG_ROUTE && !path.starts_with(&format!("{ORG_ROUTE}/")) {
            continue;
        }
        let operations = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::OPTIONS, &item.options),
            (Method::HEAD, &item.head),
            (Method::PATCH, &item.patch),
            (Method::TRACE, &item.trace),
            (Method::from_bytes(b"QUERY").unwrap(), &item.query),
        ];
        for (method, op) in operations {
            if op.is_some() {
                out.insert((method.to_string(), path.clone()));
            }
        }
    }
    out
}

/// The table lists exactly the documented tenant routes: none missing (a new
/// route must be added here), none invented (a typo would test nothing).
fn assert_table_matches_openapi(cases: &[Case]) {
    let documented = documented_org_routes();
    let listed: BTreeSet<(String, String)> = cases
        .iter()
        .map(|c| (c.method.to_string(), c.path.to_owned()))
        .collect();
    let missing: Vec<_> = documented.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "tenant routes missing from the isolation table (add them to tests/isolation.rs): {missing:?}"
    );
    let unknown: Vec<_> = listed.difference(&documented).collect();
    assert!(
        unknown.is_empty(),
        "isolation table lists routes the OpenAPI document lacks: {unknown:?}"
    );
}

/// The path of `template` for `org` with its object id filled in.
fn fill(template: &str, org: &str, object: Option<Uuid>) -> String {
    let mut path = template.replace("{org}", org);
    if let Some(id) = object {
        path = path
            .replace("{user_id}", &id.to_string())
            .replace("{invite_id}", &id.to_string());
    }
    assert!(!path.contains('{'), "unfilled path parameter in {path}");
    path
}

/// Creates a pending invite (by `by`) with `role` to a fresh address;
/// returns its id and token.
async fn create_invite(app: &TestApp, org: Uuid, by: &TestUser, role: Role) -> (Uuid, String) {
    let r = app
        .post(
            &format!("/api/v1/orgs/{org}/invites"),
            &by.token,
            Body::Invite(role).json().unwrap(),
        )
        .await
        .expect(201);
    (
        r.json["id"].as_str().unwrap().parse().unwrap(),
        r.json["token"].as_str().unwrap().to_owned(),
    )
}

/// What an organization looks like to `viewer`: audit row count, the org,
/// its members and its invites.
async fn snapshot(app: &TestApp, org: Uuid, viewer: &TestUser) -> (i64, Value, Value, Value) {
    let base = format!("/api/v1/orgs/{org}");
    let get = |path: String| async move { app.get(&path, &viewer.token).await.expect(200).json };
    (
        app.audit_count(org).await,
        get(base.clone()).await,
        get(format!("{base}/members?limit=200")).await,
        get(format!("{base}/invites?limit=200")).await,
    )
}

#[track_caller]
fn assert_same_not_found(r: &Resp, reference: &Resp, what: &str) {
    assert_eq!(r.status, 404, "{what}: expected 404, got body {}", r.text);
    assert_eq!(
        r.content_type(),
        "application/problem+json",
        "{what}: {}",
        r.text
    );
    assert_eq!(
        r.json, reference.json,
        "{what}: a foreign object must look exactly like a missing one"
    );
}

async fn cross_tenant_access_answers_not_found(app: TestApp) {
    let cases = table();
    assert_table_matches_openapi(&cases);

    // Org A with data; org B whose owner b attacks A.
    let a = app.signup("alice").await;
    let org_a = app.create_org(&a, "Alpha").await;
    let member_a = app.member(org_a, &a, "member").await;
    let (invite_a, invite_a_token) = create_invite(&app, org_a, &a, Role::Member).await;
    let b = app.signup("bob").await;
    let org_b = app.create_org(&b, "Beta").await;
    let b_member = app.member(org_b, &b, "member").await;
    create_invite(&app, org_b, &b, Role::Member).await;
    let app_ref = &app;
    let slug = |org: Uuid, user: &TestUser| {
        let path = format!("/api/v1/orgs/{org}");
        let token = user.token.clone();
        async move {
            app_ref.get(&path, &token).await.expect(200).json["slug"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let slug_a = slug(org_a, &a).await;
    let slug_b = slug(org_b, &b).await;

    let before_a = snapshot(&app, org_a, &a).await;
    let before_b = snapshot(&app, org_b, &b).await;

    // What a missing organization and a missing object look like.
    let missing_org = app
        .get(&format!("/api/v1/orgs/{}", Uuid::now_v7()), &b.token)
        .await
        .expect_problem(404, "not_found");
    let missing_member = app
        .delete(
            &format!("/api/v1/orgs/{org_b}/members/{}", Uuid::now_v7()),
            &b.token,
        )
        .await
        .expect_problem(404, "not_found");

    for case in &cases {
        // An object that lives in org A, of the kind the route acts on.
        let object_in_a = match case.target {
            Target::Org => None,
            Target::Member(Role::Owner) => Some(a.id),
            Target::Member(_) => Some(member_a.id),
            Target::Myself => Some(b.id),
            Target::Invite(_) => Some(invite_a),
        };
        // Org A in the path, by id and by slug.
        for org_ref in [org_a.to_string(), slug_a.clone()] {
            let path = fill(case.path, &org_ref, object_in_a);
            let r = app
                .call(case.method.clone(), &path, Some(&b.token), case.body.json())
                .await;
            let what = format!("b on org A: {} {path}", case.describe());
            assert_same_not_found(&r, &missing_org, &what);
        }
        // b's own org B in the path, with the id of an object of org A.
        if matches!(case.target, Target::Member(_) | Target::Invite(_)) {
            for org_ref in [org_b.to_string(), slug_b.clone()] {
                let path = fill(case.path, &org_ref, object_in_a);
                let r = app
                    .call(case.method.clone(), &path, Some(&b.token), case.body.json())
                    .await;
                let what = format!("b on org B with A's id: {} {path}", case.describe());
                assert_same_not_found(&r, &missing_member, &what);
            }
        }
    }

    // An org-A invite token used by someone it was not sent to.
    let r = app
        .post(
            "/api/v1/invites/accept",
            &b.token,
            json!({ "token": invite_a_token }),
        )
        .await;
    assert!(
        r.status == 403 || r.status == 404,
        "accepting another's invite must be refused, got {} {}",
        r.status,
        r.text
    );
    assert_eq!(r.content_type(), "application/problem+json", "{}", r.text);
    let r = app
        .post(
            "/api/v1/invites/accept",
            &b_member.token,
            json!({ "token": invite_a_token }),
        )
        .await;
    assert!(
        r.status == 403 || r.status == 404,
        "accepting another's invite must be refused, got {} {}",
        r.status,
        r.text
    );
    // The same secret re-addressed to org B does not open anything either.
    let forged = invite_a_token.replace(&org_a.simple().to_string(), &org_b.simple().to_string());
    assert_ne!(forged, invite_a_token);
    app.post(
        "/api/v1/invites/accept",
        &b.token,
        json!({ "token": forged }),
    )
    .await
    .expect(404);
    app.get(&format!("/api/v1/orgs/{org_a}"), &b.token)
        .await
        .expect_problem(404, "not_found");
    app.get(&format!("/api/v1/orgs/{org_a}"), &b_member.token)
        .await
        .expect_problem(404, "not_found");
    let mine = app
        .get("/api/v1/orgs?limit=200", &b.token)
        .await
        .expect(200);
    assert!(
        !mine.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == org_a.to_string()),
        "org A must not be listed for b"
    );

    // Nothing happened in either organization.
    let after_a = snapshot(&app, org_a, &a).await;
    assert_eq!(after_a.0, before_a.0, "org A audit row count changed");
    assert_eq!(after_a.1, before_a.1, "org A view changed");
    assert_eq!(after_a.2, before_a.2, "org A members changed");
    assert_eq!(after_a.3, before_a.3, "org A invites changed");
    let after_b = snapshot(&app, org_b, &b).await;
    assert_eq!(after_b, before_b, "org B changed");
}

async fn role_matrix_follows_the_policy(app: TestApp) {
    let cases = table();
    assert_table_matches_openapi(&cases);

    // `creator` owns every organization made here, so the caller (even an
    // owner) is never the last owner and every target can be set up.
    let creator = app.signup("creator").await;
    let target = app.signup("target").await;
    let mut outcomes = BTreeSet::new();
    let mut n = 0;
    for role in Role::ALL {
        let caller = app.signup(role.as_str()).await;
        for case in &cases {
            // A fresh organization per call: allowed calls delete the org,
            // remove members, revoke invites or make the caller leave.
            n += 1;
            let org = app.create_org(&creator, &format!("Matrix {n}")).await;
            app.join(org, &creator, &caller, role.as_str()).await;
            let object = match case.target {
                Target::Org => None,
                Target::Myself => Some(caller.id),
                Target::Member(r) => {
                    app.join(org, &creator, &target, r.as_str()).await;
                    Some(target.id)
                }
                Target::Invite(r) => Some(create_invite(&app, org, &creator, r).await.0),
            };
            let path = fill(case.path, &org.to_string(), object);
            let audit_before = app.audit_count(org).await;
            let r = app
                .call(
                    case.method.clone(),
                    &path,
                    Some(&caller.token),
                    case.body.json(),
                )
                .await;
            let audit_after = app.audit_count(org).await;

            let expected = allowed(role, case);
            outcomes.insert(expected);
            let what = format!("{role:?}: {}", case.describe());
            if expected {
                assert!(
                    r.status.is_success(),
                    "{what}: allowed by the policy, got {} {}",
                    r.status,
                    r.text
                );
                if case.method == Method::GET {
                    assert_eq!(audit_after, audit_before, "{what}: a read was audited");
                } else {
                    assert!(audit_after > audit_before, "{what}: change not audited");
                }
            } else {
                assert_eq!(
                    r.status, 403,
                    "{what}: refused by the policy, got {}",
                    r.text
                );
                assert_eq!(
                    r.content_type(),
                    "application/problem+json",
                    "{what}: {}",
                    r.text
                );
                assert_eq!(r.json["code"], "forbidden", "{what}: {}", r.text);
                assert_eq!(r.json["status"], 403, "{what}: {}", r.text);
                assert_eq!(audit_after, audit_before, "{what}: refused, yet audited");
            }
        }
    }
    assert_eq!(
        outcomes.len(),
        2,
        "the matrix exercises both allowed and refused calls"
    );
}
