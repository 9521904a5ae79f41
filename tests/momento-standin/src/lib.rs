//! Test equipment for the token vending machine: loopback stand-ins that speak
//! the real protocols, so the real SDK clients and the real binary are exercised.
//!
//! - [`momento`]: Momento's gRPC (cache `Get`/`Set`, token `GenerateDisposableToken` only);
//! - [`secrets`]: AWS Secrets Manager's JSON 1.1 API (`GetSecretValue` only);
//! - [`runtime`]: the Lambda Runtime API a function process polls.
//!
//! Not a Momento or AWS emulator: anything outside those calls is refused.

pub mod harness;
pub mod momento;
pub mod runtime;
pub mod secrets;

pub use harness::{FunctionUnderTest, HttpAnswer};
pub use momento::{v1_api_key, Fault, MomentoStandin, Op, Recorded};
pub use runtime::{Answer, RuntimeApi};
pub use secrets::SecretsStandin;
