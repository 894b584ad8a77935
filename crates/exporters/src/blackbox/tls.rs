//! TLS for the probers: a rustls client configuration whose certificate
//! verifier records the peer's chain and the protocol version while
//! verifying (against the system's roots, a module's CA file, or nothing
//! with `insecure_skip_verify`), and the certificate metrics computed from
//! that record.

use std::sync::{Arc, LazyLock, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use config::http::TlsVersion;

use super::{ProbeMetrics, TlsOptions};

/// What the verifier saw during the last handshake.
#[derive(Debug, Default)]
pub(crate) struct TlsRecord {
    /// The leaf first, then the intermediates the server sent.
    pub chain: Vec<CertificateDer<'static>>,
    /// `TLS 1.2` or `TLS 1.3`, from the handshake signature checked.
    pub version: Option<&'static str>,
}

pub(crate) type SharedRecord = Arc<Mutex<TlsRecord>>;

/// The crypto provider of every TLS client in this crate (rustls's
/// aws-lc-rs, the one the rest of osprey's TLS stack uses).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The system's trusted roots, loaded once (loading reads many files).
pub(crate) static SYSTEM_ROOTS: LazyLock<Arc<RootCertStore>> = LazyLock::new(|| {
    let mut roots = RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    for e in &loaded.errors {
        tracing::debug!("loading a system root certificate failed: {e}");
    }
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    tracing::debug!(added, ignored, "system root certificates loaded");
    Arc::new(roots)
});

#[derive(Debug)]
struct RecordingVerifier {
    /// `None` with `insecure_skip_verify`.
    inner: Option<Arc<WebPkiServerVerifier>>,
    /// Verify against this name instead of the one connected to.
    server_name: Option<ServerName<'static>>,
    provider: Arc<CryptoProvider>,
    record: SharedRecord,
}

impl RecordingVerifier {
    fn set_version(&self, version: &'static str) {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .version = Some(version);
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        {
            let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
            record.chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
        match &self.inner {
            Some(inner) => inner.verify_server_cert(
                end_entity,
                intermediates,
                self.server_name.as_ref().unwrap_or(server_name),
                ocsp_response,
                now,
            ),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.set_version("TLS 1.2");
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.set_version("TLS 1.3");
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

/// A client configuration for `options` that records into `record`.
pub(crate) fn client_config(
    options: &TlsOptions,
    record: SharedRecord,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let inner = if options.insecure_skip_verify {
        None
    } else {
        let roots = match &options.ca_pem {
            Some(pem) => {
                let mut roots = RootCertStore::empty();
                let mut reader = std::io::Cursor::new(pem);
                for cert in rustls_pemfile_certs(&mut reader)? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("bad CA certificate: {e}"))?;
                }
                Arc::new(roots)
            }
            None => SYSTEM_ROOTS.clone(),
        };
        Some(
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("building the certificate verifier: {e}"))?,
        )
    };
    let server_name = match &options.server_name {
        Some(name) => Some(
            ServerName::try_from(name.clone())
                .map_err(|e| format!("bad tls_config.server_name {name:?}: {e}"))?,
        ),
        None => None,
    };
    let verifier = RecordingVerifier {
        inner,
        server_name,
        provider: provider.clone(),
        record,
    };
    // rustls speaks TLS 1.2 and 1.3; `min_version`/`max_version` pick
    // among them (a floor below 1.2 changes nothing).
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|version| {
                let level = match version.version {
                    rustls::ProtocolVersion::TLSv1_2 => TlsVersion::Tls12,
                    _ => TlsVersion::Tls13,
                };
                options.min_version.is_none_or(|min| level >= min)
                    && options.max_version.is_none_or(|max| level <= max)
            })
            .collect();
    if versions.is_empty() {
        return Err("tls_config: no TLS version between min_version and max_version".to_string());
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match &options.identity_pem {
        Some(pem) => {
            use rustls::pki_types::PrivateKeyDer;
            use rustls::pki_types::pem::PemObject;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("tls_config: the client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(pem)
                .map_err(|e| format!("tls_config: the client key: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("tls_config: the client certificate and key: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The certificates of a PEM text, using rustls's PEM reader.
fn rustls_pemfile_certs(
    reader: &mut std::io::Cursor<&Vec<u8>>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_reader_iter(reader).collect();
    let certs = certs.map_err(|e| format!("reading CA certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the CA file".to_string());
    }
    Ok(certs)
}

/// Writes blackbox_exporter's certificate metrics for a recorded chain:
/// `probe_ssl_earliest_cert_expiry`, `probe_ssl_last_chain_expiry_timestamp_seconds`,
/// `probe_ssl_last_chain_info` and `probe_tls_version_info`.
pub(crate) fn record_metrics(record: &TlsRecord, metrics: &mut ProbeMetrics) {
    let mut earliest: Option<i64> = None;
    for der in &record.chain {
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
            let not_after = cert.validity().not_after.timestamp();
            earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
        }
    }
    if let Some(earliest) = earliest {
        metrics.gauge(
            "probe_ssl_earliest_cert_expiry",
            "Expiry of the certificate that expires first in the chain, in Unix seconds.",
            earliest as f64,
        );
        metrics.gauge(
            "probe_ssl_last_chain_expiry_timestamp_seconds",
            "Expiry of the certificate that expires first in the last chain verified, in Unix seconds.",
            earliest as f64,
        );
    }
    if let Some(leaf) = record.chain.first()
        && let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf)
    {
        let san = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::DNSName(dns) => {
                            Some((*dns).to_string())
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        metrics.set(
            "probe_ssl_last_chain_info",
            "Identity of the leaf certificate of the last chain verified.",
            vec![
                ("fingerprint_sha256", sha256_hex(leaf)),
                ("issuer", cert.issuer().to_string()),
                ("subject", cert.subject().to_string()),
                ("subjectalternative", san),
            ],
            1.0,
        );
    }
    if let Some(version) = record.version {
        metrics.set(
            "probe_tls_version_info",
            "The TLS version of the connection.",
            vec![("version", version.to_string())],
            1.0,
        );
    }
}

/// The SHA-256 of `bytes` in lower-case hex, through aws-lc-rs (the
/// digest library rustls runs on).
fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_known_answer() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
