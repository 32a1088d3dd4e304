//! quinn endpoints with the flock TLS configurations, an idle timeout and keep-alive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint};

use crate::TransportError;
use crate::error::from_connection_error;

/// Timeouts and limits of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// Keep-alive interval (well under the idle timeout, so an idle but healthy connection
    /// stays open through NATs).
    pub keep_alive: Duration,
    /// Unidirectional streams a peer may have open at once (one per message).
    pub max_uni_streams: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
            max_uni_streams: 256,
        }
    }
}

fn transport(settings: &Settings) -> Result<Arc<quinn::TransportConfig>, TransportError> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(settings.idle_timeout)
        .map_err(|e| TransportError::Config(format!("idle timeout: {e}")))?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(Some(settings.keep_alive));
    t.max_concurrent_uni_streams(settings.max_uni_streams.into());
    // Messages travel on unidirectional streams only.
    t.max_concurrent_bidi_streams(0u32.into());
    Ok(Arc::new(t))
}

/// The quinn server configuration for `tls` (also what [`Endpoint::set_server_config`] takes
/// when the revocation list is reloaded).
pub fn server_config(
    tls: Arc<rustls::ServerConfig>,
    settings: &Settings,
) -> Result<quinn::ServerConfig, TransportError> {
    let crypto = QuicServerConfig::try_from(tls)
        .map_err(|e| TransportError::Config(format!("QUIC needs TLS 1.3: {e}")))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(settings)?);
    Ok(config)
}

/// A server endpoint listening on `addr`. Needs a tokio runtime.
pub fn server(
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    settings: &Settings,
) -> Result<Endpoint, TransportError> {
    Endpoint::server(server_config(tls, settings)?, addr).map_err(|cause| TransportError::Io {
        context: format!("listening on {addr}"),
        cause,
    })
}

/// A client endpoint on an ephemeral local port of the same address family as `peer`.
pub fn client(
    peer: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    settings: &Settings,
) -> Result<Endpoint, TransportError> {
    let local: SocketAddr = if peer.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let mut endpoint = Endpoint::client(local).map_err(|cause| TransportError::Io {
        context: format!("binding {local}"),
        cause,
    })?;
    let crypto = QuicClientConfig::try_from(tls)
        .map_err(|e| TransportError::Config(format!("QUIC needs TLS 1.3: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(settings)?);
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// Connects to `addr`, expecting its certificate to name `server_name`.
///
/// The TLS handshake can complete here even when the aggregator refuses this device's
/// certificate: TLS 1.3 lets the client finish first. The refusal then arrives with the first
/// stream operation as [`TransportError::Refused`].
pub async fn connect(
    endpoint: &Endpoint,
    addr: SocketAddr,
    server_name: &str,
) -> Result<Connection, TransportError> {
    let connecting = endpoint
        .connect(addr, server_name)
        .map_err(|e| TransportError::Connect {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    connecting.await.map_err(|e| from_connection_error(&e))
}

/// The ed25519 public key of the certificate the peer authenticated with: a device's
/// long-term identity (see [`crate::pki`]).
pub fn peer_ed25519(conn: &Connection) -> Result<[u8; 32], TransportError> {
    let bad = |reason: &str| TransportError::Connection(format!("peer certificate: {reason}"));
    let identity = conn.peer_identity().ok_or_else(|| bad("none presented"))?;
    let certs = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| bad("not an X.509 chain"))?;
    let leaf = certs.first().ok_or_else(|| bad("empty chain"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| bad(&format!("unparsable: {e}")))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_SIG_ED25519 {
        return Err(bad("its key is not ed25519"));
    }
    spki.subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| bad("ed25519 key is not 32 bytes"))
}
