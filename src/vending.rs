//! The vending logic: reuse a caller's token, mint a new one, or share a
//! fresh one when Momento can't mint.
//!
//! This module owns the decisions (what counts as a usable token, what one
//! container remembers, when to mint, when to share and back off, when a
//! connection is abandoned, what is stored and for how long, how long each
//! outbound call may take) and nothing else. Who the caller is and what its
//! token may do arrive as a [`Caller`]. It talks to the outside world through
//! two small traits, [`TokenCache`] and [`TokenMinter`], so it is unit-tested
//! with in-memory doubles and driven in production by the Momento adapters.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::caller::Caller;
pub use crate::caller::SHARED_KEY;
use crate::error::{CacheError, MintError};
use crate::outcome::Outcome;

/// A cached token this close to expiry is replaced rather than handed out, so a
/// browser never receives a token that dies before it can subscribe.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The response body vended to a browser, and the value stored in the cache.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendedToken {
    /// The Momento auth token string, as the SDK renders it.
    pub token: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
}

impl fmt::Debug for VendedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendedToken")
            .field("token", &"<redacted>")
            .field("exp", &self.exp)
            .finish()
    }
}

/// What a browser receives: the vended token plus its remaining lifetime in
/// seconds at the moment of the answer, so a client can time its refresh from
/// the answer's arrival without trusting its own clock against `exp`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAnswer {
    pub token: String,
    pub exp: u64,
    pub expires_in: u64,
}

impl TokenAnswer {
    /// The answer for a stored token body, at `now` (epoch seconds); `None`
    /// if the body is not a vended token (vending never hands one out).
    pub fn for_body(body: &str, now: u64) -> Option<Self> {
        let VendedToken { token, exp } = serde_json::from_str(body).ok()?;
        Some(TokenAnswer {
            token,
            exp,
            expires_in: exp.saturating_sub(now),
        })
    }
}

impl fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAnswer")
            .field("token", &"<redacted>")
            .field("exp", &self.exp)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Where vended tokens are kept between requests (Momento cache in production).
pub trait TokenCache: Send + Sync {
    /// The stored value for `key`, or `None` on a miss.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<String>, CacheError>> + Send;
    /// Stores `value` under `key` for `ttl`.
    fn set(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), CacheError>> + Send;
    /// Stops using any connection opened before `opened_before`: later calls
    /// go over a new one. Cheap (no I/O); a connection opened since is kept.
    fn reconnect(&self, opened_before: Instant);
}

/// Mints tokens (Momento's token service in production).
pub trait TokenMinter: Send + Sync {
    /// A new token for `caller` (its scope and token id), valid for `valid_for`.
    fn mint(
        &self,
        caller: &Caller,
        valid_for: Duration,
    ) -> impl Future<Output = Result<VendedToken, MintError>> + Send;
    /// As [`TokenCache::reconnect`].
    fn reconnect(&self, opened_before: Instant);
}

// Shared handles (tests keep one to inspect the double the vendor owns).
impl<T: TokenCache> TokenCache for std::sync::Arc<T> {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        (**self).get(key).await
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        (**self).set(key, value, ttl).await
    }

    fn reconnect(&self, opened_before: Instant) {
        (**self).reconnect(opened_before)
    }
}

impl<T: TokenMinter> TokenMinter for std::sync::Arc<T> {
    async fn mint(&self, caller: &Caller, valid_for: Duration) -> Result<VendedToken, MintError> {
        (**self).mint(caller, valid_for).await
    }

    fn reconnect(&self, opened_before: Instant) {
        (**self).reconnect(opened_before)
    }
}

/// How long outbound calls may take within one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Shared by the cache get and set of one request: a hung cache delays
    /// the answer by at most this much in total.
    pub cache_budget: Duration,
    /// A hung token service fails the mint after this long. A healthy mint
    /// takes tens of milliseconds; one that takes a second is on a dead
    /// connection or an unreachable service, and the caller is better served
    /// by a shared token or a quick 503 than by a longer wait.
    pub mint_timeout: Duration,
    /// INIT's warm-up read (a connection, its handshake at full CPU, one
    /// round trip) gives up after this long: it only saves the first request
    /// a handshake, and a cold start must not wait a whole cache budget for
    /// a Momento that can't be reached (the first request will, once).
    pub warm_up_budget: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            cache_budget: Duration::from_millis(1000),
            mint_timeout: Duration::from_millis(1000),
            warm_up_budget: Duration::from_millis(300),
        }
    }
}

impl Bounds {
    /// The longest one vend can take: every cache call and the mint timing out.
    pub fn worst_case(&self) -> Duration {
        self.cache_budget + self.mint_timeout
    }
}

/// How long each kind of outbound call of one vend took in total (absent: not made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallTimings {
    pub get: Option<Duration>,
    pub mint: Option<Duration>,
    pub set: Option<Duration>,
}

/// A successful vend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vended {
    /// The JSON body for the browser (`{"token": ..., "exp": ...}`).
    pub body: String,
    pub outcome: Outcome,
    /// Why the request was degraded or shared, for the log line.
    pub cause: Option<String>,
    /// For the log line: where the time went.
    pub timings: CallTimings,
}

/// A vend that produced no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotVended {
    pub error: MintError,
    /// For the log line: where the time went.
    pub timings: CallTimings,
}

/// After a mint is refused for rate, the token service is left alone this
/// long while there is a fresh token to share: Momento's control-plane bucket
/// refills at a handful of tokens a second, so one second is about one token,
/// and it matches the `Retry-After` that a 503 sends.
pub const MINT_BACKOFF: Duration = Duration::from_secs(1);

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A token body this container has vended.
#[derive(Clone)]
struct Remembered {
    body: String,
    exp: u64,
}

/// How many callers' tokens one container remembers (about half a KiB each).
pub const MAX_REMEMBERED_CALLERS: usize = 4096;

/// A token served to one caller, kept until its cache entry would expire.
struct ServedTo {
    token: Remembered,
    /// Epoch seconds: when the cache entry written for this token expires.
    until: u64,
}

/// What one container remembers between requests.
#[derive(Default)]
struct Memory {
    /// By shared key (one per scope): the freshest shareable token minted or
    /// served here. Tokens of callers that may not share are never kept here.
    freshest: HashMap<String, Remembered>,
    /// No mint before this instant while there is a fresh token to share.
    mint_quiet_until: Option<Instant>,
    /// By cache key: what each recent caller was given, so a caller coming
    /// back to the same container is answered without a cache call (no
    /// round trip, and one data-plane operation fewer against the cache's limit).
    served: HashMap<String, ServedTo>,
}

/// The vending machine: a cache, a minter and the lifetimes that bind them.
pub struct Vendor<C, M> {
    cache: C,
    minter: M,
    token_ttl: Duration,
    cache_ttl: Duration,
    bounds: Bounds,
    memory: Mutex<Memory>,
}

impl<C: TokenCache, M: TokenMinter> Vendor<C, M> {
    pub fn new(cache: C, minter: M, token_ttl: Duration, cache_ttl: Duration) -> Self {
        Vendor {
            cache,
            minter,
            token_ttl,
            cache_ttl,
            bounds: Bounds::default(),
            memory: Mutex::new(Memory::default()),
        }
    }

    /// Opens the cache's connection before the first request and, when the
    /// callers of this configuration share (`shared_key`), remembers a fresh
    /// shared token if the cache holds one. Meant for INIT, which runs at full
    /// CPU: a TLS handshake made there costs a fraction of what it costs at
    /// 128 MB's CPU share in a request, and a container born in a crowd starts
    /// with a token to share. Bounded by [`Bounds::warm_up_budget`]; never fails.
    pub async fn warm_up(&self, shared_key: Option<&str>) -> bool {
        let mut call = Calls::new(self.bounds.warm_up_budget);
        let got = call
            .get(&self.cache, shared_key.unwrap_or(SHARED_KEY))
            .await;
        self.abandon_timed_out_connections(&mut call);
        if let (Ok(Some(body)), Some(key)) = (&got, shared_key) {
            if let Some(exp) = fresh(body, now_epoch()) {
                self.remember(key, body, exp);
            }
        }
        got.is_ok()
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
    /// backing off, and when a mint fails for any reason but a refused key.
    /// Only when no fresh token exists is the failure the caller's answer.
    ///
    /// A call that times out may have gone down a dead connection (a flow a
    /// middlebox forgot while the container was frozen carries nothing and
    /// never closes): both clients are told to open new connections before
    /// the next call, so one dead connection costs one timeout, not minutes.
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
        if let Some(body) = self.served_to(key, now) {
            return Ok(call.vended(body, Outcome::Hit, None));
        }

        let mut cache_problem = match call.get(&self.cache, key).await {
            Ok(Some(cached)) => match fresh(&cached, now) {
                Some(exp) => {
                    self.remember_for(caller, &cached, exp, now);
                    return Ok(call.vended(cached, Outcome::Hit, None));
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
                    self.remember_for(caller, &shared.body, shared.exp, now);
                    let cause = format!("{problem}; shared a token from memory");
                    return Ok(call.vended(shared.body, Outcome::Shared, Some(cause)));
                }
                Some(problem)
            }
        };

        if self.mint_backing_off() {
            if let Some(shared) = self.fresh_in_memory(caller, now) {
                let cause =
                    "token service backing off after a throttled mint; shared a token from memory";
                return Ok(self.share(call, caller, shared, now, cause).await);
            }
        }

        // The mint must not follow a timed-out get down the same dead path.
        self.abandon_timed_out_connections(call);
        let token = match self.mint(caller, call).await {
            Ok(token) => token,
            Err(e @ (MintError::KeyRejected | MintError::CacheNotFound(_))) => return Err(e),
            Err(e) => {
                if e == MintError::RateLimited {
                    self.back_off_minting();
                }
                return match self.fresh_anywhere(call, caller, now).await {
                    Some((shared, from)) => {
                        let cause = format!("mint: {e}; shared a token from {from}");
                        Ok(self.share(call, caller, shared, now, &cause).await)
                    }
                    None => Err(e),
                };
            }
        };
        let body = serde_json::to_string(&token)
            .map_err(|_| MintError::Failed("could not encode the vended token".into()))?;
        self.remember_for(caller, &body, token.exp, now);

        let ttl = self.ttl_for(token.exp, now);
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
        Ok(call.vended(body, outcome, cache_problem))
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

    /// After a timeout, moves both clients to new connections: the cache's
    /// and the token service's connections idled through the same freeze,
    /// so a dead one rarely comes alone, and a fresh connection costs only a
    /// handshake.
    fn abandon_timed_out_connections(&self, call: &mut Calls) {
        if let Some(since) = call.timed_out_since.take() {
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
    ) -> Vended {
        self.remember_for(caller, &shared.body, shared.exp, now);
        let ttl = self.ttl_for(shared.exp, now);
        let cause = match call
            .set(&self.cache, &caller.cache_key, &shared.body, ttl)
            .await
        {
            Ok(()) => cause.to_string(),
            Err(e) => format!("{cause}; set: {e}"),
        };
        call.vended(shared.body, Outcome::Shared, Some(cause))
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
        let exp = fresh(&body, now)?;
        self.remember(shared_key, &body, exp);
        Some((Remembered { body, exp }, "the cache's shared key"))
    }

    /// How long a token expiring at `exp` may sit in the cache: the cache TTL,
    /// or less when the token would otherwise outlive its refresh margin there.
    fn ttl_for(&self, exp: u64, now: u64) -> Duration {
        let usable = exp
            .saturating_sub(now)
            .saturating_sub(REFRESH_MARGIN.as_secs())
            .max(1);
        self.cache_ttl.min(Duration::from_secs(usable))
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `body` as the freshest token under `shared_key` if it outlives
    /// the one remembered so far.
    fn remember(&self, shared_key: &str, body: &str, exp: u64) {
        let mut memory = self.memory();
        if memory.freshest.get(shared_key).is_none_or(|t| t.exp < exp) {
            memory.freshest.insert(
                shared_key.to_string(),
                Remembered {
                    body: body.to_string(),
                    exp,
                },
            );
        }
    }

    /// Remembers that `caller` was given `body` (and, for a caller that may
    /// share, keeps it as its scope's freshest token if it is).
    fn remember_for(&self, caller: &Caller, body: &str, exp: u64, now: u64) {
        if let Some(shared_key) = caller.shared_key.as_deref() {
            self.remember(shared_key, body, exp);
        }
        let key = caller.cache_key.as_str();
        let until = now.saturating_add(self.ttl_for(exp, now).as_secs());
        let mut memory = self.memory();
        if memory.served.len() >= MAX_REMEMBERED_CALLERS && !memory.served.contains_key(key) {
            memory.served.retain(|_, s| s.until > now);
            if memory.served.len() >= MAX_REMEMBERED_CALLERS {
                // Still full of live entries: start over rather than track ages.
                memory.served.clear();
            }
        }
        let token = Remembered {
            body: body.to_string(),
            exp,
        };
        memory
            .served
            .insert(key.to_string(), ServedTo { token, until });
    }

    /// The token this container last gave the caller `key`, while its cache
    /// entry would still be live and it outlives the refresh margin.
    fn served_to(&self, key: &str, now: u64) -> Option<String> {
        let memory = self.memory();
        let served = memory.served.get(key)?;
        let live = served.until > now && outlives_margin(served.token.exp, now);
        live.then(|| served.token.body.clone())
    }

    /// The freshest token of the caller's scope in memory, if it may share.
    fn fresh_in_memory(&self, caller: &Caller, now: u64) -> Option<Remembered> {
        let shared_key = caller.shared_key.as_deref()?;
        self.memory()
            .freshest
            .get(shared_key)
            .cloned()
            .filter(|t| outlives_margin(t.exp, now))
    }

    fn back_off_minting(&self) {
        self.memory().mint_quiet_until = Some(Instant::now() + MINT_BACKOFF);
    }

    fn mint_backing_off(&self) -> bool {
        self.memory()
            .mint_quiet_until
            .is_some_and(|until| Instant::now() < until)
    }
}

/// The outbound calls of one request: the cache calls share one time budget,
/// durations are summed per kind for the log line, and the start of the
/// earliest call that timed out is kept to abandon its connection.
struct Calls {
    budget: Duration,
    timings: CallTimings,
    timed_out_since: Option<Instant>,
}

impl Calls {
    fn new(budget: Duration) -> Self {
        Calls {
            budget,
            timings: CallTimings::default(),
            timed_out_since: None,
        }
    }

    fn vended(&self, body: String, outcome: Outcome, cause: Option<String>) -> Vended {
        Vended {
            body,
            outcome,
            cause,
            timings: self.timings,
        }
    }

    /// Keeps the start of the earliest call that timed out.
    fn timed_out(&mut self, started: Instant) {
        self.timed_out_since = Some(self.timed_out_since.map_or(started, |t| t.min(started)));
    }

    /// Runs a cache call within what is left of the budget, charges the budget
    /// the time it took and adds that time to the kind's total (`took`). A call
    /// that times out (ours or the SDK's deadline) marks its connection
    /// suspect; one skipped because no budget is left marks nothing.
    async fn within<T>(
        &mut self,
        took: fn(&mut CallTimings) -> &mut Option<Duration>,
        call: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        if self.budget.is_zero() {
            return Err(CacheError::Timeout);
        }
        let started = Instant::now();
        let result = tokio::time::timeout(self.budget, call)
            .await
            .unwrap_or(Err(CacheError::Timeout));
        let elapsed = started.elapsed();
        let total = took(&mut self.timings);
        *total = Some(total.unwrap_or_default() + elapsed);
        self.budget = self.budget.saturating_sub(elapsed);
        if matches!(result, Err(CacheError::Timeout)) {
            self.timed_out(started);
        }
        result
    }

    async fn get(
        &mut self,
        cache: &impl TokenCache,
        key: &str,
    ) -> Result<Option<String>, CacheError> {
        self.within(|t| &mut t.get, cache.get(key)).await
    }

    async fn set(
        &mut self,
        cache: &impl TokenCache,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        self.within(|t| &mut t.set, cache.set(key, value, ttl))
            .await
    }

    /// Two sets of one value, side by side: one wait instead of two.
    async fn set_both(
        &mut self,
        cache: &impl TokenCache,
        (first, second): (&str, &str),
        value: &str,
        ttl: Duration,
    ) -> (Result<(), CacheError>, Result<(), CacheError>) {
        let started = Instant::now();
        let both = async {
            Ok(tokio::join!(
                cache.set(first, value, ttl),
                cache.set(second, value, ttl)
            ))
        };
        match self.within(|t| &mut t.set, both).await {
            Ok((a, b)) => {
                // Either set may have met the SDK's own deadline.
                if a == Err(CacheError::Timeout) || b == Err(CacheError::Timeout) {
                    self.timed_out(started);
                }
                (a, b)
            }
            Err(e) => (Err(e.clone()), Err(e)),
        }
    }
}

/// Whether a token expiring at `exp` may still be handed out at `now`: the
/// one freshness rule for cached, remembered and shared tokens alike.
fn outlives_margin(exp: u64, now: u64) -> bool {
    exp > now.saturating_add(REFRESH_MARGIN.as_secs())
}

/// The expiry of a cached value that is a vended token outliving the refresh
/// margin; `None` for anything else (corrupt, empty, nearly expired).
fn fresh(cached: &str, now: u64) -> Option<u64> {
    serde_json::from_str::<VendedToken>(cached)
        .ok()
        .filter(|t| !t.token.is_empty() && outlives_margin(t.exp, now))
        .map(|t| t.exp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doubles::{Behaviour, CountingMinter, MemoryCache};
    use crate::scope::Scope;
    use std::sync::Arc;

    const TOKEN_TTL: Duration = Duration::from_secs(3600);
    const CACHE_TTL: Duration = Duration::from_secs(3300);

    struct Rig {
        cache: Arc<MemoryCache>,
        minter: Arc<CountingMinter>,
        vendor: Vendor<Arc<MemoryCache>, Arc<CountingMinter>>,
    }

    impl Rig {
        /// Why vending `caller` produced no token (the test fails if it did).
        async fn error_for(&self, caller: &Caller) -> MintError {
            self.vendor.vend(caller).await.unwrap_err().error
        }

        async fn error_at(&self, caller: &Caller, now: u64) -> MintError {
            self.vendor.vend_at(caller, now).await.unwrap_err().error
        }
    }

    fn rig() -> Rig {
        let cache = Arc::new(MemoryCache::new());
        let minter = Arc::new(CountingMinter::new());
        let vendor = Vendor::new(cache.clone(), minter.clone(), TOKEN_TTL, CACHE_TTL);
        Rig {
            cache,
            minter,
            vendor,
        }
    }

    /// An anonymous caller of the seed's scope at `s`.
    fn ip(s: &str) -> Caller {
        at(s.parse().unwrap())
    }

    fn at(address: std::net::IpAddr) -> Caller {
        Caller::anonymous(address, Scope::subscribe_all("pizza"), "pizza")
    }

    fn parse(body: &str) -> VendedToken {
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test]
    async fn miss_mints_a_token_and_caches_that_exact_body() {
        let r = rig();
        let before = now_epoch();
        let vended = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Miss);
        let token = parse(&vended.body);
        assert_eq!(token.token, "minted-1");
        assert!(token.exp >= before + 3600 && token.exp <= now_epoch() + 3600);
        assert_eq!(r.minter.lifetimes(), vec![TOKEN_TTL]);
        let (stored, ttl) = r.cache.entry("203.0.113.10-token").unwrap();
        assert_eq!(stored, vended.body);
        assert_eq!(ttl, CACHE_TTL);
        let raw: serde_json::Value = serde_json::from_str(&vended.body).unwrap();
        assert_eq!(
            raw.as_object().unwrap().len(),
            2,
            "body is exactly {{token, exp}}"
        );
        assert!(raw["exp"].is_u64());
    }

    #[tokio::test]
    async fn hit_returns_the_cached_body_unchanged_without_minting() {
        let r = rig();
        let cached = format!(
            r#"{{"token": "cached-token", "exp": {}}}"#,
            now_epoch() + 600
        );
        r.cache.insert("203.0.113.10-token", &cached);
        let vended = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Hit);
        assert_eq!(vended.body, cached, "byte for byte, spacing included");
        assert_eq!(r.minter.calls(), 0);
        assert_eq!(r.cache.sets(), 0);
    }

    #[tokio::test]
    async fn same_ip_gets_the_same_token_and_different_ips_different_tokens() {
        let r = rig();
        let a1 = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        let a2 = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        let b = r.vendor.vend(&ip("203.0.113.20")).await.unwrap();
        assert_eq!(a1.body, a2.body);
        assert_eq!(a2.outcome, Outcome::Hit);
        assert_ne!(parse(&a1.body).token, parse(&b.body).token);
        assert_eq!(r.minter.calls(), 2);
    }

    #[tokio::test]
    async fn two_addresses_in_one_ipv6_64_get_one_token_from_one_mint() {
        let r = rig();
        let a = r.vendor.vend(&ip("2001:db8:1:2::a")).await.unwrap();
        let b = r.vendor.vend(&ip("2001:db8:1:2:ffff::b")).await.unwrap();
        let other = r.vendor.vend(&ip("2001:db8:1:3::a")).await.unwrap();
        assert_eq!((a.outcome, b.outcome), (Outcome::Miss, Outcome::Hit));
        assert_eq!(a.body, b.body);
        assert_ne!(a.body, other.body, "another /64 is another caller");
        assert_eq!(r.minter.calls(), 2);
    }

    #[tokio::test]
    async fn corrupt_entries_are_misses_and_get_overwritten() {
        for corrupt in [
            "not json",
            r#"{"token": "t"}"#,
            r#"{"exp": 99999999999}"#,
            r#"{"token": "", "exp": 99999999999}"#,
            "[]",
        ] {
            let r = rig();
            r.cache.insert("203.0.113.10-token", corrupt);
            let vended = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
            assert_eq!(vended.outcome, Outcome::Miss, "{corrupt}");
            assert_eq!(r.cache.entry("203.0.113.10-token").unwrap().0, vended.body);
        }
    }

    #[tokio::test]
    async fn entries_within_the_refresh_margin_are_replaced() {
        let r = rig();
        let now = 1_800_000_000;
        r.cache.insert(
            "203.0.113.10-token",
            &format!(r#"{{"token":"old","exp":{}}}"#, now + 60),
        );
        let vended = r.vendor.vend_at(&ip("203.0.113.10"), now).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Miss);
        assert_ne!(parse(&vended.body).token, "old");

        r.cache.insert(
            "203.0.113.10-token",
            &format!(r#"{{"token":"old","exp":{}}}"#, now + 61),
        );
        let vended = r.vendor.vend_at(&ip("203.0.113.10"), now).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Hit);
    }

    #[tokio::test]
    async fn a_failing_cache_get_still_vends_and_is_degraded() {
        let r = rig();
        r.cache.on_get(Behaviour::Fail);
        let vended = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Degraded);
        assert!(vended.cause.unwrap().starts_with("get:"));
        assert_eq!(parse(&vended.body).token, "minted-1");
        assert_eq!(
            r.cache.entry("203.0.113.10-token").unwrap().0,
            vended.body,
            "the fresh token is still stored"
        );
    }

    #[tokio::test]
    async fn a_failing_cache_set_still_vends_and_is_degraded() {
        let r = rig();
        r.cache.on_set(Behaviour::Fail);
        let vended = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Degraded);
        assert!(vended.cause.unwrap().starts_with("set:"));
        assert_eq!(parse(&vended.body).token, "minted-1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_cache_costs_at_most_the_cache_budget_in_total() {
        let r = rig();
        r.cache.on_get(Behaviour::Hang);
        r.cache.on_set(Behaviour::Hang);
        let started = Instant::now();
        let vended = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Degraded);
        assert_eq!(started.elapsed(), Bounds::default().cache_budget);
        assert_eq!(r.cache.sets(), 0, "no budget left: the set is skipped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_set_is_cut_off_within_the_budget() {
        let r = rig();
        r.cache.on_set(Behaviour::Hang);
        let started = Instant::now();
        let vended = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Degraded);
        assert!(started.elapsed() <= Bounds::default().cache_budget);
        assert_eq!(r.cache.sets(), 2, "the caller's key and the shared key");
    }

    #[tokio::test]
    async fn mint_failure_is_an_error_and_stores_nothing() {
        let r = rig();
        r.minter.on_mint(Behaviour::Fail);
        assert!(matches!(
            r.error_for(&ip("203.0.113.10")).await,
            MintError::Failed(_)
        ));
        assert_eq!(r.cache.sets(), 0);
    }

    #[tokio::test]
    async fn rate_limited_mint_is_reported_as_such() {
        let r = rig();
        r.minter.on_mint(Behaviour::Throttle);
        assert_eq!(
            r.error_for(&ip("203.0.113.10")).await,
            MintError::RateLimited
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_minter_times_out_after_the_mint_bound() {
        let r = rig();
        r.minter.on_mint(Behaviour::Hang);
        let started = Instant::now();
        assert_eq!(r.error_for(&ip("203.0.113.10")).await, MintError::Timeout);
        assert_eq!(started.elapsed(), Bounds::default().mint_timeout);
    }

    fn token_json(token: &str, exp: u64) -> String {
        format!(r#"{{"token":"{token}","exp":{exp}}}"#)
    }

    // --- dead connections (timeouts) ---

    #[tokio::test]
    async fn calls_that_answer_leave_the_connections_alone() {
        let r = rig();
        r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        r.cache.on_get(Behaviour::Fail);
        r.minter.on_mint(Behaviour::Fail);
        let _ = r.vendor.vend(&ip("203.0.113.11")).await;
        assert_eq!((r.cache.reconnects(), r.minter.reconnects()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_get_moves_both_clients_to_new_connections_before_the_mint() {
        let r = rig();
        r.cache.on_get(Behaviour::Hang);
        let vended = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        // Nothing in memory: the mint goes ahead, over a new connection.
        assert_eq!(vended.outcome, Outcome::Degraded);
        assert_eq!((r.cache.reconnects(), r.minter.reconnects()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_set_skipped_for_want_of_budget_does_not_abandon_the_new_connection() {
        let r = rig();
        r.cache.on_get(Behaviour::Hang);
        r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        assert_eq!(r.cache.sets(), 0, "no budget left for the set");
        assert_eq!(r.cache.reconnects(), 1, "one timeout, one reconnect");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_mint_shares_a_fresh_token_and_reconnects() {
        let r = rig();
        let first = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        r.minter.on_mint(Behaviour::Hang);
        let started = Instant::now();
        let shared = r.vendor.vend(&ip("198.51.100.7")).await.unwrap();
        assert_eq!(started.elapsed(), Bounds::default().mint_timeout);
        assert_eq!(shared.outcome, Outcome::Shared);
        assert_eq!(shared.body, first.body);
        assert!(shared.cause.unwrap().contains("timed out"));
        assert_eq!((r.cache.reconnects(), r.minter.reconnects()), (1, 1));
        // The next caller mints again: no back-off after a timeout.
        r.minter.on_mint(Behaviour::Work);
        let next = r.vendor.vend(&ip("198.51.100.8")).await.unwrap();
        assert_eq!(next.outcome, Outcome::Miss);
    }

    #[tokio::test]
    async fn a_failed_mint_shares_a_fresh_token_from_memory_or_the_shared_key() {
        let r = rig();
        let first = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        r.minter.on_mint(Behaviour::Fail);
        let shared = r.vendor.vend(&ip("198.51.100.7")).await.unwrap();
        assert_eq!(
            (shared.outcome, shared.body.as_str()),
            (Outcome::Shared, first.body.as_str())
        );

        let cold = rig();
        let elsewhere = token_json("minted-elsewhere", now_epoch() + 3000);
        cold.cache.insert(SHARED_KEY, &elsewhere);
        cold.minter.on_mint(Behaviour::Fail);
        let shared = cold.vendor.vend(&ip("198.51.100.7")).await.unwrap();
        assert_eq!(
            (shared.outcome, shared.body.as_str()),
            (Outcome::Shared, elsewhere.as_str())
        );
    }

    #[tokio::test]
    async fn a_refused_key_on_the_mint_is_never_hidden_by_sharing() {
        let r = rig();
        r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        r.minter.on_mint(Behaviour::Reject);
        assert_eq!(
            r.error_for(&ip("198.51.100.7")).await,
            MintError::KeyRejected
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_momento_fails_within_the_worst_case_bound() {
        let r = rig();
        r.cache.on_get(Behaviour::Hang);
        r.cache.on_set(Behaviour::Hang);
        r.minter.on_mint(Behaviour::Hang);
        let started = Instant::now();
        let failed = r.vendor.vend(&ip("203.0.113.10")).await.unwrap_err();
        assert_eq!(failed.error, MintError::Timeout);
        assert_eq!(started.elapsed(), Bounds::default().worst_case());
        assert!(failed.timings.get.is_some() && failed.timings.mint.is_some());
    }

    // --- signed-in callers and scopes ---

    fn user(sub: &str, scope: Scope) -> Caller {
        Caller::user(sub, scope)
    }

    #[tokio::test]
    async fn two_users_get_two_tokens_and_one_user_twice_one_mint() {
        let r = rig();
        let a = r
            .vendor
            .vend(&user("sub-a", Scope::subscribe_all("pizza")))
            .await
            .unwrap();
        let again = r
            .vendor
            .vend(&user("sub-a", Scope::subscribe_all("pizza")))
            .await
            .unwrap();
        let b = r
            .vendor
            .vend(&user("sub-b", Scope::subscribe_all("pizza")))
            .await
            .unwrap();
        assert_eq!(
            (again.outcome, again.body.as_str()),
            (Outcome::Hit, a.body.as_str())
        );
        assert_ne!(a.body, b.body);
        let minted_for: Vec<Option<String>> =
            r.minter.callers().into_iter().map(|c| c.token_id).collect();
        assert_eq!(minted_for, [Some("sub-a".into()), Some("sub-b".into())]);
        assert!(
            r.cache.entry(SHARED_KEY).is_none(),
            "user tokens are never shared"
        );
    }

    #[tokio::test]
    async fn a_user_whose_scope_changes_gets_a_token_of_the_new_scope() {
        let r = rig();
        let before = r
            .vendor
            .vend(&user("sub-a", Scope::subscribe_all("pizza")))
            .await
            .unwrap();
        let staff = Scope::subscribe_all("staff-cache");
        let after = r.vendor.vend(&user("sub-a", staff.clone())).await.unwrap();
        assert_eq!(after.outcome, Outcome::Miss);
        assert_ne!(before.body, after.body);
        assert_eq!(r.minter.callers()[1].scope, staff);
    }

    #[tokio::test]
    async fn a_throttled_user_gets_no_one_elses_token() {
        let r = rig();
        r.vendor
            .vend(&user("sub-a", Scope::subscribe_all("pizza")))
            .await
            .unwrap();
        r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        let sub_b = user("sub-b", Scope::subscribe_all("pizza"));
        r.minter.on_mint(Behaviour::Throttle);
        assert_eq!(r.error_for(&sub_b).await, MintError::RateLimited);
        r.minter.on_mint(Behaviour::Fail);
        assert!(matches!(r.error_for(&sub_b).await, MintError::Failed(_)));
        // A failed get does not make a user's request a share either.
        r.minter.on_mint(Behaviour::Work);
        r.cache.on_get(Behaviour::Fail);
        let own = r
            .vendor
            .vend(&user("sub-c", Scope::subscribe_all("pizza")))
            .await
            .unwrap();
        assert_eq!(own.outcome, Outcome::Degraded, "minted its own");
    }

    #[tokio::test]
    async fn anonymous_callers_share_only_within_one_scope() {
        let r = rig();
        let other_scope = Scope::subscribe_all("pasta");
        let other = Caller::anonymous("203.0.113.1".parse().unwrap(), other_scope.clone(), "pizza");
        r.vendor.vend(&other).await.unwrap();
        assert!(r.cache.entry(SHARED_KEY).is_none());
        r.minter.on_mint(Behaviour::Throttle);
        assert_eq!(
            r.error_for(&ip("203.0.113.2")).await,
            MintError::RateLimited,
            "a token of another scope is not shared"
        );
        let same = Caller::anonymous("203.0.113.3".parse().unwrap(), other_scope, "pizza");
        assert_eq!(r.vendor.vend(&same).await.unwrap().outcome, Outcome::Shared);
    }

    #[tokio::test]
    async fn a_miss_also_writes_the_shared_key() {
        let r = rig();
        let vended = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        let (shared, ttl) = r.cache.entry(SHARED_KEY).unwrap();
        assert_eq!(shared, vended.body);
        assert_eq!(ttl, CACHE_TTL);
    }

    #[tokio::test]
    async fn a_throttled_mint_shares_the_freshest_token_in_memory_under_the_callers_key() {
        let r = rig();
        let first = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        r.minter.on_mint(Behaviour::Throttle);
        let shared = r.vendor.vend(&ip("198.51.100.7")).await.unwrap();
        assert_eq!(shared.outcome, Outcome::Shared);
        assert_eq!(shared.body, first.body);
        assert!(shared.cause.unwrap().contains("memory"));
        let (stored, ttl) = r.cache.entry("198.51.100.7-token").unwrap();
        assert_eq!(stored, first.body, "the caller's next visit is a plain hit");
        assert!(ttl <= CACHE_TTL);
        let again = r.vendor.vend(&ip("198.51.100.7")).await.unwrap();
        assert_eq!(again.outcome, Outcome::Hit);
        assert_eq!(r.minter.calls(), 2, "the hit minted nothing");
    }

    #[tokio::test]
    async fn with_nothing_in_memory_the_shared_key_in_the_cache_is_served() {
        let r = rig();
        let now = now_epoch();
        let elsewhere = token_json("minted-by-another-container", now + 3000);
        r.cache.insert(SHARED_KEY, &elsewhere);
        r.minter.on_mint(Behaviour::Throttle);
        let vended = r.vendor.vend_at(&ip("203.0.113.10"), now).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Shared);
        assert_eq!(vended.body, elsewhere);
        let (stored, ttl) = r.cache.entry("203.0.113.10-token").unwrap();
        assert_eq!(stored, elsewhere);
        assert_eq!(
            ttl,
            Duration::from_secs(3000 - REFRESH_MARGIN.as_secs()),
            "no longer than the shared token stays fresh"
        );
    }

    #[tokio::test]
    async fn with_no_fresh_token_anywhere_a_throttled_mint_is_rate_limited() {
        let r = rig();
        r.minter.on_mint(Behaviour::Throttle);
        assert_eq!(
            r.error_for(&ip("203.0.113.10")).await,
            MintError::RateLimited
        );
        assert!(r.cache.entry("203.0.113.10-token").is_none());
        assert_eq!(r.minter.calls(), 1);
    }

    #[tokio::test]
    async fn a_token_within_the_refresh_margin_is_never_shared() {
        let r = rig();
        let first = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        let exp = parse(&first.body).exp;
        // The shared key holds the same token; both it and memory are now at the margin.
        r.minter.on_mint(Behaviour::Throttle);
        assert_eq!(
            r.error_at(&ip("198.51.100.7"), exp - 60).await,
            MintError::RateLimited
        );
        // One second earlier, the same token is still fresh enough to share.
        let shared = r
            .vendor
            .vend_at(&ip("198.51.100.8"), exp - 61)
            .await
            .unwrap();
        assert_eq!(shared.outcome, Outcome::Shared);
        assert_eq!(shared.body, first.body);
    }

    #[tokio::test]
    async fn a_stale_shared_key_is_not_served() {
        let r = rig();
        let now = now_epoch();
        r.cache.insert(SHARED_KEY, &token_json("old", now + 60));
        r.minter.on_mint(Behaviour::Throttle);
        assert_eq!(
            r.error_at(&ip("203.0.113.10"), now).await,
            MintError::RateLimited
        );
    }

    #[tokio::test]
    async fn a_failed_get_with_a_fresh_token_in_memory_does_not_mint() {
        let r = rig();
        let first = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        r.cache.on_get(Behaviour::Fail);
        let vended = r.vendor.vend(&ip("198.51.100.7")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Shared);
        assert_eq!(vended.body, first.body);
        assert!(vended.cause.unwrap().starts_with("get:"));
        assert_eq!(r.minter.calls(), 1, "cache trouble did not become a mint");
    }

    #[tokio::test]
    async fn a_key_refused_by_the_cache_is_reported_not_hidden_by_sharing() {
        let r = rig();
        r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        r.cache.on_get(Behaviour::Reject);
        assert_eq!(
            r.error_for(&ip("198.51.100.7")).await,
            MintError::KeyRejected
        );
        assert_eq!(r.minter.calls(), 1);
    }

    #[tokio::test]
    async fn a_missing_cache_mints_nothing_and_shares_nothing() {
        let r = rig();
        r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        r.cache.on_get(Behaviour::Missing);
        assert_eq!(
            r.error_for(&ip("198.51.100.7")).await,
            MintError::CacheNotFound("pizza".into())
        );
        assert_eq!(r.minter.calls(), 1, "no mint for a cache that isn't there");
    }

    #[tokio::test]
    async fn a_warm_up_opens_the_cache_and_remembers_a_fresh_shared_token() {
        let r = rig();
        let elsewhere = token_json("minted-by-another-container", now_epoch() + 3000);
        r.cache.insert(SHARED_KEY, &elsewhere);
        assert!(r.vendor.warm_up(Some(SHARED_KEY)).await);
        assert_eq!(r.cache.gets(), 1);
        // Born in a crowd: the first caller, throttled, is shared that token
        // without another cache read of the shared key.
        r.minter.on_mint(Behaviour::Throttle);
        let shared = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
        assert_eq!(shared.body, elsewhere);
        assert!(shared.cause.unwrap().contains("from memory"));
    }

    #[tokio::test]
    async fn a_warm_up_for_signed_in_callers_remembers_nothing_to_share() {
        let r = rig();
        r.cache
            .insert(SHARED_KEY, &token_json("anonymous", now_epoch() + 3000));
        assert!(r.vendor.warm_up(None).await);
        r.minter.on_mint(Behaviour::Throttle);
        assert!(r
            .vendor
            .vend(&Caller::user("sub-a", Scope::subscribe_all("pizza")))
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_warm_up_on_a_dead_cache_gives_up_within_the_budget_and_reconnects() {
        let r = rig();
        r.cache.on_get(Behaviour::Hang);
        let started = Instant::now();
        assert!(!r.vendor.warm_up(Some(SHARED_KEY)).await);
        assert_eq!(started.elapsed(), Bounds::default().warm_up_budget);
        assert_eq!(r.cache.reconnects(), 1);
    }

    #[tokio::test]
    async fn a_hit_is_remembered_for_sharing() {
        let r = rig();
        let cached = token_json("cached-token", now_epoch() + 900);
        r.cache.insert("203.0.113.10-token", &cached);
        assert_eq!(
            r.vendor.vend(&ip("203.0.113.10")).await.unwrap().outcome,
            Outcome::Hit
        );
        r.minter.on_mint(Behaviour::Throttle);
        let shared = r.vendor.vend(&ip("198.51.100.7")).await.unwrap();
        assert_eq!(shared.body, cached);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_throttled_mint_the_token_service_is_left_alone_for_the_back_off() {
        let r = rig();
        r.vendor.vend(&ip("203.0.113.1")).await.unwrap();
        r.minter.on_mint(Behaviour::Throttle);
        let shared = r.vendor.vend(&ip("203.0.113.2")).await.unwrap();
        assert_eq!(shared.outcome, Outcome::Shared);
        assert_eq!(r.minter.calls(), 2);

        r.minter.on_mint(Behaviour::Work);
        tokio::time::advance(MINT_BACKOFF - Duration::from_millis(1)).await;
        let quiet = r.vendor.vend(&ip("203.0.113.3")).await.unwrap();
        assert_eq!(quiet.outcome, Outcome::Shared);
        assert!(quiet.cause.unwrap().contains("backing off"));
        assert_eq!(r.minter.calls(), 2, "no call during the back-off");

        tokio::time::advance(Duration::from_millis(1)).await;
        let minted = r.vendor.vend(&ip("203.0.113.4")).await.unwrap();
        assert_eq!(minted.outcome, Outcome::Miss);
        assert_eq!(r.minter.calls(), 3, "minting resumes after the back-off");
    }

    #[tokio::test(start_paused = true)]
    async fn the_back_off_does_not_hold_back_a_caller_with_nothing_to_share() {
        let r = rig();
        r.minter.on_mint(Behaviour::Throttle);
        assert!(r.vendor.vend(&ip("203.0.113.1")).await.is_err());
        r.minter.on_mint(Behaviour::Work);
        let vended = r.vendor.vend(&ip("203.0.113.2")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Miss);
        assert_eq!(r.minter.calls(), 2);
    }

    #[tokio::test]
    async fn a_caller_coming_back_to_this_container_is_answered_from_memory() {
        let r = rig();
        let now = now_epoch();
        let first = r.vendor.vend_at(&ip("203.0.113.10"), now).await.unwrap();
        let again = r
            .vendor
            .vend_at(&ip("203.0.113.10"), now + 10)
            .await
            .unwrap();
        assert_eq!(
            (again.outcome, again.body.as_str()),
            (Outcome::Hit, first.body.as_str())
        );
        assert_eq!(r.cache.gets(), 1, "no cache call for the second visit");
        assert_eq!(again.timings, CallTimings::default());
        // Once its cache entry would have expired, the cache is asked again.
        let later = now + CACHE_TTL.as_secs();
        r.vendor.vend_at(&ip("203.0.113.10"), later).await.unwrap();
        assert_eq!(r.cache.gets(), 2);
    }

    #[tokio::test]
    async fn a_token_near_expiry_is_not_served_from_memory() {
        let r = rig();
        let now = now_epoch();
        let cached = token_json("short-lived", now + 100);
        r.cache.insert("203.0.113.10-token", &cached);
        assert_eq!(
            r.vendor
                .vend_at(&ip("203.0.113.10"), now)
                .await
                .unwrap()
                .body,
            cached
        );
        let vended = r
            .vendor
            .vend_at(&ip("203.0.113.10"), now + 40)
            .await
            .unwrap();
        assert_eq!(
            vended.outcome,
            Outcome::Miss,
            "100 - 40 is within the margin"
        );
        assert_eq!(r.cache.gets(), 2);
    }

    #[tokio::test]
    async fn the_memory_of_callers_is_bounded() {
        let r = rig();
        let now = now_epoch();
        for i in 0..=MAX_REMEMBERED_CALLERS as u32 {
            let caller = at(std::net::Ipv4Addr::from(0x0a00_0000 + i).into());
            r.vendor.vend_at(&caller, now).await.unwrap();
            assert!(r.vendor.memory().served.len() <= MAX_REMEMBERED_CALLERS);
        }
    }

    #[test]
    fn debug_of_a_vended_token_hides_the_token() {
        let t = VendedToken {
            token: "sekrit".into(),
            exp: 1,
        };
        assert!(!format!("{t:?}").contains("sekrit"));
    }
}
