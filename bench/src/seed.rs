//! Seeding a data set of a tier, fast: bulk multi-row `INSERT`s in big
//! transactions through the storage layer (`Db::write` with the tenant's
//! `Scope`, so PostgreSQL's forced row-level security is satisfied), never
//! through HTTP.
//!
//! Every organization gets members (real argon2id hashes, computed once and
//! shared), labels, one board of ten lists and its tasks; tasks get mixed
//! status and priority, some due dates, assignees and labels, and positions
//! made by `key_between` as sequential appends. Generation is seeded, so a
//! tier always has the same shape.
//!
//! Every organization also gets an audit history for the audit-log
//! scenarios to read: [`AUDIT_PER_TASK`] rows per seeded task, spread over
//! the last [`AUDIT_SPAN_DAYS`] days, oldest first, each id a UUIDv7 of its
//! row's time. They use only the actions of [`SEEDED_AUDIT`], none of which
//! the benchmark's own writes produce, and the integrity check counts only
//! the actions those writes do produce (`task.created`, `task.updated`,
//! `task.moved`, `comment.created`, `board.created`): it stays exact.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use orgboard::db::{Backend, Db, Scope, Tx};
use orgboard::domain::ordering::key_between;
use orgboard::on_tx;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// Password of every seeded user (the login scenario uses it).
pub const PASSWORD: &str = "bench-password-0123456789";
/// Lists per board.
pub const LISTS_PER_BOARD: usize = 10;
/// Labels per organization.
pub const LABELS_PER_ORG: usize = 6;
/// Members of an ordinary organization of a multi-organization tier.
const SMALL_TEAM: usize = 4;
/// Members of a single-organization tier, and of organizations holding a hot
/// board: enough for one user per virtual user at concurrency 64.
const BIG_TEAM: usize = 64;
/// Assignees are drawn from the first members only (a team's core).
pub const ASSIGNABLE: usize = 4;
/// Binds per multi-row INSERT. PostgreSQL takes up to 65 535 and likes big
/// statements; sqlx's SQLite driver slows down more than linearly with the
/// number of binds of one statement (10 000 tasks took 10 s with 30 000
/// binds a statement, 0.7 s with 1 000), so SQLite gets small ones.
fn max_binds(tx: &Tx) -> usize {
    match tx.backend() {
        Backend::Postgres => 30_000,
        Backend::Sqlite => 1_000,
    }
}
/// Tasks written per transaction (large boards span several).
const TASKS_PER_TX: usize = 20_000;
/// Audit rows seeded per seeded task of an organization.
pub const AUDIT_PER_TASK: usize = 2;
/// The seeded audit rows span this many days back from the seeding time.
pub const AUDIT_SPAN_DAYS: i64 = 30;
/// The (action, entity type) pairs of the seeded audit rows: only actions
/// the benchmark's own writes never produce, so the integrity check, which
/// counts the others, stays exact.
pub const SEEDED_AUDIT: [(&str, &str); 6] = [
    ("task.deleted", "task"),
    ("list.updated", "list"),
    ("label.updated", "label"),
    ("member.role_changed", "membership"),
    ("board.updated", "board"),
    ("comment.updated", "comment"),
];
/// Audit rows written per transaction.
const AUDIT_PER_TX: usize = 40_000;
/// Columns of a seeded audit row.
const AUDIT_COLUMNS: [&str; 9] = [
    "org_id",
    "id",
    "actor_id",
    "action",
    "entity_type",
    "entity_id",
    "payload",
    "request_id",
    "created_at",
];

/// Size of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Tier {
    /// 1 organization, 1 board, 200 tasks (for CI).
    #[value(name = "tiny")]
    Tiny,
    /// 1 organization, 1 board of 10 lists, 10 000 tasks.
    #[value(name = "S", alias = "s")]
    S,
    /// 100 organizations × 1 000 tasks.
    #[value(name = "M", alias = "m")]
    M,
    /// 1 000 organizations × 1 000 tasks, plus hot boards of 10 000 and
    /// 100 000 tasks (in the first two organizations).
    #[value(name = "L", alias = "l")]
    L,
}

/// What kind of board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum BoardKind {
    /// The organization's ordinary board.
    Regular,
    /// The 10 000-task hot board (L tier).
    Hot10k,
    /// The 100 000-task hot board (L tier).
    Hot100k,
}

/// The shape of a tier.
pub struct TierSpec {
    /// Organizations.
    pub orgs: usize,
    /// Tasks on each organization's regular board.
    pub tasks_per_org: usize,
    /// Extra boards: (organization index, tasks, kind).
    pub hot: Vec<(usize, usize, BoardKind)>,
}

impl Tier {
    /// Its shape.
    pub fn spec(self) -> TierSpec {
        match self {
            Tier::Tiny => TierSpec {
                orgs: 1,
                tasks_per_org: 200,
                hot: vec![],
            },
            Tier::S => TierSpec {
                orgs: 1,
                tasks_per_org: 10_000,
                hot: vec![],
            },
            Tier::M => TierSpec {
                orgs: 100,
                tasks_per_org: 1_000,
                hot: vec![],
            },
            Tier::L => TierSpec {
                orgs: 1_000,
                tasks_per_org: 1_000,
                hot: vec![
                    (0, 10_000, BoardKind::Hot10k),
                    (1, 100_000, BoardKind::Hot100k),
                ],
            },
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Tiny => "tiny",
            Tier::S => "S",
            Tier::M => "M",
            Tier::L => "L",
        }
    }
}

/// A seeded user.
#[derive(Debug, Clone)]
pub struct Member {
    /// User id.
    pub id: Uuid,
    /// Login email.
    pub email: String,
}

/// A seeded task: its id and the index of its list on the board.
#[derive(Debug, Clone, Copy)]
pub struct SeedTask {
    /// Task id.
    pub id: Uuid,
    /// Index into [`SeedBoard::lists`].
    pub list: u16,
}

/// A seeded board.
#[derive(Debug, Clone)]
pub struct SeedBoard {
    /// Regular or hot.
    pub kind: BoardKind,
    /// Board id.
    pub id: Uuid,
    /// Its lists, in order.
    pub lists: Vec<Uuid>,
    /// Its tasks.
    pub tasks: Vec<SeedTask>,
}

/// A seeded organization.
#[derive(Debug, Clone)]
pub struct SeedOrg {
    /// Organization id.
    pub id: Uuid,
    /// Members; the first is the owner, the others admins.
    pub members: Vec<Member>,
    /// Its labels.
    pub labels: Vec<Uuid>,
    /// Its boards; the first is the regular one.
    pub boards: Vec<SeedBoard>,
}

impl SeedOrg {
    /// Tasks seeded in this organization.
    pub fn task_count(&self) -> u64 {
        self.boards.iter().map(|b| b.tasks.len() as u64).sum()
    }

    /// The board of that kind, if this organization has one.
    pub fn board(&self, kind: BoardKind) -> Option<&SeedBoard> {
        self.boards.iter().find(|b| b.kind == kind)
    }
}

/// What was seeded, and how long it took.
pub struct Dataset {
    /// The organizations, in order.
    pub orgs: Vec<SeedOrg>,
    /// Rows written per table.
    pub rows: RowCounts,
    /// Seconds spent hashing the one password.
    pub hash_secs: f64,
    /// Seconds spent inserting.
    pub insert_secs: f64,
}

impl Dataset {
    /// Tasks seeded in total.
    pub fn tasks(&self) -> u64 {
        self.orgs.iter().map(SeedOrg::task_count).sum()
    }
}

/// Rows written per table.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct RowCounts {
    /// `users`.
    pub users: u64,
    /// `organizations`.
    pub organizations: u64,
    /// `boards`.
    pub boards: u64,
    /// `lists`.
    pub lists: u64,
    /// `tasks`.
    pub tasks: u64,
    /// `task_assignees`.
    pub task_assignees: u64,
    /// `task_labels`.
    pub task_labels: u64,
    /// `labels`.
    pub labels: u64,
    /// `audit_log`.
    pub audit_log: u64,
}

impl RowCounts {
    fn add(&mut self, o: &RowCounts) {
        self.users += o.users;
        self.organizations += o.organizations;
        self.boards += o.boards;
        self.lists += o.lists;
        self.tasks += o.tasks;
        self.task_assignees += o.task_assignees;
        self.task_labels += o.task_labels;
        self.labels += o.labels;
        self.audit_log += o.audit_log;
    }
}

/// A bind value of a bulk insert.
enum V {
    U(Uuid),
    T(String),
    S(&'static str),
    I16(i16),
    I64(i64),
    B(bool),
    Dt(DateTime<Utc>),
    ODt(Option<DateTime<Utc>>),
    /// `jsonb` on PostgreSQL (bound as JSON, not text), text on SQLite.
    J(serde_json::Value),
}

/// Inserts `values` (row-major, `cols.len()` per row) into `table` with
/// multi-row INSERTs of at most [`max_binds`] binds each.
async fn insert(tx: &mut Tx, table: &str, cols: &[&str], values: Vec<V>) -> anyhow::Result<()> {
    let width = cols.len();
    let rows_per_stmt = (max_binds(tx) / width).max(1);
    let mut values = values.into_iter().peekable();
    while values.peek().is_some() {
        let chunk: Vec<V> = values.by_ref().take(rows_per_stmt * width).collect();
        let rows = chunk.len() / width;
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..width {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push('$');
                sql.push_str(&(r * width + c + 1).to_string());
            }
            sql.push(')');
        }
        on_tx!(&mut *tx, |c| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for v in &chunk {
                q = match v {
                    V::U(x) => q.bind(*x),
                    V::T(x) => q.bind(x.as_str()),
                    V::S(x) => q.bind(*x),
                    V::I16(x) => q.bind(*x),
                    V::I64(x) => q.bind(*x),
                    V::B(x) => q.bind(*x),
                    V::Dt(x) => q.bind(*x),
                    V::ODt(x) => q.bind(*x),
                    V::J(x) => q.bind(sqlx::types::Json(x)),
                };
            }
            q.execute(c).await.map(|r| r.rows_affected())
        })
        .with_context(|| format!("bulk insert into {table}"))?;
    }
    Ok(())
}

/// Whether the server's schema keeps relation ids on the task row
/// (migration 0009): the seed writes them when it does, so the same tool
/// can seed a build from before it (`--server-bin`, before/after pairs).
async fn keeps_relation_ids(tx: &mut Tx) -> anyhow::Result<bool> {
    let sql = match tx.backend() {
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.columns \
             WHERE table_name = 'tasks' AND column_name = 'assignee_ids'"
        }
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM pragma_table_info('tasks') WHERE name = 'assignee_ids'"
        }
    };
    let n: i64 = on_tx!(&mut *tx, |c| sqlx::query_scalar(sql).fetch_one(c).await)?;
    Ok(n > 0)
}

const WORDS: &[&str] = &[
    "invoice",
    "login",
    "report",
    "deploy",
    "design",
    "review",
    "billing",
    "search",
    "export",
    "onboarding",
    "mobile",
    "api",
    "cache",
    "email",
    "dashboard",
    "audit",
    "backup",
    "sync",
];

/// Seeds `tier` into `db` (migrated), `parallel` organizations at a time.
/// `run_id` makes emails and slugs unique, so a data set can be added to a
/// database that already holds data (`--target`).
pub async fn seed(
    db: &Db,
    tier: Tier,
    run_id: &str,
    rng_seed: u64,
    parallel: usize,
) -> anyhow::Result<Dataset> {
    let spec = tier.spec();
    let t0 = Instant::now();
    // The server's own argon2id cost (its defaults), computed once.
    let hasher = orgboard::auth::password::PasswordHasher::new(19_456, 2, 0)?;
    let hash: Arc<str> = hasher.hash(PASSWORD.to_owned()).await?.into();
    let hash_secs = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let base = orgboard::db::now();
    let mut set = tokio::task::JoinSet::new();
    let mut orgs: Vec<Option<SeedOrg>> = vec![None; spec.orgs];
    let mut rows = RowCounts::default();
    for i in 0..spec.orgs {
        while set.len() >= parallel.max(1) {
            if let Some(r) = set.join_next().await {
                let (idx, org, counts) = r??;
                orgs[idx] = Some(org);
                rows.add(&counts);
            }
        }
        let extra: Vec<(usize, BoardKind)> = spec
            .hot
            .iter()
            .filter(|h| h.0 == i)
            .map(|h| (h.1, h.2))
            .collect();
        let plan = OrgPlan {
            idx: i,
            members: if spec.orgs == 1 || !extra.is_empty() {
                BIG_TEAM
            } else {
                SMALL_TEAM
            },
            regular_tasks: spec.tasks_per_org,
            extra,
            run_id: run_id.to_owned(),
            seed: rng_seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
            hash: hash.clone(),
            base,
        };
        let db = db.clone();
        set.spawn(async move {
            let (org, counts) = seed_org(&db, plan).await?;
            Ok::<_, anyhow::Error>((i, org, counts))
        });
    }
    while let Some(r) = set.join_next().await {
        let (idx, org, counts) = r??;
        orgs[idx] = Some(org);
        rows.add(&counts);
    }
    let orgs = orgs
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .context("an organization was not seeded")?;
    Ok(Dataset {
        orgs,
        rows,
        hash_secs,
        insert_secs: t1.elapsed().as_secs_f64(),
    })
}

struct OrgPlan {
    idx: usize,
    members: usize,
    regular_tasks: usize,
    extra: Vec<(usize, BoardKind)>,
    run_id: String,
    seed: u64,
    hash: Arc<str>,
    base: DateTime<Utc>,
}

async fn seed_org(db: &Db, p: OrgPlan) -> anyhow::Result<(SeedOrg, RowCounts)> {
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut counts = RowCounts::default();
    let org_id = Uuid::now_v7();
    let members: Vec<Member> = (0..p.members)
        .map(|k| Member {
            id: Uuid::now_v7(),
            email: format!("bench-{}-{}-{k}@bench.invalid", p.run_id, p.idx),
        })
        .collect();
    let owner = members[0].id;
    let scope = Scope::tenant(owner, org_id);
    let now = p.base;
    let mut tx = db.write(scope).await?;

    let mut v = Vec::new();
    for (k, m) in members.iter().enumerate() {
        v.extend([
            V::U(m.id),
            V::T(m.email.clone()),
            V::T(m.email.clone()),
            V::T(format!("Bench user {} of org {}", k, p.idx)),
            V::T(p.hash.to_string()),
            V::Dt(now),
            V::Dt(now),
        ]);
    }
    insert(
        &mut tx,
        "users",
        &[
            "id",
            "email",
            "email_norm",
            "name",
            "password_hash",
            "created_at",
            "updated_at",
        ],
        v,
    )
    .await?;
    counts.users += members.len() as u64;

    insert(
        &mut tx,
        "organizations",
        &[
            "id",
            "name",
            "slug",
            "is_personal",
            "created_by",
            "created_at",
            "updated_at",
        ],
        vec![
            V::U(org_id),
            V::T(format!("Bench org {}", p.idx)),
            V::T(format!("bench-{}-{}", p.run_id, p.idx)),
            V::B(false),
            V::U(owner),
            V::Dt(now),
            V::Dt(now),
        ],
    )
    .await?;
    counts.organizations += 1;

    let mut v = Vec::new();
    for (k, m) in members.iter().enumerate() {
        v.extend([
            V::U(org_id),
            V::U(m.id),
            V::S(if k == 0 { "owner" } else { "admin" }),
            V::Dt(now),
            V::Dt(now),
        ]);
    }
    insert(
        &mut tx,
        "memberships",
        &["org_id", "user_id", "role", "created_at", "updated_at"],
        v,
    )
    .await?;

    let colors = [
        "#e11d48", "#f59e0b", "#10b981", "#3b82f6", "#8b5cf6", "#64748b",
    ];
    let labels: Vec<Uuid> = (0..LABELS_PER_ORG).map(|_| Uuid::now_v7()).collect();
    let mut v = Vec::new();
    for (k, id) in labels.iter().enumerate() {
        let name = format!("label-{k}");
        v.extend([
            V::U(org_id),
            V::U(*id),
            V::T(name.clone()),
            V::T(name),
            V::S(colors[k % colors.len()]),
            V::Dt(now),
            V::Dt(now),
        ]);
    }
    insert(
        &mut tx,
        "labels",
        &[
            "org_id",
            "id",
            "name",
            "name_norm",
            "color",
            "created_at",
            "updated_at",
        ],
        v,
    )
    .await?;
    counts.labels += labels.len() as u64;

    let assignable: Vec<Uuid> = members.iter().take(ASSIGNABLE).map(|m| m.id).collect();
    let keeps_ids = keeps_relation_ids(&mut tx).await?;
    let mut boards = Vec::new();
    let mut plans = vec![(p.regular_tasks, BoardKind::Regular)];
    plans.extend(p.extra.iter().copied());
    for (n_tasks, kind) in plans {
        let board_id = Uuid::now_v7();
        insert(
            &mut tx,
            "boards",
            &[
                "org_id",
                "id",
                "name",
                "description",
                "created_by",
                "created_at",
                "updated_at",
            ],
            vec![
                V::U(org_id),
                V::U(board_id),
                V::T(format!("{kind:?} board")),
                V::S(""),
                V::U(owner),
                V::Dt(now),
                V::Dt(now),
            ],
        )
        .await?;
        counts.boards += 1;
        let mut lists = Vec::new();
        let mut v = Vec::new();
        let mut last: Option<String> = None;
        for k in 0..LISTS_PER_BOARD {
            let id = Uuid::now_v7();
            let pos = key_between(last.as_deref(), None)?;
            v.extend([
                V::U(org_id),
                V::U(id),
                V::U(board_id),
                V::T(format!("List {k}")),
                V::T(pos.clone()),
                V::Dt(now),
                V::Dt(now),
            ]);
            last = Some(pos);
            lists.push(id);
        }
        insert(
            &mut tx,
            "lists",
            &[
                "org_id",
                "id",
                "board_id",
                "name",
                "position",
                "created_at",
                "updated_at",
            ],
            v,
        )
        .await?;
        counts.lists += lists.len() as u64;

        let mut positions: Vec<Option<String>> = vec![None; lists.len()];
        let mut tasks = Vec::with_capacity(n_tasks);
        let mut done = 0;
        while done < n_tasks {
            let n = (n_tasks - done).min(TASKS_PER_TX);
            let mut tv = Vec::with_capacity(n * 17);
            let mut av = Vec::new();
            let mut lv = Vec::new();
            for i in done..done + n {
                let id = Uuid::now_v7();
                let li = i % lists.len();
                let pos = key_between(positions[li].as_deref(), None)?;
                positions[li] = Some(pos.clone());
                let created = now - Duration::milliseconds(((n_tasks - i) as i64) * 10);
                let status = match rng.random_range(0..10) {
                    0..=4 => "todo",
                    5..=7 => "in_progress",
                    _ => "done",
                };
                let priority: i16 = match rng.random_range(0..10) {
                    0..=2 => 0,
                    3..=6 => 1,
                    7..=8 => 2,
                    _ => 3,
                };
                let due = rng
                    .random_bool(0.6)
                    .then(|| now + Duration::hours(rng.random_range(-30 * 24..60 * 24)));
                let title = format!(
                    "{} {} #{i}",
                    WORDS[rng.random_range(0..WORDS.len())],
                    WORDS[rng.random_range(0..WORDS.len())]
                );
                let description = if rng.random_bool(0.3) {
                    format!(
                        "Seeded task {i}: check the {} flow and the {} page before the release.",
                        WORDS[rng.random_range(0..WORDS.len())],
                        WORDS[rng.random_range(0..WORDS.len())]
                    )
                } else {
                    String::new()
                };
                let creator = assignable[rng.random_range(0..assignable.len())];
                tv.extend([
                    V::U(org_id),
                    V::U(id),
                    V::U(board_id),
                    V::U(lists[li]),
                    V::T(title),
                    V::T(description),
                    V::S(status),
                    V::I16(priority),
                    V::T(pos),
                    V::ODt(due),
                    V::U(creator),
                    V::ODt((status == "done").then_some(created)),
                    V::I64(1),
                    V::Dt(created),
                    V::Dt(created),
                ]);
                let n_assignees = match rng.random_range(0..20) {
                    0..=7 => 0,
                    8..=16 => 1,
                    _ => 2,
                };
                let first = rng.random_range(0..assignable.len());
                let assignees: Vec<Uuid> = (0..n_assignees.min(assignable.len()))
                    .map(|k| assignable[(first + k) % assignable.len()])
                    .collect();
                for &user in &assignees {
                    av.extend([V::U(org_id), V::U(id), V::U(user)]);
                }
                let n_labels = match rng.random_range(0..20) {
                    0..=7 => 0,
                    8..=15 => 1,
                    _ => 2,
                };
                let first = rng.random_range(0..labels.len());
                let tagged: Vec<Uuid> = (0..n_labels)
                    .map(|k| labels[(first + k) % labels.len()])
                    .collect();
                for &label in &tagged {
                    lv.extend([V::U(org_id), V::U(id), V::U(label)]);
                }
                // The ids the task row keeps too (migration 0009).
                if keeps_ids {
                    tv.extend([
                        V::T(orgboard::tasks::ids_text(&assignees)),
                        V::T(orgboard::tasks::ids_text(&tagged)),
                    ]);
                }
                tasks.push(SeedTask {
                    id,
                    list: li as u16,
                });
            }
            counts.task_assignees += (av.len() / 3) as u64;
            counts.task_labels += (lv.len() / 3) as u64;
            counts.tasks += n as u64;
            let columns = [
                "org_id",
                "id",
                "board_id",
                "list_id",
                "title",
                "description",
                "status",
                "priority",
                "position",
                "due_date",
                "created_by",
                "completed_at",
                "version",
                "created_at",
                "updated_at",
                "assignee_ids",
                "label_ids",
            ];
            let columns = if keeps_ids {
                &columns[..]
            } else {
                &columns[..columns.len() - 2]
            };
            insert(&mut tx, "tasks", columns, tv).await?;
            insert(
                &mut tx,
                "task_assignees",
                &["org_id", "task_id", "user_id"],
                av,
            )
            .await?;
            insert(
                &mut tx,
                "task_labels",
                &["org_id", "task_id", "label_id"],
                lv,
            )
            .await?;
            done += n;
            if done < n_tasks {
                // Large boards span several transactions.
                tx.commit().await?;
                tx = db.write(scope).await?;
            }
        }
        boards.push(SeedBoard {
            kind,
            id: board_id,
            lists,
            tasks,
        });
    }

    // The audit history, after every task (the tasks' draws stay as they
    // were), in transactions of at most AUDIT_PER_TX rows.
    let n_audit = AUDIT_PER_TASK * boards.iter().map(|b| b.tasks.len()).sum::<usize>();
    let mut done = 0;
    while done < n_audit {
        let n = (n_audit - done).min(AUDIT_PER_TX);
        let v = audit_rows(&mut rng, org_id, &members, done..done + n, n_audit, now);
        insert(&mut tx, "audit_log", &AUDIT_COLUMNS, v).await?;
        done += n;
        if done < n_audit {
            tx.commit().await?;
            tx = db.write(scope).await?;
        }
    }
    counts.audit_log += n_audit as u64;
    tx.commit().await?;
    Ok((
        SeedOrg {
            id: org_id,
            members,
            labels,
            boards,
        },
        counts,
    ))
}

/// Rows `range` of the `total` seeded audit rows of an organization, as
/// bind values: row `k` at `now − AUDIT_SPAN_DAYS + k × span ÷ total` (whole
/// milliseconds, strictly increasing), its id a UUIDv7 of that time, its
/// actor the organization's members in turn, its action drawn from
/// [`SEEDED_AUDIT`]. Everything random comes from `rng`.
fn audit_rows(
    rng: &mut StdRng,
    org_id: Uuid,
    members: &[Member],
    range: std::ops::Range<usize>,
    total: usize,
    now: DateTime<Utc>,
) -> Vec<V> {
    const COLORS: [&str; 4] = ["#e11d48", "#f59e0b", "#10b981", "#3b82f6"];
    let span_ms = AUDIT_SPAN_DAYS * 86_400_000;
    let start_ms = now.timestamp_millis() - span_ms;
    let mut v = Vec::with_capacity(range.len() * AUDIT_COLUMNS.len());
    for k in range {
        let ms = start_ms + (span_ms as i128 * k as i128 / total.max(1) as i128) as i64;
        let at = DateTime::from_timestamp_millis(ms).unwrap_or(now);
        let id = uuid::Builder::from_unix_timestamp_millis(ms as u64, &rng.random()).into_uuid();
        let entity = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        let request = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        let (action, entity_type) = SEEDED_AUDIT[rng.random_range(0..SEEDED_AUDIT.len())];
        // Keys in alphabetical order (what serde_json writes anyway).
        let payload = match action {
            "task.deleted" => serde_json::json!({
                "title": format!(
                    "{} {} #{k}",
                    WORDS[rng.random_range(0..WORDS.len())],
                    WORDS[rng.random_range(0..WORDS.len())]
                )
            }),
            "list.updated" => serde_json::json!({
                "name": { "from": format!("List {}", k % LISTS_PER_BOARD), "to": format!("List {k}") }
            }),
            "label.updated" => {
                // Always a change of colour.
                let from = rng.random_range(0..COLORS.len());
                let to = (from + rng.random_range(1..COLORS.len())) % COLORS.len();
                serde_json::json!({ "color": { "from": COLORS[from], "to": COLORS[to] } })
            }
            "member.role_changed" => serde_json::json!({
                "role": if rng.random_bool(0.5) {
                    serde_json::json!({ "from": "member", "to": "admin" })
                } else {
                    serde_json::json!({ "from": "admin", "to": "member" })
                }
            }),
            "board.updated" => serde_json::json!({
                "name": { "from": format!("old {k}"), "to": format!("new {k}") }
            }),
            _ => serde_json::json!({
                "body": { "from": format!("old {k}"), "to": format!("new {k}") }
            }),
        };
        v.extend([
            V::U(org_id),
            V::U(id),
            V::U(members[k % members.len()].id),
            V::S(action),
            V::S(entity_type),
            V::U(entity),
            V::J(payload),
            V::T(request.to_string()),
            V::Dt(at),
        ]);
    }
    v
}
