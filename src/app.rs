//! The request handler: initialisation in INIT or on first use, retried until
//! it succeeds, plus one log line per request.
//!
//! [`App`] owns the once-per-container state. [`App::prepare`] runs the
//! [`Initializer`] (secret read, client construction) during INIT; if that
//! fails or runs out of time, the first request that needs a token runs it.
//! Success is kept for the life of the container, failure is not, so the next
//! request tries again. One exception to "kept": when Momento refuses the key (it was
//! rotated or revoked), the clients are dropped and the next request reads the
//! key again. Every request ends in exactly one structured log line.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lambda_http::http::HeaderValue;
use lambda_http::{Body, Request, Response};

use crate::caller::{Caller, Identification};
use crate::error::{InitError, MintError};
use crate::http::{self, Rejection, Route};
use crate::outcome::Outcome;
use crate::token::now_epoch;
use crate::vending::{CallTimings, Initializer, Vendor, WarmUp};

/// How long INIT may spend initialising before it leaves the rest to the
/// first request (Lambda allows INIT 10 s; a healthy one takes milliseconds).
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(2);

type SharedVendor<I> = Arc<Vendor<<I as Initializer>::Cache, <I as Initializer>::Minter>>;

/// The function: routes, vends and logs.
pub struct App<I: Initializer> {
    initializer: I,
    /// The built clients; `None` until an init succeeds (and after the key is refused).
    vendor: Mutex<Option<SharedVendor<I>>>,
    /// One init at a time (the same role as `OnceCell`'s internal lock).
    init: tokio::sync::Mutex<()>,
    cors_allow_origin: HeaderValue,
    identification: Identification,
}

/// What one request came to, for its log line.
struct Served {
    response: Response<Body>,
    outcome: Outcome,
    cause: Option<String>,
    timings: CallTimings,
    /// Who asked, as the log may say it (never a `sub` in clear).
    caller: Option<String>,
}

impl Served {
    fn new(response: Response<Body>, outcome: Outcome) -> Self {
        Served {
            response,
            outcome,
            cause: None,
            timings: CallTimings::default(),
            caller: None,
        }
    }

    fn because(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    fn rejected(rejection: Rejection, cors: &HeaderValue) -> Self {
        let served = Served::new(
            http::rejection_response(&rejection, cors),
            Outcome::Rejected,
        );
        match rejection {
            Rejection::Caller(e) => served.because(format!("{e:?}")),
            Rejection::NotFound | Rejection::MethodNotAllowed => served,
        }
    }

    /// The generic 500: the caller learns nothing, the log line gets `cause`.
    fn opaque_500(cors: &HeaderValue, cause: impl Into<String>) -> Self {
        Served::new(http::opaque_500(cors), Outcome::Error).because(cause)
    }
}

/// A `HeaderValue` for the CORS origin; config validation guarantees it parses.
pub fn cors_header(origin: &str) -> HeaderValue {
    HeaderValue::from_str(origin).unwrap_or(HeaderValue::from_static("*"))
}

impl<I: Initializer> App<I> {
    pub fn new(initializer: I, cors_allow_origin: &str, identification: Identification) -> Self {
        App {
            initializer,
            vendor: Mutex::new(None),
            init: tokio::sync::Mutex::new(()),
            cors_allow_origin: cors_header(cors_allow_origin),
            identification,
        }
    }

    /// Whether initialisation has succeeded in this container.
    pub fn is_initialized(&self) -> bool {
        self.slot().is_some()
    }

    /// INIT: what the first request would otherwise do first, done before
    /// it, while Lambda runs the process at full CPU (a request at 128 MB
    /// gets about 7% of a core): read the key, build the clients, and open the
    /// cache's connection (TLS handshakes included). Bounded by `within` and
    /// never fatal: on failure or timeout nothing is kept, and the first
    /// request initialises as it would have (and is retried as before).
    pub async fn prepare(&self, within: Duration) {
        let started = Instant::now();
        let shared_key = self.identification.shared_key();
        let prepared = tokio::time::timeout(within, async {
            let vendor = self.vendor().await?;
            Ok::<WarmUp, InitError>(vendor.warm_up(shared_key).await)
        })
        .await;
        let prepare_ms = millis(started.elapsed());
        match prepared {
            Ok(Ok(WarmUp::Reached)) => {
                tracing::info!(prepare_ms, cache_reached = true, "initialised during INIT")
            }
            Ok(Ok(WarmUp::Unreached(cause))) => tracing::info!(
                prepare_ms,
                cache_reached = false,
                cause,
                "initialised during INIT; the cache was not reached"
            ),
            Ok(Ok(WarmUp::KeyRejected)) => {
                // No request is answered with clients Momento refuses: the
                // first one reads the key again (a rotation may have fixed it).
                *self.slot() = None;
                tracing::error!(
                    prepare_ms,
                    "Momento refused the API key during INIT; clients dropped, the first request reads the key again"
                )
            }
            Ok(Err(e)) => tracing::warn!(
                prepare_ms,
                cause = %e,
                "initialising during INIT failed; the first request tries again"
            ),
            Err(_) => tracing::warn!(
                prepare_ms,
                "initialising during INIT timed out; the first request initialises"
            ),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<SharedVendor<I>>> {
        self.vendor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The built vendor, initialising it first if needed. A failure is not kept.
    async fn vendor(&self) -> Result<SharedVendor<I>, InitError> {
        if let Some(vendor) = self.slot().clone() {
            return Ok(vendor);
        }
        let _one_at_a_time = self.init.lock().await;
        if let Some(vendor) = self.slot().clone() {
            return Ok(vendor);
        }
        let vendor = Arc::new(self.initializer.init().await?);
        *self.slot() = Some(vendor.clone());
        Ok(vendor)
    }

    /// Answers one API Gateway request. Never fails: every problem becomes a
    /// JSON error response and a log line.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let served = self.serve(&req).await;
        log_request(&req, &served, self.identification.mode().as_str(), started);
        served.response
    }

    async fn serve(&self, req: &Request) -> Served {
        let cors = &self.cors_allow_origin;
        match http::route(req) {
            Route::Reject(rejection) => return Served::rejected(rejection, cors),
            Route::Preflight => {
                return Served::new(http::preflight_response(cors), Outcome::Preflight)
            }
            Route::Vend => {}
        }
        let caller = match self.identification.identify(req) {
            Ok(caller) => caller,
            Err(e) => return Served::rejected(Rejection::Caller(e), cors),
        };
        let mut served = self.vend(&caller).await;
        served.caller = Some(caller.label);
        served
    }

    async fn vend(&self, caller: &Caller) -> Served {
        let cors = &self.cors_allow_origin;
        let vendor = match self.vendor().await {
            Ok(vendor) => vendor,
            Err(e) => return Served::opaque_500(cors, format!("initialisation failed: {e}")),
        };

        match vendor.vend(caller).await {
            Ok(vended) => Served {
                response: http::token_response(&vended.body, now_epoch(), cors),
                outcome: vended.outcome,
                cause: vended.cause,
                timings: vended.timings,
                caller: None,
            },
            Err(failed) => {
                let e = failed.error;
                let cause = if e == MintError::KeyRejected {
                    // Rotated or revoked key: drop these clients so that the next
                    // request reads the key again instead of failing until recycled.
                    *self.slot() = None;
                    format!("{e}; clients dropped, the next request reads the key again")
                } else {
                    e.to_string()
                };
                let outcome = match e {
                    MintError::CacheNotFound(_) | MintError::PermissionDenied(_) => {
                        Outcome::Misconfigured
                    }
                    _ => Outcome::Error,
                };
                let mut served =
                    Served::new(http::mint_failure_response(&e, cors), outcome).because(cause);
                served.timings = failed.timings;
                served
            }
        }
    }
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn log_request(req: &Request, served: &Served, mode: &str, started: Instant) {
    let latency_ms = millis(started.elapsed());
    let caller = served.caller.as_deref();
    let status = served.response.status().as_u16();
    let method = req.method().as_str();
    let path = req.uri().path();
    let cause = served.cause.as_deref();
    let get_ms = served.timings.get.map(millis);
    let mint_ms = served.timings.mint.map(millis);
    let set_ms = served.timings.set.map(millis);
    // One macro body for both levels, so the two lines can never drift apart.
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                outcome = served.outcome.as_str(),
                status,
                latency_ms,
                method,
                path,
                mode,
                caller,
                cause,
                get_ms,
                mint_ms,
                set_ms,
                "request"
            )
        };
    }
    if served.outcome.is_error() {
        line!(error);
    } else {
        line!(info);
    }
}

/// The handler used when the configuration is invalid: the container stays up
/// and answers every request with the generic 500, logging the bad variable.
pub fn misconfigured_response(req: &Request, error: &crate::config::ConfigError) -> Response<Body> {
    let started = Instant::now();
    let mut served = Served::opaque_500(&cors_header("*"), error.to_string());
    served.outcome = Outcome::Misconfigured;
    log_request(req, &served, "unconfigured", started);
    served.response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doubles::{Behaviour, DoublesInit};
    use lambda_http::RequestExt;

    fn app() -> App<DoublesInit> {
        App::new(DoublesInit::new(), "*", Identification::source_ip("pizza"))
    }

    fn event_text(name: &str) -> String {
        std::fs::read_to_string(format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn event(name: &str) -> Request {
        lambda_http::request::from_str(&event_text(name)).unwrap()
    }

    fn header<'a>(r: &'a Response<Body>, name: &str) -> &'a str {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    fn body(r: &Response<Body>) -> serde_json::Value {
        match r.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            other => panic!("expected a text body, got {other:?}"),
        }
    }

    async fn status(app: &App<DoublesInit>, name: &str) -> u16 {
        app.handle(event(name)).await.status().as_u16()
    }

    /// The generic 500: nothing about the cause reaches the caller.
    fn assert_opaque_500(r: &Response<Body>) {
        assert_eq!(r.status(), 500);
        assert_common_headers(r);
        assert_eq!(
            body(r),
            serde_json::json!({"message": "Something went wrong"})
        );
    }

    fn assert_common_headers(r: &Response<Body>) {
        assert_eq!(header(r, "access-control-allow-origin"), "*");
        assert_eq!(header(r, "content-type"), "application/json");
        assert_eq!(header(r, "cache-control"), "no-store");
    }

    #[tokio::test]
    async fn rest_get_tokens_vends_with_cors_even_though_the_stage_is_in_the_uri() {
        let app = app();
        let req = event("rest-get-tokens-order.json");
        assert_eq!(req.uri().path(), "/Prod/tokens");
        let r = app.handle(req).await;
        assert_eq!(r.status(), 200);
        assert_common_headers(&r);
        let b = body(&r);
        assert_eq!(b["token"], "minted-1");
        let exp = b["exp"].as_u64().unwrap();
        assert!(exp > now_epoch());
        // The lifetime left, for clients whose clock is wrong; nothing else.
        let expires_in = b["expires_in"].as_u64().unwrap();
        assert!((3599..=3600).contains(&expires_in), "{expires_in}");
        assert!(exp.abs_diff(now_epoch() + expires_in) <= 1);
        assert_eq!(b.as_object().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn the_caller_is_the_context_source_ip_never_x_forwarded_for() {
        let app = app();
        let req = event("rest-get-tokens-order.json");
        assert!(header_value(&req, "x-forwarded-for").starts_with("198.51.100.99"));
        app.handle(req).await;
        let cache = &app.initializer.cache;
        assert!(cache.entry("203.0.113.10-token").is_some());
        assert!(cache.entry("198.51.100.99-token").is_none());
    }

    fn header_value<'a>(req: &'a Request, name: &str) -> &'a str {
        req.headers().get(name).unwrap().to_str().unwrap()
    }

    #[tokio::test]
    async fn http_api_v2_events_use_the_v2_source_ip_in_canonical_form() {
        let app = app();
        let r = app.handle(event("http-get-tokens.json")).await;
        assert_eq!(r.status(), 200);
        assert!(app.initializer.cache.entry("2001:db8::/64-token").is_some());
    }

    #[tokio::test]
    async fn an_http_api_on_a_named_stage_routes_on_the_path_without_its_stage() {
        let app = app();
        let req = event("http-get-tokens-named-stage.json");
        assert_eq!(req.raw_http_path(), "/prod/tokens");
        let r = app.handle(req).await;
        assert_eq!(r.status(), 200);
        assert!(app.initializer.cache.entry("192.0.2.44-token").is_some());
    }

    #[tokio::test]
    async fn second_request_from_the_same_ip_is_a_hit_with_the_same_body() {
        let app = app();
        let first = app.handle(event("rest-get-tokens-order.json")).await;
        let second = app.handle(event("rest-get-tokens-order.json")).await;
        let other = app.handle(event("rest-get-tokens-admin.json")).await;
        assert_eq!(body(&first)["token"], body(&second)["token"]);
        assert_eq!(body(&first)["exp"], body(&second)["exp"]);
        assert_ne!(body(&first)["token"], body(&other)["token"]);
        assert_eq!(app.initializer.minter.calls(), 2);
    }

    #[tokio::test]
    async fn wrong_method_is_405_with_allow() {
        let r = app().handle(event("rest-post-tokens.json")).await;
        assert_eq!(r.status(), 405);
        assert_eq!(header(&r, "allow"), "GET, OPTIONS");
        assert_common_headers(&r);
        assert!(body(&r)["message"].is_string());
    }

    #[tokio::test]
    async fn unknown_path_is_404_json() {
        let r = app().handle(event("rest-unknown-path.json")).await;
        assert_eq!(r.status(), 404);
        assert_common_headers(&r);
        assert!(body(&r)["message"].is_string());
    }

    #[tokio::test]
    async fn missing_source_ip_is_400_json_and_nothing_is_minted() {
        let app = app();
        let r = app.handle(event("rest-missing-source-ip.json")).await;
        assert_eq!(r.status(), 400);
        assert_common_headers(&r);
        assert_eq!(body(&r)["message"], "The request has no source IP");
        assert_eq!(app.initializer.minter.calls(), 0);
    }

    #[tokio::test]
    async fn unparsable_source_ip_is_400() {
        let json = event_text("http-get-tokens.json").replace(
            "\"sourceIp\": \"2001:DB8:0:0:0:0:0:5\"",
            "\"sourceIp\": \"not-an-ip\"",
        );
        let r = app()
            .handle(lambda_http::request::from_str(&json).unwrap())
            .await;
        assert_eq!(r.status(), 400);
        assert_eq!(
            body(&r)["message"],
            "The request's source IP is not a valid address"
        );
    }

    #[tokio::test]
    async fn options_is_a_cors_preflight() {
        let r = app().handle(event("rest-options-tokens.json")).await;
        assert_eq!(r.status(), 204);
        assert_common_headers(&r);
        assert_eq!(header(&r, "access-control-allow-methods"), "GET, OPTIONS");
        assert!(!header(&r, "access-control-allow-headers").is_empty());
        assert!(!header(&r, "access-control-max-age").is_empty());
    }

    #[tokio::test]
    async fn failed_init_is_a_500_and_is_retried_then_kept() {
        let app = App::new(
            DoublesInit::failing_first(1),
            "*",
            Identification::source_ip("pizza"),
        );
        let r = app.handle(event("rest-get-tokens-order.json")).await;
        assert_opaque_500(&r);
        assert!(!app.is_initialized());

        assert_eq!(status(&app, "rest-get-tokens-order.json").await, 200);
        assert_eq!(status(&app, "rest-get-tokens-admin.json").await, 200);
        assert_eq!(app.initializer.attempts(), 2);
    }

    #[tokio::test]
    async fn rejected_requests_do_not_initialise() {
        let app = app();
        app.handle(event("rest-post-tokens.json")).await;
        app.handle(event("rest-missing-source-ip.json")).await;
        assert_eq!(app.initializer.attempts(), 0);
    }

    #[tokio::test]
    async fn a_failed_mint_with_nothing_to_share_is_503_with_retry_after() {
        let app = app();
        app.initializer.minter.on_mint(Behaviour::Fail);
        let r = app.handle(event("rest-get-tokens-order.json")).await;
        assert_eq!(r.status(), 503);
        assert_common_headers(&r);
        assert_eq!(header(&r, "retry-after"), "1");
        assert_eq!(body(&r)["message"], http::UNAVAILABLE_MESSAGE);
    }

    #[tokio::test]
    async fn a_refused_key_drops_the_clients_so_the_next_request_reads_it_again() {
        let app = app();
        assert_eq!(status(&app, "rest-get-tokens-order.json").await, 200);
        assert_eq!(app.initializer.attempts(), 1);

        app.initializer.minter.on_mint(Behaviour::Reject);
        let r = app.handle(event("rest-get-tokens-admin.json")).await;
        assert_opaque_500(&r);
        assert!(!app.is_initialized());

        app.initializer.minter.on_mint(Behaviour::Work);
        assert_eq!(status(&app, "rest-get-tokens-admin.json").await, 200);
        assert_eq!(app.initializer.attempts(), 2, "re-initialised once");
    }

    #[tokio::test]
    async fn a_mint_the_key_may_not_make_keeps_the_clients_and_is_misconfigured() {
        let app = app();
        app.initializer.minter.on_mint(Behaviour::Deny);
        // Nothing fresh to share: the opaque 500.
        let r = app.handle(event("rest-get-tokens-order.json")).await;
        assert_opaque_500(&r);
        assert!(app.is_initialized(), "a denied mint is not a refused key");
        app.initializer.minter.on_mint(Behaviour::Work);
        assert_eq!(status(&app, "rest-get-tokens-order.json").await, 200);
        assert_eq!(app.initializer.attempts(), 1, "the key was not read again");
    }

    #[tokio::test]
    async fn a_key_refused_during_init_is_not_kept_for_the_first_request() {
        let app = app();
        app.initializer.cache.on_get(Behaviour::Reject);
        app.prepare(PREPARE_TIMEOUT).await;
        assert!(!app.is_initialized(), "INIT dropped the refused clients");
        assert_eq!(app.initializer.attempts(), 1);
        app.initializer.cache.on_get(Behaviour::Work);
        assert_eq!(status(&app, "rest-get-tokens-order.json").await, 200);
        assert_eq!(
            app.initializer.attempts(),
            2,
            "the first request read the key again"
        );
    }

    #[tokio::test]
    async fn an_unreached_cache_during_init_keeps_the_clients() {
        let app = app();
        app.initializer.cache.on_get(Behaviour::Fail);
        app.prepare(PREPARE_TIMEOUT).await;
        assert!(app.is_initialized());
    }

    #[tokio::test]
    async fn other_mint_failures_keep_the_clients() {
        let app = app();
        app.initializer.minter.on_mint(Behaviour::Fail);
        assert_eq!(status(&app, "rest-get-tokens-order.json").await, 503);
        app.initializer.minter.on_mint(Behaviour::Work);
        assert_eq!(status(&app, "rest-get-tokens-order.json").await, 200);
        assert_eq!(app.initializer.attempts(), 1);
    }

    #[tokio::test]
    async fn rate_limited_mint_is_503_with_retry_after() {
        let app = app();
        app.initializer.minter.on_mint(Behaviour::Throttle);
        let r = app.handle(event("rest-get-tokens-order.json")).await;
        assert_eq!(r.status(), 503);
        assert_common_headers(&r);
        assert_eq!(header(&r, "retry-after"), "1");
    }

    #[tokio::test]
    async fn cache_failures_still_answer_200() {
        let app = app();
        app.initializer.cache.on_get(Behaviour::Fail);
        app.initializer.cache.on_set(Behaviour::Fail);
        let r = app.handle(event("rest-get-tokens-order.json")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(body(&r)["token"], "minted-1");
    }

    #[tokio::test]
    async fn configured_cors_origin_is_sent_on_success_and_errors() {
        let app = App::new(
            DoublesInit::new(),
            "https://pizza.example.com",
            Identification::source_ip("pizza"),
        );
        for name in [
            "rest-get-tokens-order.json",
            "rest-post-tokens.json",
            "rest-unknown-path.json",
        ] {
            let r = app.handle(event(name)).await;
            assert_eq!(
                header(&r, "access-control-allow-origin"),
                "https://pizza.example.com",
                "{name}"
            );
        }
    }

    // --- signed-in callers (CALLER_IDENTITY=cognito) ---

    use crate::doubles::EXAMPLE_SCOPES as POLICY;

    fn cognito_app() -> App<DoublesInit> {
        let identification = Identification::new(
            crate::caller::IdentityMode::Cognito,
            crate::scope::ScopePolicy::parse(POLICY, true).unwrap(),
            "pizza",
        );
        App::new(DoublesInit::new(), "*", identification)
    }

    fn event_json(name: &str) -> serde_json::Value {
        serde_json::from_str(&event_text(name)).unwrap()
    }

    fn request(json: &serde_json::Value) -> Request {
        lambda_http::request::from_str(&json.to_string()).unwrap()
    }

    /// The (token id, scope) of every mint so far.
    fn minted(app: &App<DoublesInit>) -> Vec<(Option<String>, String)> {
        app.initializer
            .minter
            .callers()
            .into_iter()
            .map(|c| (c.token_id, c.scope.to_string()))
            .collect()
    }

    const V1_SUB: &str = "7d8ca528-4931-4254-9273-ea5ee853f271";
    const STAFF_AND_DRIVERS: &str = "publish pizza/positions, publish-subscribe pizza/*";

    #[tokio::test]
    async fn rest_claims_make_the_caller_with_comma_separated_groups() {
        let app = cognito_app();
        let r = app.handle(event("rest-get-tokens-cognito.json")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            minted(&app),
            [(Some(V1_SUB.to_string()), STAFF_AND_DRIVERS.to_string())]
        );
    }

    #[tokio::test]
    async fn http_api_jwt_claims_make_the_caller_with_bracketed_groups() {
        let app = cognito_app();
        let r = app.handle(event("http-get-tokens-cognito.json")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            minted(&app),
            [(
                Some("2f1b9c1e-6a3d-4c1f-8e2b-9a7d5c3b1e0f".to_string()),
                STAFF_AND_DRIVERS.to_string()
            )]
        );
    }

    #[tokio::test]
    async fn without_verified_claims_the_answer_is_401_with_cors_and_nothing_is_initialised() {
        let app = cognito_app();
        for name in ["rest-get-tokens-order.json", "http-get-tokens.json"] {
            let r = app.handle(event(name)).await;
            assert_eq!(r.status(), 401, "{name}");
            assert_common_headers(&r);
            assert_eq!(body(&r)["message"], "Sign in to get a token");
        }
        assert_eq!(app.initializer.attempts(), 0);
    }

    #[tokio::test]
    async fn an_unusable_sub_is_not_signed_in() {
        let app = cognito_app();
        for sub in ["", &"x".repeat(65), "a/b"] {
            let mut e = event_json("rest-get-tokens-cognito.json");
            e["requestContext"]["authorizer"]["claims"]["sub"] = serde_json::json!(sub);
            assert_eq!(app.handle(request(&e)).await.status(), 401, "{sub:?}");
        }
    }

    #[tokio::test]
    async fn options_needs_no_sign_in_and_allows_the_authorization_header() {
        let r = cognito_app()
            .handle(event("rest-options-tokens.json"))
            .await;
        assert_eq!(r.status(), 204);
        assert!(header(&r, "access-control-allow-headers").contains("Authorization"));
    }

    /// A signed-in user without groups whose browser claims `staff` (and
    /// another `sub`) through `spoof`: the token is still theirs, of the default scope.
    async fn spoofing_has_no_effect(spoof: impl Fn(&mut serde_json::Value)) {
        let app = cognito_app();
        let mut e = event_json("rest-get-tokens-cognito.json");
        let claims = e["requestContext"]["authorizer"]["claims"]
            .as_object_mut()
            .unwrap();
        claims.remove("cognito:groups");
        spoof(&mut e);
        assert_eq!(app.handle(request(&e)).await.status(), 200);
        assert_eq!(
            minted(&app),
            [(
                Some(V1_SUB.to_string()),
                format!("subscribe pizza/orders-{V1_SUB}")
            )]
        );
    }

    #[tokio::test]
    async fn a_group_or_sub_in_a_header_is_ignored() {
        spoofing_has_no_effect(|e| {
            // (A header name can't hold ':', so `cognito:groups` can't be sent as one.)
            for name in ["X-Cognito-Groups", "X-Groups", "X-Sub"] {
                let value = if name == "X-Sub" {
                    "someone-else"
                } else {
                    "staff"
                };
                e["headers"][name] = serde_json::json!(value);
                e["multiValueHeaders"][name] = serde_json::json!([value]);
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_group_or_sub_in_the_query_string_is_ignored() {
        spoofing_has_no_effect(|e| {
            e["queryStringParameters"] =
                serde_json::json!({"groups": "staff", "cognito:groups": "staff", "sub": "someone-else"});
            e["multiValueQueryStringParameters"] = serde_json::json!({
                "groups": ["staff"], "cognito:groups": ["staff"], "sub": ["someone-else"]
            });
        })
        .await;
    }

    #[tokio::test]
    async fn a_group_or_sub_in_the_body_is_ignored() {
        spoofing_has_no_effect(|e| {
            e["body"] = serde_json::json!(
                r#"{"cognito:groups": "staff", "groups": ["staff"], "sub": "someone-else", "claims": {"sub": "someone-else"}}"#
            );
        })
        .await;
    }

    #[tokio::test]
    async fn claims_in_headers_without_an_authorizer_are_not_a_sign_in() {
        let app = cognito_app();
        let mut e = event_json("rest-get-tokens-order.json");
        e["headers"]["sub"] = serde_json::json!("someone");
        e["headers"]["X-Cognito-Groups"] = serde_json::json!("staff");
        assert_eq!(app.handle(request(&e)).await.status(), 401);
    }

    #[tokio::test]
    async fn source_ip_mode_ignores_claims() {
        let app = app();
        assert_eq!(status(&app, "rest-get-tokens-cognito.json").await, 200);
        let callers = app.initializer.minter.callers();
        assert_eq!(callers[0].token_id, None);
        assert_eq!(callers[0].cache_key, "203.0.113.30-token");
    }

    #[test]
    fn misconfiguration_answers_an_opaque_500() {
        let err = crate::config::ConfigError {
            variable: "TOKEN_TTL_SECONDS",
            reason: "must be a whole number of seconds".into(),
        };
        let r = misconfigured_response(&event("rest-get-tokens-order.json"), &err);
        assert_opaque_500(&r);
    }
}
