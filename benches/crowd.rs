//! Flash-crowd figure: several containers of the release binary behind
//! Momento's default rate limits, hit by a crowd of new callers who each come
//! back once a few seconds later.
//!
//! Setup (full run, `cargo bench --bench crowd`): 4 function processes (4
//! containers) sharing one Momento stand-in that enforces 5 control-plane
//! (mint) and 100 data-plane (cache) operations a second; 40 new callers a
//! second for 15 s, each back once 2 to 8 s later; every request goes to a
//! container picked at random. Reports the share of requests that got a usable
//! token (200 with `exp` ≥ now + 60 s), status and outcome counts, mints made
//! and refused, cache calls refused, and latency from each request's scheduled
//! arrival to its answer. Writes test-output/crowd.json.
//!
//! Run any other way (`cargo test --bench crowd`, as CI does) or with
//! `--quick`, it is a short smoke run (2 containers, 2 s) whose figures are
//! not measurements. `TVM_BENCH_BINARY` runs another build (e.g. before a change).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use momento_standin::{FunctionUnderTest, HttpAnswer, Op, Plane, Standins};
use serde_json::{json, Value};
use tokio::time::Instant;

mod common;
use common::{binary, percentile, quick_run, root, write_report};

struct Plan {
    containers: usize,
    callers_per_second: u32,
    seconds: u32,
    /// A caller comes back once, this long after its first visit (uniform).
    return_after: (Duration, Duration),
    mints_per_second: u32,
    cache_calls_per_second: u32,
}

/// xorshift64*: a fixed, seeded schedule, so two builds face the same crowd.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One request of the crowd: when it is due, who sends it, which container takes it.
struct Arrival {
    at: Duration,
    caller: u32,
    container: usize,
}

fn schedule(plan: &Plan) -> Vec<Arrival> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let callers = plan.callers_per_second * plan.seconds;
    let mut arrivals = Vec::new();
    let (lo, hi) = plan.return_after;
    for caller in 0..callers {
        let first = Duration::from_secs_f64(f64::from(caller) / f64::from(plan.callers_per_second));
        let back = first + lo + (hi - lo).mul_f64(rng.unit());
        for at in [first, back] {
            let container = (rng.next() % plan.containers as u64) as usize;
            arrivals.push(Arrival {
                at,
                caller,
                container,
            });
        }
    }
    arrivals.sort_by_key(|a| a.at);
    arrivals
}

fn event_from(caller: u32) -> Value {
    let text =
        std::fs::read_to_string(root().join("events/rest-get-tokens-order.json")).expect("event");
    let mut e: Value = serde_json::from_str(&text).expect("event json");
    let ip = format!(
        "10.{}.{}.{}",
        caller / 65536 % 256,
        caller / 256 % 256,
        caller % 256
    );
    e["requestContext"]["identity"]["sourceIp"] = json!(ip);
    e
}

struct Result {
    status: Option<u16>,
    usable: bool,
    latency_ms: f64,
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let quick = quick_run();
    let plan = if quick {
        Plan {
            containers: 2,
            callers_per_second: 10,
            seconds: 2,
            return_after: (Duration::from_millis(500), Duration::from_millis(1000)),
            mints_per_second: 5,
            cache_calls_per_second: 100,
        }
    } else {
        Plan {
            containers: 4,
            callers_per_second: 40,
            seconds: 15,
            return_after: (Duration::from_secs(2), Duration::from_secs(8)),
            mints_per_second: 5,
            cache_calls_per_second: 100,
        }
    };
    let binary = binary();
    eprintln!(
        "crowd bench: {} ({} containers, {} new callers/s for {} s)",
        binary.display(),
        plan.containers,
        plan.callers_per_second,
        plan.seconds
    );

    let standins = Standins::start().await.expect("stand-ins");
    let mut containers = Vec::new();
    for _ in 0..plan.containers {
        let f = FunctionUnderTest::start_with(&binary, &[], &standins)
            .await
            .expect("spawn");
        containers.push(Arc::new(f));
    }
    // Limits start with the crowd: the buckets are full at its first request.
    standins
        .momento
        .limit(Plane::Control, plan.mints_per_second, plan.mints_per_second);
    standins.momento.limit(
        Plane::Data,
        plan.cache_calls_per_second,
        plan.cache_calls_per_second,
    );

    let arrivals = schedule(&plan);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for a in arrivals {
        let f = containers[a.container].clone();
        let event = event_from(a.caller);
        tasks.push(tokio::spawn(async move {
            let due = start + a.at;
            tokio::time::sleep_until(due).await;
            let answer = f.invoke(&event).await;
            let latency_ms = due.elapsed().as_secs_f64() * 1000.0;
            let http = HttpAnswer::from_answer(&answer);
            let usable = http.as_ref().is_some_and(|h| {
                h.status == 200
                    && h.json()["token"].as_str().is_some_and(|t| !t.is_empty())
                    && h.json()["exp"].as_u64().unwrap_or(0) >= now_epoch() + 60
            });
            Result {
                status: http.map(|h| h.status),
                usable,
                latency_ms,
            }
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("request task"));
    }

    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for f in containers {
        let f =
            Arc::try_unwrap(f).unwrap_or_else(|_| panic!("a request task still holds a container"));
        for line in f.finish().lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(o) = v["fields"]["outcome"].as_str() {
                *outcomes.entry(o.to_string()).or_default() += 1;
            }
        }
    }
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for r in &results {
        let key = r
            .status
            .map(|s| s.to_string())
            .unwrap_or("invocation error".into());
        *statuses.entry(key).or_default() += 1;
    }
    let total = results.len();
    let usable = results.iter().filter(|r| r.usable).count();
    let mut latencies: Vec<f64> = results.iter().map(|r| r.latency_ms).collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let momento = &standins.momento;
    let mints = momento.count(Op::Mint);
    let report = json!({
        "binary": binary.display().to_string(),
        "containers": plan.containers,
        "new_callers_per_second": plan.callers_per_second,
        "seconds": plan.seconds,
        "limits_per_second": { "mint": plan.mints_per_second, "cache": plan.cache_calls_per_second },
        "requests": total,
        "usable": usable,
        "usable_share": usable as f64 / total as f64,
        "statuses": statuses,
        "outcomes": outcomes,
        "mints_made": mints,
        "mints_refused": momento.throttled(Op::Mint),
        "mints_per_1000_requests": mints as f64 * 1000.0 / total as f64,
        "cache_calls_made": momento.count(Op::Get) + momento.count(Op::Set),
        "cache_calls_refused": momento.throttled(Op::Get) + momento.throttled(Op::Set),
        "latency_ms": { "p50": percentile(&latencies, 50.0), "p99": percentile(&latencies, 99.0), "max": latencies.last() },
    });

    if quick {
        println!(
            "\nsmoke run: {} (figures are not measurements)",
            binary.display()
        );
    }
    println!(
        "\nflash crowd: {}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    println!(
        "\nusable {usable}/{total} = {:.2}% (goal ≥ 99.5%), p50 {:.1} ms, p99 {:.1} ms (goal ≤ 250 ms), {} mints ({} refused), {} cache calls refused",
        100.0 * usable as f64 / total as f64,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        mints,
        report["mints_refused"],
        report["cache_calls_refused"],
    );
    write_report("crowd", quick, &report);
    if quick {
        // The smoke run still checks that the crowd was served at all.
        assert!(usable > 0, "no usable token in the smoke run: {report}");
    }
}
