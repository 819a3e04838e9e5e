//! The verified-token cache: SHA-256 of a token → the identity it proved, until its `exp`.
//!
//! A hit skips signature and claim checks. Entries never outlive the token's `exp` (the leeway
//! is not applied to cached tokens), the size is bounded, and the whole cache is cleared when
//! a fetched key set changes, so a key removed from the JWKS stops admitting cached tokens.
//! The cache is sharded by the hash so concurrent requests rarely share a lock.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::identity::Identity;

const SHARDS: usize = 16;

/// The cache key: the SHA-256 digest of the token.
pub type TokenHash = [u8; 32];

/// The SHA-256 of a token.
pub fn hash(token: &str) -> TokenHash {
    hash_bytes(token.as_bytes())
}

/// The SHA-256 of some bytes.
pub fn hash_bytes(bytes: &[u8]) -> TokenHash {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[derive(Clone, Debug)]
struct Entry {
    identity: Identity,
    exp: u64,
}

/// The keys are already uniform hashes: the first 8 bytes serve as the map's hash.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

type Shard = HashMap<TokenHash, Entry, BuildHasherDefault<PrefixHasher>>;

/// A bounded map of verified tokens. See the [module docs](self).
#[derive(Debug)]
pub struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl TokenCache {
    /// A cache holding about `max_entries` tokens (at least one per shard).
    pub fn new(max_entries: usize) -> Self {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: max_entries.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &TokenHash) -> MutexGuard<'_, Shard> {
        self.shards[usize::from(key[31]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The identity of a token verified before, if its `exp` is still ahead of `now`.
    pub fn get(&self, key: &TokenHash, now: u64) -> Option<Identity> {
        let mut shard = self.shard(key);
        match shard.get(key) {
            Some(entry) if entry.exp > now => Some(entry.identity.clone()),
            Some(_) => {
                shard.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers a verified token until `exp`. A full shard first drops its expired entries,
    /// then an arbitrary one.
    pub fn insert(&self, key: TokenHash, identity: Identity, exp: u64, now: u64) {
        if exp <= now {
            return;
        }
        let mut shard = self.shard(&key);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, e| e.exp > now);
            if shard.len() >= self.per_shard
                && let Some(victim) = shard.keys().next().copied()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(key, Entry { identity, exp });
    }

    /// Forgets every token.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// The number of tokens held (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// True when no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Identity {
        Identity {
            subject: s.into(),
            is_service: false,
        }
    }

    #[test]
    fn entries_expire_at_exp_and_size_is_bounded() {
        let cache = TokenCache::new(32);
        let k = hash("token-a");
        cache.insert(k, id("a"), 100, 50);
        assert_eq!(cache.get(&k, 99).unwrap().subject.as_ref(), "a");
        assert!(cache.get(&k, 100).is_none());
        assert!(cache.is_empty());
        cache.insert(k, id("a"), 100, 100);
        assert!(cache.is_empty(), "an expired token is not cached");
        for i in 0..1000 {
            cache.insert(hash(&format!("t{i}")), id("x"), 1000, 0);
        }
        assert!(cache.len() <= 32, "len {}", cache.len());
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn different_tokens_have_different_keys() {
        assert_ne!(hash("a.b.c"), hash("a.b.d"));
        assert_eq!(hash("a.b.c"), hash("a.b.c"));
    }
}
