//! osprey's listeners: plain HTTP, or TLS as the web configuration file
//! (`--web.config.file`) says, for every port osprey serves (the server,
//! the agent, the alert manager, the exporters).
//!
//! [`WebConfigHandle`] holds the web configuration in effect and re-reads
//! it when the file or any file it names (certificates, keys, client CAs,
//! token files) changes, at most once a second and only when a request or
//! a connection comes; a file that no longer loads is logged and the
//! previous configuration stays, as exporter-toolkit keeps serving.
//!
//! [`serve`] accepts connections on a task of its own: TLS handshakes run
//! concurrently (each bounded in time), so a slow client cannot hold up
//! the others. A verified client certificate names the user (its common
//! name, or its first SAN), and `client_allowed_sans` closes connections
//! whose certificate carries none of the listed names. Every request
//! carries a [`PeerInfo`] (axum's `ConnectInfo`) with the source address
//! and that user.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use config::http::TlsVersion;
use config::web::{ClientAuth, TlsServerConfig, WebConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often, at most, the web configuration's files are checked for a
/// change: a `stat` per file per second costs nothing next to a request.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// The web configuration in effect and what was built from it.
pub struct WebState {
    pub config: WebConfig,
    /// `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The web configuration of a listener, re-read on change. Cheap to
/// clone.
#[derive(Clone)]
pub struct WebConfigHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    path: Option<PathBuf>,
    current: RwLock<Arc<WebState>>,
    /// When the files were last checked, and their (mtime, length).
    checked: Mutex<(Instant, Vec<FileStamp>)>,
}

type FileStamp = (PathBuf, Option<(SystemTime, u64)>);

impl std::fmt::Debug for WebConfigHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfigHandle")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl WebConfigHandle {
    /// No file: plain HTTP, nobody authenticated (everyone may do
    /// everything, as osprey behaves without a web configuration).
    pub fn open() -> WebConfigHandle {
        WebConfigHandle::from_state(
            None,
            WebState {
                config: WebConfig {
                    http2: true,
                    ..WebConfig::default()
                },
                tls: None,
            },
        )
    }

    /// Loads `path`; a bad file is an error naming the file, line and
    /// field (or the certificate that does not load), so it fails at start.
    pub fn load(path: &Path) -> Result<WebConfigHandle, String> {
        let state = build(path)?;
        Ok(WebConfigHandle::from_state(Some(path.to_path_buf()), state))
    }

    fn from_state(path: Option<PathBuf>, state: WebState) -> WebConfigHandle {
        let stamps = stamps(&state.config.watched_files());
        WebConfigHandle {
            inner: Arc::new(HandleInner {
                path,
                current: RwLock::new(Arc::new(state)),
                checked: Mutex::new((Instant::now(), stamps)),
            }),
        }
    }

    /// The configuration in effect, re-read first when a file changed.
    pub fn current(&self) -> Arc<WebState> {
        self.reload_if_changed();
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn reload_if_changed(&self) {
        let Some(path) = &self.inner.path else {
            return;
        };
        let changed = {
            let Ok(mut checked) = self.inner.checked.try_lock() else {
                // Another request is checking right now.
                return;
            };
            if checked.0.elapsed() < RECHECK_EVERY {
                return;
            }
            checked.0 = Instant::now();
            let files: Vec<PathBuf> = checked.1.iter().map(|(file, _)| file.clone()).collect();
            let now = stamps(&files);
            let changed = now != checked.1;
            checked.1 = now;
            changed
        };
        if !changed {
            return;
        }
        match build(path) {
            Ok(state) => {
                let files = state.config.watched_files();
                *self
                    .inner
                    .current
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = Arc::new(state);
                if let Ok(mut checked) = self.inner.checked.lock() {
                    checked.1 = stamps(&files);
                }
                tracing::info!(file = %path.display(), "web configuration reloaded");
            }
            Err(error) => {
                tracing::error!(%error, "the web configuration no longer loads; keeping the previous one");
            }
        }
    }
}

fn stamps(files: &[PathBuf]) -> Vec<FileStamp> {
    files
        .iter()
        .map(|file| {
            let stamp = std::fs::metadata(file)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
            (file.clone(), stamp)
        })
        .collect()
}

fn build(path: &Path) -> Result<WebState, String> {
    let config = config::web::load_web_config(path).map_err(|e| e.to_string())?;
    let tls = match &config.tls {
        Some(tls) => {
            Some(Arc::new(rustls_config(tls, config.http2).map_err(|e| {
                format!("{}: tls_server_config: {e}", path.display())
            })?))
        }
        None => None,
    };
    Ok(WebState { config, tls })
}

/// The rustls server configuration for `tls_server_config`.
pub fn rustls_config(tls: &TlsServerConfig, http2: bool) -> Result<rustls::ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&tls.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert: {e}"))?;
    if certs.is_empty() {
        return Err("cert: no PEM certificate".to_string());
    }
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem).map_err(|e| format!("key: {e}"))?;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !tls.cipher_suites.is_empty() {
        // TLS 1.3 suites are not configurable (as in Go); the TLS 1.2 ones
        // are kept in the configured order.
        let mut suites: Vec<rustls::SupportedCipherSuite> = provider
            .cipher_suites
            .iter()
            .copied()
            .filter(|suite| matches!(suite, rustls::SupportedCipherSuite::Tls13(_)))
            .collect();
        for name in &tls.cipher_suites {
            if let Some(suite) = provider
                .cipher_suites
                .iter()
                .find(|suite| go_suite_name(suite.suite()) == Some(name.as_str()))
            {
                suites.push(*suite);
            }
        }
        provider.cipher_suites = suites;
    }
    if !tls.curve_preferences.is_empty() {
        let mut groups = Vec::new();
        for name in &tls.curve_preferences {
            let wanted = match name.as_str() {
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                _ => continue,
            };
            if let Some(group) = provider.kx_groups.iter().find(|g| g.name() == wanted) {
                groups.push(*group);
            }
        }
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|version| {
                let level = if version.version == rustls::ProtocolVersion::TLSv1_2 {
                    TlsVersion::Tls12
                } else {
                    TlsVersion::Tls13
                };
                level >= tls.min_version && level <= tls.max_version
            })
            .collect();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match tls.client_auth {
        ClientAuth::NoClientCert => builder.with_no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => builder
            .with_client_cert_verifier(Arc::new(AnyClientCert {
                mandatory: tls.client_auth == ClientAuth::RequireAnyClientCert,
                provider: provider.clone(),
            })),
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let pem = tls
                .client_ca_pem
                .as_deref()
                .ok_or("client_ca_file is required for this client_auth_type")?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("client_ca: {e}"))?;
                roots.add(cert).map_err(|e| format!("client_ca: {e}"))?;
            }
            let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            if tls.client_auth == ClientAuth::VerifyClientCertIfGiven {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| format!("client_ca: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("cert and key: {e}"))?;
    config.ignore_client_order = tls.prefer_server_cipher_suites;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// Go's name of a TLS 1.2 cipher suite.
fn go_suite_name(suite: rustls::CipherSuite) -> Option<&'static str> {
    use rustls::CipherSuite as S;
    Some(match suite {
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        }
        S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
        }
        _ => return None,
    })
}

/// `RequestClientCert` and `RequireAnyClientCert`: take whatever
/// certificate the client offers without checking its chain (the
/// handshake signature is still checked). Go documents these as insecure;
/// such a certificate is never taken as an identity here.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The user a verified client certificate names.
    pub certificate_user: Option<String>,
    pub tls: bool,
}

/// A connection, plain or TLS.
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(stream) => stream.is_write_vectored(),
            Connection::Tls(stream) => stream.is_write_vectored(),
        }
    }
}

/// Accepted connections, handshakes done, for axum.
pub struct OspreyListener {
    connections: tokio::sync::mpsc::Receiver<(Connection, PeerInfo)>,
    local: SocketAddr,
}

impl axum::serve::Listener for OspreyListener {
    type Io = Connection;
    type Addr = PeerInfo;

    async fn accept(&mut self) -> (Connection, PeerInfo) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accept task only ends with the process; wait forever
            // rather than hand axum a broken connection.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<PeerInfo> {
        Ok(PeerInfo {
            addr: self.local,
            certificate_user: None,
            tls: false,
        })
    }
}

impl Connected<IncomingStream<'_, OspreyListener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, OspreyListener>) -> PeerInfo {
        stream.remote_addr().clone()
    }
}

/// Accepts on `listener` under `web`, handing finished connections to the
/// returned [`OspreyListener`].
pub fn accept(listener: TcpListener, web: WebConfigHandle) -> std::io::Result<OspreyListener> {
    let local = listener.local_addr()?;
    // A few connections may wait for axum; more waiting means axum is
    // behind, and new handshakes then wait too.
    let (sender, connections) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off
                    // rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let state = web.current();
            let Some(tls) = state.tls.clone() else {
                let peer = PeerInfo {
                    addr,
                    certificate_user: None,
                    tls: false,
                };
                if sender
                    .send((Connection::Plain(stream), peer))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            };
            let sender = sender.clone();
            tokio::spawn(async move {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                let stream = match handshake.await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%addr, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%addr, "TLS handshake timed out");
                        return;
                    }
                };
                let Some(server_tls) = &state.config.tls else {
                    return;
                };
                let leaf = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|cert| cert.as_ref().to_vec());
                let names = leaf.as_deref().map(certificate_names).unwrap_or_default();
                if !server_tls.client_allowed_sans.is_empty()
                    && !names
                        .sans
                        .iter()
                        .any(|san| server_tls.client_allowed_sans.contains(san))
                {
                    tracing::info!(%addr, "client certificate has none of client_allowed_sans; connection closed");
                    return;
                }
                let verified = matches!(
                    server_tls.client_auth,
                    ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
                );
                let certificate_user = if verified && leaf.is_some() {
                    names.common_name.or_else(|| names.sans.first().cloned())
                } else {
                    None
                };
                let peer = PeerInfo {
                    addr,
                    certificate_user,
                    tls: true,
                };
                let _ = sender.send((Connection::Tls(Box::new(stream)), peer)).await;
            });
        }
    });
    Ok(OspreyListener { connections, local })
}

/// The names a certificate carries.
#[derive(Default)]
struct CertificateNames {
    common_name: Option<String>,
    /// DNS names, IP addresses, e-mail addresses and URIs.
    sans: Vec<String>,
}

fn certificate_names(der: &[u8]) -> CertificateNames {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return CertificateNames::default();
    };
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let mut sans = Vec::new();
    if let Ok(Some(extension)) = cert.subject_alternative_name() {
        use x509_parser::extensions::GeneralName;
        for name in &extension.value.general_names {
            match name {
                GeneralName::DNSName(dns) => sans.push((*dns).to_string()),
                GeneralName::RFC822Name(email) => sans.push((*email).to_string()),
                GeneralName::URI(uri) => sans.push((*uri).to_string()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => {
                        let octets: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
                        sans.push(std::net::Ipv4Addr::from(octets).to_string());
                    }
                    16 => {
                        let mut octets = [0u8; 16];
                        octets.copy_from_slice(bytes);
                        sans.push(std::net::Ipv6Addr::from(octets).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    CertificateNames { common_name, sans }
}

/// Serves `router` on `listener` under `web` until `shutdown` resolves,
/// adding the web configuration's security headers to every answer.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    web: WebConfigHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let headers_web = web.clone();
    let router = router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let web = headers_web.clone();
            async move {
                let mut response = next.run(request).await;
                for (name, value) in &web.current().config.headers {
                    if let (Ok(name), Ok(value)) = (
                        axum::http::HeaderName::from_bytes(name.as_bytes()),
                        axum::http::HeaderValue::from_str(value),
                    ) {
                        response.headers_mut().insert(name, value);
                    }
                }
                response
            }
        },
    ));
    let listener = accept(listener, web)?;
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<PeerInfo>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves a component's router (the agent, the alert manager alone, an
/// exporter alone) under the web configuration: TLS, and authentication
/// and roles by [`crate::auth::server_policy`], whose rules cover their
/// routes too. The audit log goes to `audit_dir` when given.
pub async fn serve_protected(
    listener: TcpListener,
    router: Router,
    web: WebConfigHandle,
    audit_dir: Option<&Path>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let auth = crate::auth::Auth::new(web.clone(), crate::auth::server_policy, audit_dir);
    let router = router.route_layer(axum::middleware::from_fn_with_state(
        auth,
        crate::auth::middleware,
    ));
    serve(listener, router, web, shutdown).await
}
