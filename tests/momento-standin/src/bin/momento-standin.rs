//! Runs the loopback Momento stand-in for local development (`make dev`).
//!
//! Usage: `momento-standin [--port N] [--api-key SECRET]`. Prints the v1 API
//! key that the function should use, then serves until interrupted.

use momento_standin::{v1_api_key, MomentoStandin};

#[tokio::main]
async fn main() {
    let mut port: u16 = 9090;
    let mut api_key = "local-dev-key".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(v)) => match v.parse() {
                Ok(p) => port = p,
                Err(_) => fail(&format!("--port: not a port number: {v}")),
            },
            ("--api-key", Some(v)) => api_key = v,
            _ => fail("usage: momento-standin [--port N] [--api-key SECRET]"),
        }
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let standin = match MomentoStandin::start_on(addr, &api_key).await {
        Ok(s) => s,
        Err(e) => fail(&format!(
            "cannot listen on {addr}: {e} (is the port in use? pick another with --port)"
        )),
    };
    println!("momento-standin listening on {}", standin.url());
    println!(
        "MOMENTO_API_KEY={}",
        v1_api_key(&api_key, "momento.localhost")
    );
    println!("MOMENTO_ENDPOINT_OVERRIDE={}", standin.url());
    let _ = tokio::signal::ctrl_c().await;
}

fn fail(message: &str) -> ! {
    eprintln!("momento-standin: {message}");
    std::process::exit(2);
}
