//! Runs the loopback Momento stand-in for local development (`make dev`) and
//! the browser test.
//!
//! Usage: `momento-standin [--bind IP] [--port N] [--api-key SECRET] [--control-port N] [--secret NAME]`.
//! `--bind` (default 127.0.0.1) is the address every server listens on: a
//! Docker bridge's gateway address lets a function in a container reach them.
//! Prints the v1 API key the function should use, then serves until
//! interrupted. With `--control-port`, `PUT /faults/{get|set|mint}` with a
//! body of `internal`, `unavailable`, `resource_exhausted`, `unauthenticated`, `hang` or `none`
//! makes that operation misbehave (for error-path demos and tests). With
//! `--secret NAME`, a loopback Secrets Manager also serves the key as secret
//! NAME (`{"momento": "<key>"}`), for trying the `SECRET_ID` path.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::Router;
use momento_standin::{v1_api_key, Fault, MomentoStandin, Op, SecretsStandin};

fn fail(message: &str) -> ! {
    eprintln!("momento-standin: {message}");
    std::process::exit(2);
}

async fn set_fault(
    State(standin): State<Arc<MomentoStandin>>,
    Path(op): Path<String>,
    body: String,
) -> StatusCode {
    let op = match op.as_str() {
        "get" => Op::Get,
        "set" => Op::Set,
        "mint" => Op::Mint,
        _ => return StatusCode::NOT_FOUND,
    };
    let fault = match body.trim() {
        "none" => {
            standin.heal(op);
            return StatusCode::NO_CONTENT;
        }
        "internal" => Fault::Status(tonic::Code::Internal),
        "unavailable" => Fault::Status(tonic::Code::Unavailable),
        "resource_exhausted" => Fault::Status(tonic::Code::ResourceExhausted),
        "unauthenticated" => Fault::Status(tonic::Code::Unauthenticated),
        "hang" => Fault::Hang,
        _ => return StatusCode::BAD_REQUEST,
    };
    standin.inject(op, fault);
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() {
    let mut bind = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut port: u16 = 9090;
    let mut control_port: Option<u16> = None;
    let mut api_key = "local-dev-key".to_string();
    let mut secret_name: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--port", Some(v)) => {
                port = v
                    .parse()
                    .unwrap_or_else(|_| fail(&format!("--port: not a port number: {v}")))
            }
            ("--control-port", Some(v)) => {
                control_port =
                    Some(v.parse().unwrap_or_else(|_| {
                        fail(&format!("--control-port: not a port number: {v}"))
                    }))
            }
            ("--api-key", Some(v)) => api_key = v,
            ("--bind", Some(v)) => {
                bind = v
                    .parse()
                    .unwrap_or_else(|_| fail(&format!("--bind: not an IP address: {v}")))
            }
            ("--secret", Some(v)) => secret_name = Some(v),
            _ => fail("usage: momento-standin [--bind IP] [--port N] [--api-key SECRET] [--control-port N] [--secret NAME]"),
        }
    }
    let addr = SocketAddr::new(bind, port);
    let standin = match MomentoStandin::start_on(addr, &api_key).await {
        Ok(s) => Arc::new(s),
        Err(e) => fail(&format!(
            "cannot listen on {addr}: {e} (port in use? choose another with STANDIN_PORT=...)"
        )),
    };
    if let Some(control_port) = control_port {
        let control = SocketAddr::new(bind, control_port);
        let listener = match tokio::net::TcpListener::bind(control).await {
            Ok(l) => l,
            Err(e) => fail(&format!("cannot listen on {control}: {e}")),
        };
        let app = Router::new()
            .route("/faults/{op}", put(set_fault))
            .with_state(standin.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        println!("control: http://{control}/faults/{{get|set|mint}}");
    }
    let key = v1_api_key(&api_key, "momento.localhost");
    // Kept alive until exit.
    let _secrets = match secret_name {
        Some(name) => {
            let secrets = SecretsStandin::start_on(bind).await.unwrap_or_else(|e| {
                fail(&format!("cannot start the Secrets Manager stand-in: {e}"))
            });
            secrets.put(&name, &serde_json::json!({ "momento": key }).to_string());
            println!("AWS_ENDPOINT_URL_SECRETS_MANAGER={}", secrets.url());
            println!("SECRET_ID={name}");
            Some(secrets)
        }
        None => None,
    };
    println!("momento-standin listening on {}", standin.url());
    println!("MOMENTO_ENDPOINT_OVERRIDE={}", standin.url());
    // Printed last: scripts read up to this line to know the stand-in is serving.
    println!("MOMENTO_API_KEY={key}");
    let _ = tokio::signal::ctrl_c().await;
}
