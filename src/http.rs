//! HTTP mapping: the route table and response shapes.
//!
//! Pure functions from an API Gateway request to a decision, and from a
//! decision to a response. Every response built here carries the CORS,
//! content-type and no-store headers, errors included.

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::caller::CallerError;
use crate::error::MintError;
use crate::token::TokenAnswer;

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
    /// Refused: unknown path or wrong method.
    Reject(Rejection),
}

/// Routes on what API Gateway matched, else on the path without its stage.
///
/// API Gateway says which resource it matched: a REST API (v1) in
/// `requestContext.resourcePath` (`/tokens`), an HTTP API (v2) in `routeKey`
/// (`GET /tokens`). That is the route, whatever the path looked like: behind a
/// custom domain with a base-path mapping the path is `/tvm/tokens`, on a named
/// HTTP API stage `/<stage>/tokens`. Only a catch-all (`$default`, a `{proxy+}`
/// resource) or a request without such a context (a function URL, `cargo
/// lambda watch`) is routed on its path, less a leading `/<stage>` whenever the
/// context names a stage other than `$default`.
pub fn route(req: &Request) -> Route {
    let path = matched_resource(req).unwrap_or_else(|| {
        let raw = req.raw_http_path();
        let path = if raw.is_empty() {
            req.uri().path()
        } else {
            raw
        };
        path_without_stage(path, stage(req))
    });
    if path != TOKENS_PATH {
        return Route::Reject(Rejection::NotFound);
    }
    match *req.method() {
        Method::GET => Route::Vend,
        Method::OPTIONS => Route::Preflight,
        _ => Route::Reject(Rejection::MethodNotAllowed),
    }
}

/// The resource API Gateway matched, unless it was a catch-all.
fn matched_resource(req: &Request) -> Option<&str> {
    let matched = match req.request_context_ref()? {
        RequestContext::ApiGatewayV1(ctx) => ctx.resource_path.as_deref()?,
        // "GET /tokens": the path after the method.
        RequestContext::ApiGatewayV2(ctx) => ctx.route_key.as_deref()?.split_once(' ')?.1,
        _ => return None,
    };
    let catch_all = matched.contains('{') || !matched.starts_with('/');
    (!catch_all).then_some(matched)
}

/// The stage API Gateway named in the request context, if any.
fn stage(req: &Request) -> Option<&str> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.as_deref(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.as_deref(),
        _ => None,
    }
}

/// `path` less a leading `/<stage>`, for a named stage that prefixes it.
fn path_without_stage<'p>(path: &'p str, stage: Option<&str>) -> &'p str {
    let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default") else {
        return path;
    };
    match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// A request refused before any vending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Unknown path.
    NotFound,
    /// Known path, other method.
    MethodNotAllowed,
    /// The caller could not be identified.
    Caller(CallerError),
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::Caller(CallerError::NoSourceIp | CallerError::BadSourceIp) => {
                StatusCode::BAD_REQUEST
            }
            Rejection::Caller(CallerError::NotSignedIn(_)) => StatusCode::UNAUTHORIZED,
        }
    }

    /// What the caller is told.
    pub fn message(&self) -> &'static str {
        match self {
            Rejection::NotFound => "Not found",
            Rejection::MethodNotAllowed => "Method not allowed",
            Rejection::Caller(e) => e.message(),
        }
    }
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

/// 200 with the token in `body` (a stored vended token) as a [`TokenAnswer`]
/// at `now`: `{"token", "exp", "expires_in"}`.
pub fn token_response(body: &str, now: u64, cors_allow_origin: &HeaderValue) -> Response<Body> {
    let answer = TokenAnswer::for_body(body, now).and_then(|a| serde_json::to_string(&a).ok());
    match answer {
        Some(json) => finish(base(StatusCode::OK, cors_allow_origin), Body::Text(json)),
        // Vending only hands out bodies it parsed or wrote; never seen, but no panic.
        None => opaque_500(cors_allow_origin),
    }
}

/// An error: `{"message": "..."}`.
fn error_response(
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

/// What a rate-limited caller is told.
pub const RATE_LIMITED_MESSAGE: &str = "Too many token requests; retry shortly";

/// What a caller is told when the token service can't be reached in time.
pub const UNAVAILABLE_MESSAGE: &str = "The token service is unavailable; retry shortly";

/// The answer to a refused request (404, 405 with `Allow`, 400).
pub fn rejection_response(
    rejection: &Rejection,
    cors_allow_origin: &HeaderValue,
) -> Response<Body> {
    error_response(rejection.status(), rejection.message(), cors_allow_origin)
}

/// The generic 500: the caller learns nothing of the cause.
pub fn opaque_500(cors_allow_origin: &HeaderValue) -> Response<Body> {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        INTERNAL_ERROR_MESSAGE,
        cors_allow_origin,
    )
}

/// The answer when no token could be vended and nothing could be shared: a
/// 503 with `Retry-After` when trying again shortly can work (throttled, or
/// the token service failed or was out of reach), the generic 500 when it
/// can't without an operator (the key was refused or may not mint, the
/// cache is missing).
pub fn mint_failure_response(error: &MintError, cors_allow_origin: &HeaderValue) -> Response<Body> {
    let unavailable =
        |message| error_response(StatusCode::SERVICE_UNAVAILABLE, message, cors_allow_origin);
    match error {
        MintError::RateLimited => unavailable(RATE_LIMITED_MESSAGE),
        MintError::Timeout | MintError::Failed(_) => unavailable(UNAVAILABLE_MESSAGE),
        MintError::KeyRejected | MintError::PermissionDenied(_) | MintError::CacheNotFound(_) => {
            opaque_500(cors_allow_origin)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_stage_prefix_is_dropped_and_nothing_else() {
        assert_eq!(path_without_stage("/prod/tokens", Some("prod")), "/tokens");
        assert_eq!(path_without_stage("/tokens", Some("prod")), "/tokens");
        assert_eq!(path_without_stage("/tokens", Some("$default")), "/tokens");
        assert_eq!(path_without_stage("/tokens", None), "/tokens");
        // Not a whole path segment, or the default stage: left alone.
        assert_eq!(
            path_without_stage("/prodx/tokens", Some("prod")),
            "/prodx/tokens"
        );
        assert_eq!(path_without_stage("/prod", Some("prod")), "/prod");
        assert_eq!(
            path_without_stage("/$default/tokens", Some("$default")),
            "/$default/tokens"
        );
    }

    fn v2(raw_path: &str, stage: &str) -> Request {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": raw_path,
            "rawQueryString": "",
            "headers": {},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.example.com",
                "http": { "method": "GET", "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "t" },
                "requestId": "r",
                "routeKey": "$default",
                "stage": stage,
                "time": "27/Nov/2026:18:30:00 +0000",
                "timeEpoch": 1795804200000u64
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("v2 event")
    }

    fn v1(path: &str, resource: &str) -> Request {
        let event = serde_json::json!({
            "resource": resource,
            "path": path,
            "httpMethod": "GET",
            "headers": {},
            "multiValueHeaders": {},
            "requestContext": {
                "resourcePath": resource,
                "httpMethod": "GET",
                "path": path,
                "stage": "Prod",
                "identity": { "sourceIp": "192.0.2.1" },
                "requestId": "r",
                "accountId": "123456789012",
                "apiId": "api"
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("v1 event")
    }

    #[test]
    fn rest_apis_route_on_the_matched_resource_whatever_the_path() {
        // A custom domain with the base path "tvm" mapped to the API.
        assert_eq!(route(&v1("/tvm/tokens", "/tokens")), Route::Vend);
        assert_eq!(route(&v1("/tokens", "/tokens")), Route::Vend);
        assert_eq!(
            route(&v1("/tvm/orders", "/orders")),
            Route::Reject(Rejection::NotFound)
        );
        // A catch-all resource: the path decides.
        assert_eq!(route(&v1("/tokens", "/{proxy+}")), Route::Vend);
        assert_eq!(
            route(&v1("/tvm/tokens", "/{proxy+}")),
            Route::Reject(Rejection::NotFound)
        );
    }

    #[test]
    fn http_api_route_keys_decide_when_they_name_a_route() {
        let mut req = v2("/tvm/tokens", "$default");
        if let Some(RequestContext::ApiGatewayV2(ctx)) =
            req.extensions_mut().get_mut::<RequestContext>()
        {
            ctx.route_key = Some("GET /tokens".into());
        }
        assert_eq!(route(&req), Route::Vend);
    }

    #[test]
    fn http_api_stages_route_on_the_path_without_the_stage() {
        assert_eq!(route(&v2("/prod/tokens", "prod")), Route::Vend);
        assert_eq!(route(&v2("/tokens", "$default")), Route::Vend);
        assert_eq!(
            route(&v2("/prod/tokens", "$default")),
            Route::Reject(Rejection::NotFound)
        );
        assert_eq!(
            route(&v2("/prod/orders", "prod")),
            Route::Reject(Rejection::NotFound)
        );
    }
}
