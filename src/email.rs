//! Outgoing mail: SMTP through lettre when `ORGBOARD_SMTP_URL` is set,
//! otherwise one `.eml` file per message under `<data dir>/outbox/` (noted in
//! the log), so the embedded default works offline.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
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
    match &config.smtp_url {
        Some(url) => {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build();
            transport.send(message).await?;
            tracing::info!(org_id = %m.org_id, invite_id = %m.invite_id, "invite email sent by SMTP");
        }
        None => {
            let dir = outbox_dir(config);
            tokio::fs::create_dir_all(&dir).await?;
            let path = dir.join(format!("{job_id}.eml"));
            let tmp = dir.join(format!(".{job_id}.eml.tmp"));
            tokio::fs::write(&tmp, message.formatted()).await?;
            tokio::fs::rename(&tmp, &path).await?;
            tracing::info!(org_id = %m.org_id, invite_id = %m.invite_id, path = %path.display(),
                "invite email written to the outbox (no SMTP configured)");
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
}
