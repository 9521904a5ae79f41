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
    /// Any other failure (the text is for logs only).
    Failed(String),
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MintError::RateLimited => f.write_str("token service rate limit exceeded"),
            MintError::Timeout => f.write_str("token service timed out"),
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

/// A successful vend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vended {
    /// The JSON body for the browser (`{"token": ..., "exp": ...}`).
    pub body: String,
    pub outcome: Outcome,
    /// Why the request was degraded, for the log line.
    pub cache_problem: Option<String>,
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

    pub fn with_bounds(mut self, bounds: Bounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// Vends a token for the caller at `ip`.
    pub async fn vend(&self, ip: IpAddr) -> Result<Vended, MintError> {
        self.vend_at(ip, now_epoch()).await
    }

    /// Vends a token for the caller at `ip`, judging cached expiry against `now` (epoch seconds).
    pub async fn vend_at(&self, ip: IpAddr, now: u64) -> Result<Vended, MintError> {
        let key = cache_key(ip);
        let mut budget = self.bounds.cache_budget;

        let mut cache_problem = match within(&mut budget, self.cache.get(&key)).await {
            Ok(Some(cached)) if still_fresh(&cached, now) => {
                return Ok(Vended {
                    body: cached,
                    outcome: Outcome::Hit,
                    cache_problem: None,
                })
            }
            // A corrupt or nearly expired entry is a miss; the set below overwrites it.
            Ok(_) => None,
            Err(e) => Some(format!("get: {e}")),
        };

        let token =
            match tokio::time::timeout(self.bounds.mint_timeout, self.minter.mint(self.token_ttl))
                .await
            {
                Ok(minted) => minted?,
                Err(_) => return Err(MintError::Timeout),
            };
        let body = serde_json::to_string(&token)
            .map_err(|_| MintError::Failed("could not encode the vended token".into()))?;

        if let Err(e) = within(&mut budget, self.cache.set(&key, &body, self.cache_ttl)).await {
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
        })
    }
}

/// Runs a cache call within what is left of the request's cache budget and
/// charges the time it took.
async fn within<T>(
    budget: &mut Duration,
    call: impl Future<Output = Result<T, CacheError>>,
) -> Result<T, CacheError> {
    if budget.is_zero() {
        return Err(CacheError::Timeout);
    }
    let started = Instant::now();
    let result = tokio::time::timeout(*budget, call).await;
    *budget = budget.saturating_sub(started.elapsed());
    result.unwrap_or(Err(CacheError::Timeout))
}

/// A cached value is reusable when it is a vended token that outlives the refresh margin.
fn still_fresh(cached: &str, now: u64) -> bool {
    serde_json::from_str::<VendedToken>(cached)
        .map(|t| !t.token.is_empty() && t.exp > now.saturating_add(REFRESH_MARGIN.as_secs()))
        .unwrap_or(false)
}
