//! The outbound calls of one request: how long each may take, what they cost
//! (for the log line), and which timeouts are evidence of a dead connection.
//!
//! The cache calls of a request share one time budget ([`Bounds`]); the mint
//! has a bound of its own. A call that times out after a real wait marks its
//! connection suspect, so vending moves the clients to new connections; one
//! cut short because the budget was nearly spent proves nothing and marks
//! nothing ([`MIN_CONCLUSIVE_WAIT`]).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::ports::TokenCache;
use crate::error::CacheError;

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

/// The shortest unanswered wait that counts as evidence of a dead connection.
///
/// A live Momento answers a warm call in single-digit milliseconds in its
/// region and in about one round trip (under 100 ms) from another region; a
/// new connection's TLS handshake adds two more round trips. A call cut off
/// sooner than 250 ms, because the request's cache budget was nearly spent
/// by a slow get, says nothing about its connection: abandoning it would buy
/// every slow request a new handshake and make the slowness worse. Any wait
/// of 250 ms or more without a byte back is several round trips of silence,
/// which a live connection does not produce; the warm-up's 300 ms budget and
/// the mint's 1 s bound are both above it, so their timeouts still count.
pub const MIN_CONCLUSIVE_WAIT: Duration = Duration::from_millis(250);

/// How long each kind of outbound call of one vend took in total (absent: not made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallTimings {
    pub get: Option<Duration>,
    pub mint: Option<Duration>,
    pub set: Option<Duration>,
}

/// The outbound calls of one request: the cache calls share one time budget,
/// durations are summed per kind for the log line, and the start of the
/// earliest conclusive timeout is kept to abandon its connection.
pub(super) struct Calls {
    budget: Duration,
    pub(super) timings: CallTimings,
    timed_out_since: Option<Instant>,
}

impl Calls {
    pub(super) fn new(budget: Duration) -> Self {
        Calls {
            budget,
            timings: CallTimings::default(),
            timed_out_since: None,
        }
    }

    /// The start of the earliest call that timed out conclusively, taken
    /// (so the connections it suspects are abandoned once).
    pub(super) fn take_timed_out_since(&mut self) -> Option<Instant> {
        self.timed_out_since.take()
    }

    /// Records a call that started at `started` and timed out: evidence
    /// against its connection only after [`MIN_CONCLUSIVE_WAIT`].
    pub(super) fn timed_out(&mut self, started: Instant) {
        if started.elapsed() < MIN_CONCLUSIVE_WAIT {
            return;
        }
        self.timed_out_since = Some(self.timed_out_since.map_or(started, |t| t.min(started)));
    }

    /// Runs a cache call within what is left of the budget, charges the budget
    /// the time it took and adds that time to the kind's total (`took`). A call
    /// that times out (ours or the SDK's deadline) is reported to
    /// [`Calls::timed_out`]; one skipped because no budget is left marks nothing.
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

    pub(super) async fn get(
        &mut self,
        cache: &impl TokenCache,
        key: &str,
    ) -> Result<Option<String>, CacheError> {
        self.within(|t| &mut t.get, cache.get(key)).await
    }

    pub(super) async fn set(
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
    pub(super) async fn set_both(
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
