//! Passwords recently verified, so that an HTTP client sending the same
//! basic credentials with every request pays for one PBKDF2 run, not one per
//! request.
//!
//! An entry is an HMAC of the user's name and password under a key made at
//! start and held only in memory (never the password), with the digest of
//! the user's credentials it was verified against
//! ([`super::Credentials::fingerprint`]): once the credentials change, the
//! entry no longer answers. At most `entries_max` are kept; the oldest goes
//! first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use ring::hmac;

type Tag = [u8; 32];

/// The cache. Its `Debug` shows only its size.
pub struct VerifiedPasswords {
    key: hmac::Key,
    entries_max: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_tag: HashMap<Tag, [u8; 32]>,
    order: VecDeque<Tag>,
}

impl std::fmt::Debug for VerifiedPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedPasswords")
            .field("entries", &self.len())
            .field("entries_max", &self.entries_max)
            .finish_non_exhaustive()
    }
}

impl VerifiedPasswords {
    /// An empty cache keyed with `secret` (random, from the caller), holding
    /// at most `entries_max` entries (0: none).
    pub fn new(secret: [u8; 32], entries_max: usize) -> VerifiedPasswords {
        VerifiedPasswords {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            entries_max,
            inner: Mutex::new(Entries::default()),
        }
    }

    fn tag(&self, user: &str, password: &[u8]) -> Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(user.len() as u64).to_be_bytes());
        ctx.update(user.as_bytes());
        ctx.update(password);
        let mut tag = [0u8; 32];
        tag.copy_from_slice(ctx.sign().as_ref());
        tag
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `password` was verified for `user` while the user's
    /// credentials had the digest `fingerprint` (theirs now).
    pub fn contains(&self, user: &str, password: &[u8], fingerprint: Option<[u8; 32]>) -> bool {
        let Some(fingerprint) = fingerprint else {
            return false;
        };
        let tag = self.tag(user, password);
        self.entries().by_tag.get(&tag) == Some(&fingerprint)
    }

    /// Remembers that `password` verified for `user` against credentials of
    /// digest `fingerprint`. Returns how many entries were dropped to make
    /// room (0 or 1).
    pub fn insert(&self, user: &str, password: &[u8], fingerprint: [u8; 32]) -> usize {
        if self.entries_max == 0 {
            return 0;
        }
        let tag = self.tag(user, password);
        let mut entries = self.entries();
        if entries.by_tag.insert(tag, fingerprint).is_some() {
            return 0;
        }
        entries.order.push_back(tag);
        let mut evicted = 0;
        while entries.order.len() > self.entries_max {
            if let Some(oldest) = entries.order.pop_front() {
                entries.by_tag.remove(&oldest);
                evicted += 1;
            }
        }
        evicted
    }

    pub fn len(&self) -> usize {
        self.entries().by_tag.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_password_while_the_credentials_stay() {
        let cache = VerifiedPasswords::new([3; 32], 2);
        assert!(!cache.contains("alice", b"pw", Some([1; 32])));
        assert_eq!(cache.insert("alice", b"pw", [1; 32]), 0);
        assert!(cache.contains("alice", b"pw", Some([1; 32])));
        assert!(!cache.contains("alice", b"other", Some([1; 32])));
        assert!(!cache.contains("bob", b"pw", Some([1; 32])));
        // A new password, or a deleted user.
        assert!(!cache.contains("alice", b"pw", Some([2; 32])));
        assert!(!cache.contains("alice", b"pw", None));
    }

    #[test]
    fn the_oldest_goes_first_past_its_bound() {
        let cache = VerifiedPasswords::new([3; 32], 2);
        cache.insert("a", b"1", [1; 32]);
        cache.insert("b", b"1", [1; 32]);
        assert_eq!(cache.insert("c", b"1", [1; 32]), 1);
        assert_eq!(cache.len(), 2);
        assert!(!cache.contains("a", b"1", Some([1; 32])));
        assert!(cache.contains("c", b"1", Some([1; 32])));
        let none = VerifiedPasswords::new([3; 32], 0);
        none.insert("a", b"1", [1; 32]);
        assert!(none.is_empty());
    }

    #[test]
    fn the_user_and_password_are_not_run_together() {
        let cache = VerifiedPasswords::new([3; 32], 4);
        cache.insert("ab", b"c", [1; 32]);
        assert!(!cache.contains("a", b"bc", Some([1; 32])));
    }
}
