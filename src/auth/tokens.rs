//! Tokens: signed access tokens, opaque refresh and invite tokens, and the
//! server secret they derive from.
//!
//! * Access tokens are HS256 JWTs carrying only the user id and times (no
//!   role: membership is checked on every request), valid ≤ 15 minutes.
//! * Refresh and invite tokens are 256 random bits, given to the client once
//!   and stored only as their SHA-256 (a fast hash is right for high-entropy
//!   secrets; argon2 is for passwords).
//! * The server secret comes from `ORGBOARD_SECRET`, or is generated once and
//!   kept in `<data dir>/secret.key` so a restart keeps everyone logged in.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of refresh tokens (lets secret scanners recognise them).
pub const REFRESH_PREFIX: &str = "obr_";
/// Prefix of invite tokens.
pub const INVITE_PREFIX: &str = "obi_";

/// Loads the server secret: the configured one, or the one kept in the data
/// directory, generating and saving it (mode 0600) on first start.
pub fn load_or_create_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!(
            "{} is too short; delete it to generate a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let secret = random_token(48);
    write_private(&path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(secret.into_bytes())
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// `n` random bytes, URL-safe base64 without padding.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    B64.encode(buf)
}

/// SHA-256 of a token, as stored in the database.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new refresh token and its stored hash.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let t = format!("{REFRESH_PREFIX}{}", random_token(32));
    let h = hash_token(&t);
    (t, h)
}

/// A new invite token for `org_id` and its stored hash. The organization id
/// is part of the token so acceptance can look the invite up inside its
/// tenant (row-level security stays on); the secret part is 256 bits.
pub fn new_invite_token(org_id: Uuid) -> (String, Vec<u8>) {
    let t = format!("{INVITE_PREFIX}{}_{}", org_id.simple(), random_token(32));
    let h = hash_token(&t);
    (t, h)
}

/// The organization an invite token claims to belong to (not yet verified:
/// only the stored hash proves the token).
pub fn invite_token_org(token: &str) -> Option<Uuid> {
    let rest = token.strip_prefix(INVITE_PREFIX)?;
    let (org, secret) = rest.split_once('_')?;
    if secret.len() < 22 {
        return None;
    }
    Uuid::try_parse(org).ok()
}

/// Claims inside an access token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    iat: u64,
    exp: u64,
    typ: String,
    /// The session (refresh-token family) the token was issued for, so a
    /// live stream opened with it can end when the session is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
}

/// What a valid access token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The user it was issued to.
    pub user_id: Uuid,
    /// The session (refresh-token family), when issued by sign-up, login
    /// or refresh.
    pub session: Option<Uuid>,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
}

/// Signing keys derived from the server secret.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    cursor_key: Vec<u8>,
    /// Access token lifetime in seconds.
    pub access_ttl_secs: u64,
}

impl Keys {
    /// Derives the access-token and cursor keys from `secret`.
    pub fn new(secret: &[u8], access_ttl_secs: u64) -> Self {
        let access = derive(secret, b"orgboard access token v1");
        let cursor_key = derive(secret, b"orgboard cursor v1");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(&access),
            decoding: DecodingKey::from_secret(&access),
            validation,
            cursor_key,
            access_ttl_secs,
        }
    }

    /// A signed access token for `user_id`, tied to no session (tools and
    /// tests).
    pub fn issue_access(&self, user_id: Uuid) -> anyhow::Result<String> {
        self.sign(user_id, None)
    }

    /// A signed access token for `user_id` in `session` (its refresh-token
    /// family).
    pub fn issue_session_access(&self, user_id: Uuid, session: Uuid) -> anyhow::Result<String> {
        self.sign(user_id, Some(session))
    }

    fn sign(&self, user_id: Uuid, sid: Option<Uuid>) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let claims = Claims {
            sub: user_id,
            iat: now,
            exp: now + self.access_ttl_secs,
            typ: "access".into(),
            sid,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The user id of a valid, unexpired access token.
    pub fn verify_access(&self, token: &str) -> Option<Uuid> {
        self.verify(token).map(|a| a.user_id)
    }

    /// What a valid, unexpired access token says. A token whose expiry lies
    /// further ahead than this server's lifetime allows is refused too: this
    /// server never issued it (or the lifetime was shortened since).
    pub fn verify(&self, token: &str) -> Option<Access> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let c = data.claims;
        (c.typ == "access" && c.exp <= now + self.access_ttl_secs + self.validation.leeway)
            .then_some(Access {
                user_id: c.sub,
                session: c.sid,
                expires_at: c.exp,
            })
    }

    /// Signs `payload` into an opaque, tamper-evident cursor.
    pub fn seal_cursor(&self, payload: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.cursor_key).expect("any key length");
        mac.update(payload);
        let tag = mac.finalize().into_bytes();
        format!("{}.{}", B64.encode(payload), B64.encode(&tag[..16]))
    }

    /// The payload of a cursor made by [`Keys::seal_cursor`], or `None` when
    /// it was forged or altered.
    pub fn open_cursor(&self, cursor: &str) -> Option<Vec<u8>> {
        let (p, t) = cursor.split_once('.')?;
        let payload = B64.decode(p).ok()?;
        let tag = B64.decode(t).ok()?;
        let mut mac = HmacSha256::new_from_slice(&self.cursor_key).expect("any key length");
        mac.update(&payload);
        mac.verify_truncated_left(&tag).ok()?;
        (tag.len() == 16).then_some(payload)
    }
}

fn derive(secret: &[u8], label: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret).expect("any key length");
    mac.update(label);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_round_trip_and_resist_tampering() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", 900);
        let user = Uuid::now_v7();
        let t = keys.issue_access(user).expect("sign");
        assert_eq!(keys.verify_access(&t), Some(user));
        let other = Keys::new(b"another-secret-another-secret-xx", 900);
        assert_eq!(other.verify_access(&t), None, "other key");
        let mut bad = t.clone();
        bad.push('x');
        assert_eq!(keys.verify_access(&bad), None);
        assert_eq!(keys.verify_access("not.a.token"), None);
        let session = Uuid::now_v7();
        let t = keys.issue_session_access(user, session).expect("sign");
        let access = keys.verify(&t).expect("valid");
        assert_eq!(access.session, Some(session));
        assert_eq!(access.user_id, user);
    }

    /// A well-signed token that expires later than the configured lifetime
    /// allows (a year ahead) is refused.
    #[test]
    fn far_future_expiry_is_refused() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", 900);
        let user = Uuid::now_v7();
        let now = chrono::Utc::now().timestamp() as u64;
        let sign = |exp: u64| {
            let claims = Claims {
                sub: user,
                iat: now,
                exp,
                typ: "access".into(),
                sid: None,
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
                .expect("sign")
        };
        assert_eq!(keys.verify_access(&sign(now + 900)), Some(user));
        assert_eq!(keys.verify_access(&sign(now + 365 * 86_400)), None);
        assert_eq!(keys.verify_access(&sign(now + 2_000)), None);
    }

    #[test]
    fn cursors_detect_forgery() {
        let keys = Keys::new(b"0123456789abcdef0123456789abcdef", 900);
        let c = keys.seal_cursor(b"hello");
        assert_eq!(keys.open_cursor(&c).as_deref(), Some(&b"hello"[..]));
        let forged = format!(
            "{}.{}",
            B64.encode(b"hellp"),
            c.split_once('.').expect("dot").1
        );
        assert_eq!(keys.open_cursor(&forged), None);
        assert_eq!(keys.open_cursor("garbage"), None);
        assert_eq!(keys.open_cursor(""), None);
    }

    #[test]
    fn invite_tokens_carry_their_org() {
        let org = Uuid::now_v7();
        let (t, h) = new_invite_token(org);
        assert_eq!(invite_token_org(&t), Some(org));
        assert_eq!(h, hash_token(&t));
        assert_eq!(invite_token_org("obi_nope"), None);
        assert_eq!(invite_token_org(&t.replace("obi_", "obr_")), None);
        let (r, _) = new_refresh_token();
        assert!(r.starts_with(REFRESH_PREFIX) && r.len() > 40);
    }

    #[test]
    fn secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = load_or_create_secret(None, dir.path()).expect("create");
        let b = load_or_create_secret(None, dir.path()).expect("reload");
        assert_eq!(a, b);
        assert!(a.len() >= 32);
        let c = load_or_create_secret(Some("configured-secret-configured-secret"), dir.path())
            .expect("configured");
        assert_eq!(c, b"configured-secret-configured-secret");
    }
}
