//! HTTPS on loopback: a certificate authority and a serving certificate generated at start,
//! as kube-apiserver generates a self-signed serving certificate when it is given none
//! (<https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/>,
//! `--tls-cert-file`: "If HTTPS serving is enabled, and --tls-cert-file and
//! --tls-private-key-file are not provided, a self-signed certificate and key are generated
//! for the public address").
//!
//! Clients trust the emulator by its CA: the kubeconfig carries it as
//! `certificate-authority-data`, kube-rs clients of the handle get it as their only root.
//! The serving certificate names `127.0.0.1`, `::1`, `localhost` and the address the
//! emulator is bound to.
//!
//! rustls runs with the ring provider passed explicitly, so nothing process-wide (the
//! default `CryptoProvider`) is installed or needed.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificates or the TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot configure TLS: {0}")]
    Config(#[from] rustls::Error),
    #[error("cannot compute the validity period: {0}")]
    Validity(#[from] jiff::Error),
}

/// The names every serving certificate carries (the loopback addresses and name).
pub const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// The protocol offered by ALPN: the server speaks HTTP/1.1 only.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// A CA generated at start and a TLS acceptor serving a certificate it signed.
#[derive(Clone)]
pub struct ServingTls {
    ca_pem: String,
    ca_der: Vec<u8>,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingTls")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

/// The validity period: from yesterday (tolerating clock skew) for one year, like the
/// serving certificate kube-apiserver generates for itself.
#[derive(Clone, Copy)]
struct Validity {
    from: jiff::civil::Date,
    until: jiff::civil::Date,
}

impl Validity {
    fn from_today() -> Result<Self, TlsError> {
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        Ok(Self {
            from: today.yesterday()?,
            until: today.checked_add(jiff::Span::new().years(1))?,
        })
    }

    fn apply(self, params: &mut CertificateParams) {
        let ymd = |d: jiff::civil::Date| {
            rcgen::date_time_ymd(
                i32::from(d.year()),
                d.month().unsigned_abs(),
                d.day().unsigned_abs(),
            )
        };
        params.not_before = ymd(self.from);
        params.not_after = ymd(self.until);
    }
}

impl ServingTls {
    /// Generates a CA and a serving certificate for the loopback names plus `bound` (the
    /// address the listener is bound to, when it is a specific one).
    pub fn generate(bound: IpAddr) -> Result<Self, TlsError> {
        let validity = Validity::from_today()?;

        // Named like kube-apiserver's own self-signed CA (`<host>-ca@<unix seconds>`), plus
        // a random part: two emulators' CAs never share a subject, so a client trusting
        // the wrong one is told the issuer is unknown.
        let ca_name = format!(
            "kube-emulator-ca@{}-{:08x}",
            jiff::Timestamp::now().as_second(),
            fastrand::u32(..)
        );
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity.apply(&mut ca_params);
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut names: Vec<String> = LOOPBACK_NAMES.iter().map(|n| n.to_string()).collect();
        if !bound.is_unspecified() && !names.contains(&bound.to_string()) {
            names.push(bound.to_string());
        }
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-emulator");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity.apply(&mut params);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];

        Ok(Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().to_vec(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The CA certificate in PEM (what `certificate-authority-data` holds, base64-encoded).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate in DER (a root for rustls and kube-rs).
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn client_config(roots: &[&[u8]]) -> rustls::ClientConfig {
        let mut store = rustls::RootCertStore::empty();
        for der in roots {
            store
                .add(CertificateDer::from(der.to_vec()))
                .expect("root parses");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(store)
            .with_no_client_auth()
    }

    /// Handshakes with `server` as `name`; returns what the server echoed or the error.
    async fn handshake(
        server: &ServingTls,
        client: rustls::ClientConfig,
        name: &str,
    ) -> Result<Vec<u8>, std::io::Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = server.acceptor();
        let echo = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp).await?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await?;
            tls.write_all(&buf).await?;
            tls.shutdown().await?;
            Ok::<_, std::io::Error>(())
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let result = async {
            let mut tls = connector.connect(server_name, tcp).await?;
            tls.write_all(b"ping").await?;
            let mut out = Vec::new();
            tls.read_to_end(&mut out).await?;
            Ok(out)
        }
        .await;
        echo.abort();
        result
    }

    // A client with the CA as its only root verifies the serving certificate for each
    // loopback name (RFC 6125 / rustls-webpki: IP SANs for addresses, DNS SANs for names).
    #[tokio::test]
    async fn serving_certificate_verifies_against_the_ca_for_every_loopback_name() {
        let tls = ServingTls::generate("127.0.0.1".parse().unwrap()).unwrap();
        for name in LOOPBACK_NAMES {
            let echoed = handshake(&tls, client_config(&[tls.ca_der()]), name).await;
            assert_eq!(echoed.expect(name), b"ping", "{name}");
        }
    }

    // A name the certificate does not carry is refused, and so is a client trusting
    // another CA (a second emulator's).
    #[tokio::test]
    async fn wrong_name_or_foreign_ca_fails_verification() {
        let tls = ServingTls::generate("127.0.0.1".parse().unwrap()).unwrap();
        let other = ServingTls::generate("127.0.0.1".parse().unwrap()).unwrap();
        let wrong_name = handshake(&tls, client_config(&[tls.ca_der()]), "example.com").await;
        let message = wrong_name
            .expect_err("example.com is not named")
            .to_string();
        assert!(message.contains("not valid for name"), "{message}");
        let foreign = handshake(&tls, client_config(&[other.ca_der()]), "127.0.0.1").await;
        let message = foreign.expect_err("another CA is not trusted").to_string();
        assert!(message.contains("UnknownIssuer"), "{message}");
    }

    // A listener bound to another specific address gets it as a SAN too.
    #[tokio::test]
    async fn a_specific_bound_address_is_named() {
        let tls = ServingTls::generate("127.0.0.2".parse().unwrap()).unwrap();
        let echoed = handshake(&tls, client_config(&[tls.ca_der()]), "127.0.0.2").await;
        assert_eq!(echoed.expect("127.0.0.2"), b"ping");
    }

    #[test]
    fn ca_pem_is_a_certificate() {
        let tls = ServingTls::generate("::1".parse().unwrap()).unwrap();
        assert!(tls.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            tls.ca_pem()
                .trim_end()
                .ends_with("-----END CERTIFICATE-----")
        );
    }
}
