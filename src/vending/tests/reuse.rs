//! Reuse and minting: hits, misses, corrupt entries, cache and mint failures, and what a container remembers of its callers.

use super::*;

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
