//! The errors of the function's outbound work, in one place: reading the key
//! and building clients ([`InitError`]), cache calls ([`CacheError`]) and
//! minting ([`MintError`]).
//!
//! Their texts are for logs only and never carry a key, a secret or a token;
//! what a caller sees is decided in [`crate::http`].

use std::fmt;

/// An initialisation that failed; the text is the cause chain, for the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError(pub String);

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InitError {}

/// A cache call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheError {
    /// The call did not finish within the request's cache budget.
    Timeout,
    /// The cache refused our API key (revoked or rotated).
    KeyRejected,
    /// The cache (named here) does not exist in the key's account and region.
    CacheNotFound(String),
    /// The cache answered with an error (the text is for logs only).
    Failed(String),
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::Timeout => f.write_str("cache call timed out"),
            CacheError::KeyRejected => f.write_str("the cache refused the API key"),
            CacheError::CacheNotFound(cache) => write!(f, "cache {cache} not found"),
            CacheError::Failed(cause) => write!(f, "cache call failed: {cause}"),
        }
    }
}

impl std::error::Error for CacheError {}

/// A vend that produced no token: the mint failed, the key was refused, or
/// the cache does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintError {
    /// The token service throttled us and no fresh token could be shared;
    /// the caller should retry later.
    RateLimited,
    /// The token service did not answer in time.
    Timeout,
    /// Momento refused our API key (revoked or rotated): the clients must be
    /// rebuilt from a fresh read of the key.
    KeyRejected,
    /// Momento denied the key the permission to mint this token: it is not a
    /// super-user key, or its permissions do not cover what `TOKEN_SCOPES`
    /// grants. The key itself is good (clients and memory are kept); only an
    /// operator can fix it (the text is for logs only).
    PermissionDenied(String),
    /// The configured cache does not exist where the key points: nothing is
    /// minted (the token could subscribe to nothing) until an operator creates it.
    CacheNotFound(String),
    /// Any other failure (the text is for logs only).
    Failed(String),
}

impl fmt::Display for MintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MintError::RateLimited => f.write_str("token service rate limit exceeded"),
            MintError::Timeout => f.write_str("token service timed out"),
            MintError::KeyRejected => f.write_str("Momento refused the API key"),
            MintError::PermissionDenied(cause) => write!(
                f,
                "this key may not mint these tokens: use a super-user key whose permissions cover every cache and topic TOKEN_SCOPES grants ({cause})"
            ),
            MintError::CacheNotFound(cache) => write!(
                f,
                "cache {cache} does not exist in this Momento account and region: create it (README, Quick start step 2) or set CACHE_NAME"
            ),
            MintError::Failed(cause) => write!(f, "token mint failed: {cause}"),
        }
    }
}

impl std::error::Error for MintError {}
