//! Domain types and rules, independent of HTTP and SQL.
//!
//! Input is parsed into these newtypes at the edge ("parse, don't
//! validate"): once a handler holds an [`Email`] or a [`Slug`], it is valid.
//! Each parser returns a human message; handlers collect them into
//! `validation_failed` field errors.

pub mod error;
pub mod ordering;
pub mod policy;

use uuid::Uuid;

/// One invalid field of a request, as listed in a `validation_failed` problem.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// Name of the field (JSON pointer-ish path: `email`, `assignee_ids[3]`).
    pub field: String,
    /// What is wrong with it, for humans.
    pub message: String,
}

impl FieldError {
    /// A field error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A refusal of the permission table (SPEC §4), with its reason; the
/// HTTP edge answers it `403 forbidden`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden(pub String);

pub use error::{DomainError, DomainResult, ErrorKind};
pub use policy::{Action, Ownership, Role, require};

/// Longest accepted email address (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;
/// Password length bounds, in characters (any Unicode; never truncated).
pub const PASSWORD_MIN: usize = 10;
/// See [`PASSWORD_MIN`].
pub const PASSWORD_MAX: usize = 128;
/// Longest display name of a person or organization, in characters.
pub const NAME_MAX: usize = 100;
/// Slug length bounds.
pub const SLUG_MIN: usize = 2;
/// See [`SLUG_MIN`].
pub const SLUG_MAX: usize = 64;

/// An email address as given, with its case-folded form for uniqueness and
/// matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// As the person typed it (trimmed).
    pub display: String,
    /// Lower-cased, for uniqueness and comparison.
    pub normalized: String,
}

impl Email {
    /// Parses an address: one `@`, a non-empty local part (≤ 64), a domain
    /// with a dot, no spaces or control characters, ≤ 254 characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("is required".into());
        }
        if s.chars().count() > EMAIL_MAX {
            return Err(format!("must be at most {EMAIL_MAX} characters"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces".into());
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err("must be an email address".into());
        };
        if local.is_empty()
            || local.chars().count() > 64
            || domain.contains('@')
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err("must be an email address".into());
        }
        // A host name, not an address literal (`x@[127.0.0.1]`): mail to
        // one is never what a teammate's invite means. Letters of any
        // script are fine (internationalized domains).
        if !domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
        {
            return Err("must be an email address with a domain name".into());
        }
        if s.chars().any(is_bidi_control) {
            return Err("must not contain bidirectional control characters".into());
        }
        Ok(Self {
            display: s.to_owned(),
            normalized: s.to_lowercase(),
        })
    }
}

/// A password that meets the rules: 10–128 characters of any kind.
pub struct Password(pub String);

impl Password {
    /// Checks the length rule only; every Unicode character is accepted and
    /// nothing is trimmed or truncated.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let n = raw.chars().count();
        if n < PASSWORD_MIN {
            return Err(format!("must be at least {PASSWORD_MIN} characters"));
        }
        if n > PASSWORD_MAX {
            return Err(format!("must be at most {PASSWORD_MAX} characters"));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A character that draws nothing: white space, zero-width spaces and
/// joiners, the word joiner and invisible operators, the byte-order mark,
/// the soft hyphen, Hangul fillers. A name made only of them looks empty.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
        )
}

/// Bidirectional embedding, override and isolate controls (U+202A–U+202E,
/// U+2066–U+2069). In a one-line name they reorder what follows, so a title
/// can display as something else than it says ("Trojan Source"); they are
/// refused there. (Descriptions and comments may hold them: they are shown
/// as text in their own isolated block.)
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A one-line text (a name or a title) with white space and invisible
/// characters trimmed from both ends: what is stored and counted.
pub fn trim_line(raw: &str) -> &str {
    raw.trim_matches(is_invisible)
}

/// What is wrong with a trimmed one-line text (see [`trim_line`]), if
/// anything: empty, control characters, bidirectional controls. The length
/// is checked by the caller.
pub fn line_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("must not be empty")
    } else if s.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if s.chars().any(is_bidi_control) {
        Some("must not contain bidirectional control characters")
    } else {
        None
    }
}

/// Refuses a leap second (`…T23:59:60Z`) in a time a client sent. chrono
/// reads it, but the two databases would not agree on it: SQLite would keep
/// the text `:60` (unreadable by common parsers), PostgreSQL would roll it
/// over to the next minute, and filters would then differ. Send `:59`.
pub fn reject_leap_second(
    field: &str,
    time: Option<&chrono::DateTime<chrono::Utc>>,
) -> Result<(), FieldError> {
    use chrono::Timelike as _;
    match time {
        Some(t) if t.nanosecond() >= 1_000_000_000 => Err(FieldError::new(
            field,
            "must not be a leap second (:60); use :59",
        )),
        _ => Ok(()),
    }
}

/// A display name: trimmed of white space and invisible characters at both
/// ends, then 1–`max` characters, no control or bidirectional control
/// characters.
pub fn parse_name(raw: &str, max: usize) -> Result<String, String> {
    let s = trim_line(raw);
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if let Some(problem) = line_problem(s) {
        return Err(problem.into());
    }
    Ok(s.to_owned())
}

/// An IANA time zone name (`Europe/Paris`, `America/New_York`, `UTC`),
/// exactly as the tz database spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl TimeZone {
    /// Parses a time zone given by a client.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        s.parse::<chrono_tz::Tz>().map(Self).map_err(|_| {
            "must be an IANA time zone name such as Europe/Paris or UTC (case matters)".into()
        })
    }

    /// The canonical spelling, as stored.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

/// A URL-safe organization handle: 2–64 of `a-z`, `0-9` and single hyphens,
/// starting and ending with a letter or digit, and never shaped like a UUID
/// (so `{org}` in a path is unambiguous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(pub String);

impl Slug {
    /// Parses a slug given by a client.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let n = s.chars().count();
        if !(SLUG_MIN..=SLUG_MAX).contains(&n) {
            return Err(format!("must be {SLUG_MIN}–{SLUG_MAX} characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err("may contain only a-z, 0-9 and '-'".into());
        }
        if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
            return Err("must start and end with a letter or digit, without '--'".into());
        }
        if Uuid::parse_str(s).is_ok() {
            return Err("must not look like an id".into());
        }
        Ok(Self(s.to_owned()))
    }

    /// The slug a name reads as ("Acme Corp" → `acme-corp`), when that is a
    /// valid slug (long enough, not shaped like an id).
    pub fn plain(name: &str) -> Option<Self> {
        Self::parse(&Self::base(name)).ok()
    }

    /// Derives a slug from a name with a random suffix (`acme-corp-3f9a1c`),
    /// for when its [`Slug::plain`] form is taken or invalid.
    pub fn derive_from(name: &str) -> Self {
        let base = Self::base(name);
        let suffix: String = Uuid::new_v4().simple().to_string()[..6].to_owned();
        if base.is_empty() {
            Self(format!("org-{suffix}"))
        } else {
            Self(format!("{base}-{suffix}"))
        }
    }

    /// A name lowercased, runs of other characters as one `-`, at most 40
    /// characters, no `-` at either end.
    fn base(name: &str) -> String {
        let mut base = String::new();
        for c in name.to_lowercase().chars() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                base.push(c);
            } else if !base.ends_with('-') && !base.is_empty() {
                base.push('-');
            }
            if base.len() >= 40 {
                break;
            }
        }
        base.trim_end_matches('-').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_case_folded() {
        let e = Email::parse("  Ada.Lovelace@Example.COM ").expect("valid");
        assert_eq!(e.display, "Ada.Lovelace@Example.COM");
        assert_eq!(e.normalized, "ada.lovelace@example.com");
        for bad in [
            "", "ada", "ada@", "@x.io", "a b@x.io", "a@b", "a@@b.io", "a@.io", "a@b..io",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Email::parse(&format!("{}@x.io", "a".repeat(65))).is_err());
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert!(Password::parse("123456789").is_err());
        assert!(Password::parse("1234567890").is_ok());
        assert!(Password::parse("éééééééééé").is_ok(), "10 chars, 20 bytes");
        assert!(Password::parse(&"🔑".repeat(128)).is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert_eq!(
            format!("{:?}", Password("secret-secret".into())),
            "Password(***)"
        );
    }

    #[test]
    fn a_name_reads_as_its_plain_slug() {
        assert_eq!(Slug::plain("Acme Corp").expect("valid").0, "acme-corp");
        assert_eq!(
            Slug::plain("  Ünïcode & Co. ").expect("valid").0,
            "n-code-co"
        );
        assert_eq!(Slug::plain("!!!"), None);
        let derived = Slug::derive_from("Acme Corp").0;
        assert!(
            derived.starts_with("acme-corp-") && derived.len() == 16,
            "{derived}"
        );
        assert!(Slug::parse(&derived).is_ok());
        assert!(Slug::derive_from("!!!").0.starts_with("org-"));
    }

    #[test]
    fn slugs_are_url_safe_and_never_uuids() {
        assert_eq!(Slug::parse("acme-co").expect("ok").0, "acme-co");
        for bad in [
            "a",
            "Acme",
            "acme_co",
            "-acme",
            "acme-",
            "ac--me",
            "ac me",
            "0190a8f2-7c1e-7b3a-9d4e-1234567890ab",
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let d = Slug::derive_from("Ada's Team!");
        assert!(Slug::parse(&d.0).is_ok(), "{d:?}");
        assert!(d.0.starts_with("ada-s-team-"));
        assert!(Slug::parse(&Slug::derive_from("日本").0).is_ok());
    }

    #[test]
    fn invisible_names_and_bidi_controls_are_refused() {
        assert_eq!(
            parse_name("\u{200B}", 10),
            Err("must not be empty".to_owned())
        );
        assert_eq!(
            parse_name(" \u{FEFF}\u{2060} ", 10),
            Err("must not be empty".to_owned())
        );
        assert!(parse_name("a\u{202E}gnp.exe", 20).is_err());
        assert!(parse_name("x\u{2067}y", 20).is_err());
        // Invisible characters at the ends are trimmed, inside they stay.
        assert_eq!(
            parse_name("\u{200B}Ada\u{2060}Lovelace\u{FEFF} ", 20),
            Ok("Ada\u{2060}Lovelace".to_owned())
        );
        // Letters of any script, emoji with joiners, marks: all fine.
        assert_eq!(
            parse_name("شركة 👩\u{200D}💻", 20),
            Ok("شركة 👩\u{200D}💻".to_owned())
        );
        assert!(Email::parse("x@[127.0.0.1]").is_err());
        assert!(Email::parse("x@127.0.0.1]").is_err());
        assert!(Email::parse("a\u{202E}b@example.com").is_err());
        assert!(Email::parse("ada@bücher.example").is_ok());
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(parse_name("  Ada ", 100).expect("ok"), "Ada");
        assert!(parse_name("   ", 100).is_err());
        assert!(parse_name("a\u{0}b", 100).is_err());
        assert!(parse_name(&"x".repeat(101), 100).is_err());
    }
}
