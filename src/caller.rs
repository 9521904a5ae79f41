//! Who is calling: the one place that turns an API Gateway request context
//! into a [`Caller`] (identity, granted scope, cache key, token id, and
//! whether its token may be shared).
//!
//! Two modes ([`IdentityMode`]):
//! - `source-ip` (the seed's model, the default): the caller is the address
//!   API Gateway saw (an IPv6 caller by its /64). Never `X-Forwarded-For`.
//! - `cognito`: the caller is the user API Gateway's Cognito authorizer
//!   verified, read **only** from the request context — REST (v1)
//!   `requestContext.authorizer.claims`, HTTP API (v2)
//!   `requestContext.authorizer.jwt.claims`. Headers, query strings and the
//!   body are chosen by the browser and are never read for identity or groups.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::scope::{fnv1a, Scope, ScopePolicy};

/// How callers are told apart (`CALLER_IDENTITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityMode {
    SourceIp,
    Cognito,
}

impl IdentityMode {
    /// The value of `CALLER_IDENTITY` and of the log line's `mode` field.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityMode::SourceIp => "source-ip",
            IdentityMode::Cognito => "cognito",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "source-ip" => Some(IdentityMode::SourceIp),
            "cognito" => Some(IdentityMode::Cognito),
            _ => None,
        }
    }
}

/// Momento's limit on a disposable token's `token_id`.
pub const MAX_TOKEN_ID_LEN: usize = 64;

/// The cache key of the token shared between anonymous callers of the seed's
/// scope. No caller key can take this form (caller keys start with an
/// address or `user/`).
pub const SHARED_KEY: &str = "tvm-shared-token";

/// One caller, as vending sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// What the log line may say about the caller (never a `sub` in clear).
    pub label: String,
    /// What its token may do.
    pub scope: Scope,
    /// Where its token is cached.
    pub cache_key: String,
    /// Put in the token, so that Momento attributes what it publishes.
    pub token_id: Option<String>,
    /// Where a token that may be handed to callers of the same scope lives;
    /// `None`: this caller's token is never shared, nor given another's.
    pub shared_key: Option<String>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key and token id of a signed-in caller carry its `sub`.
        f.debug_struct("Caller")
            .field("label", &self.label)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// An anonymous caller at `ip` granted `scope` (see [`AnonymousKeys`]).
    pub fn anonymous(ip: IpAddr, scope: Scope, cache: &str) -> Self {
        AnonymousKeys::new(scope, cache).caller(ip)
    }

    /// A signed-in user: a key per user and per granted scope, the `sub` as
    /// token id, and no sharing in either direction.
    pub fn user(sub: &str, scope: Scope) -> Self {
        Caller {
            label: format!("user:{:08x}", fnv1a(sub.as_bytes()) >> 32),
            cache_key: format!("user/{sub}/{}-token", scope.fingerprint()),
            scope,
            token_id: Some(sub.to_string()),
            shared_key: None,
        }
    }
}

/// How anonymous callers granted one scope are keyed: derived once per
/// configuration, since every anonymous caller of it has the same scope.
/// With the seed's scope the keys are the seed's (`<ip>-token`,
/// [`SHARED_KEY`]); any other scope puts its fingerprint in both, so a
/// changed policy never serves tokens of the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousKeys {
    scope: Scope,
    /// After the address in a caller's key: `-token` or `-<fingerprint>-token`.
    suffix: String,
    shared_key: String,
}

impl AnonymousKeys {
    pub fn new(scope: Scope, cache: &str) -> Self {
        let (suffix, shared_key) = if scope == Scope::subscribe_all(cache) {
            ("-token".to_string(), SHARED_KEY.to_string())
        } else {
            let fp = scope.fingerprint();
            (format!("-{fp}-token"), format!("tvm-shared-{fp}-token"))
        };
        AnonymousKeys {
            scope,
            suffix,
            shared_key,
        }
    }

    /// The caller at `ip`.
    pub fn caller(&self, ip: IpAddr) -> Caller {
        let address = address_key(ip);
        Caller {
            cache_key: format!("{address}{}", self.suffix),
            label: address,
            scope: self.scope.clone(),
            token_id: None,
            shared_key: Some(self.shared_key.clone()),
        }
    }
}

/// How an address is keyed: IPv4 (and IPv4-mapped IPv6) by address, other
/// IPv6 by its /64 (`2001:db8:1:2::/64`): one subscriber holds a whole /64
/// and could otherwise mint a token per address.
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let prefix = Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX));
            format!("{prefix}/64")
        }
        _ => ip.to_string(),
    }
}

/// Why a request has no usable caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerError {
    /// The event has no API Gateway request context with a source IP.
    NoSourceIp,
    /// The source IP is not an IPv4 or IPv6 address.
    BadSourceIp,
    /// Cognito mode, and the authorizer verified no user (or its `sub` is unusable).
    NotSignedIn(&'static str),
}

impl CallerError {
    /// What the caller is told.
    pub fn message(&self) -> &'static str {
        match self {
            CallerError::NoSourceIp => "The request has no source IP",
            CallerError::BadSourceIp => "The request's source IP is not a valid address",
            CallerError::NotSignedIn(_) => "Sign in to get a token",
        }
    }
}

/// How this function tells callers apart and what it grants them: the
/// configured mode and scope policy, applied to every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identification {
    mode: IdentityMode,
    policy: ScopePolicy,
    /// Anonymous callers' scope and keys (used in `source-ip` mode).
    anonymous: AnonymousKeys,
}

impl Identification {
    pub fn new(mode: IdentityMode, policy: ScopePolicy, cache: &str) -> Self {
        let anonymous = AnonymousKeys::new(policy.grant(None, &[]), cache);
        Identification {
            mode,
            policy,
            anonymous,
        }
    }

    /// The seed's model: callers by source IP, subscribe to every topic of `cache`.
    pub fn source_ip(cache: &str) -> Self {
        Self::new(IdentityMode::SourceIp, ScopePolicy::builtin(cache), cache)
    }

    pub fn mode(&self) -> IdentityMode {
        self.mode
    }

    /// The shared key of this configuration's anonymous callers (one scope
    /// for all of them); `None` when callers are signed-in users, who never share.
    pub fn shared_key(&self) -> Option<&str> {
        match self.mode {
            IdentityMode::SourceIp => Some(&self.anonymous.shared_key),
            IdentityMode::Cognito => None,
        }
    }

    /// Identifies the caller of `req`.
    pub fn identify(&self, req: &Request) -> Result<Caller, CallerError> {
        match self.mode {
            IdentityMode::SourceIp => Ok(self.anonymous.caller(source_ip(req)?)),
            IdentityMode::Cognito => {
                let claims = verified_claims(req).ok_or(CallerError::NotSignedIn("no claims"))?;
                let sub = claims.sub.as_str();
                let usable = !sub.is_empty()
                    && sub.len() <= MAX_TOKEN_ID_LEN
                    && sub
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c));
                if !usable {
                    return Err(CallerError::NotSignedIn("unusable sub claim"));
                }
                Ok(Caller::user(
                    sub,
                    self.policy.grant(Some(sub), &claims.groups),
                ))
            }
        }
    }
}

/// The caller's address, from the API Gateway request context only.
///
/// Headers such as `X-Forwarded-For` are chosen by the caller and so are never
/// consulted: a caller must not be able to pick another caller's cache entry.
pub fn source_ip(req: &Request) -> Result<IpAddr, CallerError> {
    let raw = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.as_deref(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.as_deref(),
        _ => None,
    };
    let raw = raw.map(str::trim).filter(|s| !s.is_empty());
    raw.ok_or(CallerError::NoSourceIp)?
        .parse::<IpAddr>()
        .map_err(|_| CallerError::BadSourceIp)
}

/// What the authorizer verified about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub groups: Vec<String>,
}

/// The claims API Gateway's authorizer put in the request context, if any.
///
/// - REST (v1): `authorizer.claims`, where API Gateway flattens
///   `cognito:groups` into one comma-separated string (an array or a
///   bracketed string is accepted too).
/// - HTTP API (v2): `authorizer.jwt.claims`, where an array claim arrives as a
///   bracketed, space-separated string: `"[staff drivers]"`.
pub fn verified_claims(req: &Request) -> Option<Claims> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV1(ctx) => {
            let claims = ctx.authorizer.fields.get("claims")?.as_object()?;
            let sub = claims.get("sub")?.as_str()?.to_string();
            let groups = match claims.get("cognito:groups") {
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str())
                    .map(str::to_string)
                    .collect(),
                Some(serde_json::Value::String(s)) => split_groups(s, ','),
                _ => Vec::new(),
            };
            Some(Claims { sub, groups })
        }
        RequestContext::ApiGatewayV2(ctx) => {
            let claims = &ctx.authorizer.as_ref()?.jwt.as_ref()?.claims;
            let sub = claims.get("sub")?.clone();
            let groups = claims
                .get("cognito:groups")
                .map(|s| split_groups(s, ' '))
                .unwrap_or_default();
            Some(Claims { sub, groups })
        }
        _ => None,
    }
}

/// `"a,b"`, `"[a b]"` or `"[a, b]"` to `["a", "b"]`.
fn split_groups(raw: &str, separator: char) -> Vec<String> {
    let inner = raw.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(inner);
    inner
        .split([separator, ','])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_callers_are_keyed_by_their_64_and_ipv4_by_address() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(address_key(ip("2001:DB8:0:0:0:0:0:5")), "2001:db8::/64");
        assert_eq!(address_key(ip("203.0.113.10")), "203.0.113.10");
        assert_eq!(address_key(ip("::ffff:10.0.0.1")), "::ffff:10.0.0.1");
        assert_eq!(address_key(ip("::1")), "::/64");
    }

    #[test]
    fn anonymous_callers_of_the_seeds_scope_keep_the_seeds_keys() {
        let c = Caller::anonymous(ip("203.0.113.10"), Scope::subscribe_all("pizza"), "pizza");
        assert_eq!(c.cache_key, "203.0.113.10-token");
        assert_eq!(c.shared_key.as_deref(), Some(SHARED_KEY));
        assert_eq!(c.token_id, None);
    }

    #[test]
    fn another_scope_gets_other_keys() {
        let scope = Scope::subscribe_all("pasta");
        let c = Caller::anonymous(ip("203.0.113.10"), scope.clone(), "pizza");
        let fp = scope.fingerprint();
        assert_eq!(c.cache_key, format!("203.0.113.10-{fp}-token"));
        assert_eq!(
            c.shared_key.as_deref(),
            Some(format!("tvm-shared-{fp}-token").as_str())
        );
    }

    #[test]
    fn users_get_a_key_per_user_and_scope_their_sub_as_token_id_and_no_sharing() {
        let a = Caller::user("sub-a", Scope::subscribe_all("pizza"));
        let b = Caller::user("sub-b", Scope::subscribe_all("pizza"));
        let a_staff = Caller::user("sub-a", Scope::subscribe_all("pasta"));
        assert_ne!(a.cache_key, b.cache_key);
        assert_ne!(a.cache_key, a_staff.cache_key);
        assert_eq!(a.token_id.as_deref(), Some("sub-a"));
        assert_eq!(a.shared_key, None);
        assert!(!a.label.contains("sub-a"), "the log label hides the sub");
        assert!(!format!("{a:?}").contains("sub-a"));
    }

    #[test]
    fn the_configurations_shared_key_is_its_anonymous_callers_and_users_have_none() {
        let policy = ScopePolicy::parse(
            r#"{"default": [{"role": "subscribe", "cache": "pizza", "topic": "orders"}]}"#,
            false,
        )
        .unwrap();
        let custom = Identification::new(IdentityMode::SourceIp, policy.clone(), "pizza");
        let caller = custom.anonymous.caller(ip("203.0.113.10"));
        assert_eq!(custom.shared_key(), caller.shared_key.as_deref());
        assert_ne!(custom.shared_key(), Some(SHARED_KEY));
        assert_eq!(
            Identification::source_ip("pizza").shared_key(),
            Some(SHARED_KEY)
        );
        let cognito = Identification::new(IdentityMode::Cognito, policy, "pizza");
        assert_eq!(cognito.shared_key(), None);
    }

    #[test]
    fn group_strings_of_both_shapes_split() {
        assert_eq!(split_groups("staff,drivers", ','), ["staff", "drivers"]);
        assert_eq!(split_groups("[staff drivers]", ' '), ["staff", "drivers"]);
        assert_eq!(split_groups("[staff, drivers]", ','), ["staff", "drivers"]);
        assert_eq!(split_groups("staff", ' '), ["staff"]);
        assert!(split_groups("", ',').is_empty());
        assert!(split_groups("[]", ' ').is_empty());
    }
}
