//! The decisions: reuse a caller's token, mint a new one, or share a fresh
//! one when Momento can't mint; and when to abandon a connection.
//!
//! This module is the narrative docs/design.md tells, and only that. Who the
//! caller is and what its token may do arrive as a [`Caller`]; the rooms
//! around it keep the bookkeeping:
//! - [`ports`]: the [`TokenCache`] and [`TokenMinter`] traits vending talks
//!   through (Momento in production, in-memory doubles in tests);
//! - [`calls`]: the time budget of one request's outbound calls, their
//!   timings, and which timeouts are evidence of a dead connection;
//! - [`memory`]: what one container remembers between requests;
//! - [`crate::token`]: the token types and the freshness rule.

mod calls;
mod memory;
mod ports;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

pub use calls::{Bounds, CallTimings, MIN_CONCLUSIVE_WAIT};
pub use memory::MAX_REMEMBERED_CALLERS;
pub use ports::{TokenCache, TokenMinter};

use crate::caller::{Caller, SHARED_KEY};
use crate::error::{CacheError, InitError, MintError};
use crate::outcome::Outcome;
use crate::token::{fresh_expiry, now_epoch, usable_life, VendedToken, REDACTED};
use calls::Calls;
use memory::{Memory, Remembered};

/// After a mint is refused for rate, the token service is left alone this
/// long while there is a fresh token to share: Momento's control-plane bucket
/// refills at a handful of tokens a second, so one second is about one token,
/// and it matches the `Retry-After` that a 503 sends.
pub const MINT_BACKOFF: Duration = Duration::from_secs(1);

/// Builds a vendor: reads the key and constructs the clients (Momento's in
/// production, doubles in tests). The handler owns when; this says what.
pub trait Initializer: Send + Sync {
    type Cache: TokenCache;
    type Minter: TokenMinter;
    fn init(
        &self,
    ) -> impl Future<Output = Result<Vendor<Self::Cache, Self::Minter>, InitError>> + Send;
}

/// A successful vend.
#[derive(Clone, PartialEq, Eq)]
pub struct Vended {
    /// The JSON body for the browser (`{"token": ..., "exp": ...}`).
    pub body: String,
    pub outcome: Outcome,
    /// Why the request was degraded or shared, for the log line.
    pub cause: Option<String>,
    /// For the log line: where the time went.
    pub timings: CallTimings,
}

impl fmt::Debug for Vended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vended")
            .field("body", &REDACTED)
            .field("outcome", &self.outcome)
            .field("cause", &self.cause)
            .field("timings", &self.timings)
            .finish()
    }
}

/// A vend that produced no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotVended {
    pub error: MintError,
    /// For the log line: where the time went.
    pub timings: CallTimings,
}

/// What INIT's warm-up found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarmUp {
    /// The cache answered: its connection is open.
    Reached,
    /// The cache could not be reached in time, or failed (the text says how).
    Unreached(String),
    /// Momento refused the key: these clients are of no use.
    KeyRejected,
}

/// The vending machine: a cache, a minter and the lifetimes that bind them.
pub struct Vendor<C, M> {
    cache: C,
    minter: M,
    token_ttl: Duration,
    cache_ttl: Duration,
    bounds: Bounds,
    memory: Memory,
}

impl<C: TokenCache, M: TokenMinter> Vendor<C, M> {
    pub fn new(cache: C, minter: M, token_ttl: Duration, cache_ttl: Duration) -> Self {
        Vendor {
            cache,
            minter,
            token_ttl,
            cache_ttl,
            bounds: Bounds::default(),
            memory: Memory::default(),
        }
    }

    /// Opens the cache's connection before the first request and, when the
    /// callers of this configuration share (`shared_key`), remembers a fresh
    /// shared token if the cache holds one. Meant for INIT, which runs at full
    /// CPU: a TLS handshake made there costs a fraction of what it costs at
    /// 128 MB's CPU share in a request, and a container born in a crowd starts
    /// with a token to share. Bounded by [`Bounds::warm_up_budget`]; reports a
    /// refused key so that no request is answered with these clients.
    pub async fn warm_up(&self, shared_key: Option<&str>) -> WarmUp {
        let mut call = Calls::new(self.bounds.warm_up_budget);
        let got = call
            .get(&self.cache, shared_key.unwrap_or(SHARED_KEY))
            .await;
        self.abandon_timed_out_connections(&mut call);
        match got {
            Ok(found) => {
                if let (Some(body), Some(key)) = (found, shared_key) {
                    if let Some(exp) = fresh_expiry(&body, now_epoch()) {
                        self.memory.keep_if_freshest(key, &Remembered { body, exp });
                    }
                }
                WarmUp::Reached
            }
            Err(CacheError::KeyRejected) => WarmUp::KeyRejected,
            Err(e) => WarmUp::Unreached(e.to_string()),
        }
    }

    /// Vends a token for `caller`.
    pub async fn vend(&self, caller: &Caller) -> Result<Vended, NotVended> {
        self.vend_at(caller, now_epoch()).await
    }

    /// Vends a token for `caller`, judging expiry against `now` (epoch seconds).
    ///
    /// In order: the caller's own fresh token (this container's memory, then
    /// the cache); otherwise a new mint, stored for the caller (and, for a
    /// caller that may share, under its scope's shared key). A shareable
    /// caller is handed a fresh token vended to another caller of the same
    /// scope instead of minting when the cache cannot be read (a broken cache
    /// must not turn every request into a mint), while the token service is
    /// backing off, and when a mint fails for any reason but a refused key or
    /// a missing cache (a mint the key is not permitted included: the caller
    /// is served, the operator alerted). Only when no fresh token exists is
    /// the failure the caller's answer.
    ///
    /// A call that times out after a real wait may have gone down a dead
    /// connection (a flow a middlebox forgot while the container was frozen
    /// carries nothing and never closes): both clients are told to open new
    /// connections before the next call, so one dead connection costs one
    /// timeout, not minutes.
    pub async fn vend_at(&self, caller: &Caller, now: u64) -> Result<Vended, NotVended> {
        let mut call = Calls::new(self.bounds.cache_budget);
        let result = self.vend_with(caller, now, &mut call).await;
        self.abandon_timed_out_connections(&mut call);
        result.map_err(|error| NotVended {
            error,
            timings: call.timings,
        })
    }

    async fn vend_with(
        &self,
        caller: &Caller,
        now: u64,
        call: &mut Calls,
    ) -> Result<Vended, MintError> {
        let key = caller.cache_key.as_str();
        if let Some(body) = self.memory.served_to(key, now) {
            return Ok(vended(call, body, Outcome::Hit, None));
        }

        let mut cache_problem = match call.get(&self.cache, key).await {
            Ok(Some(cached)) => match fresh_expiry(&cached, now) {
                Some(exp) => {
                    let token = Remembered { body: cached, exp };
                    self.remember_for(caller, &token, now);
                    return Ok(vended(call, token.body, Outcome::Hit, None));
                }
                // A corrupt or nearly expired entry is a miss; the set below overwrites it.
                None => None,
            },
            Ok(None) => None,
            // A refused key is not cache trouble: sharing would hide it until
            // every remembered token expired. Report it so the clients are rebuilt.
            Err(CacheError::KeyRejected) => return Err(MintError::KeyRejected),
            // Nor is a missing cache: minting on every request would burn the
            // mint budget on tokens for a cache that isn't there.
            Err(CacheError::CacheNotFound(cache)) => return Err(MintError::CacheNotFound(cache)),
            Err(e) => {
                let problem = format!("get: {e}");
                if let Some(shared) = self.fresh_in_memory(caller, now) {
                    // The cache is in trouble: don't add a set to its load.
                    self.remember_for(caller, &shared, now);
                    let cause = format!("{problem}; shared a token from memory");
                    return Ok(vended(call, shared.body, Outcome::Shared, Some(cause)));
                }
                Some(problem)
            }
        };

        if self.memory.minting_quiet() {
            if let Some(shared) = self.fresh_in_memory(caller, now) {
                let cause =
                    "token service backing off after a throttled mint; shared a token from memory";
                return Ok(self
                    .share(call, caller, shared, now, cause, Outcome::Shared)
                    .await);
            }
        }

        // The mint must not follow a timed-out get down the same dead path.
        self.abandon_timed_out_connections(call);
        let token = match self.mint(caller, call).await {
            Ok(token) => token,
            Err(e @ (MintError::KeyRejected | MintError::CacheNotFound(_))) => return Err(e),
            Err(e) => {
                if e == MintError::RateLimited {
                    self.memory.quiet_minting_for(MINT_BACKOFF);
                }
                // A key that may not mint is the operator's to fix: the caller
                // is still served, but the request counts with the misconfigured.
                let outcome = match e {
                    MintError::PermissionDenied(_) => Outcome::Misconfigured,
                    _ => Outcome::Shared,
                };
                return match self.fresh_anywhere(call, caller, now).await {
                    Some((shared, from)) => {
                        let cause = format!("mint: {e}; shared a token from {from}");
                        Ok(self.share(call, caller, shared, now, &cause, outcome).await)
                    }
                    None => Err(e),
                };
            }
        };
        let body = serde_json::to_string(&token)
            .map_err(|_| MintError::Failed("could not encode the vended token".into()))?;
        let minted = Remembered {
            body,
            exp: token.exp,
        };
        self.remember_for(caller, &minted, now);

        let ttl = self.ttl_for(minted.exp, now);
        let body = minted.body;
        let (own, shared) = match caller.shared_key.as_deref() {
            Some(shared_key) => {
                call.set_both(&self.cache, (key, shared_key), &body, ttl)
                    .await
            }
            None => (call.set(&self.cache, key, &body, ttl).await, Ok(())),
        };
        let problems = [
            own.err().map(|e| e.to_string()),
            shared.err().map(|e| format!("{e} (shared key)")),
        ];
        for problem in problems.into_iter().flatten() {
            let problem = format!("set: {problem}");
            cache_problem = Some(match cache_problem {
                Some(earlier) => format!("{earlier}; {problem}"),
                None => problem,
            });
        }
        let outcome = if cache_problem.is_some() {
            Outcome::Degraded
        } else {
            Outcome::Miss
        };
        Ok(vended(call, body, outcome, cache_problem))
    }

    /// One mint within the mint timeout, timed for the log line.
    async fn mint(&self, caller: &Caller, call: &mut Calls) -> Result<VendedToken, MintError> {
        let started = Instant::now();
        let minted = tokio::time::timeout(
            self.bounds.mint_timeout,
            self.minter.mint(caller, self.token_ttl),
        )
        .await;
        call.timings.mint = Some(started.elapsed());
        let result = minted.unwrap_or(Err(MintError::Timeout));
        if result == Err(MintError::Timeout) {
            call.timed_out(started);
        }
        result
    }

    /// After a conclusive timeout, moves both clients to new connections: the
    /// cache's and the token service's connections idled through the same
    /// freeze, so a dead one rarely comes alone, and a fresh connection costs
    /// only a handshake.
    fn abandon_timed_out_connections(&self, call: &mut Calls) {
        if let Some(since) = call.take_timed_out_since() {
            self.cache.reconnect(since);
            self.minter.reconnect(since);
        }
    }

    /// Hands `shared` to the caller and stores it under the caller's key, so
    /// that the caller's next visit is a plain hit.
    async fn share(
        &self,
        call: &mut Calls,
        caller: &Caller,
        shared: Remembered,
        now: u64,
        cause: &str,
        outcome: Outcome,
    ) -> Vended {
        self.remember_for(caller, &shared, now);
        let ttl = self.ttl_for(shared.exp, now);
        let cause = match call
            .set(&self.cache, &caller.cache_key, &shared.body, ttl)
            .await
        {
            Ok(()) => cause.to_string(),
            Err(e) => format!("{cause}; set: {e}"),
        };
        vended(call, shared.body, outcome, Some(cause))
    }

    /// A fresh token of the caller's scope from this container's memory, or
    /// else from the cache's shared key; with where it came from, for the
    /// log. Nothing for a caller that may not share.
    async fn fresh_anywhere(
        &self,
        call: &mut Calls,
        caller: &Caller,
        now: u64,
    ) -> Option<(Remembered, &'static str)> {
        let shared_key = caller.shared_key.as_deref()?;
        if let Some(t) = self.fresh_in_memory(caller, now) {
            return Some((t, "memory"));
        }
        let body = call.get(&self.cache, shared_key).await.ok().flatten()?;
        let exp = fresh_expiry(&body, now)?;
        let token = Remembered { body, exp };
        self.memory.keep_if_freshest(shared_key, &token);
        Some((token, "the cache's shared key"))
    }

    /// The freshest token of the caller's scope in memory, if it may share.
    fn fresh_in_memory(&self, caller: &Caller, now: u64) -> Option<Remembered> {
        self.memory.freshest(caller.shared_key.as_deref()?, now)
    }

    /// Remembers that `caller` was given `token` until its cache entry would
    /// expire (and, for a caller that may share, keeps it as its scope's
    /// freshest token if it is).
    fn remember_for(&self, caller: &Caller, token: &Remembered, now: u64) {
        if let Some(shared_key) = caller.shared_key.as_deref() {
            self.memory.keep_if_freshest(shared_key, token);
        }
        let until = now.saturating_add(self.ttl_for(token.exp, now).as_secs());
        self.memory
            .served(&caller.cache_key, token.clone(), until, now);
    }

    /// How long a token expiring at `exp` may sit in the cache: the cache TTL,
    /// or less when the token would otherwise outlive its refresh margin there.
    fn ttl_for(&self, exp: u64, now: u64) -> Duration {
        self.cache_ttl.min(usable_life(exp, now))
    }
}

fn vended(call: &Calls, body: String, outcome: Outcome, cause: Option<String>) -> Vended {
    Vended {
        body,
        outcome,
        cause,
        timings: call.timings,
    }
}
