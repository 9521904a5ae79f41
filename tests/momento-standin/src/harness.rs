//! Starts the real function binary under the loopback Runtime API, with the
//! Momento and Secrets Manager stand-ins, the way Lambda would run it.
//!
//! Used by the process tests, the event checks and the process benchmark.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Instant;

use std::os::unix::process::CommandExt;

use crate::cgroup::{join_self, CpuGroups};
use crate::{v1_api_key, Answer, MomentoStandin, RuntimeApi, SecretsStandin, TestCa};

/// The Secrets Manager secret the function is pointed at.
pub const SECRET_NAME: &str = "tvm/momento";
/// The secret inside the v1 API key the stand-in accepts.
pub const MOMENTO_SECRET: &str = "e2e-momento-secret-9f8e7d";

/// The Momento and Secrets Manager stand-ins, with the secret stored: what
/// one function process needs, or what several share (containers of one
/// function share one Momento account and one secret).
#[derive(Clone)]
pub struct Standins {
    pub momento: Arc<MomentoStandin>,
    pub secrets: Arc<SecretsStandin>,
    /// The v1 API key stored in the secret.
    pub api_key: String,
    /// With Secrets Manager over TLS: the CA bundle the function trusts
    /// (`SSL_CERT_FILE`): the system's roots plus this run's test CA.
    pub ca_bundle: Option<PathBuf>,
}

/// How the Secrets Manager stand-in is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsTransport {
    /// Plaintext HTTP (labelled so wherever a figure depends on it).
    Plaintext,
    /// HTTPS with a certificate from this run's CA, which the function trusts
    /// as production trusts Amazon's: through the system bundle.
    Tls,
    /// HTTPS with a certificate from a CA the function's bundle does not hold.
    UntrustedTls,
}

/// A fresh directory for one run's CA bundle.
fn tls_dir() -> PathBuf {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    std::env::temp_dir().join(format!("tvm-tls-{}-{n}", std::process::id()))
}

impl Standins {
    /// Plaintext stand-ins.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(SecretsTransport::Plaintext).await
    }

    /// Secrets Manager over TLS (trusted, or signed by a CA nobody trusts).
    pub async fn start_with(transport: SecretsTransport) -> std::io::Result<Self> {
        let momento = Arc::new(MomentoStandin::start(MOMENTO_SECRET).await?);
        let loopback = std::net::Ipv4Addr::LOCALHOST.into();
        let (secrets, ca_bundle) = match transport {
            SecretsTransport::Plaintext => (SecretsStandin::start().await?, None),
            SecretsTransport::Tls | SecretsTransport::UntrustedTls => {
                let trusted = TestCa::new("tvm test CA")?;
                let bundle = trusted.bundle_file(&tls_dir())?;
                let serving = if transport == SecretsTransport::Tls {
                    trusted
                } else {
                    TestCa::untrusted()?
                };
                (
                    SecretsStandin::start_tls(loopback, &serving).await?,
                    Some(bundle),
                )
            }
        };
        let secrets = Arc::new(secrets);
        let api_key = v1_api_key(MOMENTO_SECRET, "momento.localhost");
        secrets.put(
            SECRET_NAME,
            &serde_json::json!({ "momento": api_key }).to_string(),
        );
        Ok(Standins {
            momento,
            secrets,
            api_key,
            ca_bundle,
        })
    }
}

/// One function process and its stand-ins; the process is killed on drop.
pub struct FunctionUnderTest {
    pub momento: Arc<MomentoStandin>,
    pub secrets: Arc<SecretsStandin>,
    pub runtime: RuntimeApi,
    /// The v1 API key stored in the secret.
    pub api_key: String,
    /// Just before the process was spawned (cold-start clock).
    pub spawned_at: Instant,
    child: Child,
    logs: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(&buf[..n]);
        }
    })
}

impl FunctionUnderTest {
    /// Starts the stand-ins, stores the secret, and spawns `binary` with the
    /// Lambda environment plus `env` (later entries win).
    pub async fn start(binary: &Path, env: &[(&str, &str)]) -> std::io::Result<Self> {
        Self::start_with(binary, env, &Standins::start().await?).await
    }

    /// Spawns `binary` against `standins` that other processes may share.
    pub async fn start_with(
        binary: &Path,
        env: &[(&str, &str)],
        standins: &Standins,
    ) -> std::io::Result<Self> {
        Self::start_counted(binary, env, standins, None).await
    }

    /// Like [`FunctionUnderTest::start_with`]; with `cpu`, the process joins
    /// those cgroups before exec, so every CPU cycle it spends is counted.
    pub async fn start_counted(
        binary: &Path,
        env: &[(&str, &str)],
        standins: &Standins,
        cpu: Option<&CpuGroups>,
    ) -> std::io::Result<Self> {
        let Standins {
            momento,
            secrets,
            api_key,
            ca_bundle,
        } = standins.clone();
        let runtime = RuntimeApi::start().await?;

        let runtime_api = runtime.host_port();
        let secrets_url = secrets.url();
        let momento_url = momento.url();
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", &runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "token-vending-machine")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "json")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "example-secret-access-key")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // Empty AWS config files: nothing from this machine's ~/.aws, and
            // (unlike a missing file) no warning from the SDK about them.
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &secrets_url)
            .env("SECRET_ID", SECRET_NAME)
            .env("MOMENTO_ENDPOINT_OVERRIDE", &momento_url)
            .env(
                "SSL_CERT_FILE",
                ca_bundle
                    .as_deref()
                    .unwrap_or(Path::new(crate::tls::SYSTEM_BUNDLE)),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        if let Some(groups) = cpu {
            let procs = groups.join_before_exec().clone();
            // SAFETY: `join_self` only makes async-signal-safe syscalls.
            unsafe {
                command.pre_exec(move || join_self(&procs));
            }
        }
        let spawned_at = Instant::now();
        let mut child = command.spawn()?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(drain(out, logs.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(drain(err, logs.clone()));
        }
        Ok(FunctionUnderTest {
            momento,
            secrets,
            runtime,
            api_key,
            spawned_at,
            child,
            logs,
            readers,
        })
    }

    /// Invokes the function with one JSON event.
    pub async fn invoke(&self, event: &serde_json::Value) -> Answer {
        match self.runtime.invoke(event).await {
            Ok(answer) => answer,
            Err(_) => Answer::Error(serde_json::json!({ "harness": "no answer within 15 s" })),
        }
    }

    /// Queues every event at once (as a burst of callers would arrive) and
    /// returns the answers in the order of `events`.
    pub async fn invoke_all(&self, events: &[serde_json::Value]) -> Vec<Answer> {
        join_all(events.iter().map(|e| self.invoke(e)).collect()).await
    }

    /// Invokes the function with the JSON event in `path`.
    pub async fn invoke_file(&self, path: &Path) -> Answer {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let event = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        self.invoke(&event).await
    }

    /// The process id (for RSS readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process and returns everything it wrote to stdout and stderr.
    pub fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&logs).into_owned()
    }
}

impl Drop for FunctionUnderTest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls every future together until all are done; outputs in input order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// An API Gateway proxy response as the function returns it (v1 and v2 share these fields).
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub body: String,
}

impl HttpAnswer {
    /// Reads a Runtime API answer as an HTTP response; `None` for invocation errors.
    pub fn from_answer(answer: &Answer) -> Option<HttpAnswer> {
        let Answer::Response(v) = answer else {
            return None;
        };
        // REST (v1) answers may carry headers in `multiValueHeaders` only;
        // API Gateway merges the two maps, and so do we.
        let mut headers = serde_json::Map::new();
        if let Some(multi) = v.get("multiValueHeaders").and_then(|h| h.as_object()) {
            for (name, values) in multi {
                if let Some(first) = values.as_array().and_then(|a| a.first()) {
                    headers.insert(name.to_ascii_lowercase(), first.clone());
                }
            }
        }
        if let Some(single) = v.get("headers").and_then(|h| h.as_object()) {
            for (name, value) in single {
                headers.insert(name.to_ascii_lowercase(), value.clone());
            }
        }
        Some(HttpAnswer {
            status: v.get("statusCode")?.as_u64()? as u16,
            headers,
            body: v
                .get("body")
                .and_then(|b| b.as_str())
                .unwrap_or("")
                .to_string(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The vended `(token, exp)` of a token answer: what two answers share when
    /// they carry the same token (`expires_in` counts down between them).
    pub fn token(&self) -> Option<(String, u64)> {
        let v = self.json();
        Some((v["token"].as_str()?.to_string(), v["exp"].as_u64()?))
    }
}
