//! What the process, crowd and CPU benchmarks share: the binary under test,
//! the run mode, percentiles, and where a report is written.

use std::path::PathBuf;

/// The binary under test: this build's release binary, or `TVM_BENCH_BINARY`
/// (to compare another build, e.g. before a change, on the same machine and hour).
pub fn binary() -> PathBuf {
    std::env::var_os("TVM_BENCH_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_token-vending-machine")))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Under `cargo bench` (which passes `--bench`) a benchmark measures; run any
/// other way (`cargo test --bench <name>`, as CI does) or with `--quick`, it is
/// a short smoke run whose figures are not measurements.
pub fn quick_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--quick")
}

/// Nearest-rank percentile (the values need not be sorted).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Writes `report` as test-output/`<stem>.json` (`<stem>-quick.json` for a
/// smoke run, `<stem>-<TVM_BENCH_LABEL>.json` for a labelled comparison run)
/// and says where.
pub fn write_report(stem: &str, quick: bool, report: &serde_json::Value) {
    let out = root().join("test-output");
    let _ = std::fs::create_dir_all(&out);
    let name = match (quick, std::env::var("TVM_BENCH_LABEL")) {
        (true, _) => format!("{stem}-quick.json"),
        (false, Ok(label)) => format!("{stem}-{label}.json"),
        (false, Err(_)) => format!("{stem}.json"),
    };
    let path = out.join(name);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(report).unwrap_or_default(),
    )
    .expect("write report");
    println!("\nwritten: {}", path.display());
}
