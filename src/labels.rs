//! Labels of an organization: list, create, rename / recolour, delete.
//!
//! SPEC §4 does not name labels; they are shared vocabulary like lists, so
//! managing them needs the list right (member+), and deleting one (which
//! takes it off every task) needs the list-deletion right (admin+).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::db::Scope;
use crate::domain::DomainError;
use crate::domain::{Action, parse_name};
use crate::error::{ApiResult, FieldError};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::page::{Page, PageQuery};
use crate::idempotency::{Created, Creating};
use crate::orgs::context::{Collection, OrgRequest};
use crate::state::AppState;

/// Longest label name.
pub const LABEL_NAME_MAX: usize = 50;

/// A label.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Label {
    /// Label id.
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// Name, unique in the organization (case-insensitive).
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST …/labels`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateLabelBody {
    /// 1–50 characters.
    pub name: String,
    /// `#rrggbb` (default `#888888`).
    pub color: Option<String>,
}

/// Body of `PATCH …/labels/{label}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateLabelBody {
    /// New name.
    pub name: Option<String>,
    /// New colour.
    pub color: Option<String>,
}

/// Path of label routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LabelPath {
    /// Organization id or slug.
    pub org: String,
    /// The label.
    pub label: Uuid,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_labels, create_label))
        .routes(routes!(update_label, delete_label))
}

const LABEL_COLUMNS: &str = "id, org_id, name, color, created_at, updated_at";

fn parse_color(raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_lowercase();
    if s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s)
    } else {
        Err("must be a colour like #1a2b3c".into())
    }
}

fn parse_fields(
    name: Option<&str>,
    color: Option<&str>,
) -> Result<(Option<String>, Option<String>), DomainError> {
    let mut errors = Vec::new();
    let name = name
        .map(|n| parse_name(n, LABEL_NAME_MAX))
        .transpose()
        .map_err(|m| errors.push(FieldError::new("name", m)));
    let color = color
        .map(parse_color)
        .transpose()
        .map_err(|m| errors.push(FieldError::new("color", m)));
    match (name, color) {
        (Ok(n), Ok(c)) => Ok((n, c)),
        _ => Err(DomainError::validation(errors)),
    }
}

fn name_taken() -> DomainError {
    DomainError::conflict("label_name_taken", "A label with this name already exists.")
        .with_field("name", "is already used by another label")
}

/// Labels of the organization.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/labels", tag = "labels",
    params(("org" = String, Path, description = "Organization id or slug"), PageQuery,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of this page: `304` when nothing in the organization changed since")),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Label>, headers(("ETag" = String, description = "The page's version (`{org}` by id only)"))),
              (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"), (status = 404, body = crate::error::Problem)))]
async fn list_labels(
    State(state): State<AppState>,
    org: OrgRequest,
    AppQuery(q): AppQuery<PageQuery>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    let c = Collection {
        action: Action::ReadOrg,
        name: "labels",
        within: String::new(),
        parent: None,
        select: format!("SELECT {LABEL_COLUMNS} FROM labels WHERE org_id = $1"),
        args: vec![],
        key: ("id", ">"),
        order: "id",
    };
    crate::http::conditional::collection_page::<Uuid, _, _>(
        &state,
        org,
        q,
        c,
        (&uri, &headers),
        write::label,
        |l| l.id,
    )
    .await
}

/// Create a label (member+).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/labels", tag = "labels",
    params(("org" = String, Path, description = "Organization id or slug"),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer")),
    request_body = CreateLabelBody, security(("bearer" = [])),
    responses((status = 201, body = Label), (status = 403, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_label(
    State(state): State<AppState>,
    org: OrgRequest,
    req: Creating<CreateLabelBody>,
) -> ApiResult<Response> {
    let scope = Scope::user(org.user_id());
    let created = crate::unit!(state.db, scope, |u| write::create(
        u,
        &org,
        &req.body,
        req.key.as_ref()
    ))?;
    Ok(match created {
        Created::New(label) => (StatusCode::CREATED, AppJson(label)).into_response(),
        Created::Replay(replay) => replay.into_response(),
    })
}

/// Rename or recolour a label (member+).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/labels/{label}", tag = "labels",
    params(LabelPath), request_body = UpdateLabelBody, security(("bearer" = [])),
    responses((status = 200, body = Label), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn update_label(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<LabelPath>,
    AppJson(body): AppJson<UpdateLabelBody>,
) -> ApiResult<AppJson<Label>> {
    let scope = Scope::user(org.user_id());
    let label = crate::unit!(state.db, scope, |u| write::update(
        u, &org, path.label, &body
    ))?;
    Ok(AppJson(label))
}

/// Delete a label, taking it off every task (admin+).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/labels/{label}", tag = "labels",
    params(LabelPath), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)))]
async fn delete_label(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<LabelPath>,
) -> ApiResult<StatusCode> {
    let scope = Scope::user(org.user_id());
    crate::unit!(state.db, scope, |u| write::delete(u, &org, path.label))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The label writes, each written once for both backends (see
/// [`crate::db::uow`]).
pub mod write {
    use serde_json::json;
    use uuid::Uuid;

    use super::{CreateLabelBody, LABEL_COLUMNS, Label, UpdateLabelBody, name_taken, parse_fields};
    use crate::args;
    use crate::db::change::{self, Kind, from_to};
    use crate::db::now;
    use crate::db::uow::{AnyRow, DbError, Uow};
    use crate::domain::{Action, DomainError, Ownership};

    use crate::idempotency::{self, Created, IdemKey};
    use crate::orgs::context::OrgRequest;

    pub(super) fn label(r: &AnyRow) -> Result<Label, DbError> {
        Ok(Label {
            id: r.get(0)?,
            org_id: r.get(1)?,
            name: r.get(2)?,
            color: r.get(3)?,
            created_at: r.get(4)?,
            updated_at: r.get(5)?,
        })
    }

    async fn load<U: Uow>(u: &mut U, org_id: Uuid, id: Uuid) -> Result<Option<Label>, DbError> {
        let sql = format!("SELECT {LABEL_COLUMNS} FROM labels WHERE org_id = $1 AND id = $2");
        u.fetch_optional(&sql, &args![org_id, id])
            .await?
            .as_ref()
            .map(label)
            .transpose()
    }

    /// Whether another label of the organization has this name (any case).
    async fn name_in_use<U: Uow>(
        u: &mut U,
        org_id: Uuid,
        name: &str,
        except: Uuid,
    ) -> Result<bool, DbError> {
        let norm = name.to_lowercase();
        Ok(u.fetch_value::<Uuid>(
            "SELECT id FROM labels WHERE org_id = $1 AND name_norm = $2 AND id <> $3",
            &args![org_id, &norm, except],
        )
        .await?
        .is_some())
    }

    /// `409 label_name_taken` for a unique violation (a concurrent label of
    /// the same name), else the error as it is.
    fn taken(e: DbError) -> DomainError {
        if e.is_unique_violation() {
            name_taken()
        } else {
            e.into()
        }
    }

    /// `POST …/labels` (member+).
    pub async fn create<U: Uow>(
        u: &mut U,
        org: &OrgRequest,
        body: &CreateLabelBody,
        key: Option<&IdemKey>,
    ) -> Result<Created<Label>, DomainError> {
        let oc = org.enter(u).await?;
        oc.require(Action::ManageList, Ownership::NotOwn)?;
        let (name, color) = parse_fields(Some(&body.name), body.color.as_deref())?;
        let name = name.unwrap_or_default();
        let color = color.unwrap_or_else(|| "#888888".into());
        if let Some(replay) = idempotency::claim(u, oc.user_id, oc.org_id, key).await? {
            return Ok(Created::Replay(replay));
        }
        if name_in_use(u, oc.org_id, &name, Uuid::nil()).await? {
            return Err(name_taken());
        }
        let id = Uuid::now_v7();
        let now = now();
        let norm = name.to_lowercase();
        // Not deferred: a concurrent label of the same name must answer 409.
        u.execute(
            "INSERT INTO labels (org_id, id, name, name_norm, color, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            &args![oc.org_id, id, &name, &norm, &color, now],
        )
        .await
        .map_err(taken)?;
        change::record(
            u,
            oc.change(
                Kind::LabelCreated,
                id,
                None,
                json!({ "name": name, "color": color }),
            ),
        )
        .await?;
        let label = Label {
            id,
            org_id: oc.org_id,
            name,
            color,
            created_at: now,
            updated_at: now,
        };
        idempotency::complete(u, oc.user_id, key, 201, &label).await?;
        Ok(Created::New(label))
    }

    /// `PATCH …/labels/{label}`: rename or recolour (member+).
    pub async fn update<U: Uow>(
        u: &mut U,
        org: &OrgRequest,
        id: Uuid,
        body: &UpdateLabelBody,
    ) -> Result<Label, DomainError> {
        let oc = org.enter(u).await?;
        oc.require(Action::ManageList, Ownership::NotOwn)?;
        let (name, color) = parse_fields(body.name.as_deref(), body.color.as_deref())?;
        let label = load(u, oc.org_id, id)
            .await?
            .ok_or_else(DomainError::not_found)?;
        let new_name = name.unwrap_or_else(|| label.name.clone());
        let new_color = color.unwrap_or_else(|| label.color.clone());
        let mut payload = serde_json::Map::new();
        if let Some(c) = from_to(&label.name, &new_name) {
            payload.insert("name".into(), c);
        }
        if let Some(c) = from_to(&label.color, &new_color) {
            payload.insert("color".into(), c);
        }
        if payload.is_empty() {
            return Ok(label);
        }
        if name_in_use(u, oc.org_id, &new_name, label.id).await? {
            return Err(name_taken());
        }
        let now = now();
        let norm = new_name.to_lowercase();
        u.execute(
            "UPDATE labels SET name = $1, name_norm = $2, color = $3, updated_at = $4 \
             WHERE org_id = $5 AND id = $6",
            &args![&new_name, &norm, &new_color, now, oc.org_id, id],
        )
        .await
        .map_err(taken)?;
        change::record(u, oc.change(Kind::LabelUpdated, id, None, payload.into())).await?;
        Ok(Label {
            name: new_name,
            color: new_color,
            updated_at: now,
            ..label
        })
    }

    /// `DELETE …/labels/{label}`, taking it off every task (admin+).
    pub async fn delete<U: Uow>(u: &mut U, org: &OrgRequest, id: Uuid) -> Result<(), DomainError> {
        let oc = org.enter(u).await?;
        oc.require(Action::DeleteList, Ownership::NotOwn)?;
        let label = load(u, oc.org_id, id)
            .await?
            .ok_or_else(DomainError::not_found)?;
        // Off the ids kept on the task rows first; the relation rows go
        // with the label (cascade).
        crate::tasks::take_out_kept_id(u, oc.org_id, crate::tasks::Related::Label, id).await?;
        u.defer(
            "DELETE FROM labels WHERE org_id = $1 AND id = $2",
            &args![oc.org_id, id],
        )
        .await?;
        change::record(
            u,
            oc.change(Kind::LabelDeleted, id, None, json!({ "name": label.name })),
        )
        .await?;
        Ok(())
    }
}
