//! Signed-in callers and scopes: per-user tokens, never shared.

use super::*;

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
