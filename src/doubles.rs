//! In-memory doubles of [`TokenCache`] and [`TokenMinter`], for unit tests and
//! benchmarks of the vending logic and the HTTP mapping.
//!
//! They record what they were asked and can be told to fail or hang, so tests
//! can check both the decisions of the vending logic and its time bounds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::caller::Caller;
use crate::error::{CacheError, InitError, MintError};
use crate::token::{now_epoch, VendedToken};
use crate::vending::{Initializer, TokenCache, TokenMinter, Vendor};

/// A scope policy the tests share: customers subscribe to their own order
/// topic; `staff` publish and subscribe everywhere; `drivers` publish positions.
pub const EXAMPLE_SCOPES: &str = r#"{
    "default": [{"role": "subscribe", "cache": "pizza", "topic": "orders-{sub}"}],
    "groups": {
        "staff": [{"role": "publish-subscribe", "cache": "pizza", "topic": "*"}],
        "drivers": [{"role": "publish", "cache": "pizza", "topic": "positions"}]
    }
}"#;

/// What a double does when called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behaviour {
    #[default]
    Work,
    Fail,
    /// Never answers (the caller's timeout must fire).
    Hang,
    /// Answers "rate limited" (minter only).
    Throttle,
    /// Succeeds without storing anything (cache set only): every get misses.
    Discard,
    /// Refuses the API key.
    Reject,
    /// Answers "cache not found" (cache only; the cache is named `pizza`).
    Missing,
    /// Answers "permission denied" (minter only): the key may not mint.
    Deny,
    /// Works, but only after this long (a slow, live Momento).
    Slow(Duration),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A cache held in a `HashMap`. TTLs are recorded, not enforced.
#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (String, Duration)>>,
    get_behaviour: Mutex<Behaviour>,
    set_behaviour: Mutex<Behaviour>,
    gets: AtomicU64,
    sets: AtomicU64,
    reconnects: AtomicU64,
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, key: &str, value: &str) {
        lock(&self.entries).insert(key.into(), (value.into(), Duration::ZERO));
    }

    /// The stored value and its TTL.
    pub fn entry(&self, key: &str) -> Option<(String, Duration)> {
        lock(&self.entries).get(key).cloned()
    }

    pub fn on_get(&self, behaviour: Behaviour) {
        *lock(&self.get_behaviour) = behaviour;
    }

    pub fn on_set(&self, behaviour: Behaviour) {
        *lock(&self.set_behaviour) = behaviour;
    }

    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    pub fn sets(&self) -> u64 {
        self.sets.load(Ordering::SeqCst)
    }

    /// How many times vending told the cache to leave its connections.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::SeqCst)
    }
}

async fn act(behaviour: Behaviour) -> Result<(), CacheError> {
    match behaviour {
        Behaviour::Work | Behaviour::Discard => Ok(()),
        Behaviour::Slow(wait) => {
            tokio::time::sleep(wait).await;
            Ok(())
        }
        Behaviour::Fail | Behaviour::Throttle | Behaviour::Deny => {
            Err(CacheError::Failed("injected failure".into()))
        }
        Behaviour::Reject => Err(CacheError::KeyRejected),
        Behaviour::Missing => Err(CacheError::CacheNotFound("pizza".into())),
        Behaviour::Hang => std::future::pending().await,
    }
}

impl TokenCache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let behaviour = *lock(&self.get_behaviour);
        act(behaviour).await?;
        Ok(lock(&self.entries).get(key).map(|(v, _)| v.clone()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        self.sets.fetch_add(1, Ordering::SeqCst);
        let behaviour = *lock(&self.set_behaviour);
        act(behaviour).await?;
        if behaviour != Behaviour::Discard {
            lock(&self.entries).insert(key.into(), (value.into(), ttl));
        }
        Ok(())
    }

    fn reconnect(&self, _opened_before: tokio::time::Instant) {
        self.reconnects.fetch_add(1, Ordering::SeqCst);
    }
}

/// A minter that hands out `minted-<n>` tokens expiring `valid_for` from now.
#[derive(Default)]
pub struct CountingMinter {
    minted: AtomicU64,
    behaviour: Mutex<Behaviour>,
    lifetimes: Mutex<Vec<Duration>>,
    callers: Mutex<Vec<Caller>>,
    reconnects: AtomicU64,
}

impl CountingMinter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn on_mint(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    /// How many mints were attempted.
    pub fn calls(&self) -> usize {
        lock(&self.lifetimes).len()
    }

    /// The lifetimes asked for, in order.
    pub fn lifetimes(&self) -> Vec<Duration> {
        lock(&self.lifetimes).clone()
    }

    /// The callers minted for (scope and token id), in order.
    pub fn callers(&self) -> Vec<Caller> {
        lock(&self.callers).clone()
    }

    /// How many times vending told the minter to leave its connections.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::SeqCst)
    }
}

impl TokenMinter for CountingMinter {
    async fn mint(&self, caller: &Caller, valid_for: Duration) -> Result<VendedToken, MintError> {
        lock(&self.lifetimes).push(valid_for);
        lock(&self.callers).push(caller.clone());
        let behaviour = *lock(&self.behaviour);
        if let Behaviour::Slow(wait) = behaviour {
            tokio::time::sleep(wait).await;
        }
        match behaviour {
            Behaviour::Work | Behaviour::Discard | Behaviour::Slow(_) => {
                let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(VendedToken {
                    token: format!("minted-{n}"),
                    exp: now_epoch() + valid_for.as_secs(),
                })
            }
            Behaviour::Fail | Behaviour::Missing => {
                Err(MintError::Failed("injected failure".into()))
            }
            Behaviour::Throttle => Err(MintError::RateLimited),
            Behaviour::Reject => Err(MintError::KeyRejected),
            Behaviour::Deny => Err(MintError::PermissionDenied("injected denial".into())),
            Behaviour::Hang => std::future::pending().await,
        }
    }

    fn reconnect(&self, _opened_before: tokio::time::Instant) {
        self.reconnects.fetch_add(1, Ordering::SeqCst);
    }
}

/// An [`Initializer`] over shared doubles; it can be told to fail its first attempts.
#[derive(Default)]
pub struct DoublesInit {
    pub cache: Arc<MemoryCache>,
    pub minter: Arc<CountingMinter>,
    attempts: AtomicU64,
    failures_left: AtomicU64,
}

impl DoublesInit {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` init attempts fail.
    pub fn failing_first(n: u64) -> Self {
        DoublesInit {
            failures_left: AtomicU64::new(n),
            ..Self::default()
        }
    }

    /// Init attempts so far.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }
}

impl Initializer for DoublesInit {
    type Cache = Arc<MemoryCache>;
    type Minter = Arc<CountingMinter>;

    async fn init(&self) -> Result<Vendor<Self::Cache, Self::Minter>, InitError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(InitError("injected init failure".into()));
        }
        Ok(Vendor::new(
            self.cache.clone(),
            self.minter.clone(),
            Duration::from_secs(3600),
            Duration::from_secs(3300),
        ))
    }
}
