//! A loopback AWS Secrets Manager speaking the AWS JSON 1.1 protocol, serving
//! only `GetSecretValue` (the one call the function makes).
//!
//! Requests must be SigV4-signed (an `Authorization: AWS4-HMAC-SHA256 ...`
//! header); reads are counted; secrets can be deleted and the service made to
//! fail, so tests can prove the function reads its secret once and retries a
//! failed init.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::sync::oneshot;

use crate::tls::TestCa;
use crate::{lock, serve};

#[derive(Default)]
struct Shared {
    secrets: Mutex<HashMap<String, String>>,
    reads: AtomicU64,
    failing: Mutex<bool>,
}

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

fn arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf")
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({ "__type": kind, "message": message }).to_string();
    (
        status,
        [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amzn-errortype", kind),
        ],
        body,
    )
        .into_response()
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if !header("authorization").starts_with("AWS4-HMAC-SHA256 ") {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "MissingAuthenticationTokenException",
            "Request is missing Authentication Token",
        );
    }
    if header("x-amz-target") != "secretsmanager.GetSecretValue" {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "The stand-in serves GetSecretValue only",
        );
    }
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "Malformed JSON",
        );
    };
    let Some(id) = request.get("SecretId").and_then(|v| v.as_str()) else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "SecretId is required",
        );
    };
    shared.reads.fetch_add(1, Ordering::SeqCst);
    if *lock(&shared.failing) {
        return aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServiceError",
            "injected by the stand-in",
        );
    }
    let secrets = lock(&shared.secrets);
    let found = secrets
        .iter()
        .find(|(name, _)| id == name.as_str() || id == arn(name));
    match found {
        Some((name, value)) => {
            let body = serde_json::json!({
                "ARN": arn(name),
                "Name": name,
                "SecretString": value,
                "VersionId": "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1",
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": 1.7e9,
            });
            (
                StatusCode::OK,
                [("content-type", "application/x-amz-json-1.1")],
                body.to_string(),
            )
                .into_response()
        }
        None => aws_error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ),
    }
}

/// A running stand-in; stops when dropped.
pub struct SecretsStandin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tls: bool,
    _shutdown: oneshot::Sender<()>,
}

impl SecretsStandin {
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// Starts on a free port of `ip` (e.g. a Docker bridge's address, for a
    /// function in a container; never a public address).
    pub async fn start_on(ip: std::net::IpAddr) -> std::io::Result<Self> {
        Self::start_with(ip, None).await
    }

    /// Starts on a free port of `ip`, serving HTTPS with a certificate for
    /// `ip` signed by `ca`, as Secrets Manager serves HTTPS in production.
    pub async fn start_tls(ip: std::net::IpAddr, ca: &TestCa) -> std::io::Result<Self> {
        let config = ca.server_config(ip, &[b"h2", b"http/1.1"])?;
        Self::start_with(ip, Some(config)).await
    }

    async fn start_with(
        ip: std::net::IpAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/", post(handle))
            .with_state(shared.clone());
        let is_tls = tls.is_some();
        let (addr, shutdown) = serve(ip, app, tls).await?;
        Ok(SecretsStandin {
            addr,
            shared,
            tls: is_tls,
            _shutdown: shutdown,
        })
    }

    /// The value for `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn put(&self, name: &str, secret_string: &str) {
        lock(&self.shared.secrets).insert(name.to_string(), secret_string.to_string());
    }

    pub fn delete(&self, name: &str) {
        lock(&self.shared.secrets).remove(name);
    }

    /// `GetSecretValue` calls received (answered or not).
    pub fn reads(&self) -> u64 {
        self.shared.reads.load(Ordering::SeqCst)
    }

    /// While set, every read answers `InternalServiceError`.
    pub fn set_failing(&self, failing: bool) {
        *lock(&self.shared.failing) = failing;
    }
}
