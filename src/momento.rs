//! Momento adapters: the real [`TokenCache`] and [`TokenMinter`], and the
//! [`Initializer`] that builds them from the configured key.
//!
//! This is the only module that knows the Momento SDK. It turns SDK errors
//! into the vending module's error types and decides the token's scope:
//! exactly one permission, topic role SubscribeOnly, the configured cache,
//! all topics.

use std::time::{Duration, Instant};

use momento::auth::{
    CacheSelector, DisposableTokenScope, ExpiresIn, Permission, Permissions, TopicPermission,
    TopicRole, TopicSelector,
};
use momento::cache::configurations::Lambda;
use momento::cache::{GetResponse, SetRequest};
use momento::{AuthClient, CacheClient, CredentialProvider, MomentoError, MomentoErrorCode};
use secrecy::ExposeSecret;

use crate::app::Initializer;
use crate::config::{Config, EndpointOverride, KeySource};
use crate::error::{CacheError, InitError, MintError};
use crate::secrets::{client_from_env, read_momento_key, MomentoKey};
use crate::vending::{TokenCache, TokenMinter, VendedToken, Vendor};

/// The cache side, on a Momento `CacheClient`.
pub struct MomentoCache {
    client: CacheClient,
    cache_name: String,
}

impl MomentoCache {
    pub fn new(client: CacheClient, cache_name: impl Into<String>) -> Self {
        MomentoCache {
            client,
            cache_name: cache_name.into(),
        }
    }
}

/// Whether Momento refused our API key (revoked, rotated, or without the
/// rights): the same answer from the cache and from the token service.
fn key_refused(code: &MomentoErrorCode) -> bool {
    matches!(
        code,
        MomentoErrorCode::AuthenticationError | MomentoErrorCode::PermissionError
    )
}

fn cache_error(e: MomentoError) -> CacheError {
    match e.error_code {
        code if key_refused(&code) => CacheError::KeyRejected,
        code => CacheError::Failed(format!("{code:?}: {}", e.message)),
    }
}

impl TokenCache for MomentoCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        match self
            .client
            .get(self.cache_name.as_str(), key)
            .await
            .map_err(cache_error)?
        {
            GetResponse::Miss => Ok(None),
            hit @ GetResponse::Hit { .. } => String::try_from(hit).map(Some).map_err(cache_error),
        }
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let request = SetRequest::new(self.cache_name.as_str(), key, value).ttl(ttl);
        self.client
            .send_request(request)
            .await
            .map(|_| ())
            .map_err(cache_error)
    }
}

/// The minting side, on a Momento `AuthClient`.
pub struct MomentoMinter {
    client: AuthClient,
    cache_name: String,
}

impl MomentoMinter {
    pub fn new(client: AuthClient, cache_name: impl Into<String>) -> Self {
        MomentoMinter {
            client,
            cache_name: cache_name.into(),
        }
    }
}

/// Subscribe-only access to every topic of one cache, and nothing else.
pub fn subscribe_only_scope(cache_name: &str) -> DisposableTokenScope {
    DisposableTokenScope::Permissions(Permissions {
        permissions: vec![Permission::TopicPermission(TopicPermission {
            role: TopicRole::SubscribeOnly,
            cache: CacheSelector::CacheName {
                name: cache_name.to_string(),
            },
            topic: TopicSelector::AllTopics,
        })],
    })
}

impl TokenMinter for MomentoMinter {
    async fn mint(&self, valid_for: Duration) -> Result<VendedToken, MintError> {
        let response = self
            .client
            .generate_disposable_token(
                subscribe_only_scope(&self.cache_name),
                ExpiresIn::seconds(valid_for.as_secs()),
            )
            .await
            .map_err(|e| match e.error_code {
                MomentoErrorCode::LimitExceededError => MintError::RateLimited,
                code if key_refused(&code) => MintError::KeyRejected,
                code => MintError::Failed(format!("{code:?}: {}", e.message)),
            })?;
        let exp = response.clone().expires_at().epoch();
        Ok(VendedToken {
            token: response.auth_token(),
            exp,
        })
    }
}

/// Momento v2 API keys are JWTs (three dot-separated parts); v1 keys are one base64 blob.
fn is_v2_key(api_key: &str) -> bool {
    api_key.split('.').count() == 3
}

/// A credential provider for `key`, pointed at `endpoint_override` when set.
pub fn credential_provider(
    key: &MomentoKey,
    endpoint_override: Option<&EndpointOverride>,
) -> Result<CredentialProvider, InitError> {
    // The one place the key is read.
    let api_key = key.api_key.expose_secret();
    let provider = if is_v2_key(api_key) {
        let endpoint = key.endpoint.as_deref().ok_or_else(|| {
            InitError("a Momento v2 API key needs an endpoint (\"endpoint\" in the secret, or MOMENTO_ENDPOINT)".into())
        })?;
        CredentialProvider::from_api_key_v2(api_key, endpoint)
    } else {
        #[allow(deprecated)] // the v1 constructor: still the one that reads v1 keys
        CredentialProvider::from_string(api_key)
    }
    .map_err(|e| InitError(format!("the Momento API key was refused: {:?}: {}", e.error_code, e.message)))?;
    Ok(match endpoint_override {
        Some(o) => provider.full_endpoint_override(&o.url),
        None => provider,
    })
}

/// Builds the Momento clients and the vendor from the configuration.
pub fn build_vendor(
    config: &Config,
    key: &MomentoKey,
) -> Result<Vendor<MomentoCache, MomentoMinter>, InitError> {
    let credentials = credential_provider(key, config.endpoint_override.as_ref())?;
    let cache_client = CacheClient::builder()
        .default_ttl(config.cache_ttl)
        .configuration(Lambda::latest())
        .credential_provider(credentials.clone())
        .build()
        .map_err(|e| InitError(format!("building the Momento cache client failed: {e}")))?;
    let auth_client = AuthClient::builder()
        .credential_provider(credentials)
        .build()
        .map_err(|e| InitError(format!("building the Momento auth client failed: {e}")))?;
    Ok(Vendor::new(
        MomentoCache::new(cache_client, config.cache_name.as_str()),
        MomentoMinter::new(auth_client, config.cache_name.as_str()),
        config.token_ttl,
        config.cache_ttl,
    ))
}

/// The production initialiser: key from Secrets Manager (or the environment), then clients.
pub struct MomentoInit {
    config: Config,
    /// Built on the first init that needs it and kept: a retried init or a
    /// re-read after a refused key reads the secret again, but need not reload
    /// the AWS configuration (the costliest part of the cold path).
    secrets_client: tokio::sync::OnceCell<aws_sdk_secretsmanager::Client>,
}

impl MomentoInit {
    pub fn new(config: Config) -> Self {
        if let Some(o) = &config.endpoint_override {
            if o.plaintext {
                tracing::warn!(endpoint = %o.url, "MOMENTO_ENDPOINT_OVERRIDE is plaintext: tokens cross the network unencrypted");
            }
        }
        MomentoInit {
            config,
            secrets_client: tokio::sync::OnceCell::new(),
        }
    }
}

/// How long INIT may spend preparing the Secrets Manager client; past that,
/// it is built on first use instead (INIT stays bounded, and never fails).
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(2);

impl MomentoInit {
    /// Does, before the first request, the part of initialisation that needs
    /// no secret: loading the AWS configuration and building the Secrets
    /// Manager client (with its TLS roots). Lambda runs INIT at full CPU and
    /// invocations at the memory size's share (about 7% of a core at 128 MB),
    /// so this is the cheap place for it. Never fails: a client not ready in
    /// time is built on first use, as before.
    pub async fn prepare(&self) {
        let KeySource::SecretsManager { .. } = &self.config.key_source else {
            return;
        };
        let started = Instant::now();
        let prepared = tokio::time::timeout(
            PREPARE_TIMEOUT,
            self.secrets_client.get_or_init(client_from_env),
        )
        .await;
        let prepare_ms = started.elapsed().as_secs_f64() * 1000.0;
        match prepared {
            Ok(_) => tracing::info!(prepare_ms, "prepared the Secrets Manager client"),
            Err(_) => tracing::warn!(
                prepare_ms,
                "preparing the Secrets Manager client timed out; it is built on first use"
            ),
        }
    }
}

impl Initializer for MomentoInit {
    type Cache = MomentoCache;
    type Minter = MomentoMinter;

    async fn init(&self) -> Result<Vendor<MomentoCache, MomentoMinter>, InitError> {
        let ms = |since: Instant| since.elapsed().as_secs_f64() * 1000.0;
        let (key, sdk_ms, secret_ms) = match &self.config.key_source {
            KeySource::SecretsManager { secret_id } => {
                let started = Instant::now();
                let client = self.secrets_client.get_or_init(client_from_env).await;
                let sdk_ms = ms(started);
                let started = Instant::now();
                let key = read_momento_key(client, secret_id).await?;
                (key, Some(sdk_ms), Some(ms(started)))
            }
            KeySource::Direct { api_key, endpoint } => {
                let key = MomentoKey {
                    api_key: api_key.clone(),
                    endpoint: endpoint.clone(),
                };
                (key, None, None)
            }
        };
        let started = Instant::now();
        let vendor = build_vendor(&self.config, &key)?;
        let clients_ms = ms(started);
        tracing::info!(
            cache = %self.config.cache_name,
            sdk_ms,
            secret_ms,
            clients_ms,
            "initialised Momento clients"
        );
        Ok(vendor)
    }
}
