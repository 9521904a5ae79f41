//! Typed configuration, read from the environment and validated once at start.
//!
//! Everything the function can be told lives in [`Config`]. A bad value is
//! reported as a [`ConfigError`] that names the variable (never its value: some
//! of these variables hold secrets).

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

use crate::caller::{Identification, IdentityMode};
use crate::scope::ScopePolicy;
use crate::token::REFRESH_MARGIN;

/// The bounds of the two lifetimes, in seconds: the one home that the
/// template's parameters and the README's table are checked against.
///
/// A token must outlive the refresh margin by at least as much again, or it
/// could be reused for under a minute; Momento lets a disposable token live
/// at most 25 h. A cache entry lives at least a minute (shorter would turn
/// the cache into a mint per visit) and is clamped at start to the token's
/// usable life (its lifetime less the refresh margin), so any pair within
/// these bounds works.
pub const TOKEN_TTL_SECONDS: std::ops::RangeInclusive<u64> =
    2 * REFRESH_MARGIN.as_secs()..=MAX_TOKEN_TTL_SECONDS;
pub const CACHE_TTL_SECONDS: std::ops::RangeInclusive<u64> = 60..=MAX_TOKEN_TTL_SECONDS;
/// Momento's limit on a disposable token's lifetime: 25 h.
pub const MAX_TOKEN_TTL_SECONDS: u64 = 25 * 3600;
/// The defaults: the seed's one-hour token, reused for 55 minutes.
pub const DEFAULT_TOKEN_TTL_SECONDS: u64 = 3600;
pub const DEFAULT_CACHE_TTL_SECONDS: u64 = 3300;

/// Where the Momento API key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Production: a Secrets Manager secret `{"momento": "<key>", "endpoint"?: "..."}`.
    SecretsManager { secret_id: String },
    /// Local use: `MOMENTO_API_KEY` (+ `MOMENTO_ENDPOINT` for v2 keys). The
    /// key is a [`SecretString`]: printing it shows `[REDACTED]`, and reading
    /// it takes an explicit `expose_secret()`.
    Direct {
        api_key: SecretString,
        endpoint: Option<String>,
    },
}

/// A Momento-compatible endpoint that replaces every Momento host (tests, local runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointOverride {
    /// Full URL, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    /// `http://` means plaintext gRPC.
    pub plaintext: bool,
}

/// The whole configuration of the function.
#[derive(Debug, Clone)]
pub struct Config {
    pub key_source: KeySource,
    pub endpoint_override: Option<EndpointOverride>,
    pub cache_name: String,
    pub token_ttl: Duration,
    /// The cache TTL in force: `CACHE_TTL_SECONDS`, clamped to the token's
    /// usable life.
    pub cache_ttl: Duration,
    /// Set when `CACHE_TTL_SECONDS` asked for more than the token's usable
    /// life: what was asked (the start-up WARN line says so).
    pub cache_ttl_clamped_from: Option<Duration>,
    pub cors_allow_origin: String,
    /// `CALLER_IDENTITY`: how callers are told apart.
    pub identity: IdentityMode,
    /// `TOKEN_SCOPES`: what each caller's token may do.
    pub scopes: ScopePolicy,
}

/// The opt-in for anonymous callers that may publish (`source-ip` mode with a
/// `default` that grants `publish`): everyone on the internet could then
/// write to those topics, so it must be asked for by name.
pub const ALLOW_ANONYMOUS_PUBLISH: &str = "ALLOW_ANONYMOUS_PUBLISH";

/// A configuration variable that is missing or has a bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it (never the value itself).
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: {}: {}",
            self.variable, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

fn bad(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (a variable name to its value);
    /// empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let key_source = match (get("SECRET_ID"), get("MOMENTO_API_KEY")) {
            (Some(secret_id), _) => KeySource::SecretsManager {
                secret_id: secret_id.trim().to_string(),
            },
            (None, Some(api_key)) => KeySource::Direct {
                api_key: SecretString::from(api_key.trim()),
                endpoint: get("MOMENTO_ENDPOINT").map(|e| e.trim().to_string()),
            },
            (None, None) => {
                return Err(bad(
                    "SECRET_ID",
                    "set SECRET_ID (production) or MOMENTO_API_KEY (local use)",
                ))
            }
        };

        let endpoint_override = get("MOMENTO_ENDPOINT_OVERRIDE")
            .map(|url| parse_endpoint_override(url.trim()))
            .transpose()?;

        let cache_name = get("CACHE_NAME").unwrap_or_else(|| "pizza".to_string());
        if !cache_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad(
                "CACHE_NAME",
                "use ASCII letters, digits, '-', '_' or '.' only",
            ));
        }

        let token_ttl = parse_seconds(&get, "TOKEN_TTL_SECONDS", DEFAULT_TOKEN_TTL_SECONDS)?;
        if !TOKEN_TTL_SECONDS.contains(&token_ttl) {
            let margin = REFRESH_MARGIN.as_secs();
            return Err(bad(
                "TOKEN_TTL_SECONDS",
                format!(
                    "must be {} to {} s (Momento's 25 h); a token is never handed out in its last {margin} s, so a shorter one could hardly be reused",
                    TOKEN_TTL_SECONDS.start(),
                    TOKEN_TTL_SECONDS.end()
                ),
            ));
        }
        let requested_cache_ttl =
            parse_seconds(&get, "CACHE_TTL_SECONDS", DEFAULT_CACHE_TTL_SECONDS)?;
        if !CACHE_TTL_SECONDS.contains(&requested_cache_ttl) {
            return Err(bad(
                "CACHE_TTL_SECONDS",
                format!(
                    "must be {} to {} s",
                    CACHE_TTL_SECONDS.start(),
                    CACHE_TTL_SECONDS.end()
                ),
            ));
        }
        let usable_life = token_ttl - REFRESH_MARGIN.as_secs();
        let cache_ttl = requested_cache_ttl.min(usable_life);
        let cache_ttl_clamped_from =
            (cache_ttl < requested_cache_ttl).then(|| Duration::from_secs(requested_cache_ttl));

        let cors_allow_origin = get("CORS_ALLOW_ORIGIN").unwrap_or_else(|| "*".to_string());
        if !cors_allow_origin
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(bad(
                "CORS_ALLOW_ORIGIN",
                "must be a printable ASCII header value",
            ));
        }

        let identity = match get("CALLER_IDENTITY") {
            None => IdentityMode::SourceIp,
            Some(raw) => IdentityMode::parse(raw.trim())
                .ok_or_else(|| bad("CALLER_IDENTITY", "must be source-ip or cognito"))?,
        };
        let scopes = match get("TOKEN_SCOPES") {
            None => ScopePolicy::builtin(&cache_name),
            Some(json) => ScopePolicy::parse(&json, identity == IdentityMode::Cognito)
                .map_err(|reason| bad("TOKEN_SCOPES", reason))?,
        };
        let anonymous_may_publish = match get(ALLOW_ANONYMOUS_PUBLISH).as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(bad(ALLOW_ANONYMOUS_PUBLISH, "must be true or false")),
        };
        if identity == IdentityMode::SourceIp
            && scopes.default_may_publish()
            && !anonymous_may_publish
        {
            return Err(bad(
                "TOKEN_SCOPES",
                format!(
                    "default grants publish, and in source-ip mode every caller on the internet gets default: grant publish to signed-in groups (CALLER_IDENTITY=cognito), or set {ALLOW_ANONYMOUS_PUBLISH}=true if anonymous callers really may publish"
                ),
            ));
        }

        Ok(Config {
            key_source,
            endpoint_override,
            cache_name,
            token_ttl: Duration::from_secs(token_ttl),
            cache_ttl: Duration::from_secs(cache_ttl),
            cache_ttl_clamped_from,
            cors_allow_origin,
            identity,
            scopes,
        })
    }
}

impl Config {
    /// How callers are told apart and what they are granted, from this configuration.
    pub fn identification(&self) -> Identification {
        Identification::new(self.identity, self.scopes.clone(), &self.cache_name)
    }
}

fn parse_seconds(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(variable) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .map_err(|_| bad(variable, "must be a whole number of seconds")),
    }
}

fn parse_endpoint_override(url: &str) -> Result<EndpointOverride, ConfigError> {
    const VAR: &str = "MOMENTO_ENDPOINT_OVERRIDE";
    let (plaintext, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (false, rest)
    } else {
        return Err(bad(VAR, "must start with http:// or https://"));
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(bad(VAR, "must be a scheme and host[:port] with no path"));
    }
    Ok(EndpointOverride {
        url: format!("{}://{}", if plaintext { "http" } else { "https" }, host),
        plaintext,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = config(&[("SECRET_ID", "momento-secret")]).unwrap();
        assert!(
            matches!(&c.key_source, KeySource::SecretsManager { secret_id } if secret_id == "momento-secret")
        );
        assert_eq!(c.cache_name, "pizza");
        assert_eq!(c.token_ttl, Duration::from_secs(3600));
        assert_eq!(c.cache_ttl, Duration::from_secs(3300));
        assert_eq!(c.cors_allow_origin, "*");
        assert_eq!(c.endpoint_override, None);
        assert_eq!(c.identity, IdentityMode::SourceIp);
        assert_eq!(c.scopes, ScopePolicy::builtin("pizza"));
        assert_eq!(c.cache_ttl_clamped_from, None);
    }

    #[test]
    fn the_default_scope_follows_cache_name() {
        let c = config(&[("SECRET_ID", "s"), ("CACHE_NAME", "pasta")]).unwrap();
        assert_eq!(c.scopes, ScopePolicy::builtin("pasta"));
    }

    #[test]
    fn cognito_mode_with_a_scope_policy() {
        let policy = r#"{"default": [{"role": "subscribe", "cache": "pizza", "topic": "orders-{sub}"}],
                         "groups": {"staff": [{"role": "publish-subscribe", "cache": "pizza", "topic": "*"}]}}"#;
        let c = config(&[
            ("SECRET_ID", "s"),
            ("CALLER_IDENTITY", "cognito"),
            ("TOKEN_SCOPES", policy),
        ])
        .unwrap();
        assert_eq!(c.identity, IdentityMode::Cognito);
        assert_eq!(c.scopes, ScopePolicy::parse(policy, true).unwrap());
    }

    #[test]
    fn scope_policy_errors_name_the_variable_and_say_what_is_wrong() {
        let err = config(&[
            ("SECRET_ID", "s"),
            (
                "TOKEN_SCOPES",
                r#"{"default": [{"role": "subscribe", "cache": "pizza", "topic": "orders-{sub}"}]}"#,
            ),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "TOKEN_SCOPES");
        assert!(err.to_string().contains("CALLER_IDENTITY=cognito"), "{err}");
        let err = config(&[("SECRET_ID", "s"), ("TOKEN_SCOPES", "{")]).unwrap_err();
        assert_eq!(err.variable, "TOKEN_SCOPES");
        let err = config(&[("SECRET_ID", "s"), ("CALLER_IDENTITY", "header")]).unwrap_err();
        assert_eq!(err.variable, "CALLER_IDENTITY");
    }

    #[test]
    fn secret_id_wins_over_a_direct_key() {
        let c = config(&[("SECRET_ID", "s"), ("MOMENTO_API_KEY", "k")]).unwrap();
        assert!(matches!(c.key_source, KeySource::SecretsManager { .. }));
    }

    #[test]
    fn direct_key_with_endpoint() {
        let c = config(&[
            ("MOMENTO_API_KEY", "key"),
            ("MOMENTO_ENDPOINT", "cell-1.example.com"),
        ])
        .unwrap();
        let KeySource::Direct { api_key, endpoint } = c.key_source else {
            panic!("expected a direct key");
        };
        assert_eq!(api_key.expose_secret(), "key");
        assert_eq!(endpoint.as_deref(), Some("cell-1.example.com"));
    }

    #[test]
    fn no_key_source_names_secret_id() {
        assert_eq!(config(&[]).unwrap_err().variable, "SECRET_ID");
        assert_eq!(
            config(&[("SECRET_ID", "  ")]).unwrap_err().variable,
            "SECRET_ID"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&str, &str, &str)] = &[
            ("TOKEN_TTL_SECONDS", "soon", "TOKEN_TTL_SECONDS"),
            ("TOKEN_TTL_SECONDS", "0", "TOKEN_TTL_SECONDS"),
            ("TOKEN_TTL_SECONDS", "30", "TOKEN_TTL_SECONDS"),
            ("TOKEN_TTL_SECONDS", "119", "TOKEN_TTL_SECONDS"),
            ("TOKEN_TTL_SECONDS", "90001", "TOKEN_TTL_SECONDS"),
            ("TOKEN_TTL_SECONDS", "-5", "TOKEN_TTL_SECONDS"),
            ("CACHE_TTL_SECONDS", "59", "CACHE_TTL_SECONDS"),
            ("CACHE_TTL_SECONDS", "90001", "CACHE_TTL_SECONDS"),
            ("CACHE_TTL_SECONDS", "0", "CACHE_TTL_SECONDS"),
            ("ALLOW_ANONYMOUS_PUBLISH", "yes", "ALLOW_ANONYMOUS_PUBLISH"),
            ("CACHE_TTL_SECONDS", "1.5", "CACHE_TTL_SECONDS"),
            ("CACHE_NAME", "pizza/box", "CACHE_NAME"),
            ("CORS_ALLOW_ORIGIN", "a\nb", "CORS_ALLOW_ORIGIN"),
            (
                "MOMENTO_ENDPOINT_OVERRIDE",
                "127.0.0.1:9",
                "MOMENTO_ENDPOINT_OVERRIDE",
            ),
            (
                "MOMENTO_ENDPOINT_OVERRIDE",
                "http://h/path",
                "MOMENTO_ENDPOINT_OVERRIDE",
            ),
        ];
        for (var, value, expected) in cases {
            let err = config(&[("SECRET_ID", "s"), (var, value)]).unwrap_err();
            assert_eq!(err.variable, *expected, "{var}={value:?}");
            if value.len() > 1 {
                assert!(!err.to_string().contains(value), "error echoes the value");
            }
        }
    }

    #[test]
    fn every_pair_within_the_bounds_is_accepted_and_the_cache_ttl_clamped_to_the_usable_life() {
        let margin = REFRESH_MARGIN.as_secs();
        let edges =
            |r: &std::ops::RangeInclusive<u64>| [*r.start(), *r.start() + 1, 3300, 3600, *r.end()];
        for token in edges(&TOKEN_TTL_SECONDS) {
            for cache in edges(&CACHE_TTL_SECONDS) {
                let c = config(&[
                    ("SECRET_ID", "s"),
                    ("TOKEN_TTL_SECONDS", &token.to_string()),
                    ("CACHE_TTL_SECONDS", &cache.to_string()),
                ])
                .unwrap_or_else(|e| panic!("{token}/{cache}: {e}"));
                let usable = token - margin;
                assert_eq!(
                    c.cache_ttl,
                    Duration::from_secs(cache.min(usable)),
                    "{token}/{cache}"
                );
                assert!(
                    c.cache_ttl.as_secs() >= margin,
                    "reused for at least a minute"
                );
                assert_eq!(
                    c.cache_ttl_clamped_from,
                    (cache > usable).then(|| Duration::from_secs(cache)),
                    "{token}/{cache}"
                );
            }
        }
    }

    #[test]
    fn the_issue_pair_600_and_3300_starts_with_the_cache_ttl_clamped() {
        let c = config(&[("SECRET_ID", "s"), ("TOKEN_TTL_SECONDS", "600")]).unwrap();
        assert_eq!(c.cache_ttl, Duration::from_secs(540));
        assert_eq!(c.cache_ttl_clamped_from, Some(Duration::from_secs(3300)));
    }

    #[test]
    fn anonymous_publishing_needs_the_opt_in_by_name() {
        let publishing =
            r#"{"default": [{"role": "publish-subscribe", "cache": "pizza", "topic": "chat"}]}"#;
        let err = config(&[("SECRET_ID", "s"), ("TOKEN_SCOPES", publishing)]).unwrap_err();
        assert_eq!(err.variable, "TOKEN_SCOPES");
        assert!(err.to_string().contains(ALLOW_ANONYMOUS_PUBLISH), "{err}");
        let opted_in = config(&[
            ("SECRET_ID", "s"),
            ("TOKEN_SCOPES", publishing),
            (ALLOW_ANONYMOUS_PUBLISH, "true"),
        ]);
        assert!(opted_in.is_ok());
        // Signed-in callers who get default are users the pool verified.
        let signed_in = config(&[
            ("SECRET_ID", "s"),
            ("CALLER_IDENTITY", "cognito"),
            ("TOKEN_SCOPES", publishing),
        ]);
        assert!(signed_in.is_ok());
        let explicit_no = config(&[
            ("SECRET_ID", "s"),
            ("TOKEN_SCOPES", publishing),
            (ALLOW_ANONYMOUS_PUBLISH, "false"),
        ]);
        assert_eq!(explicit_no.unwrap_err().variable, "TOKEN_SCOPES");
    }

    #[test]
    fn ttls_are_configurable() {
        let c = config(&[
            ("SECRET_ID", "s"),
            ("TOKEN_TTL_SECONDS", "600"),
            ("CACHE_TTL_SECONDS", "300"),
        ])
        .unwrap();
        assert_eq!(c.token_ttl, Duration::from_secs(600));
        assert_eq!(c.cache_ttl, Duration::from_secs(300));
    }

    #[test]
    fn endpoint_override_knows_plaintext_from_tls() {
        let plain = config(&[
            ("SECRET_ID", "s"),
            ("MOMENTO_ENDPOINT_OVERRIDE", "http://127.0.0.1:9090/"),
        ])
        .unwrap();
        assert_eq!(
            plain.endpoint_override,
            Some(EndpointOverride {
                url: "http://127.0.0.1:9090".into(),
                plaintext: true
            })
        );
        let tls = config(&[
            ("SECRET_ID", "s"),
            ("MOMENTO_ENDPOINT_OVERRIDE", "https://momento.internal"),
        ])
        .unwrap();
        assert!(!tls.endpoint_override.unwrap().plaintext);
    }

    #[test]
    fn debug_output_redacts_the_direct_key() {
        let c = config(&[("MOMENTO_API_KEY", "super-secret-key")]).unwrap();
        assert!(!format!("{c:?}").contains("super-secret-key"));
    }
}
