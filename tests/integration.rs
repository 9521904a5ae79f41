//! Integration tier: the real Momento SDK clients (through our adapters) against
//! the loopback Momento gRPC stand-in, and the real `aws-sdk-secretsmanager`
//! client against the loopback Secrets Manager.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use momento_protos::permission_messages::{
    permissions, permissions_type, ExplicitPermissions, Permissions, PermissionsType, TopicRole,
};
use momento_standin::{
    v1_api_key, Fault, MomentoStandin, Op, Plane, Recorded, Relay, SecretsStandin,
};
use secrecy::ExposeSecret;
use token_vending_machine::caller::Caller;
use token_vending_machine::caller::SHARED_KEY;
use token_vending_machine::config::Config;
use token_vending_machine::error::MintError;
use token_vending_machine::momento::{build_vendor, MomentoCache, MomentoMinter};
use token_vending_machine::outcome::Outcome;
use token_vending_machine::scope::{Scope, ScopePolicy};
use token_vending_machine::secrets::{read_momento_key, MomentoKey};
use token_vending_machine::token::{now_epoch, VendedToken};
use token_vending_machine::vending::{Bounds, Vendor};

const SECRET: &str = "integration-secret-key";

fn config(standin: &MomentoStandin, extra: &[(&str, &str)]) -> Config {
    let url = standin.url();
    let key = v1_api_key(SECRET, "momento.localhost");
    let mut vars: Vec<(String, String)> = vec![
        ("MOMENTO_API_KEY".into(), key),
        ("MOMENTO_ENDPOINT_OVERRIDE".into(), url),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    // Later entries win (an extra can replace a default above).
    Config::from_lookup(|name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

fn vendor_with_key(
    standin: &MomentoStandin,
    key: &str,
    extra: &[(&str, &str)],
) -> Vendor<MomentoCache, MomentoMinter> {
    let key = MomentoKey {
        api_key: key.into(),
        endpoint: None,
    };
    build_vendor(&config(standin, extra), &key).unwrap()
}

fn vendor(standin: &MomentoStandin) -> Vendor<MomentoCache, MomentoMinter> {
    vendor_with_key(standin, &v1_api_key(SECRET, "momento.localhost"), &[])
}

async fn standin() -> MomentoStandin {
    MomentoStandin::start(SECRET).await.unwrap()
}

/// An anonymous caller of the seed's scope at `s`.
fn ip(s: &str) -> Caller {
    let address: IpAddr = s.parse().unwrap();
    Caller::anonymous(address, Scope::subscribe_all("pizza"), "pizza")
}

/// The exact scope the function must ask for: one permission, subscribe-only, all topics of `cache`.
fn expected_scope(cache: &str) -> Permissions {
    use permissions_type::{topic_permissions, CacheSelector, TopicPermissions};
    Permissions {
        kind: Some(permissions::Kind::Explicit(ExplicitPermissions {
            permissions: vec![PermissionsType {
                kind: Some(permissions_type::Kind::TopicPermissions(TopicPermissions {
                    role: TopicRole::TopicReadOnly as i32,
                    cache: Some(topic_permissions::Cache::CacheSelector(CacheSelector {
                        kind: Some(permissions_type::cache_selector::Kind::CacheName(
                            cache.to_string(),
                        )),
                    })),
                    topic: Some(topic_permissions::Topic::AllTopics(
                        permissions_type::All {},
                    )),
                })),
            }],
        })),
    }
}

#[tokio::test]
async fn miss_mints_the_exact_scope_and_caches_with_the_exact_key_and_ttl() {
    let standin = standin().await;
    let vendor = vendor(&standin);
    let before = now_epoch();
    let vended = vendor.vend(&ip("203.0.113.10")).await.unwrap();
    assert_eq!(vended.outcome, Outcome::Miss);
    let token: VendedToken = serde_json::from_str(&vended.body).unwrap();

    let recorded = standin.recorded();
    assert_eq!(recorded.len(), 4, "{recorded:?}");
    assert_eq!(
        recorded[0],
        Recorded::Get {
            cache: "pizza".into(),
            key: b"203.0.113.10-token".to_vec()
        }
    );
    assert_eq!(
        recorded[1],
        Recorded::Mint {
            valid_for_seconds: Some(3600),
            permissions: Some(expected_scope("pizza")),
            token_id: String::new(),
        }
    );
    // The caller's key and the shared key, written side by side (either order).
    for key in ["203.0.113.10-token", SHARED_KEY] {
        let set = Recorded::Set {
            cache: "pizza".into(),
            key: key.as_bytes().to_vec(),
            value: vended.body.clone().into_bytes(),
            ttl_milliseconds: 3_300_000,
        };
        assert!(recorded[2..].contains(&set), "{key}: {recorded:?}");
    }

    // The token is the SDK's auth token string for the disposable key the service issued.
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&token.token)
        .unwrap();
    let inner: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(inner["endpoint"], "standin.momento.localhost");
    assert!(inner["api_key"]
        .as_str()
        .unwrap()
        .starts_with("standin-disposable-1-"));
    assert!(token.exp >= before + 3600 && token.exp <= now_epoch() + 3600);
}

#[tokio::test]
async fn second_vend_is_a_hit_served_from_the_real_cache() {
    let standin = standin().await;
    let vendor = vendor(&standin);
    let first = vendor.vend(&ip("203.0.113.10")).await.unwrap();
    let second = vendor.vend(&ip("203.0.113.10")).await.unwrap();
    assert_eq!(second.outcome, Outcome::Hit);
    assert_eq!(first.body, second.body);
    assert_eq!(standin.count(Op::Mint), 1);
    let other = vendor.vend(&ip("2001:db8::7")).await.unwrap();
    assert_ne!(other.body, first.body);
    assert!(standin.item("pizza", "2001:db8::/64-token").is_some());
}

#[tokio::test]
async fn configured_cache_name_and_ttls_reach_the_wire() {
    let standin = standin().await;
    let extra = [
        ("CACHE_NAME", "orders"),
        ("TOKEN_TTL_SECONDS", "900"),
        ("CACHE_TTL_SECONDS", "600"),
    ];
    let vendor = vendor_with_key(&standin, &v1_api_key(SECRET, "momento.localhost"), &extra);
    // The caller as the function builds it from this configuration.
    let identification = config(&standin, &extra).identification();
    // The order event's caller, 203.0.113.10, as the function identifies it.
    let event = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/rest-get-tokens-order.json"
    ))
    .unwrap();
    let caller = identification
        .identify(&lambda_http::request::from_str(&event).unwrap())
        .unwrap();
    assert_eq!(caller.cache_key, "203.0.113.10-token");
    vendor.vend(&caller).await.unwrap();
    let recorded = standin.recorded();
    assert!(matches!(&recorded[0], Recorded::Get { cache, .. } if cache == "orders"));
    assert!(
        matches!(&recorded[1], Recorded::Mint { valid_for_seconds: Some(900), permissions: Some(p), .. } if *p == expected_scope("orders"))
    );
    assert!(
        matches!(&recorded[2], Recorded::Set { cache, ttl_milliseconds: 600_000, .. } if cache == "orders")
    );
}

#[tokio::test]
async fn corrupt_cache_entries_are_overwritten() {
    let standin = standin().await;
    standin.put_item(
        "pizza",
        "203.0.113.10-token",
        b"{not json",
        Duration::from_secs(60),
    );
    let vendor = vendor(&standin);
    let vended = vendor.vend(&ip("203.0.113.10")).await.unwrap();
    assert_eq!(vended.outcome, Outcome::Miss);
    assert_eq!(
        standin.item("pizza", "203.0.113.10-token").unwrap(),
        vended.body.into_bytes()
    );
}

#[tokio::test]
async fn the_api_key_travels_in_the_authorization_header_and_a_refused_key_is_reported() {
    let standin = standin().await;
    let vendor = vendor_with_key(
        &standin,
        &v1_api_key("some-other-key", "momento.localhost"),
        &[],
    );
    let result = vendor.vend(&ip("203.0.113.10")).await.map_err(|e| e.error);
    assert_eq!(result, Err(MintError::KeyRejected));
    let recorded = standin.recorded();
    assert!(!recorded.is_empty());
    assert!(
        recorded
            .iter()
            .all(|r| matches!(r, Recorded::Unauthenticated { .. })),
        "{recorded:?}"
    );
}

#[tokio::test]
async fn failing_cache_still_vends_degraded() {
    let standin = standin().await;
    standin.inject(Op::Get, Fault::Status(tonic::Code::Unavailable));
    standin.inject(Op::Set, Fault::Status(tonic::Code::Internal));
    let vended = vendor(&standin).vend(&ip("203.0.113.10")).await.unwrap();
    assert_eq!(vended.outcome, Outcome::Degraded);
    assert_eq!(standin.count(Op::Mint), 1);
    assert_eq!(
        standin.count(Op::Set),
        2,
        "the caller's key and the shared key"
    );
}

#[tokio::test]
async fn a_hung_cache_delays_the_answer_by_about_a_second_at_most() {
    let standin = standin().await;
    standin.inject(Op::Get, Fault::Hang);
    standin.inject(Op::Set, Fault::Hang);
    let vendor = vendor(&standin);
    let started = Instant::now();
    let vended = vendor.vend(&ip("203.0.113.10")).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(vended.outcome, Outcome::Degraded);
    assert!(elapsed < Duration::from_millis(1250), "took {elapsed:?}");
}

#[tokio::test]
async fn a_slow_cache_within_the_budget_is_not_degraded() {
    let standin = standin().await;
    standin.inject(Op::Get, Fault::Delay(Duration::from_millis(300)));
    let vendor = vendor(&standin);
    let started = Instant::now();
    let vended = vendor.vend(&ip("203.0.113.10")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(vended.outcome, Outcome::Miss, "{:?}", vended.cause);
    assert_eq!(standin.count(Op::Set), 2);
}

#[tokio::test]
async fn throttled_mint_is_rate_limited() {
    let standin = standin().await;
    standin.inject(Op::Mint, Fault::Status(tonic::Code::ResourceExhausted));
    assert_eq!(
        vendor(&standin)
            .vend(&ip("203.0.113.10"))
            .await
            .map_err(|e| e.error),
        Err(MintError::RateLimited)
    );
}

#[tokio::test]
async fn mints_over_the_account_rate_limit_share_a_fresh_token_in_memory_then_in_the_cache() {
    let standin = standin().await;
    // One mint, then none: the bucket never refills, so the test does not race the clock.
    standin.limit(Plane::Control, 0, 1);
    let container = vendor(&standin);
    let first = container.vend(&ip("203.0.113.10")).await.unwrap();
    assert_eq!(first.outcome, Outcome::Miss);

    let shared = container.vend(&ip("203.0.113.20")).await.unwrap();
    assert_eq!(shared.outcome, Outcome::Shared, "{:?}", shared.cause);
    assert_eq!(shared.body, first.body);
    assert_eq!(
        standin.item("pizza", "203.0.113.20-token").unwrap(),
        first.body.clone().into_bytes()
    );

    // A fresh container has nothing in memory: it finds the shared key.
    let fresh_container = vendor(&standin);
    let from_cache = fresh_container.vend(&ip("203.0.113.30")).await.unwrap();
    assert_eq!(
        from_cache.outcome,
        Outcome::Shared,
        "{:?}",
        from_cache.cause
    );
    assert_eq!(from_cache.body, first.body);
    assert_eq!(standin.count(Op::Mint), 1);
    assert_eq!(
        standin.throttled(Op::Mint),
        2,
        "both refusals were the SDK's LimitExceeded"
    );
}

#[tokio::test]
async fn over_the_cache_rate_limit_a_fresh_token_in_memory_is_served_without_minting() {
    let standin = standin().await;
    let container = vendor(&standin);
    let first = container.vend(&ip("203.0.113.10")).await.unwrap();
    standin.limit(Plane::Data, 0, 0);
    let shared = container.vend(&ip("203.0.113.20")).await.unwrap();
    assert_eq!(shared.outcome, Outcome::Shared);
    assert_eq!(shared.body, first.body);
    assert_eq!(
        standin.count(Op::Mint),
        1,
        "a throttled cache did not become a mint"
    );
    assert_eq!(standin.throttled(Op::Get), 1);
}

#[tokio::test]
async fn failed_mint_is_an_error_and_nothing_is_cached() {
    let standin = standin().await;
    standin.inject(Op::Mint, Fault::Status(tonic::Code::Internal));
    let result = vendor(&standin)
        .vend(&ip("203.0.113.10"))
        .await
        .map_err(|e| e.error);
    assert!(matches!(result, Err(MintError::Failed(_))), "{result:?}");
    assert_eq!(standin.count(Op::Set), 0);
}

#[tokio::test]
async fn a_hung_token_service_fails_after_the_mint_bound() {
    let standin = standin().await;
    standin.inject(Op::Mint, Fault::Hang);
    let started = Instant::now();
    let result = vendor(&standin)
        .vend(&ip("203.0.113.10"))
        .await
        .map_err(|e| e.error);
    let elapsed = started.elapsed();
    assert_eq!(result, Err(MintError::Timeout));
    let bound = Bounds::default().mint_timeout;
    assert!(
        elapsed >= bound && elapsed < bound + Duration::from_millis(500),
        "took {elapsed:?}"
    );
}

// --- silent network faults, through a relay in front of the stand-in ---

/// A stand-in behind a relay, and a vendor pointed at the relay.
async fn behind_relay() -> (MomentoStandin, Relay, Vendor<MomentoCache, MomentoMinter>) {
    let standin = standin().await;
    let relay = Relay::start(standin.addr()).await.unwrap();
    let key = MomentoKey {
        api_key: v1_api_key(SECRET, "momento.localhost").into(),
        endpoint: None,
    };
    let cfg = config(&standin, &[("MOMENTO_ENDPOINT_OVERRIDE", &relay.url())]);
    let vendor = build_vendor(&cfg, &key).unwrap();
    (standin, relay, vendor)
}

#[tokio::test]
async fn a_dead_connection_costs_one_timeout_and_the_next_caller_mints_over_a_new_one() {
    let (standin, relay, vendor) = behind_relay().await;
    let first = vendor.vend(&ip("203.0.113.10")).await.unwrap();
    assert_eq!(first.outcome, Outcome::Miss);
    let before = relay.connections();
    assert!(before >= 1);

    // The flows go silent: no FIN, no RST, nothing.
    relay.silence_established();
    let started = Instant::now();
    let during = vendor.vend(&ip("203.0.113.11")).await.unwrap();
    let paid = started.elapsed();
    assert_eq!(during.outcome, Outcome::Shared, "{during:?}");
    assert_eq!(during.body, first.body);
    let budget = Bounds::default().cache_budget;
    assert!(
        paid >= budget && paid < budget + Duration::from_millis(100),
        "{paid:?}"
    );

    // The next new caller: new connections, a fresh mint, no timeout.
    let started = Instant::now();
    let after = vendor.vend(&ip("203.0.113.12")).await.unwrap();
    assert_eq!(after.outcome, Outcome::Miss, "{after:?}");
    assert!(started.elapsed() < budget / 2, "{:?}", started.elapsed());
    assert!(relay.connections() > before, "served over a new connection");
    assert_eq!(standin.count(Op::Mint), 2);
}

#[tokio::test]
async fn an_unreachable_momento_on_a_cold_container_answers_within_two_and_a_half_seconds() {
    let (standin, relay, vendor) = behind_relay().await;
    relay.blackhole_new(true);
    let started = Instant::now();
    let failed = vendor.vend(&ip("203.0.113.10")).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(failed.error, MintError::Timeout);
    assert!(
        took >= Bounds::default().worst_case() && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(standin.count(Op::Mint), 0, "nothing reached Momento");
    assert!(relay.connections() >= 2, "the mint tried a new connection");
}

#[tokio::test]
async fn a_slow_but_live_cache_keeps_its_connections_across_requests() {
    let (standin, relay, vendor) = behind_relay().await;
    assert_eq!(
        vendor.vend(&ip("203.0.113.10")).await.unwrap().outcome,
        Outcome::Miss
    );
    let opened = relay.connections();
    // Another region on a bad day: gets take 950 ms of the 1 s budget, sets 100 ms.
    standin.inject(Op::Get, Fault::Delay(Duration::from_millis(950)));
    standin.inject(Op::Set, Fault::Delay(Duration::from_millis(100)));
    for i in 0..6 {
        let vended = vendor.vend(&ip(&format!("198.51.100.{i}"))).await.unwrap();
        assert_eq!(vended.outcome, Outcome::Degraded, "{vended:?}");
    }
    assert_eq!(
        relay.connections(),
        opened,
        "six slow requests, no new connection"
    );
    assert_eq!(standin.count(Op::Mint), 7);
}

#[tokio::test]
async fn a_mint_the_key_may_not_make_shares_and_keeps_the_clients() {
    let (standin, relay, vendor) = behind_relay().await;
    let first = vendor.vend(&ip("203.0.113.10")).await.unwrap();
    let opened = relay.connections();
    standin.inject(Op::Mint, Fault::Status(tonic::Code::PermissionDenied));
    let shared = vendor.vend(&ip("198.51.100.7")).await.unwrap();
    assert_eq!(shared.body, first.body, "a fresh token is shared");
    assert_eq!(
        shared.outcome,
        Outcome::Misconfigured,
        "and the alarms count it"
    );
    assert!(
        shared.cause.as_deref().unwrap().contains("super-user key"),
        "{shared:?}"
    );
    // A user's token is never shared: the denial is the answer.
    let user = Caller::user("sub-a", Scope::subscribe_all("pizza"));
    let denied = vendor.vend(&user).await.unwrap_err();
    assert!(
        matches!(denied.error, MintError::PermissionDenied(_)),
        "{denied:?}"
    );
    // Healed: the next caller mints over the same connections.
    standin.heal(Op::Mint);
    let next = vendor.vend(&ip("198.51.100.8")).await.unwrap();
    assert_eq!(next.outcome, Outcome::Miss);
    assert_eq!(relay.connections(), opened, "no client was rebuilt");
}

// --- signed-in callers: what reaches the wire ---

/// (role, cache, topic) of one permission on the wire.
type WirePermission = (i32, String, String);

/// (role, cache, topic) of each permission in a recorded mint.
fn permission_triples(p: &Permissions) -> Vec<WirePermission> {
    use permissions_type::{topic_permissions, TopicPermissions};
    let Some(permissions::Kind::Explicit(explicit)) = &p.kind else {
        return Vec::new();
    };
    let mut out: Vec<WirePermission> = explicit
        .permissions
        .iter()
        .filter_map(|pt| match &pt.kind {
            Some(permissions_type::Kind::TopicPermissions(TopicPermissions {
                role,
                cache: Some(topic_permissions::Cache::CacheSelector(cs)),
                topic,
            })) => {
                let cache = match &cs.kind {
                    Some(permissions_type::cache_selector::Kind::CacheName(n)) => n.clone(),
                    _ => "?".into(),
                };
                let topic = match topic {
                    Some(topic_permissions::Topic::AllTopics(_)) => "*".to_string(),
                    Some(topic_permissions::Topic::TopicSelector(t)) => match &t.kind {
                        Some(permissions_type::topic_selector::Kind::TopicName(n)) => n.clone(),
                        _ => "?".into(),
                    },
                    None => "?".into(),
                };
                Some((*role, cache, topic))
            }
            _ => None,
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_signed_in_callers_token_id_and_granted_scope_reach_the_wire() {
    let standin = standin().await;
    let vendor = vendor(&standin);
    let policy = ScopePolicy::parse(
        r#"{"default": [{"role": "subscribe", "cache": "pizza", "topic": "orders-{sub}"}],
            "groups": {"staff": [{"role": "publish-subscribe", "cache": "pizza", "topic": "*"}],
                       "drivers": [{"role": "publish", "cache": "pizza", "topic": "positions"}]}}"#,
        true,
    )
    .unwrap();
    let customer = Caller::user("sub-123", policy.grant(Some("sub-123"), &[]));
    let staff = Caller::user(
        "sub-456",
        policy.grant(Some("sub-456"), &["staff".into(), "drivers".into()]),
    );
    vendor.vend(&customer).await.unwrap();
    vendor.vend(&staff).await.unwrap();
    let mints: Vec<(String, Vec<WirePermission>)> = standin
        .recorded()
        .into_iter()
        .filter_map(|r| match r {
            Recorded::Mint {
                permissions: Some(p),
                token_id,
                ..
            } => Some((token_id, permission_triples(&p))),
            _ => None,
        })
        .collect();
    assert_eq!(
        mints,
        [
            (
                "sub-123".to_string(),
                vec![(
                    TopicRole::TopicReadOnly as i32,
                    "pizza".to_string(),
                    "orders-sub-123".to_string()
                )]
            ),
            (
                "sub-456".to_string(),
                vec![
                    (
                        TopicRole::TopicReadWrite as i32,
                        "pizza".to_string(),
                        "*".to_string()
                    ),
                    (
                        TopicRole::TopicWriteOnly as i32,
                        "pizza".to_string(),
                        "positions".to_string()
                    ),
                ]
            ),
        ]
    );
    // Each user's token is cached under its own key, and nothing is shared.
    assert!(standin.item("pizza", &customer.cache_key).is_some());
    assert!(standin.item("pizza", &staff.cache_key).is_some());
    assert!(standin.item("pizza", SHARED_KEY).is_none());
}

fn secrets_client(url: &str) -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "example-secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(url)
        .http_client(token_vending_machine::secrets::https_client())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

#[tokio::test]
async fn the_secret_is_read_with_the_real_sdk_and_drives_real_clients() {
    let secrets = SecretsStandin::start().await.unwrap();
    let standin = standin().await;
    let api_key = v1_api_key(SECRET, "momento.localhost");
    secrets.put(
        "momento-secret",
        &serde_json::json!({ "momento": api_key }).to_string(),
    );
    let client = secrets_client(&secrets.url());

    let key = read_momento_key(&client, "momento-secret").await.unwrap();
    assert_eq!(key.api_key.expose_secret(), api_key);
    assert_eq!(secrets.reads(), 1);
    let vendor = build_vendor(&config(&standin, &[]), &key).unwrap();
    assert_eq!(
        vendor.vend(&ip("203.0.113.10")).await.unwrap().outcome,
        Outcome::Miss
    );
}

#[tokio::test]
async fn secret_failures_are_errors_that_do_not_echo_the_secret() {
    let secrets = SecretsStandin::start().await.unwrap();
    let client = secrets_client(&secrets.url());

    let missing = read_momento_key(&client, "absent").await.unwrap_err();
    assert!(missing.0.contains("absent"), "{missing}");

    secrets.put("malformed", "momento=sekrit-value");
    let malformed = read_momento_key(&client, "malformed").await.unwrap_err();
    assert!(!malformed.0.contains("sekrit"), "{malformed}");

    secrets.put("good", r#"{"momento": "sekrit-value"}"#);
    secrets.set_failing(true);
    assert!(read_momento_key(&client, "good").await.is_err());
    secrets.set_failing(false);
    assert_eq!(
        read_momento_key(&client, "good")
            .await
            .unwrap()
            .api_key
            .expose_secret(),
        "sekrit-value"
    );
}

#[tokio::test]
async fn v2_api_keys_need_an_endpoint() {
    let standin = standin().await;
    // A v2 key is a JWT whose claims carry "t": "g".
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"t":"g","id":"x"}"#);
    let v2 = format!("eyJhbGciOiJIUzI1NiJ9.{claims}.c2lnbmF0dXJl");
    let cfg = config(&standin, &[]);
    let without = MomentoKey {
        api_key: v2.clone().into(),
        endpoint: None,
    };
    let err = build_vendor(&cfg, &without)
        .err()
        .expect("a v2 key without endpoint is refused");
    assert!(err.0.contains("endpoint"), "{err}");
    assert!(!err.0.contains(&v2));
    let with = MomentoKey {
        api_key: v2.into(),
        endpoint: Some("cell-1.momento.localhost".into()),
    };
    assert!(build_vendor(&cfg, &with).is_ok());
}

#[tokio::test]
async fn a_cache_that_does_not_exist_is_reported_by_name_and_nothing_is_minted() {
    let standin = standin().await;
    standin.only_caches(&["some-other-cache"]);
    let failed = vendor(&standin)
        .vend(&ip("203.0.113.10"))
        .await
        .unwrap_err();
    assert_eq!(failed.error, MintError::CacheNotFound("pizza".into()));
    let message = failed.error.to_string();
    assert!(
        message.contains("pizza") && message.contains("does not exist"),
        "{message}"
    );
    assert_eq!(standin.count(Op::Mint), 0);
    assert_eq!(standin.count(Op::Set), 0);
}
