//! rustls configurations: TLS 1.3 only, the `ring` provider, ALPN `flock/1`, the federation's
//! CA as the only root on both sides, client certificates required and checked against the
//! CA's revocation list.
//!
//! This module is the one place the workspace chooses its crypto provider
//! ([`crypto_provider`]): the QUIC configurations here and the HTTPS clients of the chain node
//! and the object store ([`https_client_config`]) all take it explicitly, and no library
//! installs a process-wide default.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::{ALPN, TransportError};

/// A certificate chain and its key, read from PEM files.
pub struct Credentials {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> TransportError {
    TransportError::Credentials {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads every certificate of a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(bad(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// Reads every CRL of a PEM file (possibly none).
pub fn read_crls(
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TransportError> {
    CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| bad(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))
}

impl Credentials {
    /// Reads a certificate (chain) and its key.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TransportError> {
        Ok(Self {
            chain: read_certs(cert)?,
            key: PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e))?,
        })
    }
}

/// The federation's trust anchor and revocation list.
#[derive(Clone)]
pub struct Trust {
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
}

impl Trust {
    /// The CA certificate file (and, for the aggregator, its CRL file).
    pub fn load(ca_cert: &Path, crl: Option<&Path>) -> Result<Self, TransportError> {
        let mut roots = RootCertStore::empty();
        for cert in read_certs(ca_cert)? {
            roots.add(cert).map_err(|e| bad(ca_cert, e))?;
        }
        let crls = match crl {
            Some(path) => read_crls(path)?,
            None => Vec::new(),
        };
        Ok(Self {
            roots: Arc::new(roots),
            crls,
        })
    }
}

/// The crypto provider of every TLS connection flock-edge makes: ring (it cross-compiles to
/// aarch64 and armv7 with the Debian toolchains; aws-lc-rs needs cmake and a C toolchain per
/// target).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS for the HTTPS clients (a chain node's JSON-RPC endpoint, an S3 endpoint): TLS 1.3 with
/// [`crypto_provider`], servers checked against the platform's trust store
/// (rustls-platform-verifier). Hand it to reqwest with
/// `ClientBuilder::tls_backend_preconfigured`.
pub fn https_client_config() -> Result<ClientConfig, TransportError> {
    let config_err = |e: &dyn std::fmt::Display| TransportError::Config(e.to_string());
    let verifier =
        rustls_platform_verifier::Verifier::new(crypto_provider()).map_err(|e| config_err(&e))?;
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(&e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// The aggregator's TLS configuration: its certificate, client certificates required,
/// verified against `trust` (CA and CRL).
pub fn server_config(
    identity: &Credentials,
    trust: &Trust,
) -> Result<Arc<ServerConfig>, TransportError> {
    let config_err = |e: &dyn std::fmt::Display| TransportError::Config(e.to_string());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(trust.roots.clone(), crypto_provider())
            .with_crls(trust.crls.clone())
            .build()
            .map_err(|e| config_err(&e))?;
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| config_err(&e))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// A device's TLS configuration: the aggregator must present a certificate of the
/// federation's CA; the device presents its own.
pub fn client_config(
    identity: &Credentials,
    trust: &Trust,
) -> Result<Arc<ClientConfig>, TransportError> {
    let config_err = |e: &dyn std::fmt::Display| TransportError::Config(e.to_string());
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(&e))?
        .with_root_certificates(trust.roots.clone())
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| config_err(&e))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}
