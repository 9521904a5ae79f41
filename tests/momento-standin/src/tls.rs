//! TLS for the stand-ins, as production has it: a certificate authority made
//! when the tests run (its private key lives in memory only, nothing is
//! committed), server certificates it signs for loopback, and the CA bundle a
//! function trusts it through: the system's bundle plus this CA, the way a
//! Lambda trusts Amazon's CAs through the system bundle.
//!
//! The HTTPS client the AWS SDK uses reads its roots with
//! `rustls-native-certs`, which honours `SSL_CERT_FILE`; the harness points it
//! at [`TestCa::bundle_file`]. [`TestCa::untrusted`] makes a CA that no bundle
//! holds, for the negative control.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Where Debian (and Amazon Linux, via a link) keep the system's CA bundle.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Makes ring the process's default rustls provider (tonic's TLS server and
/// client take the default; with both ring and aws-lc-rs compiled in, as
/// Momento's dependencies have it, rustls can't pick one itself). Idempotent.
pub fn use_ring_by_default() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A certificate authority for one test run.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl TestCa {
    /// A new CA named `name` (shown in the certificate's subject).
    pub fn new(name: &str) -> io::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(other)?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(other)?;
        Ok(TestCa { issuer })
    }

    /// A CA that no trust store holds: its certificates must be refused.
    pub fn untrusted() -> io::Result<Self> {
        Self::new("tvm untrusted test CA")
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The system bundle plus this CA, written to `dir/ca-bundle.pem`: the
    /// value for `SSL_CERT_FILE`.
    pub fn bundle_file(&self, dir: &Path) -> io::Result<PathBuf> {
        let mut bundle = std::fs::read_to_string(SYSTEM_BUNDLE).unwrap_or_default();
        if !bundle.ends_with('\n') && !bundle.is_empty() {
            bundle.push('\n');
        }
        bundle.push_str(&self.ca_pem());
        std::fs::create_dir_all(dir)?;
        let path = dir.join("ca-bundle.pem");
        std::fs::write(&path, bundle)?;
        Ok(path)
    }

    /// A server certificate for `ip` (and `localhost`) signed by this CA:
    /// (certificate chain PEM, private key PEM), for servers that take PEM.
    pub fn server_pem(&self, ip: IpAddr) -> io::Result<(String, String)> {
        let (cert, key) = self.leaf(ip)?;
        Ok((
            format!("{}{}", cert.pem(), self.issuer.pem()),
            key.serialize_pem(),
        ))
    }

    fn leaf(&self, ip: IpAddr) -> io::Result<(rcgen::Certificate, KeyPair)> {
        let mut params =
            CertificateParams::new(vec![ip.to_string(), "localhost".to_string()]).map_err(other)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "tvm stand-in");
        let key = KeyPair::generate().map_err(other)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(other)?;
        Ok((cert, key))
    }

    /// A server certificate for `ip` (and `localhost`) signed by this CA, as
    /// a rustls server configuration offering `alpn` protocols.
    pub fn server_config(
        &self,
        ip: IpAddr,
        alpn: &[&[u8]],
    ) -> io::Result<Arc<rustls::ServerConfig>> {
        let (cert, key) = self.leaf(ip)?;
        let chain: Vec<CertificateDer<'static>> =
            vec![cert.der().clone(), self.issuer.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(other)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A rustls client configuration that trusts this CA only.
    pub fn client_config(&self, alpn: &[&[u8]]) -> io::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).map_err(other)?;
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// A TCP listener whose connections are TLS, for `axum::serve`. A failed
/// handshake (a client that refuses the certificate) drops that connection
/// and waits for the next.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> Self {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(config),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            // Bounded: a client that never says hello must not stall the listener.
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
