//! The Lambda entry point: tracing, configuration, and the runtime loop.
//! Everything else lives in the library.
//!
//! `--check-config` validates the environment as the function would at
//! start (the same `Config`), prints the verdict and exits: 0 when valid, 2
//! naming the variable otherwise. It reads nothing else (no secret, no
//! Momento), so a deployer can check a `TOKEN_SCOPES` before deploying.

use lambda_http::{service_fn, Request};
use token_vending_machine::app::{misconfigured_response, App, PREPARE_TIMEOUT};
use token_vending_machine::config::Config;
use token_vending_machine::momento::MomentoInit;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    if std::env::args().nth(1).as_deref() == Some("--check-config") {
        match Config::from_env() {
            Ok(_) => println!("configuration OK"),
            Err(error) => {
                eprintln!("{error}");
                std::process::exit(2);
            }
        }
        return Ok(());
    }

    token_vending_machine::logging::init();

    match Config::from_env() {
        Ok(config) => {
            if let Some(asked) = config.cache_ttl_clamped_from {
                tracing::warn!(
                    variable = "CACHE_TTL_SECONDS",
                    asked_s = asked.as_secs(),
                    cache_ttl_s = config.cache_ttl.as_secs(),
                    "CACHE_TTL_SECONDS is more than TOKEN_TTL_SECONDS less the 60 s refresh margin: a token is cached only while it can be handed out"
                );
            }
            let cors = config.cors_allow_origin.clone();
            let identification = config.identification();
            let init = MomentoInit::new(config);
            let app = App::new(init, &cors, identification);
            // INIT runs at full speed, requests at the memory size's CPU share:
            // initialise here, bounded and never fatal (else on first use).
            app.prepare(PREPARE_TIMEOUT).await;
            let app = &app;
            lambda_http::run(service_fn(move |req: Request| async move {
                Ok::<_, std::convert::Infallible>(app.handle(req).await)
            }))
            .await
        }
        Err(error) => {
            // Stay up and answer 500s: a crash here would be a restart loop
            // and empty 502s for every caller.
            tracing::error!(variable = error.variable, "{error}");
            let error = &error;
            lambda_http::run(service_fn(move |req: Request| async move {
                Ok::<_, std::convert::Infallible>(misconfigured_response(&req, error))
            }))
            .await
        }
    }
}
