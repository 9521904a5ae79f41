//! Handler overhead: the vending logic and the HTTP mapping with in-memory
//! doubles (no network), so the figures are the function's own CPU cost.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use token_vending_machine::app::{cors_header, App};
use token_vending_machine::caller::{Caller, Identification};
use token_vending_machine::doubles::{Behaviour, CountingMinter, DoublesInit, MemoryCache};
use token_vending_machine::http::{route, token_response};
use token_vending_machine::scope::Scope;
use token_vending_machine::vending::Vendor;

const EVENT: &str = include_str!("../events/rest-get-tokens-order.json");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn vending(c: &mut Criterion) {
    let rt = runtime();
    let caller_at = |ip: IpAddr| Caller::anonymous(ip, Scope::subscribe_all("pizza"), "pizza");
    let caller = caller_at("203.0.113.10".parse().expect("ip"));
    let ttl = (Duration::from_secs(3600), Duration::from_secs(3300));

    let hit = Vendor::new(
        Arc::new(MemoryCache::new()),
        Arc::new(CountingMinter::new()),
        ttl.0,
        ttl.1,
    );
    rt.block_on(hit.vend(&caller)).expect("prime the cache");
    c.bench_function("vend_hit", |b| b.to_async(&rt).iter(|| hit.vend(&caller)));

    // A new caller every time (a repeat caller is answered from the vendor's memory).
    let forgetful = Arc::new(MemoryCache::new());
    forgetful.on_set(Behaviour::Discard);
    let miss = Vendor::new(forgetful, Arc::new(CountingMinter::new()), ttl.0, ttl.1);
    let mut n: u32 = 0;
    c.bench_function("vend_miss", |b| {
        b.to_async(&rt).iter(|| {
            n = n.wrapping_add(1);
            let caller = caller_at(IpAddr::from(std::net::Ipv4Addr::from(
                0x0a00_0000 | (n & 0xff_ffff),
            )));
            let miss = &miss;
            async move { miss.vend(&caller).await }
        })
    });
}

fn http_mapping(c: &mut Criterion) {
    let cors = cors_header("*");
    let identification = Identification::source_ip("pizza");
    let body = r#"{"token":"eyJlbmRwb2ludCI6ICJleGFtcGxlIn0=","exp":1795807413}"#.to_string();
    c.bench_function("http_map_event_to_response", |b| {
        b.iter(|| {
            let req = lambda_http::request::from_str(EVENT).expect("event");
            let routed = route(&req);
            let caller = identification.identify(&req).expect("caller");
            (routed, caller, token_response(&body, 1795804200, &cors))
        })
    });
}

fn handler(c: &mut Criterion) {
    let rt = runtime();
    let app = App::new(DoublesInit::new(), "*", Identification::source_ip("pizza"));
    let first = lambda_http::request::from_str(EVENT).expect("event");
    rt.block_on(app.handle(first));
    c.bench_function("handler_hit_event_to_response", |b| {
        b.to_async(&rt).iter(|| async {
            let req = lambda_http::request::from_str(EVENT).expect("event");
            app.handle(req).await
        })
    });
}

criterion_group!(benches, vending, http_mapping, handler);
criterion_main!(benches);
