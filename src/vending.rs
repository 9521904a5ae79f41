//! The vending logic: reuse a caller's cached token or mint a new one.
//!
//! This module owns the decisions (what counts as a usable cached token, when
//! to mint, what is stored and for how long, how long each outbound call may
//! take) and nothing else. It talks to the outside world through two small
//! traits, [`TokenCache`] and [`TokenMinter`], so it is unit-tested with
//! in-memory doubles and driven in production by the Momento adapters.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

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

/// A cache call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheError {
    /// The call did not finish within the request's cache budget.
    Timeout,
    /// The cache answered with an error (the text is for logs only).
    Failed(String),
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::Timeout => f.write_str("cache call timed out"),
            CacheError::Failed(cause) => write!(f, "cache call failed: {cause}"),
        }
    }
}

/// A mint that did not produce a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintError {
    /// The token service throttled us; the caller should retry later.
    RateLimited,
    /// The token service did not answer in time.
    Timeout,
    /// The token service refused our API key (revoked or rotated): the
    /// clients must be rebuilt from a fresh read of the key.
    KeyRejected,
    /// Any other failure (the text is for logs only).
    Failed(String),
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MintError::RateLimited => f.write_str("token service rate limit exceeded"),
            MintError::Timeout => f.write_str("token service timed out"),
            MintError::KeyRejected => f.write_str("token service refused the API key"),
            MintError::Failed(cause) => write!(f, "token mint failed: {cause}"),
        }
    }
}

impl std::error::Error for MintError {}

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

/// How a request was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A usable token came from the cache.
    Hit,
    /// A new token was minted and stored.
    Miss,
    /// A new token was minted but the cache failed on the way (get or set).
    Degraded,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Degraded => "degraded",
        }
    }
}

/// How long each outbound call of one vend took (absent: not made).
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
    /// Why the request was degraded, for the log line.
    pub cache_problem: Option<String>,
    /// For the log line: where the time went.
    pub timings: CallTimings,
}

/// The cache key for a caller: `<canonical ip>-token`.
pub fn cache_key(ip: IpAddr) -> String {
    format!("{ip}-token")
}

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The vending machine: a cache, a minter and the lifetimes that bind them.
pub struct Vendor<C, M> {
    cache: C,
    minter: M,
    token_ttl: Duration,
    cache_ttl: Duration,
    bounds: Bounds,
}

impl<C: TokenCache, M: TokenMinter> Vendor<C, M> {
    pub fn new(cache: C, minter: M, token_ttl: Duration, cache_ttl: Duration) -> Self {
        Vendor {
            cache,
            minter,
            token_ttl,
            cache_ttl,
            bounds: Bounds::default(),
        }
    }

    /// Vends a token for the caller at `ip`.
    pub async fn vend(&self, ip: IpAddr) -> Result<Vended, MintError> {
        self.vend_at(ip, now_epoch()).await
    }

    /// Vends a token for the caller at `ip`, judging cached expiry against `now` (epoch seconds).
    pub async fn vend_at(&self, ip: IpAddr, now: u64) -> Result<Vended, MintError> {
        let key = cache_key(ip);
        let mut budget = self.bounds.cache_budget;
        let mut timings = CallTimings::default();

        let cached = within(&mut budget, &mut timings.get, self.cache.get(&key)).await;
        let mut cache_problem = match cached {
            Ok(Some(cached)) if still_fresh(&cached, now) => {
                return Ok(Vended {
                    body: cached,
                    outcome: Outcome::Hit,
                    cache_problem: None,
                    timings,
                })
            }
            // A corrupt or nearly expired entry is a miss; the set below overwrites it.
            Ok(_) => None,
            Err(e) => Some(format!("get: {e}")),
        };

        let started = Instant::now();
        let minted =
            tokio::time::timeout(self.bounds.mint_timeout, self.minter.mint(self.token_ttl)).await;
        timings.mint = Some(started.elapsed());
        let token = minted.map_err(|_| MintError::Timeout)??;
        let body = serde_json::to_string(&token)
            .map_err(|_| MintError::Failed("could not encode the vended token".into()))?;

        let stored = within(
            &mut budget,
            &mut timings.set,
            self.cache.set(&key, &body, self.cache_ttl),
        )
        .await;
        if let Err(e) = stored {
            let problem = format!("set: {e}");
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
            cache_problem,
            timings,
        })
    }
}

/// Runs a cache call within what is left of the request's cache budget,
/// charges the budget the time it took and records that time in `took`.
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
    *took = Some(elapsed);
    *budget = budget.saturating_sub(elapsed);
    result.unwrap_or(Err(CacheError::Timeout))
}

/// A cached value is reusable when it is a vended token that outlives the refresh margin.
fn still_fresh(cached: &str, now: u64) -> bool {
    serde_json::from_str::<VendedToken>(cached)
        .map(|t| !t.token.is_empty() && t.exp > now.saturating_add(REFRESH_MARGIN.as_secs()))
        .unwrap_or(false)
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

    #[tokio::test]
    async fn ipv6_keys_use_the_canonical_form() {
        let r = rig();
        r.vendor.vend(ip("2001:DB8:0:0:0:0:0:5")).await.unwrap();
        assert!(r.cache.entry("2001:db8::5-token").is_some());
        assert_eq!(cache_key(ip("::ffff:10.0.0.1")), "::ffff:10.0.0.1-token");
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
        assert!(vended.cache_problem.unwrap().starts_with("get:"));
        assert_eq!(parse(&vended.body).token, "minted-1");
        assert_eq!(r.cache.sets(), 1, "the fresh token is still stored");
    }

    #[tokio::test]
    async fn a_failing_cache_set_still_vends_and_is_degraded() {
        let r = rig();
        r.cache.on_set(Behaviour::Fail);
        let vended = r.vendor.vend(ip("203.0.113.10")).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Degraded);
        assert!(vended.cache_problem.unwrap().starts_with("set:"));
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
        assert_eq!(r.cache.sets(), 1);
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

    #[test]
    fn debug_of_a_vended_token_hides_the_token() {
        let t = VendedToken {
            token: "sekrit".into(),
            exp: 1,
        };
        assert!(!format!("{t:?}").contains("sekrit"));
    }
}
