//! Token vending machine: an AWS Lambda function that hands browsers
//! short-lived, subscribe-only Momento tokens.
//!
//! `GET /tokens` identifies the caller (by default the source IP API Gateway
//! saw, an IPv6 caller by its /64; or the user API Gateway's Cognito authorizer
//! verified), reuses that caller's token while it has more than a minute left,
//! and otherwise mints a new one of the caller's scope and caches it; when
//! Momento can't mint, an anonymous caller is handed a fresh token already
//! vended for the same scope. The Momento API key never leaves this function.
//!
//! Layout, from the edge inwards:
//! - [`app`]: the request handler, lazy retryable init, per-request log line;
//! - [`http`]: routes and response shapes;
//! - [`caller`]: who is calling (source IP, or a Cognito user from the
//!   authorizer's claims) and the keys and token id that follow from it;
//! - [`scope`]: what a token may do (`TOKEN_SCOPES`, groups, `{sub}`);
//! - [`vending`]: the decisions, behind the [`vending::TokenCache`] and
//!   [`vending::TokenMinter`] traits, with its rooms for the request's
//!   outbound calls and budget, and the container's memory;
//! - [`token`]: the token types and the freshness rule (a leaf every
//!   other module may read);
//! - [`momento`], [`secrets`]: the real Momento clients and the key from
//!   Secrets Manager;
//! - [`config`]: the environment, validated once;
//! - [`error`]: the errors of init, cache calls and minting;
//! - [`outcome`]: how a request ended, for the log line and its level;
//! - [`logging`]: the tracing subscriber (Lambda's log controls, a quiet SDK);
//! - `doubles`: in-memory cache and minter for tests and benchmarks (unit
//!   tests, or the `doubles` feature that the tests and benches turn on; not
//!   in the release binary).

pub mod app;
pub mod caller;
pub mod config;
#[cfg(any(test, feature = "doubles"))]
pub mod doubles;
pub mod error;
pub mod http;
pub mod logging;
pub mod momento;
pub mod outcome;
pub mod scope;
pub mod secrets;
pub mod token;
pub mod vending;
