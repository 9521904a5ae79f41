//! The vending logic: reuse a caller's token, mint a new one, or share a
//! fresh one when Momento's rate limits say no.
//!
//! This module owns the decisions (what counts as a usable token, how callers
//! are keyed, what one container remembers, when to mint, when to share and
//! back off, what is stored and for how long, how long each outbound call may
//! take) and nothing else. It talks to the outside world through two small
//! traits, [`TokenCache`] and [`TokenMinter`], so it is unit-tested with
//! in-memory doubles and driven in production by the Momento adapters.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

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
}

/// Mints subscribe-only tokens (Momento's token service in production).
pub trait TokenMinter: Send + Sync {
    /// A new token valid for `valid_for`.
    fn mint(
        &self,
        valid_for: Duration,
    ) -> impl Future<Output = Result<VendedToken, MintError>> + Send;
}

// Shared handles (tests keep one to inspect the double the vendor owns).
impl<T: TokenCache> TokenCache for std::sync::Arc<T> {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        (**self).get(key).await
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        (**self).set(key, value, ttl).await
    }
}

impl<T: TokenMinter> TokenMinter for std::sync::Arc<T> {
    async fn mint(&self, valid_for: Duration) -> Result<VendedToken, MintError> {
        (**self).mint(valid_for).await
    }
}

/// How long outbound calls may take within one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Shared by the cache get and set of one request: a hung cache delays
    /// the answer by at most this much in total.
    pub cache_budget: Duration,
    /// A hung token service fails the request after this long.
    pub mint_timeout: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            cache_budget: Duration::from_millis(1000),
            mint_timeout: Duration::from_secs(5),
        }
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

/// The cache key of the token every successful mint also writes, so that a
/// container with nothing in memory can still share under throttling. No
/// caller key can take this form (they all start with an address).
pub const SHARED_KEY: &str = "tvm-shared-token";

/// After a mint is refused for rate, the token service is left alone this
/// long while there is a fresh token to share: Momento's control-plane bucket
/// refills at a handful of tokens a second, so one second is about one token,
/// and it matches the `Retry-After` that a 503 sends.
pub const MINT_BACKOFF: Duration = Duration::from_secs(1);

/// The cache key for a caller.
///
/// IPv4 (and IPv4-mapped IPv6) callers are keyed by address: `<ip>-token`.
/// IPv6 callers are keyed by their /64 (`2001:db8:1:2::/64-token`): one
/// subscriber holds a whole /64 and could otherwise mint a token per address.
pub fn cache_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let prefix = Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX));
            format!("{prefix}/64-token")
        }
        _ => format!("{ip}-token"),
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A token body this container has vended, kept to share under throttling.
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
    /// The freshest token minted or served here.
    freshest: Option<Remembered>,
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

    /// Vends a token for the caller at `ip`.
    pub async fn vend(&self, ip: IpAddr) -> Result<Vended, MintError> {
        self.vend_at(ip, now_epoch()).await
    }

    /// Vends a token for the caller at `ip`, judging expiry against `now` (epoch seconds).
    ///
    /// In order: the caller's own fresh cache entry; otherwise a new mint,
    /// stored for the caller and under [`SHARED_KEY`]. A fresh token vended to
    /// another caller is handed out instead of minting when the cache cannot
    /// be read (a broken cache must not turn every request into a mint), while
    /// the token service is backing off, and when a mint is refused for rate.
    /// Only when no fresh token exists anywhere is the rate limit the caller's
    /// answer.
    pub async fn vend_at(&self, ip: IpAddr, now: u64) -> Result<Vended, MintError> {
        let key = cache_key(ip);
        let mut call = Calls {
            budget: self.bounds.cache_budget,
            timings: CallTimings::default(),
        };
        if let Some(body) = self.served_to(&key, now) {
            return Ok(Vended {
                body,
                outcome: Outcome::Hit,
                cause: None,
                timings: call.timings,
            });
        }

        let mut cache_problem = match call.get(&self.cache, &key).await {
            Ok(Some(cached)) => match fresh(&cached, now) {
                Some(exp) => {
                    self.remember_for(&key, &cached, exp, now);
                    return Ok(Vended {
                        body: cached,
                        outcome: Outcome::Hit,
                        cause: None,
                        timings: call.timings,
                    });
                }
                // A corrupt or nearly expired entry is a miss; the set below overwrites it.
                None => None,
            },
            Ok(None) => None,
            // A refused key is not cache trouble: sharing would hide it until
            // every remembered token expired. Report it so the clients are rebuilt.
            Err(CacheError::KeyRejected) => return Err(MintError::KeyRejected),
            Err(e) => {
                let problem = format!("get: {e}");
                if let Some(shared) = self.fresh_in_memory(now) {
                    // The cache is in trouble: don't add a set to its load.
                    self.remember_for(&key, &shared.body, shared.exp, now);
                    return Ok(Vended {
                        body: shared.body,
                        outcome: Outcome::Shared,
                        cause: Some(format!("{problem}; shared a token from memory")),
                        timings: call.timings,
                    });
                }
                Some(problem)
            }
        };

        if self.mint_backing_off() {
            if let Some(shared) = self.fresh_in_memory(now) {
                let cause =
                    "token service backing off after a throttled mint; shared a token from memory";
                return Ok(self.share(&mut call, &key, shared, now, cause).await);
            }
        }

        let started = Instant::now();
        let minted =
            tokio::time::timeout(self.bounds.mint_timeout, self.minter.mint(self.token_ttl)).await;
        call.timings.mint = Some(started.elapsed());
        let token = match minted.map_err(|_| MintError::Timeout)? {
            Ok(token) => token,
            Err(MintError::RateLimited) => {
                self.back_off_minting();
                return match self.fresh_anywhere(&mut call, now).await {
                    Some((shared, from)) => {
                        let cause = format!("mint rate-limited; shared a token from {from}");
                        Ok(self.share(&mut call, &key, shared, now, &cause).await)
                    }
                    None => Err(MintError::RateLimited),
                };
            }
            Err(e) => return Err(e),
        };
        let body = serde_json::to_string(&token)
            .map_err(|_| MintError::Failed("could not encode the vended token".into()))?;
        self.remember_for(&key, &body, token.exp, now);

        let ttl = self.ttl_for(token.exp, now);
        let (own, shared) = call
            .set_both(&self.cache, (&key, SHARED_KEY), &body, ttl)
            .await;
        let problems = [
            own.err().map(|e| e.to_string()),
            shared.err().map(|e| format!("{e} ({SHARED_KEY})")),
        ];
        for problem in problems.into_iter().flatten() {
            let problem = format!("set: {problem}");
            cache_problem = Some(match cache_problem {
                Some(earlier) => format!("{earlier}; {problem}"),
                None => problem,
            });
        }

        Ok(Vended {
            body,
            outcome: if cache_problem.is_some() {
                Outcome::Degraded
            } else {
                Outcome::Miss
            },
            cause: cache_problem,
            timings: call.timings,
        })
    }

    /// Hands `shared` to the caller and stores it under the caller's key, so
    /// that the caller's next visit is a plain hit.
    async fn share(
        &self,
        call: &mut Calls,
        key: &str,
        shared: Remembered,
        now: u64,
        cause: &str,
    ) -> Vended {
        self.remember_for(key, &shared.body, shared.exp, now);
        let ttl = self.ttl_for(shared.exp, now);
        let cause = match call.set(&self.cache, key, &shared.body, ttl).await {
            Ok(()) => cause.to_string(),
            Err(e) => format!("{cause}; set: {e}"),
        };
        Vended {
            body: shared.body,
            outcome: Outcome::Shared,
            cause: Some(cause),
            timings: call.timings,
        }
    }

    /// A fresh token from this container's memory, or else from the cache's
    /// shared key; with where it came from, for the log.
    async fn fresh_anywhere(
        &self,
        call: &mut Calls,
        now: u64,
    ) -> Option<(Remembered, &'static str)> {
        if let Some(t) = self.fresh_in_memory(now) {
            return Some((t, "memory"));
        }
        let body = call.get(&self.cache, SHARED_KEY).await.ok().flatten()?;
        let exp = fresh(&body, now)?;
        self.remember(&body, exp);
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

    /// Keeps `body` if it outlives the freshest token remembered so far.
    fn remember(&self, body: &str, exp: u64) {
        let mut memory = self.memory();
        if memory.freshest.as_ref().is_none_or(|t| t.exp < exp) {
            memory.freshest = Some(Remembered {
                body: body.to_string(),
                exp,
            });
        }
    }

    /// Remembers that the caller with cache key `key` was given `body` (and
    /// keeps it as the freshest token if it is).
    fn remember_for(&self, key: &str, body: &str, exp: u64, now: u64) {
        self.remember(body, exp);
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

    fn fresh_in_memory(&self, now: u64) -> Option<Remembered> {
        self.memory()
            .freshest
            .clone()
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

/// The cache calls of one request: they share one time budget, and their
/// durations are summed per kind for the log line.
struct Calls {
    budget: Duration,
    timings: CallTimings,
}

impl Calls {
    async fn get(
        &mut self,
        cache: &impl TokenCache,
        key: &str,
    ) -> Result<Option<String>, CacheError> {
        within(&mut self.budget, &mut self.timings.get, cache.get(key)).await
    }

    async fn set(
        &mut self,
        cache: &impl TokenCache,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        within(
            &mut self.budget,
            &mut self.timings.set,
            cache.set(key, value, ttl),
        )
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
        let both = async {
            Ok(tokio::join!(
                cache.set(first, value, ttl),
                cache.set(second, value, ttl)
            ))
        };
        match within(&mut self.budget, &mut self.timings.set, both).await {
            Ok(results) => results,
            Err(e) => (Err(e.clone()), Err(e)),
        }
    }
}

/// Runs a cache call within what is left of the request's cache budget,
/// charges the budget the time it took and adds that time to `took`.
async fn within<T>(
    budget: &mut Duration,
    took: &mut Option<Duration>,
    call: impl Future<Output = Result<T, CacheError>>,
) -> Result<T, CacheError> {
    if budget.is_zero() {
        return Err(CacheError::Timeout);
    }
    let started = Instant::now();
    let result = tokio::time::timeout(*budget, call).await;
    let elapsed = started.elapsed();
    *took = Some(took.unwrap_or_default() + elapsed);
    *budget = budget.saturating_sub(elapsed);
    result.unwrap_or(Err(CacheError::Timeout))
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
    use std::sync::Arc;

    const TOKEN_TTL: Duration = Duration::from_secs(3600);
    const CACHE_TTL: Duration = Duration::from_secs(3300);

    struct Rig {
        cache: Arc<MemoryCache>,
        minter: Arc<CountingMinter>,
        vendor: Vendor<Arc<MemoryCache>, Arc<CountingMinter>>,
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn parse(body: &str) -> VendedToken {
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test]
    async fn miss_mints_a_token_and_caches_that_exact_body() {
        let r = rig();
        let before = now_epoch();
        let vended = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
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
        let vended = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Hit);
        assert_eq!(vended.body, cached, "byte for byte, spacing included");
        assert_eq!(r.minter.calls(), 0);
        assert_eq!(r.cache.sets(), 0);
    }

    #[tokio::test]
    async fn same_ip_gets_the_same_token_and_different_ips_different_tokens() {
        let r = rig();
        let a1 = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
        let a2 = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
        let b = r.vendor.vend(ip("203.0.113.20")).await.unwrap();
        assert_eq!(a1.body, a2.body);
        assert_eq!(a2.outcome, Outcome::Hit);
        assert_ne!(parse(&a1.body).token, parse(&b.body).token);
        assert_eq!(r.minter.calls(), 2);
    }

    #[test]
    fn ipv6_callers_are_keyed_by_their_64_and_ipv4_by_address() {
        assert_eq!(
            cache_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            "2001:db8:1:2::/64-token"
        );
        assert_eq!(cache_key(ip("2001:DB8:0:0:0:0:0:5")), "2001:db8::/64-token");
        assert_eq!(cache_key(ip("203.0.113.10")), "203.0.113.10-token");
        assert_eq!(cache_key(ip("::ffff:10.0.0.1")), "::ffff:10.0.0.1-token");
        assert_eq!(cache_key(ip("::1")), "::/64-token");
    }

    #[tokio::test]
    async fn two_addresses_in_one_ipv6_64_get_one_token_from_one_mint() {
        let r = rig();
        let a = r.vendor.vend(ip("2001:db8:1:2::a")).await.unwrap();
        let b = r.vendor.vend(ip("2001:db8:1:2:ffff::b")).await.unwrap();
        let other = r.vendor.vend(ip("2001:db8:1:3::a")).await.unwrap();
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
            let vended = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
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
        let vended = r.vendor.vend_at(ip("203.0.113.10"), now).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Miss);
        assert_ne!(parse(&vended.body).token, "old");

        r.cache.insert(
            "203.0.113.10-token",
            &format!(r#"{{"token":"old","exp":{}}}"#, now + 61),
        );
        let vended = r.vendor.vend_at(ip("203.0.113.10"), now).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Hit);
    }

    #[tokio::test]
    async fn a_failing_cache_get_still_vends_and_is_degraded() {
        let r = rig();
        r.cache.on_get(Behaviour::Fail);
        let vended = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
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
        let vended = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
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
        let vended = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Degraded);
        assert_eq!(started.elapsed(), Bounds::default().cache_budget);
        assert_eq!(r.cache.sets(), 0, "no budget left: the set is skipped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_set_is_cut_off_within_the_budget() {
        let r = rig();
        r.cache.on_set(Behaviour::Hang);
        let started = Instant::now();
        let vended = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Degraded);
        assert!(started.elapsed() <= Bounds::default().cache_budget);
        assert_eq!(r.cache.sets(), 2, "the caller's key and the shared key");
    }

    #[tokio::test]
    async fn mint_failure_is_an_error_and_stores_nothing() {
        let r = rig();
        r.minter.on_mint(Behaviour::Fail);
        assert!(matches!(
            r.vendor.vend(ip("203.0.113.10")).await,
            Err(MintError::Failed(_))
        ));
        assert_eq!(r.cache.sets(), 0);
    }

    #[tokio::test]
    async fn rate_limited_mint_is_reported_as_such() {
        let r = rig();
        r.minter.on_mint(Behaviour::Throttle);
        assert_eq!(
            r.vendor.vend(ip("203.0.113.10")).await,
            Err(MintError::RateLimited)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_minter_times_out_after_the_mint_bound() {
        let r = rig();
        r.minter.on_mint(Behaviour::Hang);
        let started = Instant::now();
        assert_eq!(
            r.vendor.vend(ip("203.0.113.10")).await,
            Err(MintError::Timeout)
        );
        assert_eq!(started.elapsed(), Bounds::default().mint_timeout);
    }

    fn token_json(token: &str, exp: u64) -> String {
        format!(r#"{{"token":"{token}","exp":{exp}}}"#)
    }

    #[tokio::test]
    async fn a_miss_also_writes_the_shared_key() {
        let r = rig();
        let vended = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
        let (shared, ttl) = r.cache.entry(SHARED_KEY).unwrap();
        assert_eq!(shared, vended.body);
        assert_eq!(ttl, CACHE_TTL);
    }

    #[tokio::test]
    async fn a_throttled_mint_shares_the_freshest_token_in_memory_under_the_callers_key() {
        let r = rig();
        let first = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
        r.minter.on_mint(Behaviour::Throttle);
        let shared = r.vendor.vend(ip("198.51.100.7")).await.unwrap();
        assert_eq!(shared.outcome, Outcome::Shared);
        assert_eq!(shared.body, first.body);
        assert!(shared.cause.unwrap().contains("memory"));
        let (stored, ttl) = r.cache.entry("198.51.100.7-token").unwrap();
        assert_eq!(stored, first.body, "the caller's next visit is a plain hit");
        assert!(ttl <= CACHE_TTL);
        let again = r.vendor.vend(ip("198.51.100.7")).await.unwrap();
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
        let vended = r.vendor.vend_at(ip("203.0.113.10"), now).await.unwrap();
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
            r.vendor.vend(ip("203.0.113.10")).await,
            Err(MintError::RateLimited)
        );
        assert!(r.cache.entry("203.0.113.10-token").is_none());
        assert_eq!(r.minter.calls(), 1);
    }

    #[tokio::test]
    async fn a_token_within_the_refresh_margin_is_never_shared() {
        let r = rig();
        let first = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
        let exp = parse(&first.body).exp;
        // The shared key holds the same token; both it and memory are now at the margin.
        r.minter.on_mint(Behaviour::Throttle);
        assert_eq!(
            r.vendor.vend_at(ip("198.51.100.7"), exp - 60).await,
            Err(MintError::RateLimited)
        );
        // One second earlier, the same token is still fresh enough to share.
        let shared = r
            .vendor
            .vend_at(ip("198.51.100.8"), exp - 61)
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
            r.vendor.vend_at(ip("203.0.113.10"), now).await,
            Err(MintError::RateLimited)
        );
    }

    #[tokio::test]
    async fn a_failed_get_with_a_fresh_token_in_memory_does_not_mint() {
        let r = rig();
        let first = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
        r.cache.on_get(Behaviour::Fail);
        let vended = r.vendor.vend(ip("198.51.100.7")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Shared);
        assert_eq!(vended.body, first.body);
        assert!(vended.cause.unwrap().starts_with("get:"));
        assert_eq!(r.minter.calls(), 1, "cache trouble did not become a mint");
    }

    #[tokio::test]
    async fn a_key_refused_by_the_cache_is_reported_not_hidden_by_sharing() {
        let r = rig();
        r.vendor.vend(ip("203.0.113.10")).await.unwrap();
        r.cache.on_get(Behaviour::Reject);
        assert_eq!(
            r.vendor.vend(ip("198.51.100.7")).await,
            Err(MintError::KeyRejected)
        );
        assert_eq!(r.minter.calls(), 1);
    }

    #[tokio::test]
    async fn a_hit_is_remembered_for_sharing() {
        let r = rig();
        let cached = token_json("cached-token", now_epoch() + 900);
        r.cache.insert("203.0.113.10-token", &cached);
        assert_eq!(
            r.vendor.vend(ip("203.0.113.10")).await.unwrap().outcome,
            Outcome::Hit
        );
        r.minter.on_mint(Behaviour::Throttle);
        let shared = r.vendor.vend(ip("198.51.100.7")).await.unwrap();
        assert_eq!(shared.body, cached);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_throttled_mint_the_token_service_is_left_alone_for_the_back_off() {
        let r = rig();
        r.vendor.vend(ip("203.0.113.1")).await.unwrap();
        r.minter.on_mint(Behaviour::Throttle);
        let shared = r.vendor.vend(ip("203.0.113.2")).await.unwrap();
        assert_eq!(shared.outcome, Outcome::Shared);
        assert_eq!(r.minter.calls(), 2);

        r.minter.on_mint(Behaviour::Work);
        tokio::time::advance(MINT_BACKOFF - Duration::from_millis(1)).await;
        let quiet = r.vendor.vend(ip("203.0.113.3")).await.unwrap();
        assert_eq!(quiet.outcome, Outcome::Shared);
        assert!(quiet.cause.unwrap().contains("backing off"));
        assert_eq!(r.minter.calls(), 2, "no call during the back-off");

        tokio::time::advance(Duration::from_millis(1)).await;
        let minted = r.vendor.vend(ip("203.0.113.4")).await.unwrap();
        assert_eq!(minted.outcome, Outcome::Miss);
        assert_eq!(r.minter.calls(), 3, "minting resumes after the back-off");
    }

    #[tokio::test(start_paused = true)]
    async fn the_back_off_does_not_hold_back_a_caller_with_nothing_to_share() {
        let r = rig();
        r.minter.on_mint(Behaviour::Throttle);
        assert!(r.vendor.vend(ip("203.0.113.1")).await.is_err());
        r.minter.on_mint(Behaviour::Work);
        let vended = r.vendor.vend(ip("203.0.113.2")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Miss);
        assert_eq!(r.minter.calls(), 2);
    }

    #[tokio::test]
    async fn a_caller_coming_back_to_this_container_is_answered_from_memory() {
        let r = rig();
        let now = now_epoch();
        let first = r.vendor.vend_at(ip("203.0.113.10"), now).await.unwrap();
        let again = r
            .vendor
            .vend_at(ip("203.0.113.10"), now + 10)
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
        r.vendor.vend_at(ip("203.0.113.10"), later).await.unwrap();
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
                .vend_at(ip("203.0.113.10"), now)
                .await
                .unwrap()
                .body,
            cached
        );
        let vended = r
            .vendor
            .vend_at(ip("203.0.113.10"), now + 40)
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
            let caller = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            r.vendor.vend_at(caller, now).await.unwrap();
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
