//! Labelling the node through the Kubernetes API, so that the RuntimeClass's
//! node selector sends wasmhttp pods only to nodes whose containerd knows the
//! handler. One JSON merge patch over HTTPS with the pod's service account:
//! small enough that a client library would be most of the binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls_pki_types::pem::PemObject;

/// The label `deploy/runtimeclass.yaml` and the chart select nodes by.
pub const READY_LABEL: &str = "wasmhttp.dev/ready";

/// Where and as whom the installer reaches the API server.
pub struct ApiAccess {
    /// `host:port` of the API server (in-cluster: the `kubernetes` service).
    pub address: String,
    /// The name the server's certificate must carry.
    pub server_name: String,
    pub token: String,
    pub ca_pem: Vec<u8>,
}

impl ApiAccess {
    /// The in-cluster access every pod gets: `KUBERNETES_SERVICE_HOST`/`_PORT`
    /// and the service account's token and CA under `service_account_dir`.
    pub fn in_cluster(service_account_dir: &Path) -> Result<Self> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST")
            .context("KUBERNETES_SERVICE_HOST is not set: not running in a pod")?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let read = |name: &str| -> Result<Vec<u8>> {
            let path = service_account_dir.join(name);
            std::fs::read(&path)
                .with_context(|| format!("reading the service account's {}", path.display()))
        };
        let token = String::from_utf8(read("token")?)
            .context("the service account token is not text")?
            .trim()
            .to_string();
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(ApiAccess {
            address,
            // the API server's certificate always names the `kubernetes` service
            server_name: "kubernetes.default.svc".into(),
            token,
            ca_pem: read("ca.crt")?,
        })
    }
}

pub fn default_service_account_dir() -> PathBuf {
    PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount")
}

/// Sets (`ready`) or removes the ready label on `node`.
pub fn set_ready_label(api: &ApiAccess, node: &str, ready: bool) -> Result<()> {
    let value = if ready { "\"true\"" } else { "null" };
    let body = format!(r#"{{"metadata":{{"labels":{{"{READY_LABEL}":{value}}}}}}}"#);
    let status = patch(api, &format!("/api/v1/nodes/{node}"), &body)
        .with_context(|| format!("labelling node {node} through {}", api.address))?;
    match status {
        200 => Ok(()),
        403 => bail!(
            "the API server refused to patch node {node} (403): the installer's service account \
             needs `patch` on `nodes` (the chart's ClusterRole grants it)"
        ),
        404 => bail!("node {node} does not exist (404): is NODE_NAME set from spec.nodeName?"),
        other => bail!("patching node {node} answered HTTP {other}"),
    }
}

fn patch(api: &ApiAccess, path: &str, body: &str) -> Result<u16> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&api.ca_pem) {
        roots
            .add(cert.context("the CA bundle holds an unreadable certificate")?)
            .context("the CA bundle holds an unusable certificate")?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server_name = rustls_pki_types::ServerName::try_from(api.server_name.clone())
        .context("the API server name is not a valid DNS name")?;
    let connection = rustls::ClientConnection::new(Arc::new(config), server_name)?;
    let socket = TcpStream::connect(&api.address)
        .with_context(|| format!("connecting to {}", api.address))?;
    socket.set_read_timeout(Some(Duration::from_secs(30)))?;
    socket.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/merge-patch+json\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        api.server_name,
        api.token,
        body.len()
    )?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("the API server answered {status_line:?}"))?;
    // drain the rest so the server sees an orderly close
    let _ = reader.read_to_end(&mut Vec::new());
    Ok(status)
}
