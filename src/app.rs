//! The request handler: lazy, retryable initialisation plus one log line per request.
//!
//! [`App`] owns the once-per-container state. The first request that needs a
//! token runs the [`Initializer`] (secret read, client construction); success
//! is kept for the life of the container, failure is not, so the next request
//! tries again. Every request ends in exactly one structured log line.

use std::future::Future;
use std::time::Instant;

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use tokio::sync::OnceCell;

use crate::http::{self, Route, INTERNAL_ERROR_MESSAGE};
use crate::vending::{MintError, TokenCache, TokenMinter, Vendor};

/// An initialisation that failed; the text is the cause chain, for the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError(pub String);

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InitError {}

/// Builds the vendor: reads the key and constructs the clients.
pub trait Initializer: Send + Sync {
    type Cache: TokenCache;
    type Minter: TokenMinter;
    fn init(
        &self,
    ) -> impl Future<Output = Result<Vendor<Self::Cache, Self::Minter>, InitError>> + Send;
}

/// The function: routes, vends and logs.
pub struct App<I: Initializer> {
    initializer: I,
    vendor: OnceCell<Vendor<I::Cache, I::Minter>>,
    cors_allow_origin: HeaderValue,
}

/// What one request came to, for its log line.
struct Served {
    response: Response<Body>,
    outcome: &'static str,
    cause: Option<String>,
}

impl Served {
    fn new(response: Response<Body>, outcome: &'static str) -> Self {
        Served {
            response,
            outcome,
            cause: None,
        }
    }

    fn because(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }
}

/// A `HeaderValue` for the CORS origin; config validation guarantees it parses.
pub fn cors_header(origin: &str) -> HeaderValue {
    HeaderValue::from_str(origin).unwrap_or(HeaderValue::from_static("*"))
}

impl<I: Initializer> App<I> {
    pub fn new(initializer: I, cors_allow_origin: &str) -> Self {
        App {
            initializer,
            vendor: OnceCell::new(),
            cors_allow_origin: cors_header(cors_allow_origin),
        }
    }

    /// Whether initialisation has succeeded in this container.
    pub fn is_initialized(&self) -> bool {
        self.vendor.initialized()
    }

    /// Answers one API Gateway request. Never fails: every problem becomes a
    /// JSON error response and a log line.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let started = Instant::now();
        let served = self.serve(&req).await;
        log_request(&req, &served, started);
        served.response
    }

    async fn serve(&self, req: &Request) -> Served {
        let cors = &self.cors_allow_origin;
        match http::route(req) {
            Route::NotFound => {
                return Served::new(
                    http::error_response(StatusCode::NOT_FOUND, "Not found", cors),
                    "rejected",
                )
            }
            Route::MethodNotAllowed => {
                return Served::new(
                    http::error_response(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "Method not allowed",
                        cors,
                    ),
                    "rejected",
                )
            }
            Route::Preflight => return Served::new(http::preflight_response(cors), "preflight"),
            Route::Vend => {}
        }

        let ip = match http::source_ip(req) {
            Ok(ip) => ip,
            Err(e) => {
                return Served::new(
                    http::error_response(StatusCode::BAD_REQUEST, e.message(), cors),
                    "rejected",
                )
                .because(format!("{e:?}"))
            }
        };

        let vendor = match self
            .vendor
            .get_or_try_init(|| self.initializer.init())
            .await
        {
            Ok(vendor) => vendor,
            Err(e) => {
                return Served::new(
                    http::error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        INTERNAL_ERROR_MESSAGE,
                        cors,
                    ),
                    "error",
                )
                .because(format!("initialisation failed: {e}"))
            }
        };

        match vendor.vend(ip).await {
            Ok(vended) => {
                let mut served = Served::new(
                    http::token_response(vended.body, cors),
                    vended.outcome.as_str(),
                );
                served.cause = vended.cache_problem;
                served
            }
            Err(MintError::RateLimited) => Served::new(
                http::error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many token requests; retry shortly",
                    cors,
                ),
                "error",
            )
            .because(MintError::RateLimited.to_string()),
            Err(e) => Served::new(
                http::error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    INTERNAL_ERROR_MESSAGE,
                    cors,
                ),
                "error",
            )
            .because(e.to_string()),
        }
    }
}

fn log_request(req: &Request, served: &Served, started: Instant) {
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = served.response.status().as_u16();
    let method = req.method().as_str();
    let path = req.uri().path();
    let cause = served.cause.as_deref().unwrap_or("");
    if served.outcome == "error" {
        tracing::error!(
            outcome = served.outcome,
            status,
            latency_ms,
            method,
            path,
            cause,
            "request"
        );
    } else {
        tracing::info!(
            outcome = served.outcome,
            status,
            latency_ms,
            method,
            path,
            cause,
            "request"
        );
    }
}

/// The handler used when the configuration is invalid: the container stays up
/// and answers every request with the generic 500, logging the bad variable.
pub fn misconfigured_response(req: &Request, error: &crate::config::ConfigError) -> Response<Body> {
    let started = Instant::now();
    let served = Served::new(
        http::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            INTERNAL_ERROR_MESSAGE,
            &cors_header("*"),
        ),
        "error",
    )
    .because(error.to_string());
    log_request(req, &served, started);
    served.response
}
