//! Process tier: the real binary under a loopback Lambda Runtime API, with the
//! Momento gRPC and Secrets Manager stand-ins, fed the API Gateway events in
//! `events/` (the same files users pass to `cargo lambda invoke`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use momento_standin::{
    Answer, Fault, FunctionUnderTest, HttpAnswer, Op, Plane, Recorded, Relay, SecretsTransport,
    Standins,
};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_token-vending-machine"))
}

fn event(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name)
}

/// The function with its stand-ins, Secrets Manager over TLS as in production
/// (a CA made for this run, trusted through `SSL_CERT_FILE`).
async fn start(env: &[(&str, &str)]) -> FunctionUnderTest {
    start_after(env, |_| {}).await
}

/// Like [`start`], with the stand-ins set up by `before` first: the function
/// initialises during INIT, so what its first read must see is set before it
/// is spawned.
async fn start_after(env: &[(&str, &str)], before: impl FnOnce(&Standins)) -> FunctionUnderTest {
    let standins = Standins::start_with(SecretsTransport::Tls)
        .await
        .expect("stand-ins");
    before(&standins);
    FunctionUnderTest::start_with(binary(), env, &standins)
        .await
        .expect("function starts")
}

async fn call(f: &FunctionUnderTest, name: &str) -> HttpAnswer {
    let answer = f.invoke_file(&event(name)).await;
    HttpAnswer::from_answer(&answer)
        .unwrap_or_else(|| panic!("{name}: not an HTTP answer: {answer:?}"))
}

/// The generic 500: the caller learns nothing of the cause.
fn assert_opaque_500(a: &HttpAnswer) {
    assert_eq!(a.status, 500, "{a:?}");
    assert_common_headers(a);
    assert_eq!(
        a.json(),
        serde_json::json!({"message": "Something went wrong"})
    );
}

fn assert_common_headers(a: &HttpAnswer) {
    assert_eq!(a.header("access-control-allow-origin"), Some("*"), "{a:?}");
    assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
    assert_eq!(a.header("cache-control"), Some("no-store"), "{a:?}");
}

/// The JSON log lines with a `status` field: one per request.
/// Every JSON log line, parsed.
fn json_lines(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// The JSON log lines at `level` (`ERROR`, `WARN`, ...).
fn lines_at(logs: &str, level: &str) -> Vec<serde_json::Value> {
    json_lines(logs)
        .into_iter()
        .filter(|l| l["level"] == level)
        .collect()
}

fn request_lines(logs: &str) -> Vec<serde_json::Value> {
    json_lines(logs)
        .into_iter()
        .filter(|v| v["fields"]["status"].is_u64())
        .collect()
}

fn outcomes(logs: &str) -> Vec<String> {
    request_lines(logs)
        .iter()
        .map(|v| v["fields"]["outcome"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Everything that must never reach a log: the key, its inner secret, and every vended token.
fn assert_no_secrets_in(logs: &str, f_api_key: &str, tokens: &[String]) {
    assert!(!logs.contains(f_api_key), "the API key was logged");
    assert!(
        !logs.contains(momento_standin::harness::MOMENTO_SECRET),
        "the key's secret was logged"
    );
    assert!(
        !logs.contains("standin-disposable-"),
        "a disposable key was logged"
    );
    for t in tokens {
        assert!(!logs.contains(t.as_str()), "a vended token was logged");
    }
}

#[tokio::test]
async fn cold_then_warm_per_caller_tokens_secret_read_once() {
    let f = start(&[]).await;

    let cold = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(cold.status, 200, "{cold:?}");
    assert_common_headers(&cold);
    let token = cold.json();
    assert!(token["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(token["exp"].as_u64().unwrap() > token_vending_machine::token::now_epoch() + 3500);
    assert_eq!(f.secrets.reads(), 1);

    // Delete the secret: a warm container must not need it again.
    f.secrets.delete(momento_standin::harness::SECRET_NAME);

    let warm = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(warm.status, 200);
    assert_eq!(warm.token(), cold.token(), "same caller, same token");

    let admin = call(&f, "rest-get-tokens-admin.json").await;
    assert_eq!(admin.status, 200);
    assert_ne!(
        admin.json()["token"],
        token["token"],
        "different caller, different token"
    );

    let v2 = call(&f, "http-get-tokens.json").await;
    assert_eq!(v2.status, 200);
    assert_common_headers(&v2);
    assert_eq!(
        f.secrets.reads(),
        1,
        "the secret is read once per container"
    );
    assert_eq!(f.momento.count(Op::Mint), 3);

    // X-Forwarded-For in the order event names 198.51.100.99; only context IPs became keys.
    // The order caller's second visit was answered from this container's memory: no get.
    let keys: Vec<String> = f
        .momento
        .recorded()
        .iter()
        .filter_map(|r| match r {
            Recorded::Get { key, .. } => Some(String::from_utf8_lossy(key).into_owned()),
            _ => None,
        })
        .collect();
    // INIT's warm-up read of the shared key opened the cache connection first.
    assert_eq!(
        keys,
        [
            token_vending_machine::caller::SHARED_KEY,
            "203.0.113.10-token",
            "203.0.113.20-token",
            "2001:db8::/64-token"
        ]
    );

    let api_key = f.api_key.clone();
    let tokens = vec![
        token["token"].as_str().unwrap().to_string(),
        admin.json()["token"].as_str().unwrap().to_string(),
        v2.json()["token"].as_str().unwrap().to_string(),
    ];
    let logs = f.finish();
    assert_eq!(outcomes(&logs), ["miss", "hit", "miss", "miss"]);
    let lines = request_lines(&logs);
    for line in &lines {
        assert!(line["fields"]["latency_ms"].is_f64(), "{line}");
    }
    // A miss reports all three outbound calls; a hit from memory none.
    for call in ["get_ms", "mint_ms", "set_ms"] {
        assert!(
            lines[0]["fields"][call].is_f64(),
            "miss line lacks {call}: {}",
            lines[0]
        );
    }
    for call in ["get_ms", "mint_ms", "set_ms"] {
        assert!(lines[1]["fields"][call].is_null(), "{}", lines[1]);
    }
    assert_no_secrets_in(&logs, &api_key, &tokens);
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_the_process_keeps_serving() {
    let f = start(&[]).await;

    let post = call(&f, "rest-post-tokens.json").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, OPTIONS"));
    assert_common_headers(&post);

    let unknown = call(&f, "rest-unknown-path.json").await;
    assert_eq!(unknown.status, 404);
    assert_common_headers(&unknown);

    let no_ip = call(&f, "rest-missing-source-ip.json").await;
    assert_eq!(no_ip.status, 400);
    assert_common_headers(&no_ip);
    assert!(no_ip.json()["message"].is_string());

    let preflight = call(&f, "rest-options-tokens.json").await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET, OPTIONS")
    );

    let not_http = f.invoke_file(&event("scheduled-event.json")).await;
    assert!(matches!(not_http, Answer::Error(_)), "{not_http:?}");
    let garbage = f
        .runtime
        .invoke_raw(b"{ this is not json".to_vec(), Duration::from_secs(15))
        .await
        .expect("an answer");
    assert!(matches!(garbage, Answer::Error(_)), "{garbage:?}");

    let after = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(after.status, 200, "still serving after bad events");
    assert_eq!(
        f.momento.count(Op::Mint),
        1,
        "no token for rejected requests"
    );

    let logs = f.finish();
    assert_eq!(
        outcomes(&logs),
        ["rejected", "rejected", "rejected", "preflight", "miss"]
    );
    assert!(!logs.contains("panicked"), "{logs}");
}

#[tokio::test]
async fn a_failed_init_is_retried_on_the_next_request() {
    // Failing from the start: INIT's read fails too, and is not kept.
    let f = start_after(&[], |s| s.secrets.set_failing(true)).await;
    let first = call(&f, "rest-get-tokens-order.json").await;
    assert_opaque_500(&first);

    // The SDK retries a 500 itself before the init gives up.
    let failed_reads = f.secrets.reads();
    assert!(failed_reads >= 1);

    f.secrets.set_failing(false);
    let second = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(second.status, 200);
    assert_eq!(f.secrets.reads(), failed_reads + 1);
    let third = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(third.status, 200);
    assert_eq!(
        f.secrets.reads(),
        failed_reads + 1,
        "read exactly once per successful init"
    );

    let logs = f.finish();
    assert_eq!(outcomes(&logs), ["error", "miss", "hit"]);
    let error_line = &request_lines(&logs)[0];
    assert!(error_line["fields"]["cause"]
        .as_str()
        .unwrap()
        .contains("initialisation failed"));
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_a_warm_container() {
    let f = start(&[]).await;
    assert_eq!(call(&f, "rest-get-tokens-order.json").await.status, 200);
    assert_eq!(f.secrets.reads(), 1);

    // Rotate: Momento accepts only the new key, and the secret holds it.
    let new_secret = "rotated-momento-secret-4c3b2a";
    let new_key = momento_standin::v1_api_key(new_secret, "momento.localhost");
    f.momento.set_api_key(new_secret);
    f.secrets.put(
        momento_standin::harness::SECRET_NAME,
        &serde_json::json!({ "momento": new_key }).to_string(),
    );

    let refused = call(&f, "rest-get-tokens-admin.json").await;
    assert_eq!(refused.status, 500, "the old key is refused once");
    let recovered = call(&f, "rest-get-tokens-admin.json").await;
    assert_eq!(recovered.status, 200, "{recovered:?}");
    assert_eq!(f.secrets.reads(), 2, "the key was read again, once");

    let logs = f.finish();
    assert_eq!(outcomes(&logs), ["miss", "error", "miss"]);
    assert!(!logs.contains(new_secret) && !logs.contains(&new_key));
}

#[tokio::test]
async fn a_malformed_secret_is_a_500_and_does_not_leak() {
    let f = start_after(&[], |s| {
        s.secrets.put(
            momento_standin::harness::SECRET_NAME,
            "momento: sekrit-not-json",
        )
    })
    .await;
    let answer = call(&f, "rest-get-tokens-order.json").await;
    assert_opaque_500(&answer);
    let logs = f.finish();
    assert!(!logs.contains("sekrit"));
}

#[tokio::test]
async fn momento_faults_map_to_the_documented_answers() {
    let f = start(&[]).await;

    f.momento
        .inject(Op::Mint, Fault::Status(tonic::Code::ResourceExhausted));
    let throttled = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(throttled.status, 503);
    assert_eq!(throttled.header("retry-after"), Some("1"));
    assert_common_headers(&throttled);

    // A failed mint with nothing to share: worth retrying, so a 503 too.
    f.momento
        .inject(Op::Mint, Fault::Status(tonic::Code::Internal));
    let failed = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(failed.status, 503);
    assert_eq!(failed.header("retry-after"), Some("1"));
    assert_eq!(
        failed.json(),
        serde_json::json!({"message": token_vending_machine::http::UNAVAILABLE_MESSAGE})
    );
    assert!(
        !failed.body.contains("injected"),
        "no SDK error text reaches the caller"
    );
    f.momento.heal(Op::Mint);

    f.momento.inject(Op::Get, Fault::Hang);
    f.momento.inject(Op::Set, Fault::Hang);
    let started = Instant::now();
    let degraded = call(&f, "rest-get-tokens-order.json").await;
    let hung_cache = started.elapsed();
    assert_eq!(degraded.status, 200);
    assert!(
        hung_cache < Duration::from_millis(1500),
        "hung cache cost {hung_cache:?}"
    );
    f.momento.heal(Op::Get);
    f.momento.heal(Op::Set);

    f.momento
        .inject(Op::Get, Fault::Status(tonic::Code::Unavailable));
    let get_failed = call(&f, "rest-get-tokens-admin.json").await;
    assert_eq!(get_failed.status, 200);
    f.momento.heal(Op::Get);

    // A hung token service with a fresh token in memory: shared after the mint bound.
    f.momento.inject(Op::Mint, Fault::Hang);
    let started = Instant::now();
    let hung_mint = call(&f, "http-get-tokens.json").await;
    let hung_mint_took = started.elapsed();
    assert_eq!(hung_mint.status, 200);
    assert_eq!(
        hung_mint.token(),
        degraded.token(),
        "the fresh token, shared"
    );
    assert!(
        hung_mint_took < Duration::from_millis(1500),
        "hung mint cost {hung_mint_took:?}"
    );

    let logs = f.finish();
    assert_eq!(
        outcomes(&logs),
        ["error", "error", "degraded", "shared", "shared"],
        "a failed get or a hung mint with a fresh token in memory shares it"
    );
}

#[tokio::test]
async fn bad_configuration_is_logged_by_name_and_answered_with_500s() {
    let f = start(&[("TOKEN_TTL_SECONDS", "one hour")]).await;
    for _ in 0..2 {
        let answer = call(&f, "rest-get-tokens-order.json").await;
        assert_opaque_500(&answer);
    }
    assert_eq!(f.secrets.reads(), 0);
    assert!(
        f.runtime.init_errors().is_empty(),
        "a bad variable must not become an init error (Lambda would restart the container)"
    );
    let logs = f.finish();
    assert!(logs.contains("TOKEN_TTL_SECONDS"), "{logs}");
    assert_eq!(outcomes(&logs), ["misconfigured", "misconfigured"]);
}

#[tokio::test]
async fn a_direct_key_works_without_secrets_manager() {
    let api_key = momento_standin::v1_api_key(
        momento_standin::harness::MOMENTO_SECRET,
        "momento.localhost",
    );
    let f = start(&[("SECRET_ID", ""), ("MOMENTO_API_KEY", &api_key)]).await;
    let answer = call(&f, "http-get-tokens.json").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(f.secrets.reads(), 0);
    let logs = f.finish();
    assert!(!logs.contains(&api_key));
}

#[tokio::test]
async fn every_sample_event_gets_its_expected_status() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    // The status each sample event must get (null: an invocation error); shared with the
    // `cargo lambda invoke` checks of the browser test.
    let expectations: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/event-expectations.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut listed: Vec<String> = expectations.keys().cloned().collect();
    listed.sort();
    assert_eq!(
        files, listed,
        "events/ and tests/event-expectations.json disagree"
    );

    let f = start(&[]).await;
    for (name, expected) in &expectations {
        let answer = f.invoke_file(&event(name)).await;
        let status = HttpAnswer::from_answer(&answer).map(|a| u64::from(a.status));
        assert_eq!(status, expected.as_u64(), "{name}: {answer:?}");
    }
}

/// The order event from another caller (REST v1 source IP).
fn event_from(ip: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(event("rest-get-tokens-order.json")).unwrap();
    let mut e: serde_json::Value = serde_json::from_str(&text).unwrap();
    e["requestContext"]["identity"]["sourceIp"] = serde_json::json!(ip);
    e
}

#[tokio::test]
async fn a_crowd_of_new_callers_all_get_tokens_within_momentos_mint_limit() {
    let f = start(&[]).await;
    // Momento's documented control-plane default: 5 a second.
    f.momento.limit(Plane::Control, 5, 5);
    let started = Instant::now();
    let events: Vec<_> = (0..20)
        .map(|i| event_from(&format!("198.51.100.{}", i + 1)))
        .collect();
    let answers: Vec<HttpAnswer> = f
        .invoke_all(&events)
        .await
        .iter()
        .map(|a| HttpAnswer::from_answer(a).expect("an HTTP answer"))
        .collect();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "20 callers took {elapsed:?}"
    );
    for a in &answers {
        assert_eq!(a.status, 200, "{a:?}");
        assert!(a.json()["exp"].as_u64().unwrap() > token_vending_machine::token::now_epoch() + 60);
    }
    let mints = f.momento.count(Op::Mint);
    let allowed = 5 + (5.0 * elapsed.as_secs_f64()).ceil() as usize;
    assert!(mints <= allowed, "{mints} mints in {elapsed:?}");
    assert!(mints < 20, "some callers were given a shared token");
    let logs = f.finish();
    let outcomes = outcomes(&logs);
    assert_eq!(outcomes.iter().filter(|o| *o == "miss").count(), mints);
    assert_eq!(
        outcomes.iter().filter(|o| *o == "shared").count(),
        20 - mints,
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_second_container_started_under_throttling_shares_through_the_cache() {
    let standins = Standins::start().await.unwrap();
    // One mint for the whole account, then none.
    standins.momento.limit(Plane::Control, 0, 1);
    let first = FunctionUnderTest::start_with(binary(), &[], &standins)
        .await
        .unwrap();
    let minted = call(&first, "rest-get-tokens-order.json").await;
    assert_eq!(minted.status, 200);

    let second = FunctionUnderTest::start_with(binary(), &[], &standins)
        .await
        .unwrap();
    let shared = call(&second, "rest-get-tokens-admin.json").await;
    assert_eq!(shared.status, 200, "{shared:?}");
    assert_eq!(
        shared.token(),
        minted.token(),
        "the token minted by the first container"
    );
    let again = call(&second, "rest-get-tokens-admin.json").await;
    assert_eq!(again.token(), minted.token());
    assert_eq!(standins.momento.count(Op::Mint), 1);
    assert_eq!(standins.momento.throttled(Op::Mint), 1);

    let logs = second.finish();
    assert_eq!(outcomes(&logs), ["shared", "hit"]);
    assert_no_secrets_in(
        &logs,
        &standins.api_key,
        &[minted.json()["token"].as_str().unwrap().to_string()],
    );
    first.finish();
}

#[tokio::test]
async fn two_addresses_in_one_ipv6_64_get_one_token_from_one_mint() {
    let f = start(&[]).await;
    let text = std::fs::read_to_string(event("http-get-tokens.json")).unwrap();
    let mut a: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut b = a.clone();
    a["requestContext"]["http"]["sourceIp"] = serde_json::json!("2001:db8:1:2::a");
    b["requestContext"]["http"]["sourceIp"] = serde_json::json!("2001:db8:1:2:ffff:ffff:ffff:b");
    let first = HttpAnswer::from_answer(&f.invoke(&a).await).unwrap();
    let second = HttpAnswer::from_answer(&f.invoke(&b).await).unwrap();
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.token(), second.token());
    assert_eq!(f.momento.count(Op::Mint), 1);
    assert!(f.momento.item("pizza", "2001:db8:1:2::/64-token").is_some());
    assert_eq!(outcomes(&f.finish()), ["miss", "hit"]);
}

/// A CloudWatch Logs JSON filter pattern of the form `{ $.a.b = "value" }`:
/// the path and the value. Any other form fails the test, so a pattern the
/// evaluator below does not understand can't pass unnoticed.
fn parse_filter_pattern(pattern: &str) -> (Vec<String>, String) {
    let inner = pattern
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a JSON filter pattern: {pattern}"))
        .trim();
    let (selector, value) = inner
        .split_once('=')
        .unwrap_or_else(|| panic!("only `=` patterns are evaluated here: {pattern}"));
    let path = selector
        .trim()
        .strip_prefix("$.")
        .unwrap_or_else(|| panic!("selector must start with `$.`: {pattern}"))
        .split('.')
        .map(str::to_string)
        .collect();
    let value = value
        .trim()
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("value must be a quoted string: {pattern}"))
        .to_string();
    (path, value)
}

/// Whether a parsed log line matches the pattern, as CloudWatch evaluates it.
fn filter_selects(line: &serde_json::Value, (path, value): &(Vec<String>, String)) -> bool {
    let mut at = line;
    for key in path {
        at = &at[key.as_str()];
    }
    at.as_str() == Some(value.as_str())
}

/// The template's metric filters: (resource, metric name, filter pattern).
fn metric_filters() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"))
        .unwrap();
    let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Logs::MetricFilter"))
        .map(|(name, r)| {
            let p = &r["Properties"];
            (
                name.as_str().unwrap().to_string(),
                p["MetricTransformations"][0]["MetricName"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                p["FilterPattern"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_metric_filter_selects_exactly_the_log_lines_of_its_outcome() {
    let f = start(&[]).await;
    assert_eq!(call(&f, "rest-get-tokens-order.json").await.status, 200); // miss
    assert_eq!(call(&f, "rest-get-tokens-order.json").await.status, 200); // hit
    assert_eq!(call(&f, "rest-post-tokens.json").await.status, 405); // rejected
    assert_eq!(call(&f, "rest-options-tokens.json").await.status, 204); // preflight
    f.momento
        .inject(Op::Get, Fault::Status(tonic::Code::Unavailable));
    assert_eq!(call(&f, "rest-get-tokens-admin.json").await.status, 200); // shared
    f.momento.heal(Op::Get);
    f.momento
        .inject(Op::Set, Fault::Status(tonic::Code::Internal));
    assert_eq!(call(&f, "http-get-tokens.json").await.status, 200); // degraded
    f.momento.heal(Op::Set);
    // A failed mint would share the fresh token: a refused key is an error.
    f.momento
        .inject(Op::Mint, Fault::Status(tonic::Code::Unauthenticated));
    let failed = HttpAnswer::from_answer(&f.invoke(&event_from("192.0.2.99")).await).unwrap();
    assert_eq!(failed.status, 500); // error
    f.momento.heal(Op::Mint);
    f.momento.only_caches(&[]);
    let missing = HttpAnswer::from_answer(&f.invoke(&event_from("192.0.2.98")).await).unwrap();
    assert_eq!(missing.status, 500); // misconfigured
    let logs = f.finish();
    let lines = request_lines(&logs);
    assert_eq!(
        outcomes(&logs),
        [
            "miss",
            "hit",
            "rejected",
            "preflight",
            "shared",
            "degraded",
            "error",
            "misconfigured"
        ]
    );

    let filters = metric_filters();
    let mut covered: Vec<String> = Vec::new();
    for (resource, metric, pattern) in &filters {
        let parsed = parse_filter_pattern(pattern);
        let selected: Vec<usize> = (0..lines.len())
            .filter(|&i| filter_selects(&lines[i], &parsed))
            .collect();
        let outcome = &parsed.1;
        let expected: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i]["fields"]["outcome"] == outcome.as_str())
            .collect();
        assert!(
            !expected.is_empty(),
            "{resource}: no `{outcome}` line to check against"
        );
        assert_eq!(selected, expected, "{resource} ({metric}): {pattern}");
        covered.push(outcome.clone());
    }
    covered.sort();
    assert_eq!(
        covered,
        ["degraded", "error", "misconfigured", "miss", "shared"]
    );
}

#[tokio::test]
async fn a_cold_start_with_a_v1_key_writes_no_sdk_warning_and_a_refused_key_still_logs_an_error() {
    let f = start(&[]).await;
    assert_eq!(call(&f, "rest-get-tokens-order.json").await.status, 200);
    f.momento.set_api_key("some-other-secret");
    assert_eq!(call(&f, "rest-get-tokens-admin.json").await.status, 500);
    let logs = f.finish();
    let parsed = json_lines(&logs);
    let warnings: Vec<&serde_json::Value> =
        parsed.iter().filter(|l| l["level"] == "WARN").collect();
    // Our own warning about the stand-in's plaintext endpoint is the only one.
    assert!(
        warnings.iter().all(|w| w["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("MOMENTO_ENDPOINT_OVERRIDE is plaintext"))),
        "{warnings:?}"
    );
    assert!(!logs.contains("did not expect v2 api key"), "{logs}");
    let errors: Vec<&serde_json::Value> = parsed.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{logs}");
    assert_eq!(errors[0]["fields"]["outcome"], "error");
    assert!(errors[0]["fields"]["cause"]
        .as_str()
        .unwrap()
        .contains("refused the API key"));
}

#[tokio::test]
async fn text_logs_carry_no_colour_codes_when_stdout_is_not_a_terminal() {
    let f = start(&[("AWS_LAMBDA_LOG_FORMAT", "text")]).await;
    assert_eq!(call(&f, "rest-get-tokens-order.json").await.status, 200);
    let logs = f.finish();
    assert!(logs.contains("outcome=\"miss\""), "{logs}");
    assert!(!logs.contains('\u{1b}'), "ANSI escape in: {logs:?}");
}

#[tokio::test]
async fn init_reads_the_secret_builds_the_clients_and_opens_the_cache_connection() {
    let f = start(&[]).await;
    f.runtime
        .wait_first_poll(Duration::from_secs(15))
        .await
        .expect("the function polls for an event");
    // Before any invocation: the secret was read (over TLS) and the cache reached.
    assert_eq!(f.secrets.reads(), 1, "the secret is read in INIT");
    assert_eq!(f.momento.count(Op::Get), 1, "the cache connection is open");
    assert_eq!(call(&f, "rest-get-tokens-order.json").await.status, 200);
    assert_eq!(f.secrets.reads(), 1, "and not again");
    let logs = f.finish();
    let lines = json_lines(&logs);
    let position = |message: &str| {
        lines
            .iter()
            .position(|v| v["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line: {logs}"))
    };
    let prepared = position("initialised during INIT");
    assert!(prepared < position("request"), "{logs}");
    assert_eq!(lines[prepared]["fields"]["cache_reached"], true);
    // INIT lines carry no request span: the work was done before any invocation.
    assert!(lines[prepared]["span"].is_null(), "{}", lines[prepared]);
}

#[tokio::test]
async fn an_init_that_cannot_read_the_secret_leaves_it_to_the_first_request() {
    let f = start_after(&[], |s| s.secrets.set_failing(true)).await;
    f.runtime
        .wait_first_poll(Duration::from_secs(15))
        .await
        .expect("INIT ends, failure or not");
    let init_reads = f.secrets.reads();
    assert!(init_reads >= 1);
    f.secrets.set_failing(false);
    assert_eq!(call(&f, "rest-get-tokens-order.json").await.status, 200);
    assert_eq!(f.secrets.reads(), init_reads + 1, "read again on first use");
    let logs = f.finish();
    assert!(
        json_lines(&logs).iter().any(|l| l["level"] == "WARN"
            && l["fields"]["message"]
                .as_str()
                // Failed, or (the SDK backs off between retries) ran out of its time.
                .is_some_and(|m| m.contains("during INIT") && m.contains("the first request"))),
        "{logs}"
    );
    assert_eq!(outcomes(&logs), ["miss"]);
}

#[tokio::test]
async fn a_caller_who_comes_back_to_another_container_is_a_cache_hit_there() {
    let standins = Standins::start().await.unwrap();
    let first = FunctionUnderTest::start_with(binary(), &[], &standins)
        .await
        .unwrap();
    let minted = call(&first, "rest-get-tokens-order.json").await;
    let second = FunctionUnderTest::start_with(binary(), &[], &standins)
        .await
        .unwrap();
    // After its INIT (which reads the shared key once).
    second
        .runtime
        .wait_first_poll(Duration::from_secs(15))
        .await
        .expect("INIT ends");
    let gets_before = standins.momento.count(Op::Get);
    let hit = call(&second, "rest-get-tokens-order.json").await;
    assert_eq!((minted.status, hit.status), (200, 200));
    assert_eq!(hit.token(), minted.token(), "the cached token");
    assert_eq!(standins.momento.count(Op::Get), gets_before + 1);
    assert_eq!(standins.momento.count(Op::Mint), 1);
    let logs = second.finish();
    assert_eq!(outcomes(&logs), ["hit"]);
    assert!(request_lines(&logs)[0]["fields"]["get_ms"].is_f64());
    first.finish();
}

// --- silent network faults on the way to Momento (a relay in front of the stand-in) ---

/// A function whose Momento traffic goes through a relay that can go silent;
/// with `unreachable`, no connection through it ever works, INIT's included.
async fn start_behind_relay(unreachable: bool) -> (FunctionUnderTest, Relay) {
    let standins = Standins::start().await.expect("stand-ins");
    let relay = Relay::start(standins.momento.addr()).await.expect("relay");
    relay.blackhole_new(unreachable);
    let f = FunctionUnderTest::start_with(
        binary(),
        &[("MOMENTO_ENDPOINT_OVERRIDE", &relay.url())],
        &standins,
    )
    .await
    .expect("function starts");
    (f, relay)
}

/// The function's own latency for each request line, in order.
fn latencies_ms(logs: &str) -> Vec<f64> {
    request_lines(logs)
        .iter()
        .map(|v| v["fields"]["latency_ms"].as_f64().unwrap_or(f64::NAN))
        .collect()
}

#[tokio::test]
async fn dead_connections_cost_one_request_one_timeout_and_nobody_a_5xx() {
    let (f, relay) = start_behind_relay(false).await;
    let warm = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(warm.status, 200);
    let opened_before_fault = relay.connections();

    // Both established flows go silent (no FIN, no RST); new ones still work.
    relay.silence_established();
    let mut statuses = Vec::new();
    for i in 1..=8 {
        let answer = f.invoke(&event_from(&format!("198.51.100.{i}"))).await;
        statuses.push(HttpAnswer::from_answer(&answer).expect("http").status);
    }
    let opened_since = relay.connections() - opened_before_fault;
    let mints = f.momento.count(Op::Mint);
    let logs = f.finish();
    let outcomes = outcomes(&logs);
    let latencies = latencies_ms(&logs);
    eprintln!("statuses: {statuses:?}");
    eprintln!(
        "dead-flow timeline (outcome, ms): {:?}",
        outcomes.iter().zip(&latencies).collect::<Vec<_>>()
    );

    assert!(opened_since >= 1, "new connections were opened");
    assert!(
        statuses.iter().all(|s| *s == 200),
        "no 5xx while a fresh token exists: {statuses:?}"
    );
    let during = &latencies[1..];
    let paid = during.iter().filter(|ms| **ms >= 900.0).count();
    assert!(paid >= 1, "the fault was felt: {during:?}");
    assert!(
        paid <= 2,
        "at most one timeout per dead connection: {during:?}"
    );
    assert!(
        during.iter().all(|ms| *ms <= 1100.0),
        "every request within 1.1 s: {during:?}"
    );
    // Within two requests of the fault, a fresh mint over a new connection.
    assert!(
        outcomes[1..=2]
            .iter()
            .any(|o| o == "miss" || o == "degraded"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[3..], ["miss"; 6], "{outcomes:?}");
    assert!(mints >= 7, "{mints} mints");
}

#[tokio::test]
async fn a_cold_container_that_cannot_reach_momento_answers_503_within_two_and_a_half_seconds() {
    // Every connection to Momento is accepted and then carries nothing, from INIT on.
    let (f, _relay) = start_behind_relay(true).await;
    let answer = call(&f, "rest-get-tokens-order.json").await;
    // From the spawn: what a caller waiting on a cold start sees, INIT included.
    let cold = f.spawned_at.elapsed();
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert_common_headers(&answer);
    assert_eq!(f.momento.count(Op::Mint), 0);
    let logs = f.finish();
    let latencies = latencies_ms(&logs);
    assert_eq!(outcomes(&logs), ["error"]);
    eprintln!("cold, Momento unreachable: {cold:?} from spawn, {latencies:?} ms in the request");
    assert!(cold <= Duration::from_millis(2500), "{cold:?}");
    let line = &request_lines(&logs)[0];
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(
        line["fields"]["cause"]
            .as_str()
            .is_some_and(|c| c.contains("timed out")),
        "{line}"
    );
}

// --- signed-in callers (CALLER_IDENTITY=cognito) ---

use token_vending_machine::doubles::EXAMPLE_SCOPES as SCOPES;

#[tokio::test]
async fn in_cognito_mode_every_listed_sample_event_gets_its_expected_status() {
    // The status of the events that matter to signed-in callers, when the function
    // runs in cognito mode; shared with `cargo lambda invoke` and `sam local invoke`.
    let expectations: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/event-expectations-cognito.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(expectations.len() >= 5);
    let f = start(&[("CALLER_IDENTITY", "cognito")]).await;
    for (name, expected) in &expectations {
        let answer = f.invoke_file(&event(name)).await;
        let status = HttpAnswer::from_answer(&answer).map(|a| u64::from(a.status));
        assert_eq!(status, expected.as_u64(), "{name}: {answer:?}");
        if status == Some(401) {
            let a = HttpAnswer::from_answer(&answer).unwrap();
            assert_common_headers(&a);
            assert!(a.json()["message"].is_string());
        }
    }
}

/// (token id, number of permissions) of every mint the stand-in received.
fn mints(f: &FunctionUnderTest) -> Vec<(String, usize)> {
    f.momento
        .recorded()
        .into_iter()
        .filter_map(|r| match r {
            Recorded::Mint {
                token_id,
                permissions,
                ..
            } => {
                let n = match permissions.and_then(|p| p.kind) {
                    Some(momento_protos::permission_messages::permissions::Kind::Explicit(e)) => {
                        e.permissions.len()
                    }
                    _ => 0,
                };
                Some((token_id, n))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn signed_in_users_get_their_own_tokens_of_their_groups_scope_and_logs_hide_their_sub() {
    let f = start(&[("CALLER_IDENTITY", "cognito"), ("TOKEN_SCOPES", SCOPES)]).await;
    let staff = call(&f, "rest-get-tokens-cognito.json").await;
    let staff_again = call(&f, "rest-get-tokens-cognito.json").await;
    let other = call(&f, "http-get-tokens-cognito.json").await;
    let spoofer = call(&f, "rest-get-tokens-cognito-spoofed-groups.json").await;
    let anonymous = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(
        [
            staff.status,
            staff_again.status,
            other.status,
            spoofer.status,
            anonymous.status
        ],
        [200, 200, 200, 200, 401]
    );
    assert_eq!(
        staff.token(),
        staff_again.token(),
        "same user twice: one token"
    );
    assert_ne!(staff.json()["token"], other.json()["token"]);
    // The same user without the groups claim, claiming staff in a header, the
    // query and the body: the default scope, so another key and a new token.
    assert_ne!(spoofer.json()["token"], staff.json()["token"]);
    let sub = "7d8ca528-4931-4254-9273-ea5ee853f271";
    assert_eq!(
        mints(&f),
        [
            (sub.to_string(), 2),
            ("2f1b9c1e-6a3d-4c1f-8e2b-9a7d5c3b1e0f".to_string(), 2),
            (sub.to_string(), 1),
        ]
    );
    assert!(
        f.momento
            .item("pizza", token_vending_machine::caller::SHARED_KEY)
            .is_none(),
        "nothing shared"
    );

    let tokens: Vec<String> = [&staff, &other, &spoofer]
        .iter()
        .map(|a| a.json()["token"].as_str().unwrap().to_string())
        .collect();
    let api_key = f.api_key.clone();
    let logs = f.finish();
    assert_no_secrets_in(&logs, &api_key, &tokens);
    assert!(!logs.contains(sub), "a sub in clear reached the logs");
    let lines = request_lines(&logs);
    for line in &lines {
        assert_eq!(line["fields"]["mode"], "cognito", "{line}");
    }
    assert!(lines[0]["fields"]["caller"]
        .as_str()
        .is_some_and(|c| c.starts_with("user:")));
}

#[tokio::test]
async fn a_throttled_signed_in_user_gets_503_and_never_another_users_token() {
    let f = start(&[("CALLER_IDENTITY", "cognito")]).await;
    assert_eq!(call(&f, "rest-get-tokens-cognito.json").await.status, 200);
    f.momento.limit(Plane::Control, 0, 0);
    let throttled = call(&f, "http-get-tokens-cognito.json").await;
    assert_eq!(throttled.status, 503, "{throttled:?}");
    assert_eq!(throttled.header("retry-after"), Some("1"));
    assert_common_headers(&throttled);
    // The first user still has their own token.
    assert_eq!(call(&f, "rest-get-tokens-cognito.json").await.status, 200);
    let logs = f.finish();
    assert_eq!(outcomes(&logs), ["miss", "error", "hit"]);
}

#[tokio::test]
async fn an_invalid_scope_policy_is_named_at_start_and_answered_with_500s() {
    let f = start(&[(
        "TOKEN_SCOPES",
        r#"{"default": [{"role": "subscribe", "cache": "pizza", "topic": "orders-{sub}"}]}"#,
    )])
    .await;
    let answer = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(answer.status, 500);
    let logs = f.finish();
    let named = json_lines(&logs).into_iter().any(|l| {
        l["fields"]["variable"] == "TOKEN_SCOPES"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("CALLER_IDENTITY=cognito"))
    });
    assert!(named, "{logs}");
}

#[tokio::test]
async fn a_missing_cache_is_one_error_line_naming_it_and_no_mint() {
    let f = start(&[]).await;
    f.momento.only_caches(&["not-pizza"]);
    for _ in 0..2 {
        let answer = call(&f, "rest-get-tokens-order.json").await;
        assert_opaque_500(&answer);
    }
    assert_eq!(
        f.momento.count(Op::Mint),
        0,
        "no mint burnt on a missing cache"
    );
    let logs = f.finish();
    let lines = request_lines(&logs);
    assert_eq!(outcomes(&logs), ["misconfigured", "misconfigured"]);
    for line in &lines {
        assert_eq!(line["level"], "ERROR", "{line}");
        let cause = line["fields"]["cause"].as_str().unwrap_or("");
        assert!(
            cause.contains("cache pizza does not exist in this Momento account and region"),
            "{cause}"
        );
    }
}

// --- TLS to Secrets Manager ---

#[tokio::test]
async fn over_tls_the_secret_is_read_once_and_tokens_are_vended() {
    let f = start(&[]).await;
    assert!(
        f.secrets.url().starts_with("https://"),
        "{}",
        f.secrets.url()
    );
    let cold = call(&f, "rest-get-tokens-order.json").await;
    let warm = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!((cold.status, warm.status), (200, 200), "{cold:?}");
    assert_eq!(cold.token(), warm.token());
    assert_eq!(f.secrets.reads(), 1);
    let logs = f.finish();
    assert_eq!(outcomes(&logs), ["miss", "hit"]);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_500_and_one_error_line_saying_so() {
    let standins = Standins::start_with(SecretsTransport::UntrustedTls)
        .await
        .expect("stand-ins");
    let f = FunctionUnderTest::start_with(binary(), &[], &standins)
        .await
        .expect("function starts");
    let answer = call(&f, "rest-get-tokens-order.json").await;
    assert_opaque_500(&answer);
    assert_eq!(
        f.secrets.reads(),
        0,
        "no request crossed the refused handshake"
    );
    assert_eq!(f.momento.count(Op::Mint), 0, "no token");
    let api_key = f.api_key.clone();
    let logs = f.finish();
    let errors = lines_at(&logs, "ERROR");
    assert_eq!(errors.len(), 1, "{logs}");
    let cause = errors[0]["fields"]["cause"].as_str().unwrap_or("");
    assert!(
        cause.contains("certificate") && cause.contains("reading secret"),
        "the line says it was the certificate: {cause}"
    );
    assert_no_secrets_in(&logs, &api_key, &[]);
}

// --- what only an operator can fix, said once and at the right level ---

#[tokio::test]
async fn a_mint_the_key_may_not_make_shares_keeps_the_clients_and_is_an_error_line() {
    let (f, relay) = start_behind_relay(false).await;
    let first = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(first.status, 200);
    let opened = relay.connections();
    f.momento
        .inject(Op::Mint, Fault::Status(tonic::Code::PermissionDenied));
    let shared = HttpAnswer::from_answer(&f.invoke(&event_from("198.51.100.7")).await).unwrap();
    assert_eq!(shared.status, 200);
    assert_eq!(shared.token(), first.token(), "the fresh token is shared");
    f.momento.heal(Op::Mint);
    let next = HttpAnswer::from_answer(&f.invoke(&event_from("198.51.100.8")).await).unwrap();
    assert_eq!(next.status, 200);
    assert_eq!(relay.connections(), opened, "no client was rebuilt");
    assert_eq!(f.secrets.reads(), 1, "the key was not read again");
    let logs = f.finish();
    assert_eq!(outcomes(&logs), ["miss", "misconfigured", "miss"]);
    let errors = lines_at(&logs, "ERROR");
    assert_eq!(errors.len(), 1, "{logs}");
    let cause = errors[0]["fields"]["cause"].as_str().unwrap_or("");
    assert!(
        cause.contains("super-user key") && cause.contains("shared a token"),
        "{cause}"
    );
}

#[tokio::test]
async fn a_key_refused_during_init_is_reported_there_and_the_first_request_reads_it_again() {
    // Momento accepts only a new key; the secret still holds the old one.
    let new_secret = "rotated-during-init-5d4c3b";
    let f = start_after(&[], |s| s.momento.set_api_key(new_secret)).await;
    f.runtime
        .wait_first_poll(Duration::from_secs(15))
        .await
        .expect("INIT ends");
    assert_eq!(f.secrets.reads(), 1);
    // The rotation lands in the secret before the first request.
    let new_key = momento_standin::v1_api_key(new_secret, "momento.localhost");
    f.secrets.put(
        momento_standin::harness::SECRET_NAME,
        &serde_json::json!({ "momento": new_key }).to_string(),
    );
    let first = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(
        first.status, 200,
        "the first request did not pay: {first:?}"
    );
    assert_eq!(f.secrets.reads(), 2);
    let logs = f.finish();
    let errors = lines_at(&logs, "ERROR");
    assert_eq!(errors.len(), 1, "{logs}");
    assert!(
        errors[0]["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("refused the API key during INIT")),
        "{logs}"
    );
    assert_eq!(outcomes(&logs), ["miss"]);
}

#[tokio::test]
async fn unsafe_scope_policies_are_named_at_start_and_answered_with_500s() {
    let publishing =
        r#"{"default": [{"role": "publish-subscribe", "cache": "pizza", "topic": "chat"}]}"#;
    let comma_group = r#"{"default": [{"role": "subscribe", "cache": "pizza", "topic": "*"}],
        "groups": {"x,staff": [{"role": "subscribe", "cache": "pizza", "topic": "t"}]}}"#;
    for (policy, says) in [
        (publishing, "ALLOW_ANONYMOUS_PUBLISH"),
        (comma_group, "may not contain a comma"),
    ] {
        let f = start(&[("TOKEN_SCOPES", policy)]).await;
        for _ in 0..2 {
            assert_opaque_500(&call(&f, "rest-get-tokens-order.json").await);
        }
        assert_eq!(f.momento.count(Op::Mint), 0);
        let logs = f.finish();
        let errors: Vec<serde_json::Value> = lines_at(&logs, "ERROR")
            .into_iter()
            .filter(|l| l["fields"]["variable"] == "TOKEN_SCOPES")
            .collect();
        assert_eq!(errors.len(), 1, "one line at start naming it: {logs}");
        assert!(
            errors[0]["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{logs}"
        );
    }
    // The opt-in, by name, lets anonymous callers publish.
    let f = start(&[
        ("TOKEN_SCOPES", publishing),
        ("ALLOW_ANONYMOUS_PUBLISH", "true"),
    ])
    .await;
    assert_eq!(call(&f, "rest-get-tokens-order.json").await.status, 200);
    let _ = f.finish();
}

#[tokio::test]
async fn a_cache_ttl_beyond_the_tokens_usable_life_is_clamped_with_one_warning() {
    let f = start(&[("TOKEN_TTL_SECONDS", "600")]).await;
    let answer = call(&f, "rest-get-tokens-order.json").await;
    assert_eq!(answer.status, 200);
    let set_ttls: Vec<u64> = f
        .momento
        .recorded()
        .into_iter()
        .filter_map(|r| match r {
            Recorded::Set {
                ttl_milliseconds, ..
            } => Some(ttl_milliseconds),
            _ => None,
        })
        .collect();
    assert!(!set_ttls.is_empty());
    assert!(set_ttls.iter().all(|ms| *ms == 540_000), "{set_ttls:?}");
    let logs = f.finish();
    let warnings: Vec<serde_json::Value> = lines_at(&logs, "WARN")
        .into_iter()
        .filter(|l| l["fields"]["variable"] == "CACHE_TTL_SECONDS")
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0]["fields"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("TOKEN_TTL_SECONDS")));
}
