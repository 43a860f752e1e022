//! TLS for connections to PostgreSQL, with rustls (ring) only.
//!
//! `require` encrypts without checking the certificate, like libpq's `sslmode=require`;
//! `verify-full` checks the chain against the given CA (or the system roots) and that the
//! certificate names the host. Both offer SCRAM channel binding (`SCRAM-SHA-256-PLUS`,
//! `tls-server-end-point`), which ties the SCRAM exchange to the TLS session so that it
//! cannot be relayed through another server. With `require` the server is not verified,
//! so a password request in clear text or MD5 is refused ([`super::auth`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::auth::AuthGuard;
use crate::api::TlsMode;

/// TLS could not be configured.
#[derive(Debug, Error)]
pub enum TlsSetupError {
    /// The CA bundle holds no PEM certificate, or one that cannot be parsed.
    #[error("the CA bundle is not valid PEM: {0}")]
    InvalidCa(String),
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
    /// The host is neither a DNS name nor an IP address.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
}

/// A CA bundle reduced to what may be handed to tenants: its X.509 certificates, each
/// parsed and re-encoded as a `CERTIFICATE` PEM block; text between blocks is dropped.
/// A bundle with a private key, or with no certificate, or with a certificate that does
/// not parse, is refused (the error says why, never the content).
pub fn certificates_only(pem: &[u8]) -> Result<Vec<u8>, TlsSetupError> {
    use base64::Engine as _;
    use rustls::pki_types::pem::SectionKind;
    let mut out = String::new();
    let mut check = RootCertStore::empty();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| TlsSetupError::InvalidCa(e.to_string()))?;
        match kind {
            SectionKind::Certificate => {
                check
                    .add(CertificateDer::from(der.as_slice()))
                    .map_err(|e| {
                        TlsSetupError::InvalidCa(format!("a certificate does not parse: {e}"))
                    })?;
                let encoded = base64::engine::general_purpose::STANDARD.encode(&der);
                out.push_str("-----BEGIN CERTIFICATE-----\n");
                for line in encoded.as_bytes().chunks(64) {
                    out.push_str(&String::from_utf8_lossy(line));
                    out.push('\n');
                }
                out.push_str("-----END CERTIFICATE-----\n");
            }
            SectionKind::RsaPrivateKey | SectionKind::PrivateKey | SectionKind::EcPrivateKey => {
                return Err(TlsSetupError::InvalidCa(
                    "holds a private key; it must hold only CA certificates, which Landlord gives to every tenant".to_owned(),
                ));
            }
            // Public keys, CRLs, requests: not certificates, not given to tenants.
            _ => {}
        }
    }
    if check.is_empty() {
        return Err(TlsSetupError::InvalidCa(
            "holds no CERTIFICATE section".to_owned(),
        ));
    }
    Ok(out.into_bytes())
}

/// Builds the rustls configuration for a mode; `None` for `disable`.
pub(crate) fn client_config(
    mode: TlsMode,
    ca_pem: Option<&[u8]>,
) -> Result<Option<MakeRustlsConnect>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match mode {
        TlsMode::Disable => return Ok(None),
        TlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        TlsMode::VerifyFull => builder
            .with_root_certificates(root_store(ca_pem)?)
            .with_no_client_auth(),
    };
    Ok(Some(MakeRustlsConnect {
        config: Arc::new(config),
        refuse_plaintext_password: mode != TlsMode::VerifyFull,
    }))
}

fn root_store(ca_pem: Option<&[u8]>) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| TlsSetupError::InvalidCa(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| TlsSetupError::InvalidCa(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(TlsSetupError::InvalidCa(
                    "no CERTIFICATE section found".to_owned(),
                ));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    Ok(roots)
}

/// `sslmode=require`: accepts any certificate, but still checks that the server holds its
/// key (handshake signatures are verified).
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Makes rustls connections for `tokio-postgres`.
#[derive(Clone)]
pub(crate) struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
    /// The certificate is not verified: refuse cleartext and MD5 password requests.
    refuse_plaintext_password: bool,
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = TlsSetupError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, TlsSetupError> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|_| TlsSetupError::ServerName(domain.to_owned()))?;
        Ok(RustlsConnect {
            config: self.config.clone(),
            name,
            refuse_plaintext_password: self.refuse_plaintext_password,
        })
    }
}

/// One TLS handshake to one server name.
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    refuse_plaintext_password: bool,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(|tls| RustlsStream(AuthGuard::new(tls, self.refuse_plaintext_password)))
        })
    }
}

/// An established TLS stream, its reads guarded during authentication.
pub(crate) struct RustlsStream<S>(AuthGuard<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, connection) = self.0.get_ref().get_ref();
        match connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| tls_server_end_point(cert.as_ref()))
        {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929 `tls-server-end-point`: the hash of the server's certificate, with the hash
/// function of its signature algorithm (SHA-256 for MD5 and SHA-1). `None` for
/// algorithms without a defined hash (Ed25519, RSA-PSS): no channel binding is offered.
pub(crate) fn tls_server_end_point(der: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    let oid = signature_algorithm(der)?;
    let hash = if let Some(last) = oid.strip_prefix(RSA) {
        match last {
            [0x04] | [0x05] | [0x0b] => 256,
            [0x0c] => 384,
            [0x0d] => 512,
            _ => return None,
        }
    } else if let Some(rest) = oid.strip_prefix(ECDSA) {
        match rest {
            [0x01] | [0x03, 0x02] => 256,
            [0x03, 0x03] => 384,
            [0x03, 0x04] => 512,
            _ => return None,
        }
    } else {
        return None;
    };
    Some(match hash {
        256 => sha2::Sha256::digest(der).to_vec(),
        384 => sha2::Sha384::digest(der).to_vec(),
        _ => sha2::Sha512::digest(der).to_vec(),
    })
}

/// The OID (content bytes) of a DER certificate's outer `signatureAlgorithm`.
fn signature_algorithm(der: &[u8]) -> Option<&[u8]> {
    /// Splits one DER element with `tag` off `input`: (its content, the rest).
    fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&first, input) = input.split_first()?;
        if first != tag {
            return None;
        }
        let (&len, mut input) = input.split_first()?;
        let len = if len < 0x80 {
            usize::from(len)
        } else {
            let n = usize::from(len & 0x7f);
            if n == 0 || n > 4 || input.len() < n {
                return None;
            }
            let (bytes, rest) = input.split_at(n);
            input = rest;
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        (input.len() >= len).then(|| input.split_at(len))
    }
    let (certificate, _) = element(der, 0x30)?;
    let (_tbs, rest) = element(certificate, 0x30)?;
    let (algorithm, _) = element(rest, 0x30)?;
    let (oid, _) = element(algorithm, 0x06)?;
    Some(oid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disable_needs_no_tls() {
        assert!(client_config(TlsMode::Disable, None).unwrap().is_none());
    }

    #[test]
    fn require_and_verify_full_build_a_connector() {
        assert!(client_config(TlsMode::Require, None).unwrap().is_some());
        assert!(client_config(TlsMode::VerifyFull, None).unwrap().is_some());
    }

    fn certificate_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        rcgen::CertificateParams::new(vec!["db.example".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate")
            .pem()
    }

    #[test]
    fn channel_binding_hashes_the_certificate_with_its_signature_hash() {
        use sha2::Digest;
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["db.example".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        // rcgen's default: ECDSA P-256 with SHA-256.
        assert_eq!(
            tls_server_end_point(cert.der()),
            Some(sha2::Sha256::digest(cert.der()).to_vec())
        );
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["db.example".to_owned()])
            .expect("params")
            .self_signed(&p384)
            .expect("certificate");
        assert_eq!(
            tls_server_end_point(cert.der()),
            Some(sha2::Sha384::digest(cert.der()).to_vec())
        );
        assert_eq!(tls_server_end_point(b"not DER"), None);
    }

    #[test]
    fn only_certificates_are_kept_re_encoded() {
        let cert = certificate_pem();
        let bundle = format!(
            "leading text that must not reach tenants\n{cert}between\n-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n{cert}"
        );
        let kept =
            String::from_utf8(certificates_only(bundle.as_bytes()).expect("valid")).expect("UTF-8");
        assert_eq!(kept, format!("{cert}{cert}").replace("\r", ""));
        assert!(!kept.contains("leading") && !kept.contains("between") && !kept.contains("CRL"));
    }

    #[test]
    fn a_bundle_with_a_private_key_or_no_certificate_is_refused() {
        let key = rcgen::KeyPair::generate().expect("key").serialize_pem();
        let with_key = format!("{}{key}", certificate_pem());
        let err = certificates_only(with_key.as_bytes()).expect_err("a key is refused");
        assert!(err.to_string().contains("private key"), "{err}");
        assert!(!err.to_string().contains("BEGIN"), "{err}");
        for pem in [
            &b"just text"[..],
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            assert!(certificates_only(pem).is_err(), "{pem:?}");
        }
    }

    #[test]
    fn a_ca_without_certificates_is_refused() {
        for pem in [
            &b""[..],
            b"not pem at all",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let err = client_config(TlsMode::VerifyFull, Some(pem))
                .err()
                .unwrap_or_else(|| panic!("{pem:?} was accepted"));
            assert!(matches!(err, TlsSetupError::InvalidCa(_)), "{err}");
        }
    }
}
