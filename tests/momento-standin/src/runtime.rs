//! A loopback Lambda Runtime API: hands events to a function process the way
//! the Lambda service does and collects its answers.
//!
//! Serves `GET /2018-06-01/runtime/invocation/next`,
//! `POST /2018-06-01/runtime/invocation/{id}/response`,
//! `POST /2018-06-01/runtime/invocation/{id}/error` and
//! `POST /2018-06-01/runtime/init/error`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};

use crate::{lock, serve_loopback};

/// How the function answered one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `/response`: the handler's output.
    Response(serde_json::Value),
    /// `/error`: the runtime reported an invocation error.
    Error(serde_json::Value),
}

struct Shared {
    first_poll: Mutex<Option<Instant>>,
    polled: tokio::sync::Notify,
    queue: AsyncMutex<mpsc::UnboundedReceiver<(String, Bytes)>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_errors: Mutex<Vec<serde_json::Value>>,
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    lock(&shared.first_poll).get_or_insert_with(Instant::now);
    shared.polled.notify_waiters();
    let Some((id, event)) = shared.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + Duration::from_secs(30);
    (
        [
            ("lambda-runtime-aws-request-id", id),
            (
                "lambda-runtime-deadline-ms",
                deadline.as_millis().to_string(),
            ),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:token-vending-machine".to_string(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Sampled=0".to_string(),
            ),
            ("content-type", "application/json".to_string()),
        ],
        event,
    )
        .into_response()
}

fn parse(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into()))
}

async fn respond(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, &id, Answer::Response(parse(&body)))
}

async fn fail(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, &id, Answer::Error(parse(&body)))
}

fn finish(shared: &Shared, id: &str, answer: Answer) -> StatusCode {
    match lock(&shared.waiting).remove(id) {
        Some(tx) => {
            let _ = tx.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    lock(&shared.init_errors).push(parse(&body));
    StatusCode::ACCEPTED
}

/// A running Runtime API; stops when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<(String, Bytes)>,
    counter: AtomicU64,
    _shutdown: oneshot::Sender<()>,
}

/// The function did not answer in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAnswer;

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let (queue, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            first_poll: Mutex::new(None),
            polled: tokio::sync::Notify::new(),
            queue: AsyncMutex::new(rx),
            waiting: Mutex::new(HashMap::new()),
            init_errors: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let (addr, shutdown) = serve_loopback(app).await?;
        Ok(RuntimeApi {
            addr,
            shared,
            queue,
            counter: AtomicU64::new(0),
            _shutdown: shutdown,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Sends one event (raw bytes) and waits up to `timeout` for the function's answer.
    pub async fn invoke_raw(&self, event: Vec<u8>, timeout: Duration) -> Result<Answer, NoAnswer> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("00000000-0000-4000-8000-{n:012}");
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.waiting).insert(id.clone(), tx);
        self.queue
            .send((id, Bytes::from(event)))
            .map_err(|_| NoAnswer)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => Err(NoAnswer),
        }
    }

    /// Sends one JSON event and waits up to 15 s for the answer.
    pub async fn invoke(&self, event: &serde_json::Value) -> Result<Answer, NoAnswer> {
        self.invoke_raw(event.to_string().into_bytes(), Duration::from_secs(15))
            .await
    }

    /// When the function first asked for an event (it is ready to serve).
    pub fn first_poll(&self) -> Option<Instant> {
        *lock(&self.shared.first_poll)
    }

    /// Waits until the function has asked for its first event (its INIT is
    /// over), for at most `timeout`; returns when that was.
    pub async fn wait_first_poll(&self, timeout: Duration) -> Option<Instant> {
        let polled = self.shared.polled.notified();
        tokio::pin!(polled);
        polled.as_mut().enable();
        if let Some(at) = self.first_poll() {
            return Some(at);
        }
        tokio::time::timeout(timeout, polled).await.ok()?;
        self.first_poll()
    }

    /// Bodies posted to `/runtime/init/error`.
    pub fn init_errors(&self) -> Vec<serde_json::Value> {
        lock(&self.shared.init_errors).clone()
    }
}
