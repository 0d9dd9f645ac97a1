//! TLS for `wgmesh registry serve --tls-cert PEM --tls-key PEM`: rustls with the `ring`
//! provider, TLS 1.2 and 1.3, HTTP/1.1 by ALPN. Errors name the file and what is wrong with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or key was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {error}")]
    Read {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----, the server's first)"
    )]
    NoCertificate { path: PathBuf },
    #[error("{path} is not valid PEM: {detail}")]
    Pem { path: PathBuf, detail: String },
    #[error(
        "{path} holds no PEM private key (expected PKCS#8, PKCS#1 or SEC1: -----BEGIN PRIVATE KEY-----)"
    )]
    NoKey { path: PathBuf },
    #[error("the certificate and key are not usable together: {0}")]
    Config(#[from] rustls::Error),
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        what,
        path: path.to_path_buf(),
        error,
    })
}

/// Loads the certificate chain and key and builds the server's TLS configuration.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_pem = read("--tls-cert", cert_path)?;
    let key_pem = read("--tls-key", key_path)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert_path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: key_path.to_path_buf(),
        },
        e => TlsError::Pem {
            path: key_path.to_path_buf(),
            detail: e.to_string(),
        },
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let empty = file(dir.path(), "empty.pem", "");
        let junk = file(
            dir.path(),
            "junk.pem",
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        );
        let missing = dir.path().join("missing.pem");
        let text = |r: Result<Arc<ServerConfig>, TlsError>| r.err().map(|e| e.to_string());
        let t = text(server_config(&missing, &empty)).unwrap_or_default();
        assert!(
            t.contains("cannot read --tls-cert") && t.contains("missing.pem"),
            "{t}"
        );
        let t = text(server_config(&empty, &missing)).unwrap_or_default();
        assert!(t.contains("cannot read --tls-key"), "{t}");
        let t = text(server_config(&empty, &empty)).unwrap_or_default();
        assert!(t.contains("empty.pem holds no PEM certificate"), "{t}");
        let t = text(server_config(&junk, &empty)).unwrap_or_default();
        assert!(t.contains("junk.pem is not valid PEM"), "{t}");
    }
}
