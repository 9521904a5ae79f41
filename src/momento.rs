//! Momento adapters: the real [`TokenCache`] and [`TokenMinter`], and the
//! [`Initializer`] that builds them from the configured key.
//!
//! This is the only module that knows the Momento SDK. It turns SDK errors
//! into the vending module's error types, a granted [`Scope`] into the SDK's
//! permissions (with the caller's token id), and keeps each client behind a
//! slot that vending can tell to move to a new connection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use momento::auth::{
    CacheSelector, DisposableTokenScope, ExpiresIn, GenerateDisposableTokenRequest, Permission,
    Permissions, TopicPermission, TopicRole, TopicSelector,
};
use momento::cache::configurations::Lambda;
use momento::cache::{GetResponse, SetRequest};
use momento::{AuthClient, CacheClient, CredentialProvider, MomentoError, MomentoErrorCode};
use secrecy::ExposeSecret;

use crate::caller::Caller;
use crate::config::{Config, EndpointOverride, KeySource};
use crate::error::{CacheError, InitError, MintError};
use crate::scope::{Role, Scope, Topics};
use crate::secrets::{client_from_env, read_momento_key, MomentoKey};
use crate::token::VendedToken;
use crate::vending::{Initializer, TokenCache, TokenMinter, Vendor};

/// A client and how to build another one like it. The SDK's channels connect
/// lazily, so a rebuild costs no I/O: the next call opens a new connection.
/// (tonic never abandons a connection that goes silent without closing; a
/// new client is the way off it.)
struct Reconnecting<T> {
    current: Mutex<(T, Instant)>,
    build: Box<dyn Fn() -> Result<T, MomentoError> + Send + Sync>,
}

impl<T: Clone> Reconnecting<T> {
    fn new(
        build: impl Fn() -> Result<T, MomentoError> + Send + Sync + 'static,
    ) -> Result<Self, MomentoError> {
        let client = build()?;
        Ok(Reconnecting {
            current: Mutex::new((client, Instant::now())),
            build: Box::new(build),
        })
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, (T, Instant)> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self) -> T {
        self.slot().0.clone()
    }

    /// Replaces the client if it was built before `opened_before` (a client
    /// built since is already on a new connection). Calls in flight keep the
    /// old one until they end.
    fn reconnect(&self, opened_before: tokio::time::Instant, what: &str) {
        let opened_before = opened_before.into_std();
        let mut slot = self.slot();
        if slot.1 >= opened_before {
            return;
        }
        match (self.build)() {
            Ok(client) => {
                *slot = (client, Instant::now());
                tracing::info!(
                    client = what,
                    "abandoned a timed-out connection; the next call opens a new one"
                );
            }
            Err(e) => {
                tracing::warn!(client = what, error = %e.message, "could not rebuild the client; keeping the old one")
            }
        }
    }
}

/// The cache side, on a Momento `CacheClient`.
pub struct MomentoCache {
    client: Reconnecting<CacheClient>,
    cache_name: String,
}

// Momento refuses a revoked or rotated key with `AuthenticationError`, the
// same answer from the cache and the token service: the key is gone and the
// clients must be rebuilt from a fresh read. `PermissionError` is another
// matter: the key is valid but may not do this (a key that is not a super
// user may not mint; a fine-grained key may not touch this cache). Rebuilding
// would read the same key again and wipe what the container remembers.

fn cache_error(cache: &str, e: MomentoError) -> CacheError {
    match e.error_code {
        MomentoErrorCode::AuthenticationError => CacheError::KeyRejected,
        MomentoErrorCode::PermissionError => CacheError::Failed(format!(
            "PermissionError: the key may not use cache {cache}: {}",
            e.message
        )),
        MomentoErrorCode::CacheNotFoundError => CacheError::CacheNotFound(cache.to_string()),
        // The SDK's own deadline: the same dead-connection suspicion as ours.
        MomentoErrorCode::TimeoutError => CacheError::Timeout,
        code => CacheError::Failed(format!("{code:?}: {}", e.message)),
    }
}

impl TokenCache for MomentoCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        match self
            .client
            .client()
            .get(self.cache_name.as_str(), key)
            .await
            .map_err(|e| cache_error(&self.cache_name, e))?
        {
            GetResponse::Miss => Ok(None),
            hit @ GetResponse::Hit { .. } => String::try_from(hit)
                .map(Some)
                .map_err(|e| cache_error(&self.cache_name, e)),
        }
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), CacheError> {
        let request = SetRequest::new(self.cache_name.as_str(), key, value).ttl(ttl);
        self.client
            .client()
            .send_request(request)
            .await
            .map(|_| ())
            .map_err(|e| cache_error(&self.cache_name, e))
    }

    fn reconnect(&self, opened_before: tokio::time::Instant) {
        self.client.reconnect(opened_before, "cache");
    }
}

/// The minting side, on a Momento `AuthClient`.
pub struct MomentoMinter {
    client: Reconnecting<AuthClient>,
}

/// The SDK's form of a granted scope: one topic permission per permission.
pub fn token_scope(scope: &Scope) -> DisposableTokenScope {
    let permissions = scope
        .permissions()
        .iter()
        .map(|p| {
            Permission::TopicPermission(TopicPermission {
                role: match p.role {
                    Role::Subscribe => TopicRole::SubscribeOnly,
                    Role::Publish => TopicRole::PublishOnly,
                    Role::PublishSubscribe => TopicRole::PublishSubscribe,
                },
                cache: CacheSelector::CacheName {
                    name: p.cache.clone(),
                },
                topic: match &p.topics {
                    Topics::All => TopicSelector::AllTopics,
                    Topics::Named(name) => TopicSelector::TopicName { name: name.clone() },
                },
            })
        })
        .collect();
    DisposableTokenScope::Permissions(Permissions { permissions })
}

fn mint_error(e: MomentoError) -> MintError {
    match e.error_code {
        MomentoErrorCode::LimitExceededError => MintError::RateLimited,
        MomentoErrorCode::TimeoutError => MintError::Timeout,
        MomentoErrorCode::AuthenticationError => MintError::KeyRejected,
        MomentoErrorCode::PermissionError => MintError::PermissionDenied(e.message),
        code => MintError::Failed(format!("{code:?}: {}", e.message)),
    }
}

impl TokenMinter for MomentoMinter {
    async fn mint(&self, caller: &Caller, valid_for: Duration) -> Result<VendedToken, MintError> {
        let mut request = GenerateDisposableTokenRequest::new(
            token_scope(&caller.scope),
            ExpiresIn::seconds(valid_for.as_secs()),
        );
        if let Some(token_id) = &caller.token_id {
            request = request.token_id(token_id.clone());
        }
        let response = self
            .client
            .client()
            .send_request(request)
            .await
            .map_err(mint_error)?;
        let exp = response.clone().expires_at().epoch();
        Ok(VendedToken {
            token: response.auth_token(),
            exp,
        })
    }

    fn reconnect(&self, opened_before: tokio::time::Instant) {
        self.client.reconnect(opened_before, "token");
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
    let cache_ttl = config.cache_ttl;
    let cache_credentials = credentials.clone();
    let cache_client = Reconnecting::new(move || {
        CacheClient::builder()
            .default_ttl(cache_ttl)
            .configuration(Lambda::latest())
            .credential_provider(cache_credentials.clone())
            .build()
    })
    .map_err(|e| InitError(format!("building the Momento cache client failed: {e}")))?;
    let auth_client = Reconnecting::new(move || {
        AuthClient::builder()
            .credential_provider(credentials.clone())
            .build()
    })
    .map_err(|e| InitError(format!("building the Momento auth client failed: {e}")))?;
    Ok(Vendor::new(
        MomentoCache {
            client: cache_client,
            cache_name: config.cache_name.clone(),
        },
        MomentoMinter {
            client: auth_client,
        },
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
