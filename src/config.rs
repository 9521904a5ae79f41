//! Typed configuration, read from the environment and validated once at start.
//!
//! Everything the function can be told lives in [`Config`]. A bad value is
//! reported as a [`ConfigError`] that names the variable (never its value: some
//! of these variables hold secrets).

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

use crate::caller::IdentityMode;
use crate::scope::ScopePolicy;
use crate::vending::REFRESH_MARGIN;

/// Momento allows disposable tokens of up to 25 h; we cap at one day.
pub const MAX_TOKEN_TTL_SECONDS: u64 = 86_400;

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
    pub cache_ttl: Duration,
    pub cors_allow_origin: String,
    /// `CALLER_IDENTITY`: how callers are told apart.
    pub identity: IdentityMode,
    /// `TOKEN_SCOPES`: what each caller's token may do.
    pub scopes: ScopePolicy,
}

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

        let token_ttl = parse_seconds(&get, "TOKEN_TTL_SECONDS", 3600)?;
        let margin = REFRESH_MARGIN.as_secs();
        if !(margin + 1..=MAX_TOKEN_TTL_SECONDS).contains(&token_ttl) {
            return Err(bad(
                "TOKEN_TTL_SECONDS",
                format!(
                    "must be more than the {margin} s refresh margin (a token is never handed out in its last {margin} s) and at most {MAX_TOKEN_TTL_SECONDS}"
                ),
            ));
        }
        let cache_ttl = parse_seconds(&get, "CACHE_TTL_SECONDS", 3300)?;
        if cache_ttl == 0 || cache_ttl >= token_ttl {
            return Err(bad(
                "CACHE_TTL_SECONDS",
                "must be at least 1 and less than TOKEN_TTL_SECONDS (a cached token must not outlive itself)",
            ));
        }

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

        Ok(Config {
            key_source,
            endpoint_override,
            cache_name,
            token_ttl: Duration::from_secs(token_ttl),
            cache_ttl: Duration::from_secs(cache_ttl),
            cors_allow_origin,
            identity,
            scopes,
        })
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
            ("TOKEN_TTL_SECONDS", "86401", "TOKEN_TTL_SECONDS"),
            ("TOKEN_TTL_SECONDS", "-5", "TOKEN_TTL_SECONDS"),
            ("CACHE_TTL_SECONDS", "3600", "CACHE_TTL_SECONDS"),
            ("CACHE_TTL_SECONDS", "0", "CACHE_TTL_SECONDS"),
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
    fn a_cache_ttl_not_below_the_token_ttl_names_both_variables() {
        let err = config(&[
            ("SECRET_ID", "s"),
            ("TOKEN_TTL_SECONDS", "600"),
            ("CACHE_TTL_SECONDS", "600"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "CACHE_TTL_SECONDS");
        assert!(err.to_string().contains("TOKEN_TTL_SECONDS"), "{err}");
    }

    #[test]
    fn a_token_ttl_just_above_the_refresh_margin_is_accepted() {
        let c = config(&[
            ("SECRET_ID", "s"),
            ("TOKEN_TTL_SECONDS", "61"),
            ("CACHE_TTL_SECONDS", "1"),
        ])
        .unwrap();
        assert_eq!(c.token_ttl, Duration::from_secs(61));
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
