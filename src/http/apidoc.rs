//! Finishing the OpenAPI document after every module's routes are merged.
//!
//! The route annotations say what each handler answers on success and the
//! errors particular to it. What every route answers because of its shape is
//! added here, once, so that it cannot be forgotten on a new route:
//!
//! * every error is `application/problem+json` with the [`Problem`] schema;
//! * `401` on every route with a `bearer` security requirement;
//! * `400` (`malformed_json`, `invalid_path`, `invalid_query`,
//!   `invalid_cursor`, `invalid_idempotency_key`, …), `413`, `415` and `422`
//!   on every route whose extractors can answer them;
//! * `423` (`org_suspended`) on every route of an organization (`{org}`):
//!   an instance administrator suspended it;
//! * `429` (`rate_limited`, with `Retry-After`) and the `RateLimit-Policy` /
//!   `RateLimit` headers on every secured route outside `/auth/`;
//! * `500` on every route but the two that cannot fail, and `503` (busy or
//!   unreachable database, with `Retry-After`) on every route that reads or
//!   writes the database;
//! * `414` on every route, without a body: hyper refuses a request line
//!   over 64 KiB before any route sees it;
//! * a description on every response (OpenAPI requires one).
//!
//! It also states the bounds the server enforces (string lengths, patterns,
//! page sizes) from the same constants the validation code uses, gives every
//! collection a `<Item>Page` schema that refers to its item by `$ref`, and
//! adds a relative `servers` entry.
//!
//! [`Problem`]: crate::error::Problem

use serde_json::{Map, Value, json};

use crate::domain::{EMAIL_MAX, NAME_MAX, PASSWORD_MAX, PASSWORD_MIN, SLUG_MAX, SLUG_MIN};
use crate::http::page::{DEFAULT_LIMIT, MAX_CURSOR_LEN, MAX_LIMIT};

/// Media type of every error answer (but `414`, see [`URI_TOO_LONG`]).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `414 URI Too Long`: hyper answers it, without a body, for a request line
/// over 64 KiB, before any route runs; documented on every operation.
const URI_TOO_LONG: u16 = 414;

/// Most values in a comma-separated `status` or `priority` filter
/// (`tasks::filter::parse_list`).
const FILTER_VALUES_MAX: usize = 10;

/// Characters Rust's `str::trim` removes (Unicode `White_Space`), as a
/// regular-expression class body valid in ECMA-262 and Python.
const WS: &str = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Control characters (`char::is_control`: Unicode `Cc`).
const CTRL: &str = r"\x00-\x1f\x7f-\x9f";
/// Invisible characters that `domain::trim_line` also trims from names and
/// titles (`domain::is_invisible` beyond white space).
const INVISIBLE: &str = r"\xad\u034f\u115f\u1160\u180e\u200b-\u200d\u2060-\u2064\u3164\ufeff\uffa0";
/// Bidirectional embedding, override and isolate controls, refused in
/// names and titles (`domain::is_bidi_control`).
const BIDI: &str = r"\u202a-\u202e\u2066-\u2069";

/// Text the server trims (Rust's `str::trim`) and then counts: between
/// `min` (0 or 1) and `max` characters once trimmed, none of `forbidden`
/// inside. `maxLength` cannot say this (it counts the white space around),
/// so the bound is in the pattern, exactly.
fn trimmed_pattern(min: usize, max: usize, forbidden: &str) -> String {
    trimmed_of(WS, min, max, forbidden)
}

/// Like [`trimmed_pattern`], for text trimmed of the characters in class
/// body `trim`.
fn trimmed_of(trim: &str, min: usize, max: usize, forbidden: &str) -> String {
    let edge = format!("[^{trim}{forbidden}]");
    let core = format!(
        "(?:{edge}|{edge}[^{forbidden}]{{0,{}}}{edge})",
        max.saturating_sub(2)
    );
    let optional = if min == 0 { "?" } else { "" };
    format!("^[{trim}]*{core}{optional}[{trim}]*$")
}

/// A display name or title as `domain::parse_name` takes it: trimmed of
/// white space and invisible characters, then 1–`max` characters, no
/// control or bidirectional control characters.
fn name(max: usize) -> Value {
    json!({
        "minLength": 1,
        "pattern": trimmed_of(&format!("{WS}{INVISIBLE}"), 1, max, &format!("{CTRL}{BIDI}"))
    })
}

/// Text without NUL (PostgreSQL cannot store it; refused on both backends).
const NO_NUL: &str = r"^[^\x00]*$";

/// Applies every finishing step to a generated document.
pub fn finish(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let Ok(mut value) = serde_json::to_value(&doc) else {
        return doc;
    };
    finish_value(&mut value);
    serde_json::from_value(value).unwrap_or(doc)
}

/// [`finish`] on the JSON form; returns the schema bounds that named a
/// schema or property the document does not have (a test keeps it empty).
pub fn finish_value(doc: &mut Value) -> Vec<String> {
    doc["servers"] = json!([{ "url": "/", "description": "This server" }]);
    refer_page_items(doc);
    let missing = apply_bounds(doc);
    if let Some(schemas) = doc.pointer_mut("/components/schemas") {
        split_nullable_formats(schemas);
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if matches!(
                    method.as_str(),
                    "get" | "put" | "post" | "delete" | "patch" | "head" | "options" | "trace"
                ) {
                    finish_operation(path, op);
                }
            }
        }
    }
    missing
}

/// What a route can answer because of its extractors.
#[derive(Default)]
struct Shape {
    secured: bool,
    /// Counted by the per-user and per-organization limits
    /// ([`crate::http::limits`]): every secured route outside `/auth/`.
    rate_limited: bool,
    /// A route of an organization: answers `423` while it is suspended.
    in_org: bool,
    json_body: bool,
    path_params: bool,
    query: bool,
    cursor: bool,
    idempotency: bool,
    database: bool,
}

impl Shape {
    fn of(path: &str, op: &Value) -> Self {
        let params = op
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let has = |location: &str, name: Option<&str>| {
            params
                .iter()
                .any(|p| p["in"] == location && name.is_none_or(|n| p["name"].as_str() == Some(n)))
        };
        let secured = op
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|req| req.get("bearer").is_some()));
        Self {
            secured,
            rate_limited: secured
                && path.starts_with("/api/v1/")
                && !path.starts_with("/api/v1/auth/"),
            in_org: secured && path.starts_with("/api/v1/orgs/{org}"),
            json_body: op.get("requestBody").is_some(),
            path_params: has("path", None),
            query: has("query", None),
            cursor: has("query", Some("cursor")),
            idempotency: has("header", Some("Idempotency-Key")),
            // `/healthz` and `/metrics` never touch the database.
            database: path.starts_with("/api/") || path == "/readyz",
        }
    }

    /// The error statuses this shape can answer, each with its machine codes.
    fn errors(&self) -> Vec<(u16, Vec<&'static str>)> {
        let mut bad_request = Vec::new();
        if self.json_body {
            bad_request.extend(["malformed_json", "unreadable_body"]);
        }
        if self.path_params {
            bad_request.push("invalid_path");
        }
        if self.query {
            bad_request.push("invalid_query");
        }
        if self.cursor {
            bad_request.push("invalid_cursor");
        }
        if self.idempotency {
            bad_request.push("invalid_idempotency_key");
        }
        if self.json_body && self.database {
            bad_request.push("invalid_text");
        }
        let mut out = Vec::new();
        if !bad_request.is_empty() {
            out.push((400, bad_request));
        }
        if self.secured {
            out.push((401, vec!["unauthorized"]));
        }
        if self.in_org {
            out.push((423, vec!["org_suspended"]));
        }
        if self.rate_limited {
            out.push((429, vec!["rate_limited"]));
        }
        if self.path_params {
            out.push((404, vec!["not_found"]));
        }
        if self.idempotency {
            out.push((409, vec!["idempotency_key_in_use"]));
        }
        if self.json_body {
            out.push((413, vec!["payload_too_large"]));
            out.push((415, vec!["unsupported_media_type"]));
        }
        let mut unprocessable = Vec::new();
        if self.json_body || self.query {
            unprocessable.push("validation_failed");
        }
        if self.idempotency {
            unprocessable.push("idempotency_key_reused");
        }
        if !unprocessable.is_empty() {
            out.push((422, unprocessable));
        }
        if self.database {
            out.push((500, vec!["internal"]));
            out.push((503, vec!["unavailable"]));
        }
        out
    }
}

fn finish_operation(path: &str, op: &mut Value) {
    let shape = Shape::of(path, op);
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params {
            finish_parameter(p);
        }
    }
    let responses = op
        .as_object_mut()
        .map(|o| o.entry("responses").or_insert_with(|| json!({})));
    let Some(Value::Object(responses)) = responses else {
        return;
    };
    for (status, codes) in shape.errors() {
        let annotated = responses.contains_key(&status.to_string());
        let entry = responses
            .entry(status.to_string())
            .or_insert_with(|| json!({}));
        let described = entry.get("description").and_then(Value::as_str);
        if described.is_none_or(str::is_empty) {
            entry["description"] = Value::String(error_description(status, &codes, annotated));
        }
    }
    // Any request line over 64 KiB (hyper's bound on a URI, not ours to
    // change) is refused by the HTTP layer before any route sees it.
    responses.entry("414").or_insert_with(|| {
        json!({ "description": "URI Too Long: the request line is over 64 KiB; answered by the HTTP layer, without a body" })
    });
    for (status, response) in responses.iter_mut() {
        finish_response(status, response);
        if shape.rate_limited && status != "401" {
            rate_limit_headers(response);
        }
    }
}

/// The `RateLimit-Policy` and `RateLimit` headers of an answer counted by
/// the per-user and per-organization limits.
fn rate_limit_headers(response: &mut Value) {
    let Some(r) = response.as_object_mut() else {
        return;
    };
    if r.get("$ref").is_some() {
        return;
    }
    let Some(headers) = r
        .entry("headers")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    headers.insert(
        "RateLimit-Policy".into(),
        json!({
            "description": "The budgets this request counts against: `\"user\";q=<requests>;w=60` and, on an organization's routes, `\"org\";q=<requests>;w=60`.",
            "schema": { "type": "string" }
        }),
    );
    headers.insert(
        "RateLimit".into(),
        json!({
            "description": "What is left of each budget: `\"user\";r=<requests left>;t=<seconds until full>` (and `\"org\";…`).",
            "schema": { "type": "string" }
        }),
    );
}

fn reason(status: &str) -> &'static str {
    status
        .parse::<u16>()
        .ok()
        .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Response")
}

/// What an error status means on this server.
fn error_sentence(status: u16) -> &'static str {
    match status {
        400 => "The request could not be understood",
        401 => "Missing, malformed or expired credentials",
        403 => "The caller's role does not allow this",
        404 => "No such resource here (or not visible to the caller)",
        409 => "Conflicts with the current state",
        410 => "No longer available",
        412 => "`If-Match` names another version (reload and retry)",
        413 => "The body is larger than the server accepts",
        415 => "The body must be `application/json`",
        422 => "Some fields are invalid (listed in `errors`)",
        423 => "The organization is suspended by the instance administrator (its data is kept)",
        429 => "Too many requests (retry after `Retry-After` seconds)",
        500 => "Unexpected error (logged; nothing of it is echoed)",
        503 => "The database is busy or unavailable (retry after `Retry-After` seconds)",
        _ => "Error",
    }
}

/// The sentence and the codes; `partial` when the route's annotation has
/// its own codes for the status, which the list then does not name.
fn error_description(status: u16, codes: &[&str], partial: bool) -> String {
    let codes = codes
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let among = if partial { "among others " } else { "" };
    format!("{}: {among}{codes}.", error_sentence(status))
}

fn finish_response(status: &str, response: &mut Value) {
    let Some(r) = response.as_object_mut() else {
        return;
    };
    if r.get("$ref").is_some() {
        return;
    }
    let code = status.parse::<u16>().unwrap_or(0);
    if r.get("description")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let text = if code >= 400 {
            format!("{}.", error_sentence(code))
        } else {
            reason(status).to_owned()
        };
        r.insert("description".into(), Value::String(text));
    }
    if code >= 400 && code != URI_TOO_LONG {
        r.insert(
            "content".into(),
            json!({ PROBLEM_JSON: { "schema": { "$ref": "#/components/schemas/Problem" } } }),
        );
    }
    if code == 429 || code == 503 {
        let headers = r
            .entry("headers")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(headers) = headers {
            headers.insert(
                "Retry-After".into(),
                json!({
                    "description": "Seconds to wait before retrying.",
                    "schema": { "type": "integer", "minimum": 1 }
                }),
            );
        }
    }
}

/// Bounds of query, path and header parameters, and no `null` (a URL or a
/// header cannot carry one).
fn finish_parameter(p: &mut Value) {
    let location = p["in"].as_str().unwrap_or("").to_owned();
    let name = p["name"].as_str().unwrap_or("").to_owned();
    let Some(schema) = p.get_mut("schema").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(Value::Array(types)) = schema.get("type") {
        let types: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if types.len() == 1 {
            schema.insert("type".into(), types[0].clone());
        }
    }
    let bounds = match (location.as_str(), name.as_str()) {
        ("query", "limit") => json!({
            "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT
        }),
        ("query", "cursor") => json!({ "minLength": 1, "maxLength": MAX_CURSOR_LEN }),
        ("header", "Idempotency-Key") => json!({
            "minLength": 1,
            "maxLength": crate::idempotency::MAX_KEY_LEN,
            "pattern": "^[!-~]+$"
        }),
        ("query", "q") => json!({
            "maxLength": crate::tasks::filter::Q_MAX, "pattern": NO_NUL
        }),
        ("query", "action" | "entity_type") => {
            json!({ "maxLength": crate::audit::FILTER_TEXT_MAX })
        }
        ("query", "last_event_id") => json!({ "pattern": "^[0-9]{1,18}$" }),
        ("query", "sort") => json!({
            "enum": crate::tasks::filter::SORT_NAMES
                .iter()
                .flat_map(|n| [(*n).to_owned(), format!("-{n}")])
                .collect::<Vec<_>>(),
            "default": "created_at"
        }),
        ("query", "status" | "priority") => {
            let item = if name == "status" {
                "Status"
            } else {
                "Priority"
            };
            schema.clear();
            p["style"] = json!("form");
            p["explode"] = json!(false);
            json!({
                "type": "array",
                "items": { "$ref": format!("#/components/schemas/{item}") },
                "minItems": 1,
                "maxItems": FILTER_VALUES_MAX
            })
        }
        _ => return,
    };
    if let (Some(schema), Value::Object(bounds)) =
        (p.get_mut("schema").and_then(Value::as_object_mut), bounds)
    {
        schema.extend(bounds);
    }
}

/// `Page_X` (an inline copy of `X` made by the generic `Page<T>`) becomes
/// `XPage` whose `items` refer to `X`, and every reference follows.
fn refer_page_items(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let pages: Vec<String> = schemas
        .keys()
        .filter(|k| k.starts_with("Page_"))
        .cloned()
        .collect();
    let mut renames = Vec::new();
    for old in pages {
        let item = old.trim_start_matches("Page_").to_owned();
        if !schemas.contains_key(&item) {
            continue;
        }
        schemas.remove(&old);
        let new = format!("{item}Page");
        schemas.insert(
            new.clone(),
            json!({
                "type": "object",
                "description": format!("A page of `{item}`s, oldest cursor first; follow `next_cursor` for the next."),
                "required": ["items", "next_cursor"],
                "properties": {
                    "items": {
                        "type": "array",
                        "description": "The items of this page.",
                        "items": { "$ref": format!("#/components/schemas/{item}") }
                    },
                    "next_cursor": {
                        "type": ["string", "null"],
                        "description": "Cursor for the next page; `null` on the last page."
                    }
                }
            }),
        );
        renames.push((
            format!("#/components/schemas/{old}"),
            format!("#/components/schemas/{new}"),
        ));
    }
    sort_object(schemas);
    rename_refs(doc, &renames);
}

fn sort_object(map: &mut Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    map.extend(entries);
}

fn rename_refs(v: &mut Value, renames: &[(String, String)]) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "$ref"
                    && let Value::String(target) = child
                    && let Some((_, new)) = renames.iter().find(|(old, _)| old == target)
                {
                    *target = new.clone();
                } else {
                    rename_refs(child, renames);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rename_refs(i, renames)),
        _ => {}
    }
}

/// `{"type": ["string", "null"], "format": "uuid"}` becomes
/// `{"oneOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}`:
/// the same values, but test generators that split the type list keep the
/// format (schemathesis sent `""` as a valid optional uuid).
fn split_nullable_formats(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let nullable_format = map.get("format").is_some()
                && map
                    .get("type")
                    .and_then(Value::as_array)
                    .is_some_and(|t| t.len() == 2 && t.iter().any(|t| t == "null"));
            if nullable_format {
                let Some(Value::Array(types)) = map.remove("type") else {
                    return;
                };
                let mut inner = Map::new();
                if let Some(t) = types.into_iter().find(|t| t != "null") {
                    inner.insert("type".into(), t);
                }
                let keys: Vec<String> = map
                    .keys()
                    .filter(|k| !matches!(k.as_str(), "description" | "default" | "deprecated"))
                    .cloned()
                    .collect();
                for k in keys {
                    if let Some(val) = map.remove(&k) {
                        inner.insert(k, val);
                    }
                }
                map.insert(
                    "oneOf".into(),
                    json!([Value::Object(inner), { "type": "null" }]),
                );
            } else {
                map.values_mut().for_each(split_nullable_formats);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(split_nullable_formats),
        _ => {}
    }
}

/// The bounds the validation code enforces on request bodies, by schema and
/// property: the same constants, so the document cannot drift from them.
fn body_bounds() -> Vec<(&'static str, &'static str, Value)> {
    // Surrounding white space is trimmed before these are checked; the
    // pattern leaves it out (a slug in a path never carries any).
    let slug = json!({
        "minLength": SLUG_MIN,
        "maxLength": SLUG_MAX,
        "pattern": "^[a-z0-9](?:-?[a-z0-9])*$"
    });
    let email = json!({ "format": "email", "maxLength": EMAIL_MAX });
    let password = json!({ "minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX });
    let color = json!({ "pattern": "^#[0-9a-fA-F]{6}$" });
    let ids = json!({ "maxItems": crate::tasks::MAX_RELATED });
    let title = name(crate::tasks::TITLE_MAX);
    let task_description = json!({ "maxLength": crate::tasks::DESCRIPTION_MAX, "pattern": NO_NUL });
    let board_description =
        json!({ "pattern": trimmed_pattern(0, crate::boards::DESCRIPTION_MAX, r"\x00") });
    let time_zone = json!({
        "enum": chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect::<Vec<_>>()
    });
    vec![
        ("SignupBody", "email", email.clone()),
        ("SignupBody", "password", password.clone()),
        ("ChangePasswordBody", "new_password", password.clone()),
        ("PasswordResetConfirmBody", "new_password", password),
        ("SignupBody", "name", name(NAME_MAX)),
        ("UpdateMeBody", "name", name(NAME_MAX)),
        ("UpdateMeBody", "time_zone", time_zone),
        ("CreateOrgBody", "name", name(NAME_MAX)),
        ("CreateOrgBody", "slug", slug.clone()),
        ("UpdateOrgBody", "name", name(NAME_MAX)),
        ("UpdateOrgBody", "slug", slug),
        ("CreateInviteBody", "email", email),
        ("CreateBoardBody", "name", name(NAME_MAX)),
        ("CreateBoardBody", "description", board_description.clone()),
        ("UpdateBoardBody", "name", name(NAME_MAX)),
        ("UpdateBoardBody", "description", board_description),
        ("ListBody", "name", name(crate::lists::LIST_NAME_MAX)),
        ("CreateTaskBody", "title", title.clone()),
        ("CreateTaskBody", "description", task_description.clone()),
        ("CreateTaskBody", "assignee_ids", ids.clone()),
        ("CreateTaskBody", "label_ids", ids.clone()),
        ("UpdateTaskBody", "title", title),
        ("UpdateTaskBody", "description", task_description),
        ("UpdateTaskBody", "assignee_ids", ids.clone()),
        ("UpdateTaskBody", "label_ids", ids),
        (
            "CommentBody",
            "body",
            json!({
                "minLength": 1,
                "pattern": trimmed_pattern(1, crate::comments::BODY_MAX, r"\x00")
            }),
        ),
        (
            "CreateLabelBody",
            "name",
            name(crate::labels::LABEL_NAME_MAX),
        ),
        ("CreateLabelBody", "color", color.clone()),
        (
            "UpdateLabelBody",
            "name",
            name(crate::labels::LABEL_NAME_MAX),
        ),
        ("UpdateLabelBody", "color", color),
    ]
}

fn apply_bounds(doc: &mut Value) -> Vec<String> {
    let mut missing = Vec::new();
    for (schema, property, bounds) in body_bounds() {
        let pointer = format!("/components/schemas/{schema}/properties/{property}");
        match (doc.pointer_mut(&pointer), bounds) {
            (Some(Value::Object(target)), Value::Object(mut bounds)) => {
                // An optional (nullable) property keeps `null` among its values.
                let nullable = target
                    .get("type")
                    .and_then(Value::as_array)
                    .is_some_and(|t| t.iter().any(|t| t == "null"));
                if let (true, Some(Value::Array(values))) = (nullable, bounds.get_mut("enum")) {
                    values.push(Value::Null);
                }
                target.extend(bounds)
            }
            _ => missing.push(format!("{schema}.{property}")),
        }
    }
    missing
}
