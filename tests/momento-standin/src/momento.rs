//! A loopback Momento: the real gRPC services from `momento-protos`, serving
//! only what the token vending machine uses.
//!
//! Covered RPCs: `cache_client.Scs/Get`, `cache_client.Scs/Set` (with TTL and
//! the `cache` header) and `token.Token/GenerateDisposableToken`. Every other
//! RPC answers `UNIMPLEMENTED`. Each request must carry the expected API key
//! in the `authorization` header; every request is recorded, and each of the
//! three operations can be told to fail, stall or hang.
//!
//! Rate limits, as Momento enforces them: a token bucket per plane (control:
//! token minting, per account; data: cache calls, per cache), off unless a test
//! sets one. A call over the limit is refused with `RESOURCE_EXHAUSTED` and
//! Momento's `err: operations_rate_limit_exceeded` metadata, so the real SDK
//! maps it to `LimitExceededError`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use momento_protos::cache_client::scs_server::{Scs, ScsServer};
use momento_protos::cache_client::*;
use momento_protos::permission_messages::Permissions;
use momento_protos::token::token_server::{Token, TokenServer};
use momento_protos::token::{GenerateDisposableTokenRequest, GenerateDisposableTokenResponse};
use tokio::sync::oneshot;

use crate::lock;
use tonic::{Code, Request, Response, Status};

/// The three operations the stand-in serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Get,
    Set,
    Mint,
}

impl Op {
    /// The plane whose rate limit the operation counts against.
    pub fn plane(self) -> Plane {
        match self {
            Op::Get | Op::Set => Plane::Data,
            Op::Mint => Plane::Control,
        }
    }
}

/// Momento's two rate-limited planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plane {
    /// Account-level operations such as `GenerateDisposableToken`.
    Control,
    /// Cache calls (`Get`, `Set`).
    Data,
}

/// A token bucket: `per_second` operations a second, bursts of up to `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn new(per_second: u32, burst: u32) -> Self {
        Bucket {
            per_second: f64::from(per_second),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            refilled: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What an operation does instead of working normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this gRPC status.
    Status(Code),
    /// Work, but only after this long.
    Delay(Duration),
    /// Never answer.
    Hang,
}

/// One request as the stand-in received it.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Get {
        cache: String,
        key: Vec<u8>,
    },
    Set {
        cache: String,
        key: Vec<u8>,
        value: Vec<u8>,
        ttl_milliseconds: u64,
    },
    Mint {
        valid_for_seconds: Option<u32>,
        permissions: Option<Permissions>,
        token_id: String,
    },
    /// A request whose `authorization` header was missing or wrong.
    Unauthenticated {
        op: Op,
    },
    /// A request refused by its plane's rate limit (not served, not recorded as `op`).
    Throttled {
        op: Op,
    },
}

/// (cache name, key) to (value, expiry).
type Items = HashMap<(String, Vec<u8>), (Vec<u8>, Instant)>;

#[derive(Default)]
struct State {
    api_key: Mutex<String>,
    token_endpoint: String,
    recorded: Mutex<Vec<Recorded>>,
    items: Mutex<Items>,
    faults: Mutex<HashMap<Op, Fault>>,
    limits: Mutex<HashMap<Plane, Bucket>>,
    minted: AtomicU64,
    /// The caches that exist (`None`: any name does).
    caches: Mutex<Option<Vec<String>>>,
}

impl State {
    fn record(&self, r: Recorded) {
        lock(&self.recorded).push(r);
    }

    /// Checks the key, records the request, then applies any fault.
    async fn admit<T>(
        &self,
        op: Op,
        request: &Request<T>,
        record: impl FnOnce() -> Recorded,
    ) -> Result<(), Status> {
        let authorized = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == *lock(&self.api_key));
        if !authorized {
            self.record(Recorded::Unauthenticated { op });
            return Err(Status::unauthenticated("Invalid signature"));
        }
        let admitted = lock(&self.limits)
            .get_mut(&op.plane())
            .is_none_or(Bucket::take);
        if !admitted {
            self.record(Recorded::Throttled { op });
            let mut status =
                Status::resource_exhausted("Request rate exceeded the limits for this account");
            status.metadata_mut().insert(
                "err",
                "operations_rate_limit_exceeded".parse().expect("ascii"),
            );
            return Err(status);
        }
        self.record(record());
        let fault = lock(&self.faults).get(&op).copied();
        match fault {
            None => Ok(()),
            Some(Fault::Status(code)) => Err(Status::new(code, "injected by the stand-in")),
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Some(Fault::Hang) => std::future::pending().await,
        }
    }
}

impl State {
    /// Momento's answer for a cache that doesn't exist: `NOT_FOUND` with
    /// `err: cache_not_found` (what the SDK maps to `CacheNotFoundError`).
    fn cache_exists(&self, cache: &str) -> Result<(), Status> {
        let exists = lock(&self.caches)
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == cache));
        if exists {
            return Ok(());
        }
        let mut status = Status::not_found(format!("Cache not found: {cache}"));
        status
            .metadata_mut()
            .insert("err", "cache_not_found".parse().expect("ascii"));
        Err(status)
    }
}

fn cache_name<T>(request: &Request<T>) -> Result<String, Status> {
    request
        .metadata()
        .get("cache")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Status::invalid_argument("Cache header is missing"))
}

#[derive(Clone)]
struct Service(Arc<State>);

type Stream<T> =
    Pin<Box<dyn tonic::codegen::tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

/// Implements `Scs` with the given methods written out and every other RPC
/// answering `UNIMPLEMENTED`. (The whole impl is generated so that
/// `async_trait` sees the expanded methods.)
macro_rules! scs_impl {
    ({ $($served:tt)* } $($name:ident($req:ident) -> $resp:ident;)*) => {
        #[tonic::async_trait]
        impl Scs for Service {
            $($served)*
            $(
                async fn $name(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(Status::unimplemented(concat!(stringify!($name), " is not served by the stand-in")))
                }
            )*
        }
    };
}

scs_impl! {{
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let cache = cache_name(&request)?;
        let key = request.get_ref().cache_key.clone();
        self.0
            .admit(Op::Get, &request, || Recorded::Get {
                cache: cache.clone(),
                key: key.clone(),
            })
            .await?;
        self.0.cache_exists(&cache)?;
        let mut items = lock(&self.0.items);
        let slot = (cache, key);
        let live = items.get(&slot).filter(|(_, expires)| *expires > Instant::now()).map(|(v, _)| v.clone());
        if live.is_none() {
            items.remove(&slot);
        }
        Ok(Response::new(match live {
            Some(body) => GetResponse {
                result: ECacheResult::Hit as i32,
                cache_body: body,
                message: String::new(),
            },
            None => GetResponse {
                result: ECacheResult::Miss as i32,
                cache_body: Vec::new(),
                message: String::new(),
            },
        }))
    }

    async fn set(&self, request: Request<SetRequest>) -> Result<Response<SetResponse>, Status> {
        let cache = cache_name(&request)?;
        let SetRequest {
            cache_key,
            cache_body,
            ttl_milliseconds,
        } = request.get_ref().clone();
        self.0
            .admit(Op::Set, &request, || Recorded::Set {
                cache: cache.clone(),
                key: cache_key.clone(),
                value: cache_body.clone(),
                ttl_milliseconds,
            })
            .await?;
        self.0.cache_exists(&cache)?;
        let expires = Instant::now() + Duration::from_millis(ttl_milliseconds);
        lock(&self.0.items).insert((cache, cache_key), (cache_body, expires));
        Ok(Response::new(SetResponse {
            result: ECacheResult::Ok as i32,
            message: String::new(),
        }))
    }

    type GetBatchStream = Stream<GetResponse>;
    async fn get_batch(&self, _: Request<GetBatchRequest>) -> Result<Response<Self::GetBatchStream>, Status> {
        Err(Status::unimplemented("get_batch is not served by the stand-in"))
    }

    type SetBatchStream = Stream<SetResponse>;
    async fn set_batch(&self, _: Request<SetBatchRequest>) -> Result<Response<Self::SetBatchStream>, Status> {
        Err(Status::unimplemented("set_batch is not served by the stand-in"))
    }
    }
        get_with_hash(GetWithHashRequest) -> GetWithHashResponse;
        set_if(SetIfRequest) -> SetIfResponse;
        set_if_hash(SetIfHashRequest) -> SetIfHashResponse;
        set_if_not_exists(SetIfNotExistsRequest) -> SetIfNotExistsResponse;
        delete(DeleteRequest) -> DeleteResponse;
        keys_exist(KeysExistRequest) -> KeysExistResponse;
        increment(IncrementRequest) -> IncrementResponse;
        update_ttl(UpdateTtlRequest) -> UpdateTtlResponse;
        item_get_ttl(ItemGetTtlRequest) -> ItemGetTtlResponse;
        item_get_type(ItemGetTypeRequest) -> ItemGetTypeResponse;
        dictionary_get(DictionaryGetRequest) -> DictionaryGetResponse;
        dictionary_fetch(DictionaryFetchRequest) -> DictionaryFetchResponse;
        dictionary_set(DictionarySetRequest) -> DictionarySetResponse;
        dictionary_increment(DictionaryIncrementRequest) -> DictionaryIncrementResponse;
        dictionary_delete(DictionaryDeleteRequest) -> DictionaryDeleteResponse;
        dictionary_length(DictionaryLengthRequest) -> DictionaryLengthResponse;
        set_fetch(SetFetchRequest) -> SetFetchResponse;
        set_sample(SetSampleRequest) -> SetSampleResponse;
        set_union(SetUnionRequest) -> SetUnionResponse;
        set_difference(SetDifferenceRequest) -> SetDifferenceResponse;
        set_contains(SetContainsRequest) -> SetContainsResponse;
        set_length(SetLengthRequest) -> SetLengthResponse;
        set_pop(SetPopRequest) -> SetPopResponse;
        list_push_front(ListPushFrontRequest) -> ListPushFrontResponse;
        list_push_back(ListPushBackRequest) -> ListPushBackResponse;
        list_pop_front(ListPopFrontRequest) -> ListPopFrontResponse;
        list_pop_back(ListPopBackRequest) -> ListPopBackResponse;
        list_erase(ListEraseRequest) -> ListEraseResponse;
        list_remove(ListRemoveRequest) -> ListRemoveResponse;
        list_fetch(ListFetchRequest) -> ListFetchResponse;
        list_length(ListLengthRequest) -> ListLengthResponse;
        list_concatenate_front(ListConcatenateFrontRequest) -> ListConcatenateFrontResponse;
        list_concatenate_back(ListConcatenateBackRequest) -> ListConcatenateBackResponse;
        list_retain(ListRetainRequest) -> ListRetainResponse;
        sorted_set_put(SortedSetPutRequest) -> SortedSetPutResponse;
        sorted_set_fetch(SortedSetFetchRequest) -> SortedSetFetchResponse;
        sorted_set_get_score(SortedSetGetScoreRequest) -> SortedSetGetScoreResponse;
        sorted_set_remove(SortedSetRemoveRequest) -> SortedSetRemoveResponse;
        sorted_set_increment(SortedSetIncrementRequest) -> SortedSetIncrementResponse;
        sorted_set_get_rank(SortedSetGetRankRequest) -> SortedSetGetRankResponse;
        sorted_set_length(SortedSetLengthRequest) -> SortedSetLengthResponse;
        sorted_set_length_by_score(SortedSetLengthByScoreRequest) -> SortedSetLengthByScoreResponse;
        sorted_set_union_store(SortedSetUnionStoreRequest) -> SortedSetUnionStoreResponse;
}

#[tonic::async_trait]
impl Token for Service {
    async fn generate_disposable_token(
        &self,
        request: Request<GenerateDisposableTokenRequest>,
    ) -> Result<Response<GenerateDisposableTokenResponse>, Status> {
        let body = request.get_ref().clone();
        let valid_for_seconds = body.expires.map(|e| e.valid_for_seconds);
        self.0
            .admit(Op::Mint, &request, || Recorded::Mint {
                valid_for_seconds,
                permissions: body.permissions.clone(),
                token_id: body.token_id.clone(),
            })
            .await?;
        let valid_for = valid_for_seconds
            .filter(|s| *s > 0)
            .ok_or_else(|| Status::invalid_argument("disposable tokens must expire"))?;
        let n = self.0.minted.fetch_add(1, Ordering::SeqCst) + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(Response::new(GenerateDisposableTokenResponse {
            api_key: format!("standin-disposable-{n}-{}", now % 100_000),
            endpoint: self.0.token_endpoint.clone(),
            valid_until: now + u64::from(valid_for),
        }))
    }
}

/// A v1 Momento API key (base64 of `{"endpoint", "api_key"}`), as Momento's console issues them.
pub fn v1_api_key(secret: &str, endpoint: &str) -> String {
    let json = serde_json::json!({ "endpoint": endpoint, "api_key": secret }).to_string();
    base64::engine::general_purpose::URL_SAFE.encode(json)
}

/// A running stand-in; stops when dropped.
pub struct MomentoStandin {
    addr: SocketAddr,
    state: Arc<State>,
    tls: bool,
    _shutdown: oneshot::Sender<()>,
}

impl MomentoStandin {
    /// Starts on `127.0.0.1:0`, accepting `api_key` (the secret inside a v1 key).
    pub async fn start(api_key: &str) -> std::io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
            api_key,
        )
        .await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr, api_key: &str) -> std::io::Result<Self> {
        Self::start_serving(addr, api_key, None).await
    }

    /// Starts on `127.0.0.1:0` serving gRPC over TLS with a certificate from
    /// `ca`, as Momento does. The function's SDK can't use it (it trusts only
    /// its compiled-in public roots); `cargo bench --bench momento_tls`
    /// measures the handshakes with the SDK's stack against it.
    pub async fn start_tls(api_key: &str, ca: &crate::TestCa) -> std::io::Result<Self> {
        let loopback = std::net::Ipv4Addr::LOCALHOST.into();
        let (cert, key) = ca.server_pem(loopback)?;
        let identity = tonic::transport::Identity::from_pem(cert, key);
        let config = tonic::transport::ServerTlsConfig::new().identity(identity);
        Self::start_serving(SocketAddr::new(loopback, 0), api_key, Some(config)).await
    }

    async fn start_serving(
        addr: SocketAddr,
        api_key: &str,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            api_key: Mutex::new(api_key.to_string()),
            token_endpoint: "standin.momento.localhost".to_string(),
            ..State::default()
        });
        let (tx, rx) = oneshot::channel::<()>();
        let service = Service(state.clone());
        // No Nagle, as a real server would run: with it, two responses written
        // back to back wait out the client's delayed ACK (about 40 ms).
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut server = tonic::transport::Server::builder();
        let is_tls = tls.is_some();
        if let Some(config) = tls {
            server = server.tls_config(config).map_err(std::io::Error::other)?;
        }
        tokio::spawn(async move {
            let _ = server
                .add_service(ScsServer::new(service.clone()))
                .add_service(TokenServer::new(service))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(MomentoStandin {
            addr,
            state,
            tls: is_tls,
            _shutdown: tx,
        })
    }

    /// The value for `MOMENTO_ENDPOINT_OVERRIDE`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Where it listens (for a [`crate::Relay`] in front of it).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        lock(&self.state.recorded).clone()
    }

    /// How many `op` requests were admitted (past the key check and the rate limit).
    pub fn count(&self, op: Op) -> usize {
        self.recorded()
            .iter()
            .filter(|r| {
                matches!(
                    (op, r),
                    (Op::Get, Recorded::Get { .. })
                        | (Op::Set, Recorded::Set { .. })
                        | (Op::Mint, Recorded::Mint { .. })
                )
            })
            .count()
    }

    /// How many `op` requests the rate limit refused.
    pub fn throttled(&self, op: Op) -> usize {
        self.recorded()
            .iter()
            .filter(|r| matches!(r, Recorded::Throttled { op: o } if *o == op))
            .count()
    }

    /// Limits `plane` to `per_second` operations a second, in bursts of up to
    /// `burst` (the bucket starts full; a burst of 0 refuses everything).
    /// Replaces any earlier limit.
    pub fn limit(&self, plane: Plane, per_second: u32, burst: u32) {
        lock(&self.state.limits).insert(plane, Bucket::new(per_second, burst));
    }

    /// From now on only the caches in `names` exist; cache calls for any
    /// other answer as Momento does for a missing cache.
    pub fn only_caches(&self, names: &[&str]) {
        *lock(&self.state.caches) = Some(names.iter().map(|n| n.to_string()).collect());
    }

    /// Lifts the rate limit on `plane`.
    pub fn unlimit(&self, plane: Plane) {
        lock(&self.state.limits).remove(&plane);
    }

    /// Accepts `api_key` from now on, and no other (a key rotation).
    pub fn set_api_key(&self, api_key: &str) {
        *lock(&self.state.api_key) = api_key.to_string();
    }

    /// Makes `op` misbehave until [`MomentoStandin::heal`].
    pub fn inject(&self, op: Op, fault: Fault) {
        lock(&self.state.faults).insert(op, fault);
    }

    pub fn heal(&self, op: Op) {
        lock(&self.state.faults).remove(&op);
    }

    /// The live value stored under `key` in `cache`.
    pub fn item(&self, cache: &str, key: &str) -> Option<Vec<u8>> {
        lock(&self.state.items)
            .get(&(cache.to_string(), key.as_bytes().to_vec()))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(v, _)| v.clone())
    }

    /// Puts a value in the cache directly (e.g. a corrupt entry).
    pub fn put_item(&self, cache: &str, key: &str, value: &[u8], ttl: Duration) {
        lock(&self.state.items).insert(
            (cache.to_string(), key.as_bytes().to_vec()),
            (value.to_vec(), Instant::now() + ttl),
        );
    }
}
