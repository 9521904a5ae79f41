//! Test equipment for the token vending machine: loopback stand-ins that speak
//! the real protocols, so the real SDK clients and the real binary are exercised.
//!
//! - [`momento`]: Momento's gRPC (cache `Get`/`Set`, token `GenerateDisposableToken` only);
//! - [`secrets`]: AWS Secrets Manager's JSON 1.1 API (`GetSecretValue` only);
//! - [`runtime`]: the Lambda Runtime API a function process polls;
//! - [`relay`]: a TCP relay with silent network faults (dead flows, black holes);
//! - [`cgroup`]: CPU accounting and Lambda-like CPU limits for benchmarks;
//! - [`tls`]: a certificate authority made per run, and TLS listeners.
//!
//! Not a Momento or AWS emulator: anything outside those calls is refused.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;

pub mod cgroup;
pub mod harness;
pub mod momento;
pub mod relay;
pub mod runtime;
pub mod secrets;
pub mod tls;

pub use harness::{FunctionUnderTest, HttpAnswer, SecretsTransport, Standins};
pub use momento::{v1_api_key, Fault, MomentoStandin, Op, Plane, Recorded};
pub use relay::Relay;
pub use runtime::{Answer, RuntimeApi};
pub use secrets::SecretsStandin;
pub use tls::TestCa;

/// Locks a mutex, carrying on past a panicked holder (test equipment must not cascade).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves `app` on `127.0.0.1:0` until the returned sender is dropped.
pub(crate) async fn serve_loopback(
    app: axum::Router,
) -> std::io::Result<(SocketAddr, oneshot::Sender<()>)> {
    serve_on(std::net::Ipv4Addr::LOCALHOST.into(), app).await
}

/// Serves `app` on a free port of `ip` until the returned sender is dropped.
pub(crate) async fn serve_on(
    ip: std::net::IpAddr,
    app: axum::Router,
) -> std::io::Result<(SocketAddr, oneshot::Sender<()>)> {
    serve(ip, app, None).await
}

/// Serves `app` on a free port of `ip`, over TLS when `tls` is given.
pub(crate) async fn serve(
    ip: std::net::IpAddr,
    app: axum::Router,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> std::io::Result<(SocketAddr, oneshot::Sender<()>)> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0)).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let stopped = async {
        let _ = rx.await;
    };
    if let Some(config) = tls {
        let listener = tls::TlsListener::new(listener, config);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await;
        });
        return Ok((addr, tx));
    }
    // No Nagle (as the real services): small answers go out at once.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await;
    });
    Ok((addr, tx))
}
