//! Dead connections: which timeouts abandon a connection, and which (a slow, live cache) do not.

use super::*;

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
