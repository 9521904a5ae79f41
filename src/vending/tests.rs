//! The decisions, driven through in-memory doubles (`crate::doubles`).

use super::*;
use crate::doubles::{Behaviour, CountingMinter, MemoryCache};
use crate::scope::Scope;
use crate::token::REFRESH_MARGIN;
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
    assert_eq!(r.vendor.warm_up(Some(SHARED_KEY)).await, WarmUp::Reached);
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
    assert_eq!(r.vendor.warm_up(None).await, WarmUp::Reached);
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
    assert!(matches!(
        r.vendor.warm_up(Some(SHARED_KEY)).await,
        WarmUp::Unreached(_)
    ));
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
        assert!(r.vendor.memory.callers() <= MAX_REMEMBERED_CALLERS);
    }
}

#[tokio::test]
async fn debug_of_a_vend_hides_the_token() {
    let r = rig();
    let vended = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
    let token = parse(&vended.body).token;
    let shown = format!("{vended:?}");
    assert!(!shown.contains(&token), "{shown}");
    assert!(shown.contains("Miss"), "the rest is still shown: {shown}");
}

// --- a key that may not mint; a slow cache that is not dead ---

#[tokio::test]
async fn a_denied_mint_shares_a_fresh_token_keeps_the_clients_and_counts_as_misconfigured() {
    let r = rig();
    let first = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
    r.minter.on_mint(Behaviour::Deny);
    let shared = r.vendor.vend(&ip("198.51.100.7")).await.unwrap();
    assert_eq!(shared.body, first.body);
    assert_eq!(
        shared.outcome,
        Outcome::Misconfigured,
        "the alarms count it"
    );
    let cause = shared.cause.unwrap();
    assert!(cause.contains("super-user key"), "{cause}");
    assert!(cause.contains("shared a token from memory"), "{cause}");
    assert_eq!((r.cache.reconnects(), r.minter.reconnects()), (0, 0));
    // Memory is kept: the first caller is still answered without a call.
    let gets = r.cache.gets();
    let again = r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
    assert_eq!((again.outcome, r.cache.gets()), (Outcome::Hit, gets));
    // No back-off either: the next new caller asks again (the key may be fixed).
    r.minter.on_mint(Behaviour::Work);
    let minted = r.vendor.vend(&ip("198.51.100.8")).await.unwrap();
    assert_eq!(minted.outcome, Outcome::Miss);
}

#[tokio::test]
async fn a_denied_mint_with_nothing_to_share_is_the_denial() {
    let r = rig();
    r.minter.on_mint(Behaviour::Deny);
    assert!(matches!(
        r.error_for(&ip("203.0.113.10")).await,
        MintError::PermissionDenied(_)
    ));
    let user = Caller::user("sub-a", Scope::subscribe_all("pizza"));
    assert!(matches!(
        r.error_for(&user).await,
        MintError::PermissionDenied(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_slow_live_cache_keeps_its_connection_when_a_set_runs_out_of_budget() {
    let r = rig();
    // The get answers after 950 ms of the 1 s budget: the sets get 50 ms
    // and are cut off, which says nothing about the connection.
    r.cache.on_get(Behaviour::Slow(Duration::from_millis(950)));
    r.cache.on_set(Behaviour::Slow(Duration::from_millis(100)));
    for i in 0..6 {
        let vended = r.vendor.vend(&ip(&format!("203.0.113.{i}"))).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Degraded);
        assert!(vended.cause.unwrap().contains("timed out"));
    }
    assert_eq!((r.cache.reconnects(), r.minter.reconnects()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_after_the_conclusive_wait_still_abandons_the_connection() {
    let r = rig();
    // The get answers after 700 ms; the sets are then cut off after 300 ms,
    // longer than a live connection stays silent.
    r.cache.on_get(Behaviour::Slow(Duration::from_millis(700)));
    r.cache.on_set(Behaviour::Hang);
    r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
    assert_eq!((r.cache.reconnects(), r.minter.reconnects()), (1, 1));
    // Just under the threshold: kept.
    let r = rig();
    let left = MIN_CONCLUSIVE_WAIT - Duration::from_millis(1);
    r.cache
        .on_get(Behaviour::Slow(Bounds::default().cache_budget - left));
    r.cache.on_set(Behaviour::Hang);
    r.vendor.vend(&ip("203.0.113.10")).await.unwrap();
    assert_eq!(r.cache.reconnects(), 0);
}
