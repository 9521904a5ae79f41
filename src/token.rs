//! The token types and the one freshness rule: what a vended token is, what
//! a browser receives, and when a token may still be handed out.
//!
//! A leaf module: configuration (the refresh margin bounds the token TTL),
//! vending, the HTTP answers and the Momento adapter all read it, and it
//! reads none of them. Every type here that holds a token redacts it in
//! `Debug`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A cached token this close to expiry is replaced rather than handed out, so a
/// browser never receives a token that dies before it can subscribe.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// What `Debug` shows instead of a token.
pub const REDACTED: &str = "<redacted>";

/// The response body vended to a browser, and the value stored in the cache.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendedToken {
    /// The Momento auth token string, as the SDK renders it.
    pub token: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
}

impl fmt::Debug for VendedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendedToken")
            .field("token", &REDACTED)
            .field("exp", &self.exp)
            .finish()
    }
}

/// What a browser receives: the vended token plus its remaining lifetime in
/// seconds at the moment of the answer, so a client can time its refresh from
/// the answer's arrival without trusting its own clock against `exp`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAnswer {
    pub token: String,
    pub exp: u64,
    pub expires_in: u64,
}

impl TokenAnswer {
    /// The answer for a stored token body, at `now` (epoch seconds); `None`
    /// if the body is not a vended token (vending never hands one out).
    pub fn for_body(body: &str, now: u64) -> Option<Self> {
        let VendedToken { token, exp } = serde_json::from_str(body).ok()?;
        Some(TokenAnswer {
            token,
            exp,
            expires_in: exp.saturating_sub(now),
        })
    }
}

impl fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAnswer")
            .field("token", &REDACTED)
            .field("exp", &self.exp)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a token expiring at `exp` may still be handed out at `now`: the
/// one freshness rule for cached, remembered and shared tokens alike.
pub fn outlives_margin(exp: u64, now: u64) -> bool {
    exp > now.saturating_add(REFRESH_MARGIN.as_secs())
}

/// The expiry of a stored body that is a vended token outliving the refresh
/// margin; `None` for anything else (corrupt, empty, nearly expired).
pub fn fresh_expiry(body: &str, now: u64) -> Option<u64> {
    serde_json::from_str::<VendedToken>(body)
        .ok()
        .filter(|t| !t.token.is_empty() && outlives_margin(t.exp, now))
        .map(|t| t.exp)
}

/// How long a token expiring at `exp` is still worth reusing at `now`: its
/// life less the refresh margin (at least a second, for a store's TTL).
pub fn usable_life(exp: u64, now: u64) -> Duration {
    Duration::from_secs(
        exp.saturating_sub(now)
            .saturating_sub(REFRESH_MARGIN.as_secs())
            .max(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_every_token_type_hides_the_token() {
        let vended = VendedToken {
            token: "sekrit-vended".into(),
            exp: 1,
        };
        let answer = TokenAnswer {
            token: "sekrit-answer".into(),
            exp: 1,
            expires_in: 1,
        };
        for shown in [format!("{vended:?}"), format!("{answer:?}")] {
            assert!(!shown.contains("sekrit"), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
    }

    #[test]
    fn freshness_is_decided_by_the_margin_alone() {
        let now = 1_800_000_000;
        assert!(!outlives_margin(now + 60, now));
        assert!(outlives_margin(now + 61, now));
        let body = |exp: u64| format!(r#"{{"token":"t","exp":{exp}}}"#);
        assert_eq!(fresh_expiry(&body(now + 61), now), Some(now + 61));
        assert_eq!(fresh_expiry(&body(now + 60), now), None);
        assert_eq!(fresh_expiry(r#"{"token":"","exp":99999999999}"#, now), None);
        assert_eq!(usable_life(now + 3600, now), Duration::from_secs(3540));
        assert_eq!(usable_life(now + 30, now), Duration::from_secs(1));
    }
}
