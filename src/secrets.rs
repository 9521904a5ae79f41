//! The Momento API key from AWS Secrets Manager.
//!
//! The secret is JSON: `{"momento": "<api key>"}`, with an optional
//! `"endpoint"` for Momento v2 API keys. Errors here describe what is wrong
//! with the secret's shape and never echo its content.

use std::time::Duration;

use secrecy::SecretString;

use crate::error::InitError;

/// A hung Secrets Manager fails the init after this long (the next request retries).
pub const SECRET_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The key material for Momento.
#[derive(Debug, Clone)]
pub struct MomentoKey {
    /// Read only where the credential provider is built (`expose_secret()`).
    pub api_key: SecretString,
    /// Needed for v2 API keys; v1 keys carry their endpoint.
    pub endpoint: Option<String>,
}

/// Parses the secret string. Error texts never include the secret.
pub fn parse_secret(secret: &str) -> Result<MomentoKey, InitError> {
    let value: serde_json::Value = serde_json::from_str(secret)
        .map_err(|_| InitError("the secret is not valid JSON".into()))?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
    };
    let api_key = field("momento")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| InitError("the secret has no non-empty string field \"momento\"".into()))?;
    let endpoint = match value.get("endpoint") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(e)) if !e.trim().is_empty() => Some(e.trim().to_string()),
        Some(_) => {
            return Err(InitError(
                "the secret's \"endpoint\" must be a non-empty string".into(),
            ))
        }
    };
    Ok(MomentoKey {
        api_key: SecretString::from(api_key),
        endpoint,
    })
}

/// The HTTPS client for AWS calls: rustls on ring (the crypto Momento's SDK
/// uses too), trusting the system's CA bundle (`SSL_CERT_FILE` honoured).
pub fn https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// A Secrets Manager client from the standard AWS configuration chain
/// (so `AWS_ENDPOINT_URL_SECRETS_MANAGER` and friends apply), on [`https_client`].
pub async fn client_from_env() -> aws_sdk_secretsmanager::Client {
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&sdk_config)
}

/// Reads and parses the secret.
pub async fn read_momento_key(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<MomentoKey, InitError> {
    let read = client.get_secret_value().secret_id(secret_id).send();
    let output = tokio::time::timeout(SECRET_READ_TIMEOUT, read)
        .await
        .map_err(|_| InitError(format!("reading secret {secret_id} timed out")))?
        .map_err(|e| {
            InitError(format!(
                "reading secret {secret_id} failed: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    let secret = output
        .secret_string()
        .ok_or_else(|| InitError(format!("secret {secret_id} has no SecretString")))?;
    parse_secret(secret).map_err(|e| InitError(format!("secret {secret_id}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    use secrecy::ExposeSecret;

    #[test]
    fn parses_key_and_optional_endpoint() {
        let key = parse_secret(r#"{"momento": "abc"}"#).unwrap();
        assert_eq!(key.api_key.expose_secret(), "abc");
        assert_eq!(key.endpoint, None);
        assert_eq!(
            parse_secret(r#"{"momento": "abc", "endpoint": "cell-4.example.com"}"#)
                .unwrap()
                .endpoint
                .as_deref(),
            Some("cell-4.example.com")
        );
    }

    #[test]
    fn malformed_secrets_are_refused_without_echoing_them() {
        for secret in [
            "not json sekrit-value",
            r#"{"momento": ""}"#,
            r#"{"momento": 42}"#,
            r#"{"key": "sekrit-value"}"#,
            r#"["sekrit-value"]"#,
            r#"{"momento": "sekrit-value", "endpoint": 7}"#,
        ] {
            let err = parse_secret(secret).unwrap_err();
            assert!(!err.0.contains("sekrit"), "{err} echoes the secret");
        }
    }

    #[test]
    fn debug_redacts_the_key() {
        let key = parse_secret(r#"{"momento": "sekrit-value"}"#).unwrap();
        assert!(!format!("{key:?}").contains("sekrit"));
    }
}
