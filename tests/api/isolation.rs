//! Tenant isolation (SPEC §3) and the permission matrix (SPEC §4), both
//! driven by one table of every route under `/api/v1/orgs/{org}`.
//!
//! The table is checked against the OpenAPI document: a new tenant route
//! that is not listed here fails both tests until it is added (with the
//! action the policy decides it by), and so does a new id a request body or
//! query can carry (every such id is tried with another organization's
//! object).

use std::collections::{BTreeMap, BTreeSet};

use crate::common::{Resp, TestApp, TestUser};
use axum::http::Method;
use orgboard::domain::{Action, Ownership, Role};
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    cross_tenant_access_answers_not_found,
    role_matrix_follows_the_policy,
);

/// Every tenant route starts with this.
const ORG_ROUTE: &str = "/api/v1/orgs/{org}";

/// Whose task a task route acts on. SPEC §4: for update and move, "own" is
/// a task the caller created or is assigned to; for delete, one they created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskOf {
    /// Created by the caller (and assigned to someone else).
    CreatedByCaller,
    /// Created by someone else and assigned to the caller.
    AssignedToCaller,
    /// Created by someone else and assigned to someone else.
    Others,
}

/// Who wrote the comment a comment route acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommentBy {
    Caller,
    Someone,
}

/// What the object parameter of a route (`{user_id}`, `{board}`, …) points at.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Nothing beyond the organization (the call may change the
    /// organization itself).
    Org,
    /// Another member, holding this role.
    Member(Role),
    /// The caller themself.
    Myself,
    /// A pending invite with this role.
    Invite(Role),
    /// A collection of the organization's work (boards, tasks, labels):
    /// nothing beyond the organization.
    Work,
    /// A board.
    Board,
    /// A list.
    List,
    /// A task.
    Task(TaskOf),
    /// A comment.
    Comment(CommentBy),
    /// A label.
    Label,
}

impl Target {
    /// The path parameter that names the target, if any.
    fn param(self) -> Option<&'static str> {
        match self {
            Target::Org | Target::Work => None,
            Target::Member(_) | Target::Myself => Some("{user_id}"),
            Target::Invite(_) => Some("{invite_id}"),
            Target::Board => Some("{board}"),
            Target::List => Some("{list}"),
            Target::Task(_) => Some("{task}"),
            Target::Comment(_) => Some("{comment}"),
            Target::Label => Some("{label}"),
        }
    }

    /// Calls that may delete the organization or change memberships get an
    /// organization of their own in the matrix; work-domain calls share one.
    fn fresh_org(self) -> bool {
        matches!(
            self,
            Target::Org | Target::Member(_) | Target::Myself | Target::Invite(_)
        )
    }
}

/// The ids an organization's work is made of (see [`populate`]).
#[derive(Debug, Clone, Copy)]
struct Fixture {
    board: Uuid,
    /// Two lists of `board`, in order.
    lists: [Uuid; 2],
    /// `tasks[0]` and `tasks[1]` in `lists[0]`, `tasks[2]` in `lists[1]`;
    /// `tasks[0]` has an assignee and `label`.
    tasks: [Uuid; 3],
    label: Uuid,
    /// On `tasks[0]`.
    comment: Uuid,
}

/// The request body a case sends; ids in it come from the organization's
/// [`Fixture`].
#[derive(Debug, Clone, Copy)]
enum Body {
    Empty,
    /// `{"name": …}` (a rename, or a new list).
    Rename,
    /// `{"role": …}` (a role change).
    SetRole(Role),
    /// `{"email": <fresh address>, "role": …}` (an invitation).
    Invite(Role),
    /// A new board.
    NewBoard,
    /// `{"archived": true}`.
    Archive,
    /// Places a list before the board's first list.
    MoveList,
    /// A new task.
    NewTask,
    /// Retitles and completes a task.
    UpdateTask,
    /// Moves a task to the board's second list.
    MoveTask,
    /// `{"body": …}` (a new or edited comment).
    CommentText,
    /// A label with a fresh name.
    Label,
}

impl Body {
    fn json(self, fx: &Fixture) -> Option<Value> {
        match self {
            Body::Empty => None,
            Body::Rename => Some(json!({ "name": "Renamed" })),
            Body::SetRole(r) => Some(json!({ "role": r.as_str() })),
            Body::Invite(r) => Some(json!({
                "email": format!("invitee-{}@example.com", Uuid::now_v7().simple()),
                "role": r.as_str(),
            })),
            Body::NewBoard => Some(json!({ "name": "New board", "description": "Made by a case" })),
            Body::Archive => Some(json!({ "archived": true })),
            Body::MoveList => Some(json!({ "before_id": fx.lists[0] })),
            Body::NewTask => Some(json!({ "title": "New task", "priority": "high" })),
            Body::UpdateTask => Some(json!({ "title": "Updated task", "status": "done" })),
            Body::MoveTask => Some(json!({ "list_id": fx.lists[1] })),
            Body::CommentText => Some(json!({ "body": "A comment from the table" })),
            Body::Label => Some(json!({
                "name": format!("label-{}", Uuid::now_v7().simple()),
                "color": "#1a2b3c",
            })),
        }
    }
}

/// Where a request carries an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// A body field holding one id.
    Body,
    /// A body field holding an array of ids.
    BodyList,
    /// A query parameter.
    Query,
}

/// What kind of object an id names.
#[derive(Debug, Clone, Copy)]
enum Kind {
    List,
    Board,
    Task,
    Label,
    /// A user who is a member of the organization.
    User,
}

/// What a foreign id (one of another organization's objects) must get.
#[derive(Debug, Clone, Copy)]
enum OnForeign {
    /// `404` or `422`, and nothing changes.
    Refused,
    /// `200` with no items: a filter of the history that matches nothing
    /// (the audit log: its ids may name deleted objects or former members,
    /// so they are not resolved).
    MatchesNothing,
}

/// An id a request body or query carries (dotted `name` for nested fields).
#[derive(Debug, Clone, Copy)]
struct IdParam {
    place: Place,
    name: &'static str,
    kind: Kind,
    on_foreign: OnForeign,
}

const fn id(place: Place, name: &'static str, kind: Kind) -> IdParam {
    IdParam {
        place,
        name,
        kind,
        on_foreign: OnForeign::Refused,
    }
}

const NO_IDS: &[IdParam] = &[];
const TASK_FIELD_IDS: &[IdParam] = &[
    id(Place::BodyList, "assignee_ids", Kind::User),
    id(Place::BodyList, "label_ids", Kind::Label),
];
const MOVE_TASK_IDS: &[IdParam] = &[
    id(Place::Body, "list_id", Kind::List),
    id(Place::Body, "after_id", Kind::Task),
    id(Place::Body, "before_id", Kind::Task),
];
const MOVE_LIST_IDS: &[IdParam] = &[
    id(Place::Body, "after_id", Kind::List),
    id(Place::Body, "before_id", Kind::List),
];
const TASK_FILTER_IDS: &[IdParam] = &[
    id(Place::Query, "board_id", Kind::Board),
    id(Place::Query, "list_id", Kind::List),
    id(Place::Query, "assignee_id", Kind::User),
    id(Place::Query, "label_id", Kind::Label),
];
const EVENT_FILTER_IDS: &[IdParam] = &[id(Place::Query, "board_id", Kind::Board)];
const AUDIT_FILTER_IDS: &[IdParam] = &[
    IdParam {
        on_foreign: OnForeign::MatchesNothing,
        ..id(Place::Query, "actor_id", Kind::User)
    },
    IdParam {
        on_foreign: OnForeign::MatchesNothing,
        ..id(Place::Query, "entity_id", Kind::Task)
    },
];

/// One row of the table: a route, the SPEC §4 action that decides it, what
/// it acts on, and every id its body or query can carry. A route may have
/// several rows (different targets or bodies); each lists all its ids.
#[derive(Debug, Clone)]
struct Case {
    method: Method,
    path: &'static str,
    action: Action,
    target: Target,
    body: Body,
    ids: &'static [IdParam],
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
        ids: NO_IDS,
    };
    let with_ids = |c: Case, ids: &'static [IdParam]| Case { ids, ..c };
    let org = "/api/v1/orgs/{org}";
    let members = "/api/v1/orgs/{org}/members";
    let member = "/api/v1/orgs/{org}/members/{user_id}";
    let invites = "/api/v1/orgs/{org}/invites";
    let invite = "/api/v1/orgs/{org}/invites/{invite_id}";
    let audit = "/api/v1/orgs/{org}/audit-log";
    let events = "/api/v1/orgs/{org}/events";
    let boards = "/api/v1/orgs/{org}/boards";
    let board = "/api/v1/orgs/{org}/boards/{board}";
    let board_lists = "/api/v1/orgs/{org}/boards/{board}/lists";
    let list = "/api/v1/orgs/{org}/lists/{list}";
    let list_move = "/api/v1/orgs/{org}/lists/{list}/move";
    let list_tasks = "/api/v1/orgs/{org}/lists/{list}/tasks";
    let tasks = "/api/v1/orgs/{org}/tasks";
    let task = "/api/v1/orgs/{org}/tasks/{task}";
    let task_move = "/api/v1/orgs/{org}/tasks/{task}/move";
    let task_comments = "/api/v1/orgs/{org}/tasks/{task}/comments";
    let comment = "/api/v1/orgs/{org}/comments/{comment}";
    let labels = "/api/v1/orgs/{org}/labels";
    let label = "/api/v1/orgs/{org}/labels/{label}";
    let mut cases = vec![
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
        with_ids(
            case(Method::GET, audit, ReadAuditLog, Target::Org, Body::Empty),
            AUDIT_FILTER_IDS,
        ),
        // Live events (the harness keeps a stream's headers, not its body).
        with_ids(
            case(Method::GET, events, ReadOrg, Target::Work, Body::Empty),
            EVENT_FILTER_IDS,
        ),
        // Boards.
        case(Method::GET, boards, ReadOrg, Target::Work, Body::Empty),
        case(
            Method::POST,
            boards,
            ManageBoard,
            Target::Work,
            Body::NewBoard,
        ),
        case(Method::GET, board, ReadOrg, Target::Board, Body::Empty),
        case(
            Method::PATCH,
            board,
            ManageBoard,
            Target::Board,
            Body::Rename,
        ),
        case(
            Method::PATCH,
            board,
            ManageBoard,
            Target::Board,
            Body::Archive,
        ),
        case(
            Method::DELETE,
            board,
            ManageBoard,
            Target::Board,
            Body::Empty,
        ),
        // Lists.
        case(
            Method::GET,
            board_lists,
            ReadOrg,
            Target::Board,
            Body::Empty,
        ),
        case(
            Method::POST,
            board_lists,
            ManageList,
            Target::Board,
            Body::Rename,
        ),
        case(Method::PATCH, list, ManageList, Target::List, Body::Rename),
        case(Method::DELETE, list, DeleteList, Target::List, Body::Empty),
        with_ids(
            case(
                Method::POST,
                list_move,
                ManageList,
                Target::List,
                Body::MoveList,
            ),
            MOVE_LIST_IDS,
        ),
        // Tasks.
        with_ids(
            case(
                Method::POST,
                list_tasks,
                CreateTask,
                Target::List,
                Body::NewTask,
            ),
            TASK_FIELD_IDS,
        ),
        with_ids(
            case(Method::GET, tasks, ReadOrg, Target::Work, Body::Empty),
            TASK_FILTER_IDS,
        ),
        case(
            Method::GET,
            task,
            ReadOrg,
            Target::Task(TaskOf::Others),
            Body::Empty,
        ),
        // Comments.
        case(
            Method::GET,
            task_comments,
            ReadOrg,
            Target::Task(TaskOf::Others),
            Body::Empty,
        ),
        case(
            Method::POST,
            task_comments,
            CreateComment,
            Target::Task(TaskOf::Others),
            Body::CommentText,
        ),
        // Labels.
        case(Method::GET, labels, ReadOrg, Target::Work, Body::Empty),
        case(Method::POST, labels, ManageList, Target::Work, Body::Label),
        case(Method::PATCH, label, ManageList, Target::Label, Body::Label),
        case(
            Method::DELETE,
            label,
            DeleteList,
            Target::Label,
            Body::Empty,
        ),
    ];
    // The ownership-dependent routes, on each kind of task and comment.
    for of in [
        TaskOf::CreatedByCaller,
        TaskOf::AssignedToCaller,
        TaskOf::Others,
    ] {
        cases.push(with_ids(
            case(
                Method::PATCH,
                task,
                UpdateTask,
                Target::Task(of),
                Body::UpdateTask,
            ),
            TASK_FIELD_IDS,
        ));
        cases.push(with_ids(
            case(
                Method::POST,
                task_move,
                UpdateTask,
                Target::Task(of),
                Body::MoveTask,
            ),
            MOVE_TASK_IDS,
        ));
        cases.push(case(
            Method::DELETE,
            task,
            DeleteTask,
            Target::Task(of),
            Body::Empty,
        ));
    }
    for by in [CommentBy::Caller, CommentBy::Someone] {
        cases.push(case(
            Method::PATCH,
            comment,
            EditComment,
            Target::Comment(by),
            Body::CommentText,
        ));
        cases.push(case(
            Method::DELETE,
            comment,
            DeleteComment,
            Target::Comment(by),
            Body::Empty,
        ));
    }
    cases
}

/// Whether the target is the caller's own in the sense the action needs
/// (SPEC §4 footnotes ¹ and ²).
fn ownership(case: &Case) -> Ownership {
    match (case.target, case.action) {
        (Target::Myself, _)
        | (Target::Task(TaskOf::CreatedByCaller), _)
        | (Target::Task(TaskOf::AssignedToCaller), Action::UpdateTask)
        | (Target::Comment(CommentBy::Caller), _) => Ownership::Own,
        _ => Ownership::NotOwn,
    }
}

/// Whether `role` may do `case`, asked of the policy only: the action's row
/// of the permission table, plus the target rules (nobody touches a role
/// they may not manage, nobody grants or revokes above their own power).
fn allowed(role: Role, case: &Case) -> bool {
    let mut ok = role.can(case.action, ownership(case));
    match case.target {
        Target::Member(target) => ok &= role.may_manage(target),
        Target::Invite(target) => ok &= role.may_grant(target),
        _ => {}
    }
    match case.body {
        Body::SetRole(granted) | Body::Invite(granted) => ok &= role.may_grant(granted),
        _ => {}
    }
    ok
}

/// `$ref`s followed to the schema they name.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(r) = schema["$ref"].as_str() else {
            break;
        };
        schema = doc
            .pointer(r.strip_prefix('#').unwrap())
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    schema
}

/// Whether a schema is a UUID (possibly nullable).
fn is_uuid(doc: &Value, schema: &Value) -> bool {
    let schema = resolve(doc, schema);
    schema["format"] == "uuid"
        || ["oneOf", "anyOf", "allOf"].iter().any(|k| {
            schema[*k]
                .as_array()
                .is_some_and(|v| v.iter().any(|s| is_uuid(doc, s)))
        })
}

/// Every id-valued field of a request body schema.
fn body_ids(
    doc: &Value,
    schema: &Value,
    prefix: &str,
    depth: usize,
    out: &mut BTreeSet<(Place, String)>,
) {
    assert!(depth < 8, "request body schema nests too deep at {prefix}");
    let schema = resolve(doc, schema);
    for k in ["oneOf", "anyOf", "allOf"] {
        for s in schema[k].as_array().into_iter().flatten() {
            body_ids(doc, s, prefix, depth + 1, out);
        }
    }
    for (name, field) in schema["properties"].as_object().into_iter().flatten() {
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let field = resolve(doc, field);
        if is_uuid(doc, field) {
            out.insert((Place::Body, full));
        } else if is_uuid(doc, &field["items"]) {
            out.insert((Place::BodyList, full));
        } else {
            body_ids(doc, field, &full, depth + 1, out);
        }
    }
}

/// `(METHOD, path)` of every documented route under `/api/v1/orgs/{org}`,
/// with the ids its request body and query can carry.
fn documented_org_routes() -> BTreeMap<(String, String), BTreeSet<(Place, String)>> {
    let doc = serde_json::to_value(orgboard::http::openapi()).unwrap();
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path != ORG_ROUTE && !path.starts_with(&format!("{ORG_ROUTE}/")) {
            continue;
        }
        let methods = [
            "get", "put", "post", "delete", "options", "head", "patch", "trace", "query",
        ];
        for method in methods {
            let Some(op) = item.get(method) else {
                continue;
            };
            let mut ids = BTreeSet::new();
            let params = item["parameters"].as_array().into_iter().flatten();
            for p in params.chain(op["parameters"].as_array().into_iter().flatten()) {
                let p = resolve(&doc, p);
                if p["in"] == "query" && is_uuid(&doc, &p["schema"]) {
                    ids.insert((Place::Query, p["name"].as_str().unwrap().to_owned()));
                }
            }
            for (media, content) in op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                assert!(
                    media.contains("json"),
                    "{method} {path}: request body {media} is not JSON; extend the isolation table"
                );
                body_ids(&doc, &content["schema"], "", 0, &mut ids);
            }
            out.insert((method.to_uppercase(), path.clone()), ids);
        }
    }
    out
}

/// The table lists exactly the documented tenant routes: none missing (a new
/// route must be added here), none invented (a typo would test nothing);
/// every row lists exactly the ids its route's body and query can carry;
/// every row's target is the object its path names.
fn assert_table_matches_openapi(cases: &[Case]) {
    let documented = documented_org_routes();
    let listed: BTreeSet<(String, String)> = cases
        .iter()
        .map(|c| (c.method.to_string(), c.path.to_owned()))
        .collect();
    let known: BTreeSet<(String, String)> = documented.keys().cloned().collect();
    let missing: Vec<_> = known.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "tenant routes missing from the isolation table (add them to tests/isolation.rs): {missing:?}"
    );
    let unknown: Vec<_> = listed.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "isolation table lists routes the OpenAPI document lacks: {unknown:?}"
    );
    for case in cases {
        let ids: BTreeSet<(Place, String)> = case
            .ids
            .iter()
            .map(|i| (i.place, i.name.to_owned()))
            .collect();
        let key = (case.method.to_string(), case.path.to_owned());
        assert_eq!(
            ids,
            documented[&key],
            "{}: the ids listed in the isolation table differ from the ids its body and query \
             can carry (every id must be tried with another organization's object)",
            case.describe()
        );
        let rest = case.path.strip_prefix(ORG_ROUTE).unwrap();
        let params: Vec<&str> = rest.match_indices('{').map(|(i, _)| &rest[i..]).collect();
        match case.target.param() {
            None => assert!(params.is_empty(), "{}: target", case.describe()),
            Some(p) => assert!(
                params.len() == 1 && params[0].starts_with(p),
                "{}: target should be named by {p}",
                case.describe()
            ),
        }
    }
}

/// The path of `template` for `org` with its object id filled in.
fn fill(template: &str, org: &str, target: Target, object: Option<Uuid>) -> String {
    let mut path = template.replace("{org}", org);
    if let (Some(param), Some(id)) = (target.param(), object) {
        path = path.replace(param, &id.to_string());
    }
    assert!(!path.contains('{'), "unfilled path parameter in {path}");
    path
}

/// Sets a (dotted) body field.
fn set_field(body: &mut Value, name: &str, value: Value) {
    let mut at = body;
    let mut parts = name.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            at[part] = value;
            return;
        }
        if !at[part].is_object() {
            at[part] = json!({});
        }
        at = &mut at[part];
    }
}

fn id_of(r: &Resp) -> Uuid {
    r.json["id"].as_str().unwrap().parse().unwrap()
}

/// Creates a pending invite (by `by`) with `role` to a fresh address;
/// returns its id and token.
async fn create_invite(app: &TestApp, org: Uuid, by: &TestUser, role: Role) -> (Uuid, String) {
    let r = app
        .post(
            &format!("/api/v1/orgs/{org}/invites"),
            &by.token,
            Body::Invite(role).json(&NO_FIXTURE).unwrap(),
        )
        .await
        .expect(201);
    (id_of(&r), r.json["token"].as_str().unwrap().to_owned())
}

/// For bodies that carry no ids.
const NO_FIXTURE: Fixture = Fixture {
    board: Uuid::nil(),
    lists: [Uuid::nil(); 2],
    tasks: [Uuid::nil(); 3],
    label: Uuid::nil(),
    comment: Uuid::nil(),
};

async fn create_board(app: &TestApp, org: Uuid, by: &TestUser) -> Uuid {
    let path = format!("/api/v1/orgs/{org}/boards");
    id_of(
        &app.post(&path, &by.token, json!({ "name": "Board" }))
            .await
            .expect(201),
    )
}

async fn create_list(app: &TestApp, org: Uuid, by: &TestUser, board: Uuid) -> Uuid {
    let path = format!("/api/v1/orgs/{org}/boards/{board}/lists");
    id_of(
        &app.post(&path, &by.token, json!({ "name": "List" }))
            .await
            .expect(201),
    )
}

async fn create_label(app: &TestApp, org: Uuid, by: &TestUser) -> Uuid {
    let path = format!("/api/v1/orgs/{org}/labels");
    let body = Body::Label.json(&NO_FIXTURE).unwrap();
    id_of(&app.post(&path, &by.token, body).await.expect(201))
}

async fn create_task(
    app: &TestApp,
    org: Uuid,
    by: &TestUser,
    list: Uuid,
    assignees: &[Uuid],
    labels: &[Uuid],
) -> Uuid {
    let path = format!("/api/v1/orgs/{org}/lists/{list}/tasks");
    let body = json!({ "title": "Task", "assignee_ids": assignees, "label_ids": labels });
    let r = app.post(&path, &by.token, body).await.expect(201);
    assert_eq!(r.json["created_by"], by.id.to_string());
    id_of(&r)
}

async fn create_comment(app: &TestApp, org: Uuid, by: &TestUser, task: Uuid) -> Uuid {
    let path = format!("/api/v1/orgs/{org}/tasks/{task}/comments");
    let r = app
        .post(&path, &by.token, json!({ "body": "Comment" }))
        .await
        .expect(201);
    assert_eq!(r.json["author_id"], by.id.to_string());
    id_of(&r)
}

/// Gives `org` a board with two lists, three tasks (the first assigned to
/// `assignee` and labelled), a label and a comment, all made by `owner`.
async fn populate(app: &TestApp, org: Uuid, owner: &TestUser, assignee: Uuid) -> Fixture {
    let board = create_board(app, org, owner).await;
    let lists = [
        create_list(app, org, owner, board).await,
        create_list(app, org, owner, board).await,
    ];
    let label = create_label(app, org, owner).await;
    let tasks = [
        create_task(app, org, owner, lists[0], &[assignee], &[label]).await,
        create_task(app, org, owner, lists[0], &[], &[]).await,
        create_task(app, org, owner, lists[1], &[], &[]).await,
    ];
    let comment = create_comment(app, org, owner, tasks[0]).await;
    Fixture {
        board,
        lists,
        tasks,
        label,
        comment,
    }
}

/// The object of `fx` that a work-domain target names (cross-tenant calls).
fn fixture_object(fx: &Fixture, target: Target) -> Option<Uuid> {
    match target {
        Target::Board => Some(fx.board),
        // The second list: `Body::MoveList` anchors on the first.
        Target::List => Some(fx.lists[1]),
        Target::Task(_) => Some(fx.tasks[0]),
        Target::Comment(_) => Some(fx.comment),
        Target::Label => Some(fx.label),
        Target::Org | Target::Work => None,
        Target::Member(_) | Target::Myself | Target::Invite(_) => {
            unreachable!("not a work-domain target: {target:?}")
        }
    }
}

/// Everything an organization shows to `viewer`, as raw response bodies:
/// the audit row count, the organization, members, invites, boards, the
/// board view, lists, labels, tasks, each task and its comments.
async fn snapshot(
    app: &TestApp,
    org: Uuid,
    viewer: &TestUser,
    fx: &Fixture,
) -> Vec<(String, String)> {
    let base = format!("/api/v1/orgs/{org}");
    let mut paths = vec![
        base.clone(),
        format!("{base}/members?limit=200"),
        format!("{base}/invites?limit=200"),
        format!("{base}/boards?limit=200"),
        format!("{base}/boards?archived=true&limit=200"),
        format!("{base}/boards/{}", fx.board),
        format!("{base}/boards/{}/lists?limit=200", fx.board),
        format!("{base}/labels?limit=200"),
        format!("{base}/tasks?limit=200"),
    ];
    for t in fx.tasks {
        paths.push(format!("{base}/tasks/{t}"));
        paths.push(format!("{base}/tasks/{t}/comments?limit=200"));
    }
    let mut out = vec![(
        "audit row count".to_owned(),
        app.audit_count(org).await.to_string(),
    )];
    for path in paths {
        let r = app.get(&path, &viewer.token).await.expect(200);
        out.push((path, r.text));
    }
    out
}

#[track_caller]
fn assert_unchanged(before: &[(String, String)], after: &[(String, String)], org: &str) {
    assert_eq!(before.len(), after.len());
    for ((what, b), (_, a)) in before.iter().zip(after) {
        assert_eq!(a, b, "{org}: {what} changed");
    }
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

/// A foreign id refused: `404`, or `422` naming the field.
#[track_caller]
fn assert_foreign_refused(r: &Resp, field: &str, what: &str) {
    assert!(
        r.status == 404 || r.status == 422,
        "{what}: expected 404 or 422, got {} {}",
        r.status,
        r.text
    );
    assert_eq!(
        r.content_type(),
        "application/problem+json",
        "{what}: {}",
        r.text
    );
    if r.status == 422 {
        let named = r.json["errors"].as_array().is_some_and(|errors| {
            errors.iter().any(|e| {
                e["field"].as_str().is_some_and(|f| {
                    f == field
                        || f.starts_with(&format!("{field}["))
                        || f.starts_with(&format!("{field}."))
                })
            })
        });
        assert!(named, "{what}: the 422 must name {field}: {}", r.text);
    }
}

async fn cross_tenant_access_answers_not_found(app: TestApp) {
    let cases = table();
    assert_table_matches_openapi(&cases);

    // Org A with data; org B (with data of its own) whose owner b attacks A.
    let a = app.signup("alice").await;
    let org_a = app.create_org(&a, "Alpha").await;
    let member_a = app.member(org_a, &a, "member").await;
    let (invite_a, invite_a_token) = create_invite(&app, org_a, &a, Role::Member).await;
    let fx_a = populate(&app, org_a, &a, member_a.id).await;
    let b = app.signup("bob").await;
    let org_b = app.create_org(&b, "Beta").await;
    let b_member = app.member(org_b, &b, "member").await;
    create_invite(&app, org_b, &b, Role::Member).await;
    let fx_b = populate(&app, org_b, &b, b_member.id).await;
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
    // An object of org A of each kind a body or query id names.
    let foreign = |kind: Kind| match kind {
        Kind::Board => fx_a.board,
        Kind::List => fx_a.lists[0],
        Kind::Task => fx_a.tasks[0],
        Kind::Label => fx_a.label,
        // A member of A only.
        Kind::User => member_a.id,
    };

    let before_a = snapshot(&app, org_a, &a, &fx_a).await;
    let before_b = snapshot(&app, org_b, &b, &fx_b).await;

    // What a missing organization looks like.
    let missing_org = app
        .get(&format!("/api/v1/orgs/{}", Uuid::now_v7()), &b.token)
        .await
        .expect_problem(404, "not_found");

    for case in &cases {
        // An object that lives in org A, of the kind the route acts on.
        let object_in_a = match case.target {
            Target::Member(Role::Owner) => Some(a.id),
            Target::Member(_) => Some(member_a.id),
            Target::Myself => Some(b.id),
            Target::Invite(_) => Some(invite_a),
            other => fixture_object(&fx_a, other),
        };
        // Org A in the path, by id and by slug.
        for org_ref in [org_a.to_string(), slug_a.clone()] {
            let path = fill(case.path, &org_ref, case.target, object_in_a);
            let r = app
                .call(
                    case.method.clone(),
                    &path,
                    Some(&b.token),
                    case.body.json(&fx_a),
                )
                .await;
            let what = format!("b on org A: {} {path}", case.describe());
            assert_same_not_found(&r, &missing_org, &what);
        }
        // b's own org B in the path, with the id of an object of org A:
        // exactly what a missing object of B gets.
        if case.target.param().is_some() && !matches!(case.target, Target::Myself) {
            for org_ref in [org_b.to_string(), slug_b.clone()] {
                let missing = fill(case.path, &org_ref, case.target, Some(Uuid::now_v7()));
                let reference = app
                    .call(
                        case.method.clone(),
                        &missing,
                        Some(&b.token),
                        case.body.json(&fx_b),
                    )
                    .await;
                let what = format!("b on org B, missing object: {} {missing}", case.describe());
                assert_eq!(reference.status, 404, "{what}: {}", reference.text);
                let path = fill(case.path, &org_ref, case.target, object_in_a);
                let r = app
                    .call(
                        case.method.clone(),
                        &path,
                        Some(&b.token),
                        case.body.json(&fx_b),
                    )
                    .await;
                let what = format!("b on org B with A's id: {} {path}", case.describe());
                assert_same_not_found(&r, &reference, &what);
            }
        }
    }

    // Org B and its own objects in the path; one id of org A in the body or
    // the query, the rest of the request valid in B.
    let mut tried = BTreeSet::new();
    for case in &cases {
        for param in case.ids {
            if !tried.insert((case.method.to_string(), case.path, param.place, param.name)) {
                continue;
            }
            let object_in_b = fixture_object(&fx_b, case.target);
            let foreign_id = foreign(param.kind);
            for org_ref in [org_b.to_string(), slug_b.clone()] {
                let mut path = fill(case.path, &org_ref, case.target, object_in_b);
                let mut body = case.body.json(&fx_b);
                match param.place {
                    Place::Query => path = format!("{path}?{}={foreign_id}", param.name),
                    Place::Body => {
                        set_field(body.get_or_insert(json!({})), param.name, json!(foreign_id))
                    }
                    Place::BodyList => set_field(
                        body.get_or_insert(json!({})),
                        param.name,
                        json!([foreign_id]),
                    ),
                }
                let what = format!(
                    "b on org B with A's {:?} in {:?} {}: {} {path} {}",
                    param.kind,
                    param.place,
                    param.name,
                    case.describe(),
                    body.as_ref().map(Value::to_string).unwrap_or_default()
                );
                let r = app
                    .call(case.method.clone(), &path, Some(&b.token), body)
                    .await;
                match param.on_foreign {
                    OnForeign::Refused => assert_foreign_refused(&r, param.name, &what),
                    OnForeign::MatchesNothing => {
                        assert_eq!(r.status, 200, "{what}: {}", r.text);
                        assert_eq!(r.json["items"], json!([]), "{what}: {}", r.text);
                    }
                }
            }
        }
    }
    let documented_ids: usize = documented_org_routes().values().map(BTreeSet::len).sum();
    assert_eq!(
        tried.len(),
        documented_ids,
        "every body and query id was tried"
    );

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
    assert_unchanged(&before_a, &snapshot(&app, org_a, &a, &fx_a).await, "org A");
    assert_unchanged(&before_b, &snapshot(&app, org_b, &b, &fx_b).await, "org B");
}

/// Makes the object a work-domain case acts on, in `org` (`None` for a
/// collection). The caller's own task and comment are made by the caller,
/// so this runs while the caller is still a member.
async fn make_target(
    app: &TestApp,
    org: Uuid,
    fx: &Fixture,
    creator: &TestUser,
    caller: &TestUser,
    other: &TestUser,
    target: Target,
) -> Option<Uuid> {
    let list = fx.lists[0];
    Some(match target {
        Target::Work => return None,
        Target::Board => create_board(app, org, creator).await,
        Target::List => create_list(app, org, creator, fx.board).await,
        Target::Label => create_label(app, org, creator).await,
        Target::Task(TaskOf::CreatedByCaller) => {
            create_task(app, org, caller, list, &[other.id], &[]).await
        }
        Target::Task(TaskOf::AssignedToCaller) => {
            create_task(app, org, creator, list, &[caller.id], &[]).await
        }
        Target::Task(TaskOf::Others) => {
            create_task(app, org, creator, list, &[other.id], &[]).await
        }
        Target::Comment(CommentBy::Caller) => create_comment(app, org, caller, fx.tasks[1]).await,
        Target::Comment(CommentBy::Someone) => create_comment(app, org, creator, fx.tasks[1]).await,
        Target::Org | Target::Member(_) | Target::Myself | Target::Invite(_) => {
            unreachable!("{target:?} gets a fresh organization")
        }
    })
}

async fn role_matrix_follows_the_policy(app: TestApp) {
    let cases = table();
    assert_table_matches_openapi(&cases);

    // `creator` owns every organization made here, so the caller (even an
    // owner) is never the last owner and every target can be set up.
    let creator = app.signup("creator").await;
    let target = app.signup("target").await;
    let other = app.signup("other").await;
    let mut outcomes = BTreeSet::new();
    let mut own_outcomes = BTreeSet::new();
    let mut n = 0;
    for role in Role::ALL {
        let caller = app.signup(role.as_str()).await;

        // One organization for every work-domain call of this role. Each call
        // acts on an object of its own, made before the caller takes `role`
        // (a viewer's own task was made while it could make one).
        n += 1;
        let work = app.create_org(&creator, &format!("Matrix {n}")).await;
        app.join(work, &creator, &caller, "member").await;
        app.join(work, &creator, &other, "member").await;
        let fx = populate(&app, work, &creator, other.id).await;
        let mut objects = Vec::new();
        for case in &cases {
            objects.push(if case.target.fresh_org() {
                None
            } else {
                make_target(&app, work, &fx, &creator, &caller, &other, case.target).await
            });
        }
        if role != Role::Member {
            app.patch(
                &format!("/api/v1/orgs/{work}/members/{}", caller.id),
                &creator.token,
                json!({ "role": role.as_str() }),
            )
            .await
            .expect(200);
        }

        for (case, object) in cases.iter().zip(objects) {
            let (org, object) = if case.target.fresh_org() {
                // A fresh organization per call: allowed calls delete the
                // org, remove members, revoke invites or make the caller leave.
                n += 1;
                let org = app.create_org(&creator, &format!("Matrix {n}")).await;
                app.join(org, &creator, &caller, role.as_str()).await;
                let object = match case.target {
                    Target::Myself => Some(caller.id),
                    Target::Member(r) => {
                        app.join(org, &creator, &target, r.as_str()).await;
                        Some(target.id)
                    }
                    Target::Invite(r) => Some(create_invite(&app, org, &creator, r).await.0),
                    _ => None,
                };
                (org, object)
            } else {
                (work, object)
            };
            let path = fill(case.path, &org.to_string(), case.target, object);
            let audit_before = app.audit_count(org).await;
            let r = app
                .call(
                    case.method.clone(),
                    &path,
                    Some(&caller.token),
                    case.body.json(&fx),
                )
                .await;
            let audit_after = app.audit_count(org).await;

            let expected = allowed(role, case);
            outcomes.insert(expected);
            if ownership(case) == Ownership::Own {
                own_outcomes.insert(expected);
            }
            let what = format!("{role:?}: {} {path}", case.describe());
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
    assert_eq!(
        own_outcomes.len(),
        2,
        "the matrix exercises both allowed and refused calls on the caller's own objects"
    );
}
