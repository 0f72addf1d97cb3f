//! Names on the NATS side: our topic and group names as subject tokens and
//! JetStream consumer names.
//!
//! A topic is any UTF-8 string of 1..=255 bytes; a NATS subject token may
//! not hold `.`, `*`, `>` or white space, and a JetStream name may not hold
//! those nor `/` or `\`. [`token`] keeps ASCII letters, digits and `-` and
//! writes every other byte as `_` and two upper-case hex digits, so the
//! encoding is injective and its output is a valid token and name part. An
//! `_` in the output is always followed by two hex digits, never by `_`:
//! `__` separates parts of a name unambiguously.
//!
//! A consumer name is a directory name on the NATS servers, so a name
//! longer than [`MAX_NAME`] bytes keeps a readable prefix and ends in a
//! 128-bit hash of the whole name (two FNV-1a 64 sums with different
//! offsets). Names are not secret and not chosen by an adversary that
//! could search for a collision in 2^64 work.

use std::fmt::Write;

/// Longest consumer name written before hashing.
pub(crate) const MAX_NAME: usize = 160;

/// Encodes `s` as one subject token (see the module docs).
pub(crate) fn token(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            let _ = write!(out, "_{b:02X}");
        }
    }
    out
}

/// The subject messages of `topic` are published on.
pub(crate) fn topic_subject(prefix: &str, topic: &str) -> String {
    format!("{prefix}.t.{}", token(topic))
}

/// The subject a dead letter of `group` on `topic` is copied to.
pub(crate) fn dead_letter_subject(prefix: &str, group: &str, topic: &str) -> String {
    format!("{prefix}.dlq.{}.{}", token(group), token(topic))
}

/// The durable consumer of consumer group `group` on `topic`.
pub(crate) fn group_consumer(group: &str, topic: &str) -> String {
    bounded(format!("G__{}__{}", token(group), token(topic)))
}

/// The holding consumer that keeps `topic`'s messages while it has no
/// group (see the backend's module docs).
pub(crate) fn holding_consumer(topic: &str) -> String {
    bounded(format!("H__{}", token(topic)))
}

fn bounded(name: String) -> String {
    if name.len() <= MAX_NAME {
        return name;
    }
    let a = fnv1a(name.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let b = fnv1a(name.as_bytes(), 0x6c62_272e_07bb_0142);
    // Only ASCII in `name`, so any cut is a char boundary.
    format!("{}__{a:016x}{b:016x}", &name[..MAX_NAME - 34])
}

fn fnv1a(bytes: &[u8], offset: u64) -> u64 {
    bytes.iter().fold(offset, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_valid_and_injective() {
        assert_eq!(token("orders"), "orders");
        assert_eq!(token("a.b"), "a_2Eb");
        assert_eq!(token("a_2Eb"), "a_5F2Eb");
        assert_eq!(token("x y*>/é"), "x_20y_2A_3E_2F_C3_A9");
        for t in ["a.b", "a_2Eb", "a b", "*", ">", "é"] {
            let k = token(t);
            assert!(k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert!(!k.contains("__"), "{k}");
        }
    }

    #[test]
    fn group_and_topic_split_unambiguously() {
        assert_ne!(group_consumer("a__b", "c"), group_consumer("a", "b__c"));
        assert_ne!(group_consumer("a_", "b"), group_consumer("a", "_b"));
    }

    #[test]
    fn long_names_are_hashed_and_bounded() {
        let long = "é".repeat(127);
        let n = group_consumer(&long, &long);
        assert_eq!(n.len(), MAX_NAME);
        assert_ne!(n, group_consumer(&long, "other"));
        assert_eq!(n, group_consumer(&long, &long));
        assert!(holding_consumer(&long).len() <= MAX_NAME);
    }
}
