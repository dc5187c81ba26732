//! Order keys that never run out: fractional indexing over base-62 strings.
//!
//! A key is an *integer part* — a head character saying how many digits
//! follow (`a`–`z` for 1–26 digits going up, `Z`–`A` for 1–26 going down)
//! and those digits — then an optional *fraction* that never ends in `0`.
//! Keys compare as plain byte strings (`COLLATE "C"` on PostgreSQL, `BINARY`
//! on SQLite), so the database orders them without knowing the scheme.
//!
//! Appending or prepending increments the integer part (keys grow only
//! logarithmically with the number of items); inserting between two keys
//! takes the midpoint of their fractions, so any two distinct keys always
//! have room between them. This is the well-known scheme by David Greenspan
//! ("Implementing Fractional Indexing"); no maintained Rust crate offers it
//! over text keys, so it is written out here and property-tested.

/// The digits, in byte order.
const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE: usize = 62;
/// The first key handed out in an empty sequence.
const ZERO: &str = "a0";
/// Longest key accepted from storage (anything longer is corrupt).
pub const MAX_KEY_LEN: usize = 4096;

fn digit(c: u8) -> Option<usize> {
    DIGITS.iter().position(|&d| d == c)
}

/// Length of the integer part announced by head `h`.
fn int_len(h: u8) -> Option<usize> {
    match h {
        b'a'..=b'z' => Some((h - b'a') as usize + 2),
        b'A'..=b'Z' => Some((b'Z' - h) as usize + 2),
        _ => None,
    }
}

/// Why a key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A stored key is not a valid key.
    #[error("invalid order key {0:?}")]
    Invalid(String),
    /// `a` is not below `b`.
    #[error("order keys out of order: {0:?} >= {1:?}")]
    OutOfOrder(String, String),
    /// The integer space is exhausted (needs ~10^46 appends).
    #[error("order key space exhausted")]
    Exhausted,
}

fn split(key: &str) -> Result<(&str, &str), KeyError> {
    let b = key.as_bytes();
    let n = b
        .first()
        .and_then(|&h| int_len(h))
        .ok_or_else(|| KeyError::Invalid(key.into()))?;
    if b.len() < n || key.len() > MAX_KEY_LEN {
        return Err(KeyError::Invalid(key.into()));
    }
    Ok((&key[..n], &key[n..]))
}

/// Checks that `key` is well formed.
pub fn validate(key: &str) -> Result<(), KeyError> {
    let (int, frac) = split(key)?;
    let smallest = format!("A{}", "0".repeat(26));
    if key == smallest
        || frac.ends_with('0')
        || !int
            .bytes()
            .skip(1)
            .chain(frac.bytes())
            .all(|c| digit(c).is_some())
    {
        return Err(KeyError::Invalid(key.into()));
    }
    Ok(())
}

/// Midpoint of two fractions `a < b` (`b = None`: 1.0), neither ending in 0.
fn midpoint(a: &str, b: Option<&str>) -> String {
    if let Some(b) = b {
        // Longest common prefix, reading a missing digit of `a` as 0.
        let (ab, bb) = (a.as_bytes(), b.as_bytes());
        let mut n = 0;
        while n < bb.len() && ab.get(n).copied().unwrap_or(b'0') == bb[n] {
            n += 1;
        }
        if n > 0 {
            let rest_a = if n < a.len() { &a[n..] } else { "" };
            return format!("{}{}", &b[..n], midpoint(rest_a, Some(&b[n..])));
        }
    }
    let da = a.bytes().next().and_then(digit).unwrap_or(0);
    let db = b
        .and_then(|b| b.bytes().next())
        .and_then(digit)
        .unwrap_or(BASE);
    if db - da > 1 {
        let mid = (da + db).div_ceil(2);
        return (DIGITS[mid] as char).to_string();
    }
    // Consecutive digits.
    match b {
        Some(b) if b.len() > 1 => b[..1].to_owned(),
        _ => {
            let rest = if a.len() > 1 { &a[1..] } else { "" };
            format!("{}{}", DIGITS[da] as char, midpoint(rest, None))
        }
    }
}

fn increment_int(int: &str) -> Result<Option<String>, KeyError> {
    let head = int.as_bytes()[0];
    let mut digits: Vec<u8> = int.as_bytes()[1..].to_vec();
    let mut carry = true;
    for d in digits.iter_mut().rev() {
        let v = digit(*d).ok_or_else(|| KeyError::Invalid(int.into()))? + 1;
        if v == BASE {
            *d = b'0';
        } else {
            *d = DIGITS[v];
            carry = false;
            break;
        }
    }
    if !carry {
        let mut s = vec![head];
        s.extend(digits);
        return Ok(Some(String::from_utf8_lossy(&s).into_owned()));
    }
    match head {
        b'Z' => Ok(Some("a0".into())),
        b'z' => Ok(None),
        _ => {
            let h = head + 1;
            let mut s = vec![h];
            if h > b'a' {
                digits.push(b'0');
            } else {
                digits.pop();
            }
            s.extend(digits);
            Ok(Some(String::from_utf8_lossy(&s).into_owned()))
        }
    }
}

fn decrement_int(int: &str) -> Result<Option<String>, KeyError> {
    let head = int.as_bytes()[0];
    let mut digits: Vec<u8> = int.as_bytes()[1..].to_vec();
    let mut borrow = true;
    for d in digits.iter_mut().rev() {
        let v = digit(*d).ok_or_else(|| KeyError::Invalid(int.into()))?;
        if v == 0 {
            *d = DIGITS[BASE - 1];
        } else {
            *d = DIGITS[v - 1];
            borrow = false;
            break;
        }
    }
    if !borrow {
        let mut s = vec![head];
        s.extend(digits);
        return Ok(Some(String::from_utf8_lossy(&s).into_owned()));
    }
    match head {
        b'a' => Ok(Some(format!("Z{}", DIGITS[BASE - 1] as char))),
        b'A' => Ok(None),
        _ => {
            let h = head - 1;
            let mut s = vec![h];
            if h < b'Z' {
                digits.push(DIGITS[BASE - 1]);
            } else {
                digits.pop();
            }
            s.extend(digits);
            Ok(Some(String::from_utf8_lossy(&s).into_owned()))
        }
    }
}

/// Digits of the tie-break [`key_apart`] ends a key with.
pub const TIEBREAK_DIGITS: usize = 5;

/// A key strictly between `a` and `b`, as [`key_between`], made by a
/// writer that does not lock the sequence: [`key_between`]'s key followed
/// by a tie-break of [`TIEBREAK_DIGITS`] digits drawn from `salt` (the
/// last one never `0`). Two writers that read the same neighbours at once
/// get keys that are both between them and, unless their salts agree on
/// every digit (about 1 in 9·10⁸), distinct. Where the tie-break would
/// reach `b` (`b` begins with the key) the key is given without one. Task
/// creates and moves use it, the salt from random bits (BENCHMARKS.md,
/// "Creates and moves without the list lock"); the unique key of a list's
/// positions refuses the rare collision and the route runs the write
/// again.
pub fn key_apart(a: Option<&str>, b: Option<&str>, salt: u64) -> Result<String, KeyError> {
    let plain = key_between(a, b)?;
    let mut key = plain.clone();
    let mut rest = salt;
    for i in 0..TIEBREAK_DIGITS {
        let d = if i + 1 == TIEBREAK_DIGITS {
            1 + (rest % (BASE as u64 - 1)) as usize
        } else {
            (rest % BASE as u64) as usize
        };
        rest /= BASE as u64;
        key.push(DIGITS[d] as char);
    }
    match b {
        Some(b) if key.as_str() >= b => Ok(plain),
        _ => Ok(key),
    }
}

/// [`key_apart`] after `last` (`None`: the sequence is empty): the key of
/// an item appended to the end. The next append increments the integer
/// part again, so appended keys stay short.
pub fn key_after_last(last: Option<&str>, salt: u64) -> Result<String, KeyError> {
    key_apart(last, None, salt)
}

/// A key strictly between `a` and `b` (either may be open: `None`).
pub fn key_between(a: Option<&str>, b: Option<&str>) -> Result<String, KeyError> {
    if let Some(a) = a {
        validate(a)?;
    }
    if let Some(b) = b {
        validate(b)?;
    }
    match (a, b) {
        (Some(a), Some(b)) if a >= b => Err(KeyError::OutOfOrder(a.into(), b.into())),
        (None, None) => Ok(ZERO.into()),
        (None, Some(b)) => {
            let (int_b, frac_b) = split(b)?;
            if int_b == format!("A{}", "0".repeat(26)) {
                return Ok(format!("{int_b}{}", midpoint("", Some(frac_b))));
            }
            if int_b < b {
                return Ok(int_b.to_owned());
            }
            decrement_int(int_b)?.ok_or(KeyError::Exhausted)
        }
        (Some(a), None) => {
            let (int_a, frac_a) = split(a)?;
            match increment_int(int_a)? {
                Some(i) => Ok(i),
                None => Ok(format!("{int_a}{}", midpoint(frac_a, None))),
            }
        }
        (Some(a), Some(b)) => {
            let (int_a, frac_a) = split(a)?;
            let (int_b, frac_b) = split(b)?;
            if int_a == int_b {
                return Ok(format!("{int_a}{}", midpoint(frac_a, Some(frac_b))));
            }
            let i = increment_int(int_a)?.ok_or(KeyError::Exhausted)?;
            if i.as_str() < b {
                Ok(i)
            } else {
                Ok(format!("{int_a}{}", midpoint(frac_a, None)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_keys_and_appends() {
        assert_eq!(key_between(None, None).expect("k"), "a0");
        assert_eq!(key_between(Some("a0"), None).expect("k"), "a1");
        assert_eq!(key_between(Some("az"), None).expect("k"), "b00");
        assert_eq!(key_between(None, Some("a0")).expect("k"), "Zz");
        assert_eq!(key_between(Some("a0"), Some("a1")).expect("k"), "a0V");
        assert_eq!(key_between(Some("a0V"), Some("a1")).expect("k"), "a0l");
        assert!(key_between(Some("a1"), Some("a0")).is_err());
        assert!(key_between(Some("a1"), Some("a1")).is_err());
        assert!(
            key_between(Some("a0V0"), None).is_err(),
            "trailing zero is invalid"
        );
        assert!(key_between(Some("!"), None).is_err());
        assert!(key_between(Some(""), None).is_err());
    }

    #[test]
    fn ten_thousand_appends_stay_short_and_ordered() {
        let mut last: Option<String> = None;
        for _ in 0..10_000 {
            let k = key_between(last.as_deref(), None).expect("key");
            if let Some(l) = &last {
                assert!(l < &k);
            }
            last = Some(k);
        }
        assert!(last.expect("some").len() <= 4);
    }

    #[test]
    fn ten_thousand_inserts_at_the_same_spot_keep_a_total_order() {
        // Always insert right after the first item: the worst case.
        let first = key_between(None, None).expect("k");
        let last = key_between(Some(&first), None).expect("k");
        let mut keys = vec![first.clone(), last.clone()];
        let mut right = last;
        for _ in 0..10_000 {
            let k = key_between(Some(&first), Some(&right)).expect("key");
            assert!(first < k && k < right, "{first} < {k} < {right}");
            keys.push(k.clone());
            right = k;
        }
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len(), "all distinct");
        assert!(right.len() < 2_000, "key length {}", right.len());
    }

    #[test]
    fn appends_with_a_tiebreak_stay_short_ordered_and_apart() {
        let mut last: Option<String> = None;
        for salt in 0..10_000u64 {
            let salt = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let k = key_after_last(last.as_deref(), salt).expect("key");
            assert!(validate(&k).is_ok(), "{k}");
            // Another writer that read the same `last` gets another key
            // after it; a later append goes after both.
            let other = key_after_last(last.as_deref(), salt ^ 1).expect("key");
            assert_ne!(k, other);
            if let Some(l) = &last {
                assert!(l < &k && l < &other, "{l} < {k}, {other}");
            }
            let next = key_between(Some(k.as_str().max(other.as_str())), None).expect("key");
            assert!(k < next && other < next);
            last = Some(k);
        }
        assert!(last.expect("some").len() <= 4 + TIEBREAK_DIGITS);
        assert_eq!(key_after_last(None, 0).expect("key"), "a000001");
    }

    #[test]
    fn a_tiebreak_that_would_reach_the_upper_key_is_left_out() {
        // "a0V" is between "a0U" and "a0V5"; "a0V" + a tie-break from "5"
        // up would not be below "a0V5".
        assert_eq!(key_between(Some("a0U"), Some("a0V5")).expect("key"), "a0V");
        let high = 61 * 62u64.pow(4) + 5; // first digit "z", last "6"
        assert_eq!(
            key_apart(Some("a0U"), Some("a0V5"), high).expect("key"),
            "a0V"
        );
        let low = 1; // "10000" + last digit: below "5"
        let k = key_apart(Some("a0U"), Some("a0V5"), low).expect("key");
        assert!(
            "a0U" < k.as_str() && k.as_str() < "a0V5" && k.len() == 3 + TIEBREAK_DIGITS,
            "{k}"
        );
        // Same-spot inserts with tie-breaks keep a total order.
        let mut right = "a1".to_owned();
        for salt in 0..2_000u64 {
            let k = key_apart(
                Some("a0"),
                Some(&right),
                salt.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            )
            .expect("key");
            assert!("a0" < k.as_str() && k < right, "a0 < {k} < {right}");
            assert!(validate(&k).is_ok());
            right = k;
        }
        assert!(right.len() < 600, "key length {}", right.len());
    }

    proptest! {
        // A fixed seed: CI is deterministic (explore by changing it locally).
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(20_261_205),
            ..ProptestConfig::default()
        })]
        #[test]
        fn random_inserts_keep_a_strict_total_order(ops in proptest::collection::vec(any::<prop::sample::Index>(), 1..300)) {
            let mut keys: Vec<String> = Vec::new();
            for op in ops {
                let i = op.index(keys.len() + 1); // insert before position i
                let a = if i == 0 { None } else { Some(keys[i - 1].as_str()) };
                let b = keys.get(i).map(String::as_str);
                let k = key_between(a, b).expect("key");
                prop_assert!(validate(&k).is_ok());
                if let Some(a) = a { prop_assert!(a < k.as_str()); }
                if let Some(b) = b { prop_assert!(k.as_str() < b); }
                keys.insert(i, k);
            }
            for w in keys.windows(2) {
                prop_assert!(w[0] < w[1]);
            }
        }

        #[test]
        fn appends_and_inserts_between_them_keep_a_strict_total_order(
            ops in proptest::collection::vec((any::<prop::sample::Index>(), any::<u64>(), any::<bool>()), 1..300)
        ) {
            // Appends as task creates make them, moves in between.
            let mut keys: Vec<String> = Vec::new();
            for (op, salt, append) in ops {
                let (i, k) = if append || keys.is_empty() {
                    (keys.len(), key_after_last(keys.last().map(String::as_str), salt).expect("key"))
                } else {
                    // Moves as the API makes them: between two neighbours,
                    // with a tie-break.
                    let i = op.index(keys.len() + 1);
                    let a = if i == 0 { None } else { Some(keys[i - 1].as_str()) };
                    (i, key_apart(a, keys.get(i).map(String::as_str), salt).expect("key"))
                };
                prop_assert!(validate(&k).is_ok());
                keys.insert(i, k);
            }
            for w in keys.windows(2) {
                prop_assert!(w[0] < w[1]);
            }
        }
    }
}
