//! Process figures for the release binary under a loopback Lambda Runtime API,
//! against the Momento gRPC and Secrets Manager stand-ins: cold start, warm hit
//! and miss latency, peak RSS, binary and zip size, and the cold-path
//! breakdown. Prints one table (with the handler figures `cargo bench --bench
//! handler` left in target/criterion) and writes test-output/bench.json.
//!
//! Under `cargo bench` (which passes `--bench`) it takes the full measurements;
//! run any other way (`cargo test --bench process`, as CI does) or with `--quick`, it
//! is a short smoke run that writes test-output/bench-quick.json instead.

use std::path::Path;
use std::time::{Duration, Instant};

use momento_standin::{FunctionUnderTest, HttpAnswer, SecretsTransport, Standins};
use serde_json::{json, Value};

mod common;
use common::{binary, percentile, quick_run, root, write_report};

fn event() -> Value {
    let text =
        std::fs::read_to_string(root().join("events/rest-get-tokens-order.json")).expect("event");
    serde_json::from_str(&text).expect("event json")
}

fn event_from(ip: &str) -> Value {
    let mut e = event();
    e["requestContext"]["identity"]["sourceIp"] = json!(ip);
    e
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn spread(v: &[f64]) -> Value {
    let s = sorted(v.to_vec());
    json!({ "min": s.first(), "median": percentile(&s, 50.0), "max": s.last(), "n": s.len() })
}

fn quantiles(v: &[f64]) -> Value {
    let s = sorted(v.to_vec());
    json!({ "p50": percentile(&s, 50.0), "p90": percentile(&s, 90.0), "p99": percentile(&s, 99.0), "n": s.len() })
}

/// Fields of the JSON log lines that carry `key` (e.g. "status" for request lines).
fn log_fields(logs: &str, key: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["fields"].clone())
        .filter(|f| !f[key].is_null())
        .collect()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn zip_size(binary: &Path) -> Option<u64> {
    let out = std::env::temp_dir().join(format!("tvm-bootstrap-{}.zip", std::process::id()));
    let script = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:\n    z.write(sys.argv[1], 'bootstrap')\n";
    let ok = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(binary)
        .arg(&out)
        .status()
        .ok()?
        .success();
    let size = if ok {
        std::fs::metadata(&out).ok().map(|m| m.len())
    } else {
        None
    };
    let _ = std::fs::remove_file(&out);
    size
}

fn criterion_estimate(name: &str) -> Option<f64> {
    let path = root()
        .join("target/criterion")
        .join(name)
        .join("new/estimates.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    json!({ "cpu": cpu, "cores": cores, "kernel": kernel })
}

struct Cold {
    total_ms: f64,
    ready_ms: f64,
    handler_ms: f64,
    prepare_ms: f64,
    sdk_ms: f64,
    secret_ms: f64,
    clients_ms: f64,
    get_ms: f64,
    mint_ms: f64,
    set_ms: f64,
}

async fn one_cold_start(transport: SecretsTransport) -> Cold {
    let standins = Standins::start_with(transport).await.expect("stand-ins");
    let f = FunctionUnderTest::start_with(&binary(), &[], &standins)
        .await
        .expect("spawn");
    let answer = f.invoke(&event()).await;
    let total = f.spawned_at.elapsed();
    let ready = f
        .runtime
        .first_poll()
        .map(|t| t - f.spawned_at)
        .unwrap_or_default();
    let status = HttpAnswer::from_answer(&answer).map(|a| a.status);
    assert_eq!(status, Some(200), "cold start answer: {answer:?}");
    let logs = f.finish();
    // Initialised in INIT (App::prepare) when that works; else on first use,
    // and these lines come from the first request instead.
    let init = log_fields(&logs, "clients_ms").pop().unwrap_or(Value::Null);
    let prepared = log_fields(&logs, "prepare_ms").pop().unwrap_or(Value::Null);
    let request = log_fields(&logs, "status").pop().unwrap_or(Value::Null);
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    Cold {
        total_ms: ms(total),
        ready_ms: ms(ready),
        handler_ms: num(&request["latency_ms"]),
        prepare_ms: prepared["prepare_ms"].as_f64().unwrap_or(0.0),
        sdk_ms: num(&init["sdk_ms"]),
        secret_ms: num(&init["secret_ms"]),
        clients_ms: num(&init["clients_ms"]),
        get_ms: num(&request["get_ms"]),
        mint_ms: num(&request["mint_ms"]),
        set_ms: num(&request["set_ms"]),
    }
}

struct Warm {
    round_trip_ms: Vec<f64>,
    handler_ms: Vec<f64>,
}

async fn warm(f: &FunctionUnderTest, events: impl Iterator<Item = Value>) -> Vec<f64> {
    let mut round_trips = Vec::new();
    for e in events {
        let started = Instant::now();
        let answer = f.invoke(&e).await;
        round_trips.push(ms(started.elapsed()));
        assert_eq!(
            HttpAnswer::from_answer(&answer).map(|a| a.status),
            Some(200),
            "{answer:?}"
        );
    }
    round_trips
}

#[tokio::main]
async fn main() {
    let quick = quick_run();
    let (cold_runs, warm_runs) = if quick { (2, 50) } else { (15, 1000) };
    let binary = binary();
    eprintln!(
        "process bench: {} ({cold_runs} cold starts, {warm_runs} warm invocations per path)",
        binary.display()
    );

    // TLS to Secrets Manager first (production's path), plaintext as the second
    // row; interleaved, so both see the same machine. Momento stays plaintext
    // here (its SDK trusts only public roots): `cargo bench --bench momento_tls`.
    let mut colds_tls = Vec::new();
    let mut colds_plain = Vec::new();
    for _ in 0..cold_runs {
        colds_tls.push(one_cold_start(SecretsTransport::Tls).await);
        colds_plain.push(one_cold_start(SecretsTransport::Plaintext).await);
    }

    let standins = Standins::start_with(SecretsTransport::Tls)
        .await
        .expect("stand-ins");
    let f = FunctionUnderTest::start_with(&binary, &[], &standins)
        .await
        .expect("spawn");
    let _ = f.invoke(&event()).await; // warm it up (and cache the order caller's token)
    let hit_rt = warm(&f, std::iter::repeat_with(event).take(warm_runs)).await;
    let miss_rt = warm(
        &f,
        (0..warm_runs).map(|i| {
            event_from(&format!(
                "10.{}.{}.{}",
                i / 65536 % 256,
                i / 256 % 256,
                i % 256
            ))
        }),
    )
    .await;
    let rss_kib = peak_rss_kib(f.pid());
    let logs = f.finish();
    let lines = log_fields(&logs, "status");
    let handler_of = |outcome: &str| -> Vec<f64> {
        lines
            .iter()
            .filter(|l| l["outcome"] == outcome)
            .filter_map(|l| l["latency_ms"].as_f64())
            .collect()
    };
    let hit = Warm {
        round_trip_ms: hit_rt,
        handler_ms: handler_of("hit"),
    };
    let miss = Warm {
        round_trip_ms: miss_rt,
        handler_ms: handler_of("miss"),
    };

    let binary_size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    let zip = zip_size(&binary);
    let cold = |colds: &[Cold]| {
        let col = |pick: fn(&Cold) -> f64| colds.iter().map(pick).collect::<Vec<f64>>();
        json!({
            "cold_start_ms": spread(&col(|c| c.total_ms)),
            "breakdown_median_ms": {
                "spawn_to_first_runtime_poll": spread(&col(|c| c.ready_ms))["median"],
                "init_prepare_total": spread(&col(|c| c.prepare_ms))["median"],
                "init_aws_sdk_config_and_client": spread(&col(|c| c.sdk_ms))["median"],
                "init_get_secret_value": spread(&col(|c| c.secret_ms))["median"],
                "init_client_construction": spread(&col(|c| c.clients_ms))["median"],
                "first_cache_get": spread(&col(|c| c.get_ms))["median"],
                "mint": spread(&col(|c| c.mint_ms))["median"],
                "cache_set": spread(&col(|c| c.set_ms))["median"],
                "handler_total": spread(&col(|c| c.handler_ms))["median"],
            },
        })
    };

    let report = json!({
        "machine": machine(),
        "binary": binary.display().to_string(),
        "handler_us": {
            "vend_hit": criterion_estimate("vend_hit").map(|ns| ns / 1000.0),
            "vend_miss": criterion_estimate("vend_miss").map(|ns| ns / 1000.0),
            "http_map_event_to_response": criterion_estimate("http_map_event_to_response").map(|ns| ns / 1000.0),
            "handler_hit_event_to_response": criterion_estimate("handler_hit_event_to_response").map(|ns| ns / 1000.0),
        },
        "cold": { "secrets_manager_over_tls": cold(&colds_tls), "plaintext": cold(&colds_plain) },
        "warm_hit_ms": { "round_trip": quantiles(&hit.round_trip_ms), "in_handler": quantiles(&hit.handler_ms) },
        "warm_miss_ms": { "round_trip": quantiles(&miss.round_trip_ms), "in_handler": quantiles(&miss.handler_ms) },
        "peak_rss_mib": rss_kib.map(|k| k as f64 / 1024.0),
        "bootstrap_bytes": binary_size,
        "bootstrap_zip_bytes": zip,
    });

    if quick {
        println!(
            "\nsmoke run: {} (figures are not measurements)",
            binary.display()
        );
    }
    print_table(&report);
    write_report("bench", quick, &report);
}

fn print_table(r: &Value) {
    let f = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.3}"))
            .unwrap_or_else(|| "n/a".into())
    };
    let m = &r["machine"];
    println!(
        "\nmachine: {} ({} cores, Linux {})",
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["kernel"].as_str().unwrap_or("?")
    );
    println!("{:<58} value", "figure");
    println!("{}", "-".repeat(65));
    for (name, key) in [
        ("handler: vend, hit path (µs, median)", "vend_hit"),
        ("handler: vend, miss path (µs, median)", "vend_miss"),
        (
            "handler: HTTP mapping event→response (µs, median)",
            "http_map_event_to_response",
        ),
        (
            "handler: whole hit request event→response (µs, median)",
            "handler_hit_event_to_response",
        ),
    ] {
        println!("{:<58} {}", name, f(&r["handler_us"][key]));
    }
    for (label, key) in [
        ("Secrets Manager over TLS", "secrets_manager_over_tls"),
        ("plaintext loopback", "plaintext"),
    ] {
        let cold = &r["cold"][key];
        let c = &cold["cold_start_ms"];
        let name = format!("cold start, {label}, spawn→first 200 (ms, n={})", c["n"]);
        let value = format!("{} / {} / {}", f(&c["min"]), f(&c["median"]), f(&c["max"]));
        println!("{name:<58} {value}");
        println!("{:<58}", "  (min / median / max)");
        for (name, part) in [
            (
                "  spawn → ready for events (INIT)",
                "spawn_to_first_runtime_poll",
            ),
            ("  INIT: initialisation, all of it", "init_prepare_total"),
            (
                "  INIT: AWS SDK config + Secrets Manager client",
                "init_aws_sdk_config_and_client",
            ),
            (
                "  INIT: GetSecretValue call (connects)",
                "init_get_secret_value",
            ),
            ("  INIT: build Momento clients", "init_client_construction"),
            ("  first request: cache get", "first_cache_get"),
            ("  first request: mint (connects)", "mint"),
            ("  first request: cache set", "cache_set"),
            ("  whole first request in handler", "handler_total"),
        ] {
            println!("{:<58} {}", name, f(&cold["breakdown_median_ms"][part]));
        }
    }
    for (label, key) in [("warm hit", "warm_hit_ms"), ("warm miss", "warm_miss_ms")] {
        for (kind, sub) in [
            ("round trip via Runtime API", "round_trip"),
            ("in handler", "in_handler"),
        ] {
            let q = &r[key][sub];
            let name = format!("{label}, {kind} (ms p50/p90/p99, n={})", q["n"]);
            println!(
                "{name:<58} {}/{}/{}",
                f(&q["p50"]),
                f(&q["p90"]),
                f(&q["p99"])
            );
        }
    }
    println!(
        "{:<58} {}",
        "peak RSS of the function (MiB)",
        f(&r["peak_rss_mib"])
    );
    let mb = |v: &Value| {
        v.as_u64()
            .map(|b| format!("{:.2}", b as f64 / 1_000_000.0))
            .unwrap_or_else(|| "n/a".into())
    };
    println!(
        "{:<58} {}",
        "bootstrap, stripped (MB)",
        mb(&r["bootstrap_bytes"])
    );
    println!(
        "{:<58} {}",
        "bootstrap zip (MB)",
        mb(&r["bootstrap_zip_bytes"])
    );
}
