//! The tracing subscriber: Lambda's log controls, our own `info` lines, and
//! a raised floor for the Momento SDK.
//!
//! Like `lambda_http::tracing::init_default_subscriber`, it honours
//! `AWS_LAMBDA_LOG_FORMAT=json` (one JSON object a line, fields under
//! `fields`) and `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`. Unlike it:
//! - the Momento SDK logs at `error` only unless the level asked for is
//!   `debug` or `trace`: it warns on every init with a v1 key ("did not expect
//!   v2 api key to be entirely base64 encoded"), and a WARN seen on every cold
//!   start teaches operators to ignore WARN;
//! - text lines carry no ANSI colour codes unless stdout is a terminal (a log
//!   file or CloudWatch would show raw `ESC[33m`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter when nothing is asked for: our `info` lines, the SDK's errors.
pub const DEFAULT_FILTER: &str = "info,momento=error";

/// The filter directives for Lambda's log level (`AWS_LAMBDA_LOG_LEVEL`,
/// which wins, as in the runtime's default subscriber) or `RUST_LOG`
/// (directives, used as given).
pub fn filter_directives(lambda_log_level: Option<&str>, rust_log: Option<&str>) -> String {
    let set = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    if let Some(level) = set(lambda_log_level) {
        let level = level.to_ascii_lowercase();
        return match level.as_str() {
            // Asking for detail means all of it, the SDK's included.
            "debug" | "trace" => level,
            // Lambda's FATAL is tracing's error.
            "fatal" => "error".to_string(),
            _ => format!("{level},momento=error"),
        };
    }
    set(rust_log).unwrap_or_else(|| DEFAULT_FILTER.to_string())
}

/// Installs the subscriber for this process (once, in `main`).
pub fn init() {
    let var = |name: &str| std::env::var(name).ok();
    let directives = filter_directives(
        var("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        var("RUST_LOG").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(EnvFilter::builder().parse_lossy(directives));
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stdout().is_terminal()).init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_our_info_lines_and_the_sdks_errors() {
        assert_eq!(filter_directives(None, None), "info,momento=error");
        assert_eq!(filter_directives(Some(" "), Some("")), "info,momento=error");
    }

    #[test]
    fn lambdas_log_level_wins_and_keeps_the_sdk_quiet_unless_detail_is_asked_for() {
        assert_eq!(
            filter_directives(Some("INFO"), Some("trace")),
            "info,momento=error"
        );
        assert_eq!(filter_directives(Some("WARN"), None), "warn,momento=error");
        assert_eq!(filter_directives(Some("DEBUG"), None), "debug");
        assert_eq!(filter_directives(Some("TRACE"), None), "trace");
        assert_eq!(filter_directives(Some("FATAL"), None), "error");
    }

    #[test]
    fn rust_log_is_used_as_given() {
        assert_eq!(
            filter_directives(None, Some("momento=warn,info")),
            "momento=warn,info"
        );
    }

    #[test]
    fn the_default_filter_hides_sdk_warnings_and_keeps_its_errors_and_our_info() {
        use tracing::Level;
        use tracing_subscriber::layer::SubscriberExt;
        let filter = EnvFilter::builder().parse_lossy(DEFAULT_FILTER);
        let subscriber = tracing_subscriber::registry().with(filter);
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::enabled!(target: "momento::cache", Level::WARN));
            assert!(tracing::enabled!(target: "momento::cache", Level::ERROR));
            assert!(tracing::enabled!(target: "token_vending_machine::app", Level::INFO));
        });
    }
}
