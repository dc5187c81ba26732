//! The rules of a task write, shared by the use cases ([`super::write`]):
//! who owns a task, which fields are valid, how an update changes a task
//! and what its audit payload says, and `If-Match`.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{
    CreateTaskBody, DESCRIPTION_MAX, MAX_RELATED, Priority, Status, TITLE_MAX, Task, UpdateTaskBody,
};
use chrono::{DateTime, Utc};

use crate::db::change;
use crate::domain::Ownership;
use crate::domain::{DomainError, ErrorKind};
use crate::error::FieldError;

/// Whether the caller owns the task in the sense of SPEC §4: created it
/// (`delete`) or created it or is assigned to it (`update`).
pub(super) fn ownership(task: &Task, user_id: Uuid, include_assigned: bool) -> Ownership {
    if task.created_by == user_id || (include_assigned && task.assignee_ids.contains(&user_id)) {
        Ownership::Own
    } else {
        Ownership::NotOwn
    }
}

/// Checks title, description and relation-list sizes; dedupes the lists.
pub(super) type CheckedFields = (Option<String>, Option<Vec<Uuid>>, Option<Vec<Uuid>>);

pub(super) fn validate_fields(
    title: Option<&str>,
    description: Option<&str>,
    assignees: Option<&[Uuid]>,
    labels: Option<&[Uuid]>,
    due_date: Option<&DateTime<Utc>>,
) -> Result<CheckedFields, DomainError> {
    let mut errors = Vec::new();
    if let Err(e) = crate::domain::reject_leap_second("due_date", due_date) {
        errors.push(e);
    }
    let title = title.map(|t| crate::domain::trim_line(t).to_owned());
    if let Some(t) = &title {
        let n = t.chars().count();
        if n == 0 || n > TITLE_MAX {
            errors.push(FieldError::new(
                "title",
                format!("must be 1–{TITLE_MAX} characters"),
            ));
        } else if let Some(problem) = crate::domain::line_problem(t) {
            errors.push(FieldError::new("title", problem));
        }
    }
    if description.is_some_and(|d| d.chars().count() > DESCRIPTION_MAX) {
        errors.push(FieldError::new(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    } else if description.is_some_and(|d| d.contains('\0')) {
        // PostgreSQL cannot store NUL in text; refuse it on both backends.
        errors.push(FieldError::new(
            "description",
            "must not contain NUL characters",
        ));
    }
    let dedupe = |field: &str, ids: Option<&[Uuid]>, errors: &mut Vec<FieldError>| {
        ids.map(|ids| {
            if ids.len() > MAX_RELATED {
                errors.push(FieldError::new(
                    field,
                    format!("must have at most {MAX_RELATED} items"),
                ));
            }
            ids.iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        })
    };
    let assignees = dedupe("assignee_ids", assignees, &mut errors);
    let labels = dedupe("label_ids", labels, &mut errors);
    if errors.is_empty() {
        Ok((title, assignees, labels))
    } else {
        Err(DomainError::validation(errors))
    }
}

/// A create body after validation, with its defaults filled in.
pub(super) struct NewTask {
    pub(super) title: String,
    pub(super) assignees: Vec<Uuid>,
    pub(super) labels: Vec<Uuid>,
    pub(super) status: Status,
    pub(super) priority: Priority,
}

impl NewTask {
    /// Validates `body` (`422` naming the fields) and fills in the defaults.
    pub(super) fn check(body: &CreateTaskBody) -> Result<Self, DomainError> {
        let (title, assignees, labels) = validate_fields(
            Some(&body.title),
            body.description.as_deref(),
            body.assignee_ids.as_deref(),
            body.label_ids.as_deref(),
            body.due_date.as_ref(),
        )?;
        Ok(Self {
            title: title.unwrap_or_default(),
            assignees: assignees.unwrap_or_default(),
            labels: labels.unwrap_or_default(),
            status: body.status.unwrap_or(Status::Todo),
            priority: body.priority.unwrap_or(Priority::Medium),
        })
    }
}

/// `Err(412)` when `If-Match` is present and names another version. Accepts
/// `"7"`, `W/"7"`, `7` and `*`.
pub(super) fn check_if_match(if_match: Option<&str>, version: i64) -> Result<(), DomainError> {
    let Some(v) = if_match else {
        return Ok(());
    };
    let matches = v.split(',').any(|tag| {
        let tag = tag.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
        tag == "*" || tag.parse::<i64>().ok() == Some(version)
    });
    if matches {
        Ok(())
    } else {
        Err(DomainError::new(
            ErrorKind::PreconditionFailed,
            "precondition_failed",
            "Precondition failed",
            format!("The task changed (it is now at version {version}); reload and retry."),
        ))
    }
}

pub(super) fn diff<T: Serialize + PartialEq>(
    payload: &mut serde_json::Map<String, Value>,
    field: &str,
    from: &T,
    to: &T,
) {
    if let Some(c) = change::from_to(from, to) {
        payload.insert(field.into(), c);
    }
}

/// The task after an update (`title`, `assignees` and `labels` already
/// validated), and the audit payload of what changed; an empty payload
/// means nothing changed. Shared by both write paths.
pub(super) fn apply_update(
    task: &Task,
    title: Option<String>,
    body: &UpdateTaskBody,
    assignees: Option<&Vec<Uuid>>,
    labels: Option<&Vec<Uuid>>,
    now: DateTime<Utc>,
) -> (Task, serde_json::Map<String, Value>) {
    let mut new = task.clone();
    if let Some(t) = title {
        new.title = t;
    }
    if let Some(d) = &body.description {
        new.description = d.clone();
    }
    if let Some(s) = body.status {
        new.status = s;
    }
    if let Some(p) = body.priority {
        new.priority = p;
    }
    if let Some(d) = body.due_date {
        new.due_date = d.map(crate::db::micros);
    }
    if let Some(a) = assignees {
        new.assignee_ids = a.clone();
    }
    if let Some(l) = labels {
        new.label_ids = l.clone();
    }
    // Completing stamps completed_at; reopening clears it.
    new.completed_at = match (task.status, new.status) {
        (Status::Done, Status::Done) => task.completed_at,
        (_, Status::Done) => Some(now),
        _ => None,
    };
    let mut payload = serde_json::Map::new();
    diff(&mut payload, "title", &task.title, &new.title);
    diff(
        &mut payload,
        "description",
        &task.description,
        &new.description,
    );
    diff(&mut payload, "status", &task.status, &new.status);
    diff(&mut payload, "priority", &task.priority, &new.priority);
    diff(&mut payload, "due_date", &task.due_date, &new.due_date);
    diff(
        &mut payload,
        "assignee_ids",
        &task.assignee_ids,
        &new.assignee_ids,
    );
    diff(&mut payload, "label_ids", &task.label_ids, &new.label_ids);
    if !payload.is_empty() {
        diff(
            &mut payload,
            "completed_at",
            &task.completed_at,
            &new.completed_at,
        );
    }
    (new, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_bounded_and_deduped() {
        let a = Uuid::now_v7();
        let (_, assignees, _) =
            validate_fields(Some("t"), None, Some(&[a, a]), None, None).expect("valid");
        assert_eq!(assignees, Some(vec![a]));
        assert!(validate_fields(Some("  "), None, None, None, None).is_err());
        assert!(validate_fields(Some(&"x".repeat(501)), None, None, None, None).is_err());
        assert!(validate_fields(Some("t"), Some(&"x".repeat(100_001)), None, None, None).is_err());
        let many: Vec<Uuid> = (0..51).map(|_| Uuid::now_v7()).collect();
        assert!(validate_fields(Some("t"), None, Some(&many), None, None).is_err());
    }
}
