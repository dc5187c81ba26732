//! `orgboard admin …`: the instance administrator's commands (SPEC §15),
//! run on the server against the same database (also while it serves).
//!
//! Every action that changes something is recorded: in the security log
//! (kind `admin`, with the command and its target) and, when it concerns an
//! organization, in that organization's audit log with `actor_id: null`
//! (the system) and `"actor": "admin"` in the payload, request id `admin`.
//! Bad input (an unknown user or organization, an unknown plan, a dead job
//! whose secret was blanked) is refused with one clear line and changes
//! nothing.

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::args;
use crate::auth::password::PasswordHasher;
use crate::db::change;
use crate::db::uow::{DbError, Uow};
use crate::db::{Db, Scope, now};
use crate::domain::DomainError;
use crate::domain::{Email, NAME_MAX, Password, parse_name};

use crate::security::{self, Kind};

/// The plans of SPEC §13.
pub const PLANS: [&str; 3] = ["free", "pro", "enterprise"];

/// The request id of the administrator's audit rows.
const REQUEST_ID: &str = "admin";

/// An organization as the administrator sees it.
#[derive(Debug, Clone)]
pub struct OrgInfo {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Plan.
    pub plan: String,
    /// When it was suspended, if it is.
    pub suspended_at: Option<DateTime<Utc>>,
}

/// Finds a live organization by id or slug, across tenants.
pub async fn find_org(db: &Db, reference: &str) -> anyhow::Result<OrgInfo> {
    let by_id = Uuid::try_parse(reference).ok();
    let slug = reference.to_lowercase();
    let found = crate::read_unit!(db, system, |u| async move {
        match u
            .fetch_optional(
                "SELECT id, name, slug, plan, suspended_at FROM organizations \
                 WHERE (id = $1 OR slug = $2) AND deleted_at IS NULL",
                &args![by_id, &slug],
            )
            .await?
        {
            Some(r) => Ok::<_, DbError>(Some(OrgInfo {
                id: r.get(0)?,
                name: r.get(1)?,
                slug: r.get(2)?,
                plan: r.get(3)?,
                suspended_at: r.get(4)?,
            })),
            None => Ok(None),
        }
    })?;
    found.with_context(|| format!("no organization with the id or slug {reference:?}"))
}

#[derive(Debug, Clone)]
struct UserInfo {
    id: Uuid,
    email: String,
}

/// Finds a live account by email or id.
async fn find_user(db: &Db, reference: &str) -> anyhow::Result<UserInfo> {
    let by_id = Uuid::try_parse(reference).ok();
    let email = reference.trim().to_lowercase();
    let found = crate::read_unit!(db, Scope::system(), |u| async move {
        match u
            .fetch_optional(
                "SELECT id, email FROM users WHERE (id = $1 OR email_norm = $2) AND deleted_at IS NULL",
                &args![by_id, &email],
            )
            .await?
        {
            Some(r) => Ok::<_, DbError>(Some(UserInfo {
                id: r.get(0)?,
                email: r.get(1)?,
            })),
            None => Ok(None),
        }
    })?;
    found.with_context(|| format!("no account with the email or id {reference:?}"))
}

/// The id of a live account named by email or id.
pub async fn find_user_id(db: &Db, reference: &str) -> anyhow::Result<Uuid> {
    Ok(find_user(db, reference).await?.id)
}

/// Records an administrator's action in the security log.
async fn log_action(db: &Db, user_id: Option<Uuid>, org_id: Option<Uuid>, detail: Value) {
    let mut entry = security::Entry::new(Kind::Admin, user_id, None).detail(detail);
    entry.org_id = org_id;
    security::record(db, entry).await;
}

/// Appends an audit row by the administrator in `org`.
async fn audit_admin<U: Uow>(
    u: &mut U,
    org: Uuid,
    kind: change::Kind,
    mut payload: Value,
) -> Result<(), crate::db::uow::DbError> {
    if let Value::Object(m) = &mut payload {
        m.insert("actor".into(), json!("admin"));
    }
    change::record(
        u,
        change::Change {
            org_id: org,
            actor_id: None,
            request_id: Some(REQUEST_ID),
            kind,
            entity_id: org,
            board_id: None,
            payload,
            card: None,
        },
    )
    .await
}

/// The scope of a write inside `org` with no user (the administrator).
fn in_org(org: Uuid) -> Scope {
    Scope {
        user_id: None,
        org_id: Some(org),
    }
}

/// The message of an error answered by a use case.
fn plain(e: DomainError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.detail())
}

/// Sets an organization's plan; returns the plan it had.
pub async fn set_plan(db: &Db, reference: &str, plan: &str) -> anyhow::Result<String> {
    if !PLANS.contains(&plan) {
        bail!("unknown plan {plan:?}; the plans are {}", PLANS.join(", "));
    }
    let org = find_org(db, reference).await?;
    if org.plan == plan {
        return Ok(org.plan);
    }
    let (org_id, from, to) = (org.id, org.plan.clone(), plan.to_owned());
    crate::unit!(db, in_org(org_id), |u| async move {
        u.execute(
            "UPDATE organizations SET plan = $1, updated_at = $2 WHERE id = $3",
            &args![to.as_str(), now(), org_id],
        )
        .await?;
        audit_admin(
            u,
            org_id,
            change::Kind::OrgPlanChanged,
            json!({ "plan": { "from": from, "to": to } }),
        )
        .await?;
        Ok::<_, DomainError>(())
    })
    .map_err(plain)?;
    log_action(
        db,
        None,
        Some(org.id),
        json!({ "command": "set-plan", "from": org.plan, "to": plan }),
    )
    .await;
    Ok(org.plan)
}

/// Suspends (`true`) or resumes an organization. Returns whether anything
/// changed (suspending a suspended one changes nothing).
pub async fn set_suspended(
    db: &Db,
    reference: &str,
    suspend: bool,
) -> anyhow::Result<(OrgInfo, bool)> {
    let org = find_org(db, reference).await?;
    if org.suspended_at.is_some() == suspend {
        return Ok((org, false));
    }
    let org_id = org.id;
    crate::unit!(db, in_org(org_id), |u| async move {
        let at = now();
        u.execute(
            "UPDATE organizations SET suspended_at = $1, updated_at = $2 WHERE id = $3",
            &args![suspend.then_some(at), at, org_id],
        )
        .await?;
        let action = if suspend {
            change::Kind::OrgSuspended
        } else {
            change::Kind::OrgResumed
        };
        audit_admin(u, org_id, action, json!({})).await?;
        Ok::<_, DomainError>(())
    })
    .map_err(plain)?;
    let command = if suspend { "suspend" } else { "resume" };
    log_action(db, None, Some(org.id), json!({ "command": command })).await;
    Ok((org, true))
}

/// What `create-user` made.
#[derive(Debug)]
pub struct Created {
    /// The account.
    pub user_id: Uuid,
    /// Its personal organization.
    pub org_id: Uuid,
    /// A link to choose the password, when none was given.
    pub link: Option<String>,
}

/// Creates an account (with its personal organization, as sign-up does).
/// Without a password the account gets a random one nobody knows, and a
/// one-time link (valid an hour) to choose one.
pub async fn create_user(
    db: &Db,
    hasher: &PasswordHasher,
    public_url: &str,
    email: &str,
    name: &str,
    password: Option<&str>,
) -> anyhow::Result<Created> {
    let email = Email::parse(email).map_err(|m| anyhow::anyhow!("email: {m}"))?;
    let name = parse_name(name, NAME_MAX).map_err(|m| anyhow::anyhow!("name: {m}"))?;
    let generated = password.is_none();
    let password = match password {
        Some(p) => {
            Password::parse(p)
                .map_err(|m| anyhow::anyhow!("password: {m}"))?
                .0
        }
        None => crate::auth::tokens::random_token(32),
    };
    let hash = hasher.hash(password).await?;
    let user_id = Uuid::now_v7();
    let shown = email.display.clone();
    let (org, token) = crate::unit!(db, Scope::user(user_id), |u| async move {
        let org =
            crate::auth::create_account(u, user_id, &email, &name, &hash, Some(REQUEST_ID)).await?;
        audit_admin(
            u,
            org.id,
            change::Kind::UserCreated,
            json!({ "user_id": user_id, "email": email.display }),
        )
        .await?;
        let token = if generated {
            Some(crate::auth::account::create_reset(u, user_id).await?.0)
        } else {
            None
        };
        Ok::<_, DomainError>((org, token))
    })
    .map_err(plain)?;
    let link = token.map(|t| format!("{public_url}/reset-password?token={t}"));
    log_action(
        db,
        Some(user_id),
        Some(org.id),
        json!({ "command": "create-user", "email": shown }),
    )
    .await;
    Ok(Created {
        user_id,
        org_id: org.id,
        link,
    })
}

/// Resets an account's password: to `password`, signing out every session;
/// or, without one, returns a one-time link (valid an hour) to choose one.
pub async fn reset_password(
    db: &Db,
    hasher: &PasswordHasher,
    public_url: &str,
    user: &str,
    password: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let account = find_user(db, user).await?;
    match password {
        Some(p) => {
            let p = Password::parse(p).map_err(|m| anyhow::anyhow!("password: {m}"))?;
            let hash = hasher.hash(p.0).await?;
            let user_id = account.id;
            crate::unit!(db, Scope::system(), |u| async move {
                crate::auth::account::set_password(u, user_id, &hash)
                    .await
                    .map_err(DomainError::from)
            })
            .map_err(plain)?;
            log_action(
                db,
                Some(account.id),
                None,
                json!({ "command": "reset-password", "email": account.email, "set": true }),
            )
            .await;
            security::record(
                db,
                security::Entry::new(Kind::PasswordReset, Some(account.id), None)
                    .detail(json!({ "via": "admin" })),
            )
            .await;
            Ok(None)
        }
        None => {
            let user_id = account.id;
            let (token, _) = crate::unit!(db, Scope::system(), |u| async move {
                crate::auth::account::create_reset(u, user_id)
                    .await
                    .map_err(DomainError::from)
            })
            .map_err(plain)?;
            log_action(
                db,
                Some(account.id),
                None,
                json!({ "command": "reset-password", "email": account.email, "link": true }),
            )
            .await;
            Ok(Some(format!("{public_url}/reset-password?token={token}")))
        }
    }
}

/// A dead job.
#[derive(Debug, Clone)]
pub struct DeadJob {
    /// Id.
    pub id: Uuid,
    /// Kind.
    pub kind: String,
    /// The organization it concerns.
    pub org_id: Option<Uuid>,
    /// Attempts made.
    pub attempts: i32,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it died.
    pub updated_at: DateTime<Utc>,
}

/// The newest `limit` dead jobs.
pub async fn dead_jobs(db: &Db, limit: u32) -> anyhow::Result<Vec<DeadJob>> {
    Ok(crate::read_unit!(db, system, |u| async move {
        u.fetch_all(
            "SELECT id, kind, org_id, attempts, last_error, updated_at FROM jobs \
             WHERE status = 'dead' ORDER BY updated_at DESC, id DESC LIMIT $1",
            &args![i64::from(limit)],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(DeadJob {
                id: r.get(0)?,
                kind: r.get(1)?,
                org_id: r.get(2)?,
                attempts: r.get(3)?,
                last_error: r.get(4)?,
                updated_at: r.get(5)?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()
    })?)
}

/// Kinds whose payload holds a secret that is blanked when the job dies:
/// requeued, they would mail a broken link.
const SECRET_KINDS: [&str; 2] = ["invite_email", "password_reset_email"];

/// Requeues dead jobs (see [`requeue`]); a refusal names the job.
async fn requeue_in<U: Uow>(u: &mut U, id: Option<Uuid>) -> Result<Vec<Uuid>, DomainError> {
    let refuse = |m: String| DomainError::bad_request("requeue", m);
    let mut rows = Vec::new();
    for r in u
        .fetch_all(
            "SELECT id, kind FROM jobs WHERE status = 'dead' AND ($1 IS NULL OR id = $1) ORDER BY id",
            &args![id],
        )
        .await?
    {
        rows.push((r.get::<Uuid>(0)?, r.get::<String>(1)?));
    }
    if let Some(id) = id {
        let Some((_, kind)) = rows.first() else {
            return Err(refuse(format!("no dead job with the id {id}")));
        };
        if SECRET_KINDS.contains(&kind.as_str()) {
            return Err(refuse(format!(
                "job {id} ({kind}) lost its token when it died and cannot be sent again; \
                 create a new invite or reset link instead"
            )));
        }
    }
    let ids: Vec<Uuid> = rows
        .into_iter()
        .filter(|(_, kind)| !SECRET_KINDS.contains(&kind.as_str()))
        .map(|(id, _)| id)
        .collect();
    let at = now();
    for id in &ids {
        u.execute(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $1, locked_until = NULL, \
             updated_at = $1 WHERE id = $2 AND status = 'dead'",
            &args![at, *id],
        )
        .await?;
    }
    Ok(ids)
}

/// Puts dead jobs back in the queue (one by id, or every one): attempts
/// start over. Returns the ids requeued.
pub async fn requeue(db: &Db, id: Option<Uuid>) -> anyhow::Result<Vec<Uuid>> {
    let ids = crate::unit!(db, system, |u| requeue_in(u, id)).map_err(plain)?;
    if !ids.is_empty() {
        log_action(
            db,
            None,
            None,
            json!({ "command": "jobs requeue", "jobs": ids }),
        )
        .await;
    }
    Ok(ids)
}
