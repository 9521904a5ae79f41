//! Momento's two TLS connections, measured with the stack its SDK uses.
//!
//! The function can't be pointed at a TLS Momento stand-in: the SDK trusts
//! only its compiled-in public roots. So this benchmark takes the same stack
//! (tonic with rustls on ring, the versions in Cargo.lock, the webpki roots
//! plus this run's test CA) and opens what a cold container opens: one
//! connection to the cache endpoint and one to the token endpoint, each
//! carrying one RPC (`Get`, `GenerateDisposableToken`) to the Momento
//! stand-in served over TLS, and the same over plaintext. It reports the wall
//! time and the client thread's CPU time of each pair; the TLS cost is the
//! difference, and at 128 MB's CPU share (128/1769 of a core) its wall time is
//! about its CPU time × 13.8.
//!
//! The server runs on its own thread and runtime, so the client thread's CPU
//! is the client's alone. Full run: `cargo bench --bench momento_tls`;
//! `cargo test --bench momento_tls` (CI) is a smoke run.

use std::time::{Duration, Instant};

use momento_protos::cache_client::scs_client::ScsClient;
use momento_protos::cache_client::GetRequest;
use momento_protos::token::token_client::TokenClient;
use momento_protos::token::GenerateDisposableTokenRequest;
use momento_standin::cgroup::{thread_cpu_time, MB_PER_VCPU};
use momento_standin::harness::MOMENTO_SECRET;
use momento_standin::{MomentoStandin, TestCa};
use serde_json::json;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

#[allow(dead_code)] // (the binary under test is not this benchmark's subject)
mod common;
use common::{percentile, quick_run, write_report};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn request<T>(body: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(body);
    r.metadata_mut()
        .insert("authorization", MOMENTO_SECRET.parse().expect("ascii"));
    r.metadata_mut()
        .insert("cache", "pizza".parse().expect("ascii"));
    r
}

/// A channel to `url` configured as the SDK configures its own (lazy, with
/// the webpki roots; plus the test CA so the stand-in's certificate verifies).
fn channel(url: &str, ca: Option<&str>) -> Channel {
    let mut endpoint = Endpoint::from_shared(url.to_string()).expect("url");
    if let Some(ca) = ca {
        let tls = ClientTlsConfig::new()
            .with_webpki_roots()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name("localhost");
        endpoint = endpoint.tls_config(tls).expect("tls config");
    }
    endpoint.connect_lazy()
}

/// Opens the cache and the token connection, one RPC each: (wall, client CPU).
async fn cold_pair(url: &str, ca: Option<&str>) -> (Duration, Duration) {
    let cpu = thread_cpu_time();
    let started = Instant::now();
    let mut cache = ScsClient::new(channel(url, ca));
    let mut token = TokenClient::new(channel(url, ca));
    let get = cache
        .get(request(GetRequest {
            cache_key: b"tvm-shared-token".to_vec(),
        }))
        .await;
    assert!(get.is_ok(), "{get:?}");
    let minted = token
        .generate_disposable_token(request(GenerateDisposableTokenRequest {
            expires: Some(
                momento_protos::token::generate_disposable_token_request::Expires {
                    valid_for_seconds: 60,
                },
            ),
            ..Default::default()
        }))
        .await;
    assert!(minted.is_ok(), "{minted:?}");
    (started.elapsed(), thread_cpu_time() - cpu)
}

fn main() {
    let quick = quick_run();
    let runs = if quick { 3 } else { 40 };
    // The function's tonic channels use ring (`tls-ring`); so do these.
    momento_standin::tls::use_ring_by_default();
    let ca = TestCa::new("tvm bench CA").expect("CA");
    let ca_pem = ca.ca_pem();
    // The stand-ins on their own thread and runtime.
    let (urls_tx, urls_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let tls = MomentoStandin::start_tls(MOMENTO_SECRET, &ca)
                .await
                .expect("TLS stand-in");
            let plain = MomentoStandin::start(MOMENTO_SECRET)
                .await
                .expect("stand-in");
            urls_tx.send((tls.url(), plain.url())).expect("send");
            let _ = stop_rx.await;
        });
    });
    let (tls_url, plain_url) = urls_rx.recv().expect("urls");
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut tls_wall, mut tls_cpu, mut plain_wall, mut plain_cpu) =
        (vec![], vec![], vec![], vec![]);
    client.block_on(async {
        // One of each first: page in the code paths, as a binary's first run would not
        // be measured either.
        cold_pair(&tls_url, Some(&ca_pem)).await;
        cold_pair(&plain_url, None).await;
        for _ in 0..runs {
            let (w, c) = cold_pair(&tls_url, Some(&ca_pem)).await;
            tls_wall.push(ms(w));
            tls_cpu.push(ms(c));
            let (w, c) = cold_pair(&plain_url, None).await;
            plain_wall.push(ms(w));
            plain_cpu.push(ms(c));
        }
    });
    let _ = stop_tx.send(());
    let _ = server.join();

    let med = |v: &[f64]| percentile(v, 50.0);
    let tls_extra_cpu = med(&tls_cpu) - med(&plain_cpu);
    let share_128 = 128.0 / MB_PER_VCPU;
    let report = json!({
        "runs": runs,
        "two_connections_tls": { "wall_ms_p50": med(&tls_wall), "client_cpu_ms_p50": med(&tls_cpu) },
        "two_connections_plaintext": { "wall_ms_p50": med(&plain_wall), "client_cpu_ms_p50": med(&plain_cpu) },
        "tls_cost_client_cpu_ms": tls_extra_cpu,
        "tls_cost_wall_ms_at_128_mb_estimate": tls_extra_cpu / share_128,
    });
    if quick {
        println!("\nsmoke run (figures are not measurements)");
    }
    println!("\nMomento's two connections (cache + token), one RPC each, tonic + rustls + ring, loopback; median of {runs}:");
    println!(
        "  TLS        wall {:.3} ms, client CPU {:.3} ms",
        med(&tls_wall),
        med(&tls_cpu)
    );
    println!(
        "  plaintext  wall {:.3} ms, client CPU {:.3} ms",
        med(&plain_wall),
        med(&plain_cpu)
    );
    println!(
        "  TLS adds {tls_extra_cpu:.3} ms of client CPU: about {:.1} ms of wall time at 128 MB's CPU share",
        tls_extra_cpu / share_128
    );
    write_report("momento-tls", quick, &report);
}
