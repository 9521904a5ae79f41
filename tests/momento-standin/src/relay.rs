//! A loopback TCP relay in front of a stand-in, with the silent network faults
//! a Lambda container meets on its way to Momento.
//!
//! - [`Relay::silence_established`]: every connection open now stops carrying
//!   bytes in both directions without closing (no FIN, no RST) — what a NAT or
//!   load balancer that forgot an idle flow while the container was frozen
//!   does. Connections opened later are relayed normally.
//! - [`Relay::blackhole_new`]: connections opened from now on never carry a
//!   byte. The kernel still completes the TCP handshake (the relay listens),
//!   so what never completes is the client's HTTP/2 (or TLS) handshake: from
//!   the SDK's side, a connection that never becomes usable.
//!
//! No root, no netem: the relay is the portable way to inject these faults in
//! the integration and process tiers. Every connection is counted, so tests
//! can tell a call served over a new connection from one on an old one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Default)]
struct State {
    /// Connections accepted so far (ids are 0, 1, ...).
    accepted: AtomicU64,
    /// Connections with an id below this carry no more bytes.
    silenced_below: AtomicU64,
    /// New connections carry nothing while set.
    blackhole_new: AtomicBool,
}

impl State {
    fn silenced(&self, id: u64) -> bool {
        id < self.silenced_below.load(Ordering::SeqCst)
    }
}

/// A running relay; it stops, closing every connection, when dropped.
pub struct Relay {
    addr: SocketAddr,
    state: Arc<State>,
    _shutdown: watch::Sender<bool>,
}

impl Relay {
    /// Relays `127.0.0.1:<free port>` to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let (shutdown, stopped) = watch::channel(false);
        let accept_state = state.clone();
        tokio::spawn(async move {
            let mut stop = stopped.clone();
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stop.changed() => return,
                };
                let Ok((client, _)) = accepted else { continue };
                let _ = client.set_nodelay(true);
                let id = accept_state.accepted.fetch_add(1, Ordering::SeqCst);
                let blackholed = accept_state.blackhole_new.load(Ordering::SeqCst);
                tokio::spawn(relay_one(
                    id,
                    client,
                    upstream,
                    blackholed,
                    accept_state.clone(),
                    stopped.clone(),
                ));
            }
        });
        Ok(Relay {
            addr,
            state,
            _shutdown: shutdown,
        })
    }

    /// `http://<relay>`: the value for `MOMENTO_ENDPOINT_OVERRIDE`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Every connection open now goes silent for good (new ones still work).
    pub fn silence_established(&self) {
        let now = self.state.accepted.load(Ordering::SeqCst);
        self.state.silenced_below.fetch_max(now, Ordering::SeqCst);
    }

    /// While `on`, new connections are accepted and then carry nothing.
    pub fn blackhole_new(&self, on: bool) {
        self.state.blackhole_new.store(on, Ordering::SeqCst);
    }
}

async fn relay_one(
    id: u64,
    client: TcpStream,
    upstream: SocketAddr,
    blackholed: bool,
    state: Arc<State>,
    mut stopped: watch::Receiver<bool>,
) {
    if blackholed {
        // Hold the socket open, read and drop whatever arrives, answer nothing.
        tokio::select! {
            _ = discard(client) => (),
            _ = stopped.changed() => (),
        }
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = async {
            tokio::join!(
                pump(id, client_read, server_write, &state),
                pump(id, server_read, client_write, &state),
            )
        } => (),
        _ = stopped.changed() => (),
    }
}

/// Copies `from` to `to` until either side closes; once the connection is
/// silenced, bytes are read and dropped (as a black hole would) and nothing
/// is forwarded or closed.
async fn pump(
    id: u64,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: &State,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if state.silenced(id) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if state.silenced(id) {
        // A silent flow never closes: hold the other half open as well.
        std::future::pending::<()>().await;
    }
    let _ = to.shutdown().await;
}

async fn discard(mut stream: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            // The client gave up: nothing more to hold.
            return;
        }
    }
}
