//! Sharing a fresh token when Momento cannot mint (throttled, failed, denied), the back-off, and INIT's warm-up.

use super::*;

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
