//! The two ports vending talks through: [`TokenCache`] (where tokens are kept
//! between requests) and [`TokenMinter`] (where new ones come from).
//!
//! Momento implements both in production (`crate::momento`), in-memory
//! doubles in tests (`crate::doubles`). Nothing here decides anything.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::caller::Caller;
use crate::error::{CacheError, MintError};
use crate::token::VendedToken;

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
impl<T: TokenCache> TokenCache for Arc<T> {
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

impl<T: TokenMinter> TokenMinter for Arc<T> {
    async fn mint(&self, caller: &Caller, valid_for: Duration) -> Result<VendedToken, MintError> {
        (**self).mint(caller, valid_for).await
    }

    fn reconnect(&self, opened_before: Instant) {
        (**self).reconnect(opened_before)
    }
}
