//! How flock-edge's processes talk: QUIC (quinn) with mutual TLS 1.3 (rustls with the `ring`
//! provider, the one place that choice is made), ALPN `flock/1`, certificates from the
//! operator's CA, and one length-checked frame per stream.
//!
//! - [`pki`]: the operator's certificate authority: create it, issue device and server
//!   certificates, revoke them (a CRL the aggregator reloads without a restart).
//! - [`tls`]: rustls configurations for both sides (TLS 1.3 only, client certificates required
//!   and checked against the CA and its CRL).
//! - [`endpoint`]: quinn endpoints with those configurations, idle timeout and keep-alive.
//! - [`frames`]: one protocol frame per unidirectional stream, size-limited before anything is
//!   buffered, and the one reader of a connection's streams ([`frames::read_frames`]).
//! - [`revocation`]: a server endpoint that reloads the CA's revocation list when its file
//!   changes, without a restart.
//! - [`shutdown_signal`]: SIGTERM or Ctrl-C, for both services.
//! - [`TransportError`]: what went wrong, in words an operator can act on; a client whose
//!   certificate is refused learns it on its first stream operation (TLS 1.3 finishes the
//!   client's handshake before the server has judged its certificate) and gets
//!   [`TransportError::Refused`] naming the TLS alert.

pub mod endpoint;
mod error;
pub mod frames;
pub mod pki;
pub mod revocation;
mod signal;
pub mod tls;

pub use error::TransportError;
pub use signal::shutdown_signal;

/// The ALPN protocol id every flock connection negotiates.
pub const ALPN: &[u8] = b"flock/1";
