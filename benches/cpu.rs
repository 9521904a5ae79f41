//! CPU per request, and a local power-tuning table.
//!
//! Lambda gives a function CPU in proportion to its memory (one vCPU at
//! 1,769 MB); INIT (spawn → first poll for an event) runs at full speed,
//! invocations at the share. At 128 MB, CPU time per request is latency.
//!
//! 1. **CPU**: the release binary runs in a cpuacct cgroup joined before exec,
//!    so the CPU time of every thread is counted: INIT, the first request
//!    (secret read, client construction, connections, get, mint, set), and
//!    the mean per warm hit (a caller coming back to the same container,
//!    answered from its memory), per warm cache hit (a caller whose token
//!    another container minted) and per warm miss.
//! 2. **Power tuning**: for 128, 256, 512 and 1024 MB, the process is moved
//!    into a CPU cgroup with quota = period × MB / 1769 when it first polls
//!    (INIT unthrottled); cold start (spawn → first 200), hit p50/p99, miss
//!    p50, and the cost of a million hits at Lambda's arm64 prices.
//!
//! The stand-ins run in this (unthrottled) benchmark process, over loopback.
//! Full run: `cargo bench --bench cpu`; any other way (`cargo test --bench
//! cpu`, as CI does) or `--quick`, a smoke run. Without writable cgroups it
//! prints why and measures nothing. `TVM_BENCH_BINARY` runs another build.

use std::time::{Duration, Instant};

use momento_standin::cgroup::CpuGroups;
use momento_standin::{FunctionUnderTest, HttpAnswer, SecretsTransport, Standins};
use serde_json::{json, Value};

/// Lambda arm64 prices, us-east-1 (AWS Lambda pricing page, first tier, as
/// published in 2025; not re-read here: this machine has no internet).
const PRICE_PER_GB_SECOND: f64 = 0.000_013_333_4;
const PRICE_PER_MILLION_REQUESTS: f64 = 0.20;
const PRICES_AS_OF: &str = "AWS Lambda pricing, arm64, us-east-1, 2025";
/// The CFS period of the emulated CPU share.
const PERIOD: Duration = Duration::from_millis(20);
const SIZES_MB: [u32; 4] = [128, 256, 512, 1024];

mod common;
use common::{binary, percentile, quick_run, root, write_report};

fn event_from(ip: &str) -> Value {
    let text =
        std::fs::read_to_string(root().join("events/rest-get-tokens-order.json")).expect("event");
    let mut e: Value = serde_json::from_str(&text).expect("event json");
    e["requestContext"]["identity"]["sourceIp"] = json!(ip);
    e
}

fn caller(i: usize) -> String {
    format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn ok(f: &FunctionUnderTest, event: &Value) {
    let answer = f.invoke(event).await;
    let status = HttpAnswer::from_answer(&answer).map(|a| a.status);
    assert_eq!(status, Some(200), "{answer:?}");
}

/// A process that has finished INIT, in its own counted cgroups.
async fn spawn_ready(standins: &Standins) -> (CpuGroups, FunctionUnderTest) {
    let groups = CpuGroups::create().expect("cgroups (checked at start)");
    let f = FunctionUnderTest::start_counted(&binary(), &[], standins, Some(&groups))
        .await
        .expect("spawn");
    f.runtime
        .wait_first_poll(Duration::from_secs(30))
        .await
        .expect("the function polls for an event");
    (groups, f)
}

/// Mean CPU per invocation over `events`, all expected to answer 200: (all, kernel).
async fn cpu_split_per_request(
    groups: &CpuGroups,
    f: &FunctionUnderTest,
    events: &[Value],
) -> (f64, f64) {
    let before = (
        groups.usage().expect("usage"),
        groups.system_usage().expect("usage"),
    );
    for e in events {
        ok(f, e).await;
    }
    let after = (
        groups.usage().expect("usage"),
        groups.system_usage().expect("usage"),
    );
    let n = events.len() as f64;
    (ms(after.0 - before.0) / n, ms(after.1 - before.1) / n)
}

/// Mean CPU per invocation over `events`, all expected to answer 200.
async fn cpu_per_request(groups: &CpuGroups, f: &FunctionUnderTest, events: &[Value]) -> f64 {
    cpu_split_per_request(groups, f, events).await.0
}

async fn cpu_figures(transport: SecretsTransport, runs: usize, warm: usize) -> Value {
    let mut init = Vec::new();
    let mut first = Vec::new();
    let mut hit = Vec::new();
    let mut cache_hit = Vec::new();
    let mut miss = Vec::new();
    for run in 0..runs {
        let standins = Standins::start_with(transport).await.expect("stand-ins");
        let (groups, f) = spawn_ready(&standins).await;
        let at_init = groups.usage().expect("usage");
        init.push(ms(at_init));
        ok(&f, &event_from("203.0.113.10")).await;
        first.push(ms(groups.usage().expect("usage") - at_init));
        let hits: Vec<Value> = (0..warm).map(|_| event_from("203.0.113.10")).collect();
        hit.push(cpu_split_per_request(&groups, &f, &hits).await);
        let misses: Vec<Value> = (0..warm)
            .map(|i| event_from(&caller(run * warm + i)))
            .collect();
        miss.push(cpu_split_per_request(&groups, &f, &misses).await);
        // Callers whose tokens another container minted: hits from the cache, not memory.
        let sibling = FunctionUnderTest::start_with(&binary(), &[], &standins)
            .await
            .expect("spawn");
        let others: Vec<Value> = (0..warm)
            .map(|i| event_from(&caller(100_000 + i)))
            .collect();
        for e in &others {
            ok(&sibling, e).await;
        }
        cache_hit.push(cpu_split_per_request(&groups, &f, &others).await);
        sibling.finish();
        f.finish();
    }
    let median = |v: &[f64]| percentile(v, 50.0);
    let all = |v: &[(f64, f64)]| v.iter().map(|x| x.0).collect::<Vec<f64>>();
    let kernel = |v: &[(f64, f64)]| v.iter().map(|x| x.1).collect::<Vec<f64>>();
    json!({
        "runs": runs,
        "warm_requests_per_run": warm,
        "init_ms": median(&init),
        "first_request_ms": median(&first),
        "warm_hit_ms": median(&all(&hit)),
        "warm_cache_hit_ms": median(&all(&cache_hit)),
        "warm_miss_ms": median(&all(&miss)),
        // The kernel's part: over loopback, the sender's TCP send also runs the
        // receiver's side of delivery, which a call over a real network does not.
        "kernel_part_ms": {
            "warm_hit": median(&kernel(&hit)),
            "warm_cache_hit": median(&kernel(&cache_hit)),
            "warm_miss": median(&kernel(&miss)),
        },
    })
}

/// Round trip of each event, one after another (ms).
async fn latencies(f: &FunctionUnderTest, events: impl Iterator<Item = Value>) -> Vec<f64> {
    let mut took = Vec::new();
    for e in events {
        let started = Instant::now();
        ok(f, &e).await;
        took.push(ms(started.elapsed()));
    }
    took
}

/// A fresh container at `memory_mb`'s CPU share after INIT, having answered
/// its first request; with that cold start (spawn → first 200, ms).
async fn cold_at(
    transport: SecretsTransport,
    memory_mb: u32,
) -> (CpuGroups, FunctionUnderTest, f64) {
    let standins = Standins::start_with(transport).await.expect("stand-ins");
    let (groups, f) = spawn_ready(&standins).await;
    groups
        .throttle(f.pid(), memory_mb, PERIOD)
        .expect("throttle");
    ok(&f, &event_from("203.0.113.10")).await;
    let cold = ms(f.spawned_at.elapsed());
    (groups, f, cold)
}

async fn power_row(
    transport: SecretsTransport,
    memory_mb: u32,
    colds: usize,
    warm: usize,
) -> Value {
    let mut cold = Vec::new();
    for _ in 0..colds {
        let (_groups, f, took) = cold_at(transport, memory_mb).await;
        cold.push(took);
        f.finish();
    }
    let (_groups, f, _) = cold_at(transport, memory_mb).await;
    let hits = latencies(&f, (0..warm).map(|_| event_from("203.0.113.10"))).await;
    let misses = latencies(&f, (0..warm).map(|i| event_from(&caller(i)))).await;
    f.finish();
    let hit_p50 = percentile(&hits, 50.0);
    // Lambda bills whole milliseconds of duration.
    let billed_s = hit_p50.ceil() / 1000.0;
    let gb = f64::from(memory_mb) / 1024.0;
    let cost = 1e6 * billed_s * gb * PRICE_PER_GB_SECOND + PRICE_PER_MILLION_REQUESTS;
    json!({
        "secrets_manager": transport_label(transport),
        "memory_mb": memory_mb,
        "cpu_share": f64::from(memory_mb) / momento_standin::cgroup::MB_PER_VCPU,
        "cold_start_ms": { "median": percentile(&cold, 50.0), "n": cold.len() },
        "hit_ms": { "p50": hit_p50, "p99": percentile(&hits, 99.0), "n": hits.len() },
        "miss_ms": { "p50": percentile(&misses, 50.0), "n": misses.len() },
        "usd_per_million_hits": cost,
    })
}

fn transport_label(transport: SecretsTransport) -> &'static str {
    match transport {
        SecretsTransport::Tls => "tls",
        SecretsTransport::Plaintext => "plaintext",
        SecretsTransport::UntrustedTls => "untrusted-tls",
    }
}

/// `TVM_BENCH_PROFILE=hit|miss|cold`: only run that path, many times, for a
/// profiler to attach to (e.g. `perf record -a -g` over this run, with a
/// `TVM_BENCH_BINARY` built with symbols); prints the function's pids.
async fn profile_only(kind: &str) {
    let n = 5000;
    let standins = Standins::start_with(SecretsTransport::Tls)
        .await
        .expect("stand-ins");
    let (groups, f) = spawn_ready(&standins).await;
    println!("profiling {kind}: function pid {}", f.pid());
    match kind {
        "cold" => {
            drop((groups, f));
            for _ in 0..50 {
                let (_g, f) = spawn_ready(&standins).await;
                ok(&f, &event_from("203.0.113.10")).await;
                f.finish();
            }
        }
        "miss" => {
            let events: Vec<Value> = (0..n).map(|i| event_from(&caller(i))).collect();
            println!(
                "{:.3} ms CPU per miss",
                cpu_per_request(&groups, &f, &events).await
            );
        }
        _ => {
            ok(&f, &event_from("203.0.113.10")).await;
            let events: Vec<Value> = (0..n).map(|_| event_from("203.0.113.10")).collect();
            println!(
                "{:.3} ms CPU per hit",
                cpu_per_request(&groups, &f, &events).await
            );
        }
    }
}

#[tokio::main]
async fn main() {
    if let Ok(kind) = std::env::var("TVM_BENCH_PROFILE") {
        return profile_only(&kind).await;
    }
    let quick = quick_run();
    if let Err(e) = CpuGroups::create() {
        println!("cpu bench skipped: cgroups are not usable here ({e}); run as root on Linux with cgroup v1 cpu+cpuacct or v2 cpu");
        return;
    }
    let (runs, warm, colds, warm_tuned, sizes): (usize, usize, usize, usize, &[u32]) = if quick {
        (1, 20, 1, 20, &SIZES_MB[..1])
    } else {
        (5, 500, 7, 300, &SIZES_MB[..])
    };
    let binary = binary();
    eprintln!("cpu bench: {}", binary.display());
    // Secrets Manager over TLS (production's path) is the headline; plaintext
    // loopback is kept as a second row. Momento stays plaintext: its SDK
    // trusts only public roots (see `cargo bench --bench momento_tls`).
    let cpu_tls = cpu_figures(SecretsTransport::Tls, runs, warm).await;
    let cpu_plain = cpu_figures(SecretsTransport::Plaintext, runs, warm).await;
    let mut rows = Vec::new();
    for &mb in sizes {
        rows.push(power_row(SecretsTransport::Tls, mb, colds, warm_tuned).await);
    }
    rows.push(power_row(SecretsTransport::Plaintext, SIZES_MB[0], colds, warm_tuned).await);
    let report = json!({
        "binary": binary.display().to_string(),
        "cpu_ms": cpu_tls,
        "cpu_ms_plaintext": cpu_plain,
        "power_tuning": {
            "period_ms": ms(PERIOD),
            "prices": { "usd_per_gb_second": PRICE_PER_GB_SECOND, "usd_per_million_requests": PRICE_PER_MILLION_REQUESTS, "as_of": PRICES_AS_OF },
            "rows": rows,
        },
    });
    if quick {
        println!(
            "\nsmoke run: {} (figures are not measurements)",
            binary.display()
        );
    }
    let f = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.3}"))
            .unwrap_or("n/a".into())
    };
    for (title, key) in [
        ("Secrets Manager over TLS", "cpu_ms"),
        ("plaintext loopback", "cpu_ms_plaintext"),
    ] {
        let c = &report[key];
        println!(
            "\nCPU time of the function, {title}, all threads (median of {} runs, ms)",
            c["runs"]
        );
        println!("  INIT (spawn → first poll)        {}", f(&c["init_ms"]));
        println!(
            "  first request                    {}",
            f(&c["first_request_ms"])
        );
        let k = &c["kernel_part_ms"];
        for (label, all, kernel) in [
            ("per warm hit (same container)", "warm_hit_ms", "warm_hit"),
            (
                "per warm hit (from the cache)",
                "warm_cache_hit_ms",
                "warm_cache_hit",
            ),
            ("per warm miss", "warm_miss_ms", "warm_miss"),
        ] {
            println!("  {label:<32} {} (kernel {})", f(&c[all]), f(&k[kernel]));
        }
    }
    println!(
        "\npower tuning (CPU share = MB/1769 over {} ms periods, INIT unthrottled; {PRICES_AS_OF})",
        ms(PERIOD)
    );
    println!(
        "  {:>10} {:>6} {:>14} {:>10} {:>10} {:>10} {:>16}",
        "secrets", "MB", "cold p50 ms", "hit p50", "hit p99", "miss p50", "$ per 1M hits"
    );
    for r in report["power_tuning"]["rows"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "  {:>10} {:>6} {:>14} {:>10} {:>10} {:>10} {:>16}",
            r["secrets_manager"].as_str().unwrap_or("?"),
            r["memory_mb"],
            f(&r["cold_start_ms"]["median"]),
            f(&r["hit_ms"]["p50"]),
            f(&r["hit_ms"]["p99"]),
            f(&r["miss_ms"]["p50"]),
            format!(
                "{:.4}",
                r["usd_per_million_hits"].as_f64().unwrap_or(f64::NAN)
            ),
        );
    }
    write_report("cpu", quick, &report);
}
