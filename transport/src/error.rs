//! Transport errors, with TLS alerts translated into what they mean for an operator.

use std::path::PathBuf;

use flock_protocol::wire::FrameError;

/// What went wrong on the wire or with the credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A certificate, key or CRL file could not be read or parsed.
    #[error("{}: {reason}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate authority could not do what was asked.
    #[error("certificate authority: {0}")]
    Ca(String),
    /// Building the TLS or QUIC configuration failed.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The peer refused our certificate (or we refused theirs) with a TLS alert.
    #[error("{by} refused the TLS handshake: {meaning} (TLS alert {alert})")]
    Refused {
        /// Who refused: `the peer`, or `this side` when our TLS stack refused the peer.
        by: &'static str,
        /// The TLS alert number.
        alert: u8,
        /// What the alert means.
        meaning: &'static str,
    },
    /// Connecting failed before a connection existed (bad address, endpoint closed).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The peer.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The connection broke (timeout, reset, closed by the peer).
    #[error("connection lost: {0}")]
    Connection(String),
    /// A stream carried a frame the protocol refuses.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// A stream carried more bytes than a frame may have.
    #[error("stream exceeds the frame limit of {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Reading or writing a local file or socket failed.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause (in the message, not repeated as a source).
        cause: std::io::Error,
    },
}

/// What a TLS alert number means (RFC 8446 §6).
pub(crate) fn alert_meaning(alert: u8) -> &'static str {
    match alert {
        40 => "handshake failure",
        42 => "bad certificate",
        43 => "unsupported certificate",
        44 => "certificate revoked",
        45 => "certificate expired",
        46 => "certificate unknown",
        48 => "unknown CA: the certificate was not issued by this federation's CA",
        49 => "access denied",
        50 => "decode error",
        51 => "decrypt error",
        70 => "protocol version: TLS 1.3 is required",
        80 => "internal error",
        109 => "missing extension",
        116 => "certificate required: no client certificate was sent",
        120 => "no application protocol: the peer does not speak flock/1",
        _ => "TLS alert",
    }
}

/// Turns a quinn connection error into a [`TransportError`], decoding TLS alerts carried as
/// QUIC CRYPTO_ERROR codes (0x100 + alert).
pub(crate) fn from_connection_error(e: &quinn::ConnectionError) -> TransportError {
    let (code, by) = match e {
        quinn::ConnectionError::TransportError(t) => (Some(u64::from(t.code)), "this side"),
        quinn::ConnectionError::ConnectionClosed(c) => (Some(u64::from(c.error_code)), "the peer"),
        _ => (None, ""),
    };
    match code {
        Some(code @ 0x100..=0x1ff) => {
            let alert = (code - 0x100) as u8;
            TransportError::Refused {
                by,
                alert,
                meaning: alert_meaning(alert),
            }
        }
        _ => TransportError::Connection(e.to_string()),
    }
}
