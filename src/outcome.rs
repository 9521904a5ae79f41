//! How a request ended: the one type that the log line's `outcome` field, its
//! level, and the vending logic's result all read.

use std::fmt;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A usable token came from the caller's cache entry.
    Hit,
    /// A new token was minted and stored.
    Miss,
    /// A new token was minted but the cache failed on the way (get or set).
    Degraded,
    /// A still-fresh token vended to another caller was handed out, because
    /// the token service throttled us (or is being left alone after it did) or
    /// the cache could not be read.
    Shared,
    /// The request was refused before any vending: unknown path, wrong
    /// method, no usable source IP.
    Rejected,
    /// A CORS preflight was answered.
    Preflight,
    /// No token: a 5xx answer (failed init, refused key, failed or throttled
    /// mint with nothing to share).
    Error,
    /// Only an operator can fix what went wrong: the configured cache does
    /// not exist, the environment is invalid, or the key may not mint the
    /// scope asked for. A 500, except that a caller who may share is still
    /// handed a fresh token when a mint is denied (the line says so); always
    /// an `ERROR` line, counted by the error alarm with `error`, and its own
    /// metric so it is told apart.
    Misconfigured,
}

impl Outcome {
    /// The value of the log line's `outcome` field (and of the metric filters).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Degraded => "degraded",
            Outcome::Shared => "shared",
            Outcome::Rejected => "rejected",
            Outcome::Preflight => "preflight",
            Outcome::Error => "error",
            Outcome::Misconfigured => "misconfigured",
        }
    }

    /// Whether the request's log line is written at `ERROR` level.
    pub fn is_error(self) -> bool {
        matches!(self, Outcome::Error | Outcome::Misconfigured)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
