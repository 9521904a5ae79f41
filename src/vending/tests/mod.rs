//! The decisions, driven through in-memory doubles (`crate::doubles`): the
//! rig and helpers here, one file per part of the narrative.

mod callers;
mod connections;
mod reuse;
mod sharing;

use super::*;
use crate::doubles::{Behaviour, CountingMinter, MemoryCache};
use crate::scope::Scope;
use crate::token::REFRESH_MARGIN;
use std::sync::Arc;

const TOKEN_TTL: Duration = Duration::from_secs(3600);
const CACHE_TTL: Duration = Duration::from_secs(3300);

struct Rig {
    cache: Arc<MemoryCache>,
    minter: Arc<CountingMinter>,
    vendor: Vendor<Arc<MemoryCache>, Arc<CountingMinter>>,
}

impl Rig {
    /// Why vending `caller` produced no token (the test fails if it did).
    async fn error_for(&self, caller: &Caller) -> MintError {
        self.vendor.vend(caller).await.unwrap_err().error
    }

    async fn error_at(&self, caller: &Caller, now: u64) -> MintError {
        self.vendor.vend_at(caller, now).await.unwrap_err().error
    }
}

fn rig() -> Rig {
    let cache = Arc::new(MemoryCache::new());
    let minter = Arc::new(CountingMinter::new());
    let vendor = Vendor::new(cache.clone(), minter.clone(), TOKEN_TTL, CACHE_TTL);
    Rig {
        cache,
        minter,
        vendor,
    }
}

/// An anonymous caller of the seed's scope at `s`.
fn ip(s: &str) -> Caller {
    at(s.parse().unwrap())
}

fn at(address: std::net::IpAddr) -> Caller {
    Caller::anonymous(address, Scope::subscribe_all("pizza"), "pizza")
}

fn parse(body: &str) -> VendedToken {
    serde_json::from_str(body).unwrap()
}

fn token_json(token: &str, exp: u64) -> String {
    format!(r#"{{"token":"{token}","exp":{exp}}}"#)
}

fn user(sub: &str, scope: Scope) -> Caller {
    Caller::user(sub, scope)
}
