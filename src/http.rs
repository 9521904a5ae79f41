//! HTTP mapping: the route table, the caller's identity, and response shapes.
//!
//! Pure functions from an API Gateway request to a decision, and from a
//! decision to a response. Every response built here carries the CORS,
//! content-type and no-store headers, errors included.

use std::net::IpAddr;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

/// The only resource this function serves.
pub const TOKENS_PATH: &str = "/tokens";

/// Every (path, methods) the router answers with something other than 404/405.
/// The packaging checks compare this table with the OpenAPI specs.
pub const ROUTES: &[(&str, &[&str])] = &[(TOKENS_PATH, &["GET", "OPTIONS"])];

/// The `Allow` header for `/tokens`.
pub const ALLOWED_METHODS: &str = "GET, OPTIONS";
/// Headers a browser may send cross-origin.
pub const ALLOWED_HEADERS: &str = "Content-Type, Authorization";
/// How long a browser may cache the preflight answer (seconds).
pub const PREFLIGHT_MAX_AGE: &str = "600";
/// Seconds a rate-limited caller should wait.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// What the router decided for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /tokens`
    Vend,
    /// `OPTIONS /tokens`
    Preflight,
    /// Known path, other method.
    MethodNotAllowed,
    /// Unknown path.
    NotFound,
}

/// Routes on the raw HTTP path: API Gateway prefixes the stage to `uri().path()`.
pub fn route(req: &Request) -> Route {
    let raw = req.raw_http_path();
    let path = if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    };
    if path != TOKENS_PATH {
        return Route::NotFound;
    }
    match *req.method() {
        Method::GET => Route::Vend,
        Method::OPTIONS => Route::Preflight,
        _ => Route::MethodNotAllowed,
    }
}

/// Why a caller could not be identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceIpError {
    /// The event has no API Gateway request context with a source IP.
    Missing,
    /// The source IP is not an IPv4 or IPv6 address.
    Unparsable,
}

impl SourceIpError {
    pub fn message(&self) -> &'static str {
        match self {
            SourceIpError::Missing => "The request has no source IP",
            SourceIpError::Unparsable => "The request's source IP is not a valid address",
        }
    }
}

/// The caller's address, from the API Gateway request context only.
///
/// Headers such as `X-Forwarded-For` are chosen by the caller and so are never
/// consulted: a caller must not be able to pick another caller's cache entry.
pub fn source_ip(req: &Request) -> Result<IpAddr, SourceIpError> {
    let raw = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.as_deref(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.as_deref(),
        _ => None,
    };
    let raw = raw.map(str::trim).filter(|s| !s.is_empty());
    raw.ok_or(SourceIpError::Missing)?
        .parse::<IpAddr>()
        .map_err(|_| SourceIpError::Unparsable)
}

fn base(
    status: StatusCode,
    cors_allow_origin: &HeaderValue,
) -> lambda_http::http::response::Builder {
    Response::builder()
        .status(status)
        .header(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            cors_allow_origin.clone(),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
}

fn finish(builder: lambda_http::http::response::Builder, body: Body) -> Response<Body> {
    // The builder only fails on invalid header values, and every value here is
    // a constant or a pre-validated `HeaderValue`.
    builder.body(body).unwrap_or_else(|_| {
        let mut fallback = Response::new(Body::Empty);
        *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// 200 with a vended token body (already JSON).
pub fn token_response(body: String, cors_allow_origin: &HeaderValue) -> Response<Body> {
    finish(base(StatusCode::OK, cors_allow_origin), Body::Text(body))
}

/// An error: `{"message": "..."}`.
pub fn error_response(
    status: StatusCode,
    message: &str,
    cors_allow_origin: &HeaderValue,
) -> Response<Body> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut builder = base(status, cors_allow_origin);
    match status {
        StatusCode::METHOD_NOT_ALLOWED => builder = builder.header(header::ALLOW, ALLOWED_METHODS),
        StatusCode::SERVICE_UNAVAILABLE => {
            // Exposed so that browser code can honour it cross-origin.
            builder = builder
                .header(header::RETRY_AFTER, RETRY_AFTER_SECONDS)
                .header(header::ACCESS_CONTROL_EXPOSE_HEADERS, "Retry-After")
        }
        _ => {}
    }
    finish(builder, Body::Text(body))
}

/// 204 answer to a CORS preflight.
pub fn preflight_response(cors_allow_origin: &HeaderValue) -> Response<Body> {
    let builder = base(StatusCode::NO_CONTENT, cors_allow_origin)
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS)
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS)
        .header(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE);
    finish(builder, Body::Empty)
}

/// The generic 500 body: the cause goes to the log, never to the caller.
pub const INTERNAL_ERROR_MESSAGE: &str = "Something went wrong";
