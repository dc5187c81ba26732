//! Outgoing mail: SMTP through lettre when `ORGBOARD_SMTP_URL` is set,
//! otherwise one `.eml` file per message under `<data dir>/outbox/` (noted in
//! the log), so the embedded default works offline.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use lettre::message::{Mailbox, Message, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Config;

/// What an invitation email needs (the job payload).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InviteEmail {
    /// The organization (payloads are keyed by tenant).
    pub org_id: Uuid,
    /// The invite.
    pub invite_id: Uuid,
    /// Recipient address.
    pub to: String,
    /// Organization name.
    pub org_name: String,
    /// Who invited.
    pub inviter_name: String,
    /// Role offered.
    pub role: String,
    /// The accept token (the only copy besides the creator's answer; the job
    /// row is deleted once sent).
    pub token: String,
    /// When the invite expires.
    pub expires_at: DateTime<Utc>,
}

/// What a password reset email needs (the job payload; instance-wide: an
/// account is no tenant's).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PasswordResetEmail {
    /// The account.
    pub user_id: Uuid,
    /// Recipient address.
    pub to: String,
    /// The account's name.
    pub name: String,
    /// The reset token (the only copy; the job row is deleted once sent,
    /// and a dead job keeps its payload without it).
    pub token: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

fn build_password_reset(config: &Config, m: &PasswordResetEmail) -> anyhow::Result<Message> {
    let from: Mailbox = config.smtp_from.parse()?;
    let to: Mailbox = m.to.parse()?;
    let link = format!("{}/reset-password?token={}", config.public_url(), m.token);
    let body = format!(
        "Hello {name},\n\n\
         someone (we hope you) asked to reset the password of your orgboard account.\n\
         To choose a new password, open:\n{link}\n\n\
         The link works once, until {expires} (UTC). Setting a new password signs\n\
         out every session of the account.\n\n\
         If you did not ask for this, ignore this email: your password stays as it is.\n",
        name = m.name,
        expires = m.expires_at.format("%Y-%m-%d %H:%M"),
    );
    Ok(Message::builder()
        .from(from)
        .to(to)
        .subject("Reset your orgboard password")
        .header(ContentType::TEXT_PLAIN)
        .body(body)?)
}

/// Sends a password reset link (job `job_id`).
pub async fn send_password_reset(
    config: &Config,
    job_id: Uuid,
    m: &PasswordResetEmail,
) -> anyhow::Result<()> {
    let message = build_password_reset(config, m)?;
    let to = match deliver(config, job_id, message).await? {
        Delivered::Smtp => "SMTP".to_owned(),
        Delivered::Outbox(path) => path.display().to_string(),
    };
    tracing::info!(user_id = %m.user_id, to, "password reset email sent");
    Ok(())
}

/// Where the outbox lives.
pub fn outbox_dir(config: &Config) -> PathBuf {
    config.storage.data_dir.join("outbox")
}

fn build_invite(config: &Config, m: &InviteEmail) -> anyhow::Result<Message> {
    let from: Mailbox = config.smtp_from.parse()?;
    let to: Mailbox = m.to.parse()?;
    let link = format!("{}/invites/accept?token={}", config.public_url(), m.token);
    let body = format!(
        "{inviter} invited you to join \"{org}\" on orgboard as {role}.\n\n\
         To accept, sign in with this email address and open:\n{link}\n\n\
         or send POST /api/v1/invites/accept with {{\"token\": \"{token}\"}}.\n\n\
         The invitation expires at {expires} (UTC).\n",
        inviter = m.inviter_name,
        org = m.org_name,
        role = m.role,
        token = m.token,
        expires = m.expires_at.format("%Y-%m-%d %H:%M"),
    );
    Ok(Message::builder()
        .from(from)
        .to(to)
        .subject(format!("You are invited to {} on orgboard", m.org_name))
        .header(ContentType::TEXT_PLAIN)
        .body(body)?)
}

/// Sends an invitation (job `job_id`; the outbox file is named after it, so a
/// retried job overwrites rather than duplicates).
pub async fn send_invite(config: &Config, job_id: Uuid, m: &InviteEmail) -> anyhow::Result<()> {
    let message = build_invite(config, m)?;
    match deliver(config, job_id, message).await? {
        Delivered::Smtp => {
            tracing::info!(org_id = %m.org_id, invite_id = %m.invite_id, "invite email sent by SMTP");
        }
        Delivered::Outbox(path) => {
            tracing::info!(org_id = %m.org_id, invite_id = %m.invite_id, path = %path.display(),
                "invite email written to the outbox (no SMTP configured)");
        }
    }
    Ok(())
}

/// Where a message went.
#[derive(Debug)]
pub enum Delivered {
    /// Handed to the SMTP server.
    Smtp,
    /// Written to this file of the outbox.
    Outbox(PathBuf),
}

/// Delivers `message`: by SMTP when configured, otherwise as
/// `<outbox>/<job_id>.eml` (written to a temporary name first, so a reader
/// never sees half a file, and named after the job, so a retry overwrites).
pub async fn deliver(config: &Config, job_id: Uuid, message: Message) -> anyhow::Result<Delivered> {
    match &config.smtp_url {
        Some(url) => {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build();
            transport.send(message).await?;
            Ok(Delivered::Smtp)
        }
        None => {
            // The messages hold invite and sign-in links: this user only.
            let dir = outbox_dir(config);
            let path = dir.join(format!("{job_id}.eml"));
            let tmp = dir.join(format!(".{job_id}.eml.tmp"));
            let formatted = message.formatted();
            let written = tmp.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                crate::db::private_dir(&dir)?;
                let mut f = private_file(&written)?;
                std::io::Write::write_all(&mut f, &formatted)?;
                f.sync_all()
            })
            .await??;
            tokio::fs::rename(&tmp, &path).await?;
            Ok(Delivered::Outbox(path))
        }
    }
}

/// A new file readable by this user only (replacing a leftover one).
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// Most tasks listed per section of a summary (the rest are counted).
const SUMMARY_SECTION_MAX: usize = 20;

/// One member's daily summary: what is due soon, overdue and was completed
/// yesterday, per organization.
#[derive(Debug, Clone)]
pub struct SummaryEmail {
    /// Recipient address.
    pub to: String,
    /// Recipient's display name.
    pub name: String,
    /// The member's time zone (times are shown in it).
    pub time_zone: Tz,
    /// The member's local day the summary is for.
    pub local_date: NaiveDate,
    /// Organizations with something to say, by name.
    pub orgs: Vec<OrgSummary>,
}

/// The part of a summary about one organization.
#[derive(Debug, Clone, Default)]
pub struct OrgSummary {
    /// Organization name.
    pub org_name: String,
    /// Not done, due before the summary's time (oldest first).
    pub overdue: Vec<SummaryTask>,
    /// Not done, due in the next 24 hours (soonest first).
    pub due_soon: Vec<SummaryTask>,
    /// Completed during the member's previous local day.
    pub completed: Vec<SummaryTask>,
}

impl OrgSummary {
    /// True when there is nothing to say about this organization.
    pub fn is_empty(&self) -> bool {
        self.overdue.is_empty() && self.due_soon.is_empty() && self.completed.is_empty()
    }
}

/// A task line of a summary.
#[derive(Debug, Clone)]
pub struct SummaryTask {
    /// Task title.
    pub title: String,
    /// Name of its board.
    pub board: String,
    /// Due time (overdue, due soon) or completion time (completed).
    pub at: DateTime<Utc>,
}

fn summary_section(out: &mut String, heading: &str, verb: &str, tasks: &[SummaryTask], tz: Tz) {
    if tasks.is_empty() {
        return;
    }
    out.push_str(&format!("{heading} ({}):\n", tasks.len()));
    for t in tasks.iter().take(SUMMARY_SECTION_MAX) {
        out.push_str(&format!(
            "  - {} [{}], {verb} {}\n",
            t.title,
            t.board,
            t.at.with_timezone(&tz).format("%a %Y-%m-%d %H:%M"),
        ));
    }
    if tasks.len() > SUMMARY_SECTION_MAX {
        out.push_str(&format!(
            "  ... and {} more\n",
            tasks.len() - SUMMARY_SECTION_MAX
        ));
    }
}

/// The plain-text body of a summary.
fn summary_body(config: &Config, m: &SummaryEmail) -> String {
    let mut out = format!(
        "Good morning {},\n\nHere is your orgboard summary for {} (times in {}).\n",
        m.name,
        m.local_date.format("%A %Y-%m-%d"),
        m.time_zone.name(),
    );
    for org in m.orgs.iter().filter(|o| !o.is_empty()) {
        out.push_str(&format!("\n== {} ==\n", org.org_name));
        summary_section(&mut out, "Overdue", "was due", &org.overdue, m.time_zone);
        summary_section(
            &mut out,
            "Due in the next 24 hours",
            "due",
            &org.due_soon,
            m.time_zone,
        );
        summary_section(
            &mut out,
            "Completed yesterday",
            "done",
            &org.completed,
            m.time_zone,
        );
    }
    out.push_str(&format!(
        "\nopen orgboard: {url}/\n\nYou get this mail at 08:00 your time on days with \
         something to report; change your time zone at {url}/me.\n",
        url = config.public_url()
    ));
    out
}

fn build_summary(config: &Config, m: &SummaryEmail) -> anyhow::Result<Message> {
    let from: Mailbox = config.smtp_from.parse()?;
    let to: Mailbox = m.to.parse()?;
    Ok(Message::builder()
        .from(from)
        .to(to)
        .subject(format!(
            "Your orgboard summary for {}",
            m.local_date.format("%Y-%m-%d")
        ))
        .header(ContentType::TEXT_PLAIN)
        .body(summary_body(config, m))?)
}

/// Sends a daily summary (job `job_id`; see [`deliver`]).
pub async fn send_summary(
    config: &Config,
    job_id: Uuid,
    user_id: Uuid,
    m: &SummaryEmail,
) -> anyhow::Result<()> {
    let message = build_summary(config, m)?;
    match deliver(config, job_id, message).await? {
        Delivered::Smtp => {
            tracing::info!(%user_id, date = %m.local_date, "daily summary sent by SMTP");
        }
        Delivered::Outbox(path) => {
            tracing::info!(%user_id, date = %m.local_date, path = %path.display(),
                "daily summary written to the outbox (no SMTP configured)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_message_names_org_role_and_token() {
        let cfg = Config::for_tests(PathBuf::from("/tmp/x"), None);
        let m = InviteEmail {
            org_id: Uuid::now_v7(),
            invite_id: Uuid::now_v7(),
            to: "bob@example.com".into(),
            org_name: "Acme".into(),
            inviter_name: "Ada".into(),
            role: "member".into(),
            token: "obi_abc_def".into(),
            expires_at: Utc::now(),
        };
        let text =
            String::from_utf8(build_invite(&cfg, &m).expect("build").formatted()).expect("utf8");
        assert!(text.contains("To: bob@example.com"), "{text}");
        assert!(text.contains("Acme"));
        assert!(text.contains("obi_abc_def"));
        assert!(text.contains("as member"));
    }

    #[test]
    fn summary_lists_sections_in_the_members_time_zone() {
        let cfg = Config::for_tests(PathBuf::from("/tmp/x"), None);
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        let task = |title: &str, t: &str| SummaryTask {
            title: title.into(),
            board: "Launch".into(),
            at: at(t),
        };
        let m = SummaryEmail {
            to: "ada@example.com".into(),
            name: "Ada".into(),
            time_zone: chrono_tz::Asia::Kolkata,
            local_date: NaiveDate::from_ymd_opt(2030, 1, 2).expect("date"),
            orgs: vec![
                OrgSummary {
                    org_name: "Acme".into(),
                    overdue: vec![task("Fuel", "2030-01-01T10:00:00Z")],
                    due_soon: (0..25)
                        .map(|i| task(&format!("Check {i}"), "2030-01-02T10:00:00Z"))
                        .collect(),
                    completed: vec![],
                },
                OrgSummary {
                    org_name: "Quiet".into(),
                    ..Default::default()
                },
            ],
        };
        let body = summary_body(&cfg, &m);
        assert!(body.contains("Good morning Ada"), "{body}");
        assert!(body.contains("== Acme =="), "{body}");
        assert!(
            !body.contains("Quiet"),
            "empty organizations are left out: {body}"
        );
        // 10:00 UTC is 15:30 in Kolkata.
        assert!(
            body.contains("Fuel [Launch], was due Tue 2030-01-01 15:30"),
            "{body}"
        );
        assert!(body.contains("Due in the next 24 hours (25):"), "{body}");
        assert!(
            body.contains("Check 19") && !body.contains("Check 20"),
            "{body}"
        );
        assert!(body.contains("... and 5 more"), "{body}");
        assert!(!body.contains("Completed yesterday"), "{body}");
        let text =
            String::from_utf8(build_summary(&cfg, &m).expect("build").formatted()).expect("utf8");
        assert!(
            text.contains("Subject: Your orgboard summary for 2030-01-02"),
            "{text}"
        );
    }
}
