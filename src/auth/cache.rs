//! The verified-token cache: a token's exact bytes → the identity it proved, until its `exp`.
//!
//! A hit skips signature and claim checks. An entry is found by a keyed hash of the token's
//! length and tail (SipHash with a per-cache random key: cheap, and no caller can aim
//! collisions at a shard) and accepted only if the stored token equals the presented one byte for byte — the same
//! exactness as a cryptographic digest, without hashing every request with SHA-256. Entries
//! never outlive the token's `exp` (the leeway is not applied to cached tokens), the size is
//! bounded, and the whole cache is cleared when a fetched key set changes, so a key removed
//! from the JWKS stops admitting cached tokens. The cache is sharded by the hash so
//! concurrent requests rarely share a lock.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::identity::Identity;

const SHARDS: usize = 16;

/// How many of a token's last bytes its cache key hashes (see [`TokenCache::key`]).
pub const KEYED_TAIL: usize = 32;

/// Where a token is looked up: its keyed hash (see [`TokenCache::key`]).
pub type TokenKey = u64;

#[derive(Clone, Debug)]
struct Entry {
    /// The token itself: a hit needs the same bytes, not only the same hash.
    token: Box<str>,
    identity: Identity,
    exp: u64,
}

/// The keys are already keyed hashes: used as the map's hash as they are.
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
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<TokenKey, Entry, BuildHasherDefault<PrefixHasher>>;

/// A bounded map of verified tokens. See the [module docs](self).
#[derive(Debug)]
pub struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl TokenCache {
    /// A cache holding about `max_entries` tokens (at least one per shard).
    pub fn new(max_entries: usize) -> Self {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: max_entries.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// Where `token` is looked up and stored: a keyed hash of its length and its last
    /// [`KEYED_TAIL`] bytes. A JWT ends in its signature, so the tail tells tokens apart as well
    /// as the whole would, at a fraction of the cost; the full comparison in [`get`] decides.
    ///
    /// [`get`]: TokenCache::get
    pub fn key(&self, token: &str) -> TokenKey {
        let bytes = token.as_bytes();
        let tail = &bytes[bytes.len().saturating_sub(KEYED_TAIL)..];
        self.hasher.hash_one((bytes.len(), tail))
    }

    fn shard(&self, key: TokenKey) -> MutexGuard<'_, Shard> {
        // The low bits pick the map's bucket; the high ones pick the shard.
        self.shards[(key >> 60) as usize % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The identity of `token` (whose [`key`](TokenCache::key) is `key`), if exactly this
    /// token was verified before and its `exp` is still ahead of `now`.
    pub fn get(&self, key: TokenKey, token: &str, now: u64) -> Option<Identity> {
        let mut shard = self.shard(key);
        match shard.get(&key) {
            Some(entry) if *entry.token != *token => None,
            Some(entry) if entry.exp > now => Some(entry.identity.clone()),
            Some(_) => {
                shard.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers a verified `token` (whose key is `key`) until `exp`. A full shard first drops
    /// its expired entries, then an arbitrary one. Another token under the same key (a 64-bit
    /// collision) is replaced.
    pub fn insert(&self, key: TokenKey, token: &str, identity: Identity, exp: u64, now: u64) {
        if exp <= now {
            return;
        }
        let mut shard = self.shard(key);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, e| e.exp > now);
            if shard.len() >= self.per_shard
                && let Some(victim) = shard.keys().next().copied()
            {
                shard.remove(&victim);
            }
        }
        let token = token.into();
        shard.insert(
            key,
            Entry {
                token,
                identity,
                exp,
            },
        );
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

    fn get(cache: &TokenCache, token: &str, now: u64) -> Option<Identity> {
        cache.get(cache.key(token), token, now)
    }

    fn insert(cache: &TokenCache, token: &str, identity: Identity, exp: u64, now: u64) {
        cache.insert(cache.key(token), token, identity, exp, now);
    }

    #[test]
    fn entries_expire_at_exp_and_size_is_bounded() {
        let cache = TokenCache::new(32);
        insert(&cache, "token-a", id("a"), 100, 50);
        assert_eq!(get(&cache, "token-a", 99).unwrap().subject.as_ref(), "a");
        assert!(get(&cache, "token-a", 100).is_none());
        assert!(cache.is_empty());
        insert(&cache, "token-a", id("a"), 100, 100);
        assert!(cache.is_empty(), "an expired token is not cached");
        for i in 0..1000 {
            insert(&cache, &format!("t{i}"), id("x"), 1000, 0);
        }
        assert!(cache.len() <= 32, "len {}", cache.len());
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn a_hit_needs_the_same_token_bytes() {
        let cache = TokenCache::new(32);
        assert_ne!(cache.key("a.b.c"), cache.key("a.b.d"));
        assert_eq!(cache.key("a.b.c"), cache.key("a.b.c"));
        insert(&cache, "a.b.c", id("a"), 100, 0);
        assert!(get(&cache, "a.b.c", 1).is_some());
        assert!(get(&cache, "a.b.d", 1).is_none());
        // The same key with other bytes (as a hash collision would look) is no hit.
        assert!(cache.get(cache.key("a.b.c"), "a.b.C", 1).is_none());
        assert!(cache.get(cache.key("a.b.c"), "a.b.c", 1).is_some());
    }
}
