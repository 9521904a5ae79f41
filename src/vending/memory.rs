//! What one container remembers between requests, and how much of it.
//!
//! Two tables and a clock: the token each recent caller was given (so a caller
//! coming back to the same container is answered without a cache call), the
//! freshest shareable token per scope (so a throttled or cache-less request
//! can be handed one), and until when the token service is left alone after
//! it throttled us. Bounded: at most [`MAX_REMEMBERED_CALLERS`] callers.
//! Vending decides what to remember; this module only keeps it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::token::outlives_margin;

/// How many callers' tokens one container remembers (about half a KiB each).
pub const MAX_REMEMBERED_CALLERS: usize = 4096;

/// A token body this container has vended. No `Debug`: it holds a token.
#[derive(Clone)]
pub(super) struct Remembered {
    pub(super) body: String,
    pub(super) exp: u64,
}

/// A token served to one caller, kept until its cache entry would expire.
struct ServedTo {
    token: Remembered,
    /// Epoch seconds: when the cache entry written for this token expires.
    until: u64,
}

#[derive(Default)]
struct Tables {
    /// By shared key (one per scope): the freshest shareable token minted or
    /// served here. Tokens of callers that may not share are never kept here.
    freshest: HashMap<String, Remembered>,
    /// No mint before this instant while there is a fresh token to share.
    mint_quiet_until: Option<Instant>,
    /// By cache key: what each recent caller was given.
    served: HashMap<String, ServedTo>,
}

/// One container's memory; every method takes the lock for one short step.
#[derive(Default)]
pub(super) struct Memory(Mutex<Tables>);

impl Memory {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `token` as the freshest under `shared_key` if it outlives the
    /// one remembered so far.
    pub(super) fn keep_if_freshest(&self, shared_key: &str, token: &Remembered) {
        let mut tables = self.tables();
        if tables
            .freshest
            .get(shared_key)
            .is_none_or(|t| t.exp < token.exp)
        {
            tables
                .freshest
                .insert(shared_key.to_string(), token.clone());
        }
    }

    /// Remembers that the caller `key` was given `token`, until `until`
    /// (epoch seconds). When the table is full of live entries it starts
    /// over rather than track ages.
    pub(super) fn served(&self, key: &str, token: Remembered, until: u64, now: u64) {
        let mut tables = self.tables();
        if tables.served.len() >= MAX_REMEMBERED_CALLERS && !tables.served.contains_key(key) {
            tables.served.retain(|_, s| s.until > now);
            if tables.served.len() >= MAX_REMEMBERED_CALLERS {
                tables.served.clear();
            }
        }
        tables
            .served
            .insert(key.to_string(), ServedTo { token, until });
    }

    /// The token this container last gave the caller `key`, while its cache
    /// entry would still be live and it outlives the refresh margin.
    pub(super) fn served_to(&self, key: &str, now: u64) -> Option<String> {
        let tables = self.tables();
        let served = tables.served.get(key)?;
        let live = served.until > now && outlives_margin(served.token.exp, now);
        live.then(|| served.token.body.clone())
    }

    /// The freshest token under `shared_key`, if it outlives the refresh margin.
    pub(super) fn freshest(&self, shared_key: &str, now: u64) -> Option<Remembered> {
        self.tables()
            .freshest
            .get(shared_key)
            .cloned()
            .filter(|t| outlives_margin(t.exp, now))
    }

    /// Leaves the token service alone for `quiet` from now.
    pub(super) fn quiet_minting_for(&self, quiet: Duration) {
        self.tables().mint_quiet_until = Some(Instant::now() + quiet);
    }

    pub(super) fn minting_quiet(&self) -> bool {
        self.tables()
            .mint_quiet_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// How many callers are remembered (for the bound's test).
    #[cfg(test)]
    pub(super) fn callers(&self) -> usize {
        self.tables().served.len()
    }
}
