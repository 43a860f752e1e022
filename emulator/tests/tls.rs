//! Conformance of the emulator's HTTPS serving with documented Kubernetes behaviour: the
//! API server serves TLS, clients verify it against the cluster's CA from the kubeconfig,
//! and, under RBAC, only the public-info paths answer requests without credentials. Each
//! test cites the documentation it checks.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_emulator::{Emulator, EmulatorHandle};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TOKENS: &str = "\
admin-token,admin,uid-admin,\"system:masters\"
alice-token,alice,uid-alice
";

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kube-emulator-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A raw HTTP/1.1 request over TLS, trusting only `roots`: (status, body).
async fn https(
    e: &EmulatorHandle,
    roots: &[&[u8]],
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store.add(CertificateDer::from(der.to_vec()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(store)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(e.addr()).await?;
    let mut tls = connector
        .connect(ServerName::IpAddress(e.addr().ip().into()), tcp)
        .await?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    tls.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\r\n",
            e.addr()
        )
        .as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok((code, body.to_string()))
}

/// The whole chain of an error's messages.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

// The API server is served over TLS ("By default, the Kubernetes API server listens on
// port 6443 ... protected by TLS",
// https://kubernetes.io/docs/concepts/security/controlling-access/#transport-security),
// and client-go sends bearer tokens only over TLS, so an emulator with a token file serves
// HTTPS. Without tokens plain HTTP stays the default; `.tls(..)` overrides either way.
#[tokio::test]
async fn https_with_a_token_file_plain_http_otherwise() -> TestResult {
    let plain = Emulator::start().await?;
    assert!(!plain.is_tls());
    assert!(plain.url().starts_with("http://"), "{}", plain.url());
    assert_eq!(plain.ca_certificate_pem(), None);
    let kubeconfig = temp_dir("plain").join("kubeconfig");
    plain.write_kubeconfig(&kubeconfig)?;
    let text = std::fs::read_to_string(&kubeconfig)?;
    assert!(!text.contains("certificate-authority"), "{text}");
    let namespaces: Api<Namespace> = Api::all(plain.client()?);
    namespaces.get("default").await?;

    let rbac = Emulator::builder().token_file(TOKENS).serve().await?;
    assert!(rbac.is_tls());
    assert!(rbac.url().starts_with("https://"), "{}", rbac.url());

    let rbac_plain = Emulator::builder()
        .token_file(TOKENS)
        .tls(false)
        .serve()
        .await?;
    assert!(rbac_plain.url().starts_with("http://"));
    let namespaces: Api<Namespace> = Api::all(rbac_plain.client()?);
    namespaces.get("default").await?;

    let tls = Emulator::builder().tls(true).serve().await?;
    assert!(tls.url().starts_with("https://"));
    let namespaces: Api<Namespace> = Api::all(tls.client()?);
    namespaces.get("default").await?;
    Ok(())
}

// The kubeconfig names the https server and carries the cluster CA as
// `certificate-authority-data` ("CertificateAuthorityData contains PEM-encoded certificate
// authority certificates", https://kubernetes.io/docs/reference/config-api/kubeconfig.v1/#Cluster),
// with no `insecure-skip-tls-verify`; a kube-rs client loaded from it verifies the server
// and works.
#[tokio::test]
async fn kubeconfig_carries_the_ca_and_a_client_from_it_verifies_the_server() -> TestResult {
    let e = Emulator::builder().token_file(TOKENS).serve().await?;
    let path = temp_dir("kubeconfig").join("kubeconfig");
    e.write_kubeconfig(&path)?;
    let kubeconfig = Kubeconfig::read_from(&path)?;
    let cluster = kubeconfig.clusters[0].cluster.clone().ok_or("no cluster")?;
    assert_eq!(cluster.server.as_deref(), Some(e.url().as_str()));
    assert_eq!(cluster.insecure_skip_tls_verify, None);
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster.certificate_authority_data.as_deref().unwrap_or(""))?;
    assert_eq!(
        Some(String::from_utf8(ca)?.as_str()),
        e.ca_certificate_pem()
    );

    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    assert!(!config.accept_invalid_certs);
    let client = kube::Client::try_from(config)?;
    let names: Vec<String> = Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.iter().any(|n| n == "kube-system"), "{names:?}");
    Ok(())
}

// A client that does not trust the cluster CA cannot talk to the server: the TLS handshake
// fails on the server's certificate ("the API server presents a certificate ... signed by
// the cluster CA"; clients verify it with the kubeconfig's CA,
// https://kubernetes.io/docs/concepts/security/controlling-access/#transport-security).
// Checked with kube-rs using the system roots, kube-rs trusting another emulator's CA, and
// a rustls client with no roots; the server keeps serving trusted clients.
#[tokio::test]
async fn a_client_not_trusting_the_ca_is_refused() -> TestResult {
    let e = Emulator::builder().token_file(TOKENS).serve().await?;
    let other = Emulator::builder().tls(true).serve().await?;
    let other_ca = other.ca_certificate_der().ok_or("no CA")?.to_vec();
    for root_cert in [None, Some(vec![other_ca])] {
        let mut config = kube::Config::new(e.url().parse()?);
        config.root_cert = root_cert.clone();
        config.auth_info.token = Some(e.admin_token().to_string().into());
        let client = kube::Client::try_from(config)?;
        let err = Api::<Namespace>::all(client)
            .get("default")
            .await
            .expect_err("an untrusted server certificate is refused");
        assert!(
            !matches!(err, kube::Error::Api(_)),
            "no HTTP answer expected: {err:?}"
        );
        let chain = error_chain(&err);
        assert!(
            chain.contains("certificate") && chain.contains("UnknownIssuer"),
            "roots {:?}: {chain}",
            root_cert.as_ref().map(|_| "other emulator's CA")
        );
    }
    let no_roots = https(&e, &[], "/version", None).await;
    let message = no_roots.expect_err("no roots, no trust").to_string();
    assert!(message.contains("UnknownIssuer"), "{message}");

    let ca = e.ca_certificate_der().ok_or("no CA")?;
    let (code, _) = https(&e, &[ca], "/version", None).await?;
    assert_eq!(code, 200);
    Api::<Namespace>::all(e.client()?).get("default").await?;
    Ok(())
}

// Under RBAC, a request without credentials is anonymous (`system:anonymous` in
// `system:unauthenticated`) only on the public-info paths and is then authorized: the
// bootstrap ClusterRoleBinding `system:public-info-viewer` lets unauthenticated users read
// /healthz, /livez, /readyz and /version
// (https://kubernetes.io/docs/reference/access-authn-authz/rbac/#discovery-roles), as with
// the anonymous authenticator limited to those paths
// (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#anonymous-authenticator-configuration).
// Elsewhere, and with an unknown token anywhere, the answer is 401. Once the binding is
// deleted, anonymous /version is forbidden (403) by RBAC.
#[tokio::test]
async fn anonymous_requests_reach_only_the_public_info_paths() -> TestResult {
    let e = Emulator::builder().token_file(TOKENS).serve().await?;
    let ca = e.ca_certificate_der().ok_or("no CA")?;
    let (code, body) = https(&e, &[ca], "/version", None).await?;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"gitVersion\""), "{body}");
    for path in ["/healthz", "/livez", "/readyz"] {
        let (code, body) = https(&e, &[ca], path, None).await?;
        assert_eq!((code, body.as_str()), (200, "ok"), "{path}");
    }
    for path in ["/api", "/apis", "/api/v1/namespaces", "/openapi/v3"] {
        let (code, body) = https(&e, &[ca], path, None).await?;
        assert_eq!(code, 401, "{path}: {body}");
        assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");
    }
    let (code, _) = https(&e, &[ca], "/version", Some("not-a-token")).await?;
    assert_eq!(code, 401);
    let (code, _) = https(&e, &[ca], "/api", Some("alice-token")).await?;
    assert_eq!(code, 200);

    Api::<ClusterRoleBinding>::all(e.client()?)
        .delete("system:public-info-viewer", &DeleteParams::default())
        .await?;
    let (code, body) = https(&e, &[ca], "/version", None).await?;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#"forbidden: User \"system:anonymous\" cannot get path \"/version\""#),
        "{body}"
    );
    Ok(())
}
