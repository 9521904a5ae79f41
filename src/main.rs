//! The Lambda entry point: tracing, configuration, and the runtime loop.
//! Everything else lives in the library.

use lambda_http::{service_fn, Request};
use token_vending_machine::app::{misconfigured_response, App, PREPARE_TIMEOUT};
use token_vending_machine::caller::Identification;
use token_vending_machine::config::Config;
use token_vending_machine::momento::MomentoInit;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    token_vending_machine::logging::init();

    match Config::from_env() {
        Ok(config) => {
            let cors = config.cors_allow_origin.clone();
            let identification = Identification::from_config(&config);
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
