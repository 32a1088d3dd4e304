//! One frame per unidirectional stream: the sender opens a stream, writes one protocol frame
//! (length prefix, version, postcard body) and finishes it; the receiver reads at most one
//! frame's worth of bytes and decodes. A stream that is too long, truncated or undecodable is
//! stopped with an application error code and reported; the connection stays up.

use flock_protocol::wire::{self, HEADER_BYTES, MAX_FRAME_BYTES, WireMessage};
use quinn::{Connection, RecvStream, VarInt};

use crate::TransportError;
use crate::error::from_connection_error;

/// The most bytes one stream may carry: one maximal frame.
pub const MAX_STREAM_BYTES: usize = MAX_FRAME_BYTES + HEADER_BYTES;

/// Stream stop code: the stream carried more than one frame's worth of bytes.
pub const STOP_TOO_LONG: u32 = 1;
/// Stream stop code: the stream's frame did not decode.
pub const STOP_BAD_FRAME: u32 = 2;

fn lost(e: &quinn::ConnectionError) -> TransportError {
    from_connection_error(e)
}

/// Sends `msg` on a new unidirectional stream.
pub async fn send<M: WireMessage>(conn: &Connection, msg: &M) -> Result<(), TransportError> {
    let frame = wire::encode(msg)?;
    send_raw(conn, &frame).await
}

/// Sends raw bytes on a new unidirectional stream (tests use it to send what a broken or
/// hostile peer would).
pub async fn send_raw(conn: &Connection, bytes: &[u8]) -> Result<(), TransportError> {
    let mut stream = conn.open_uni().await.map_err(|e| lost(&e))?;
    stream.write_all(bytes).await.map_err(|e| match e {
        quinn::WriteError::ConnectionLost(c) => lost(&c),
        other => TransportError::Connection(other.to_string()),
    })?;
    stream
        .finish()
        .map_err(|e| TransportError::Connection(e.to_string()))?;
    // Wait until the peer has the whole stream (or has stopped it), so that a refusal of our
    // certificate surfaces here rather than silently.
    match stream.stopped().await {
        Ok(None) => Ok(()),
        Ok(Some(code)) => Err(TransportError::Connection(format!(
            "the peer stopped the stream with code {code}"
        ))),
        Err(quinn::StoppedError::ConnectionLost(c)) => Err(lost(&c)),
        Err(e) => Err(TransportError::Connection(e.to_string())),
    }
}

/// Waits for the peer's next stream and decodes its frame.
pub async fn recv<M: WireMessage>(conn: &Connection) -> Result<M, TransportError> {
    let stream = conn.accept_uni().await.map_err(|e| lost(&e))?;
    read(stream).await
}

/// Reads one frame from `stream` and decodes it; stops the stream with a code on failure.
pub async fn read<M: WireMessage>(mut stream: RecvStream) -> Result<M, TransportError> {
    let bytes = match stream.read_to_end(MAX_STREAM_BYTES).await {
        Ok(bytes) => bytes,
        Err(quinn::ReadToEndError::TooLong) => {
            let _ = stream.stop(VarInt::from_u32(STOP_TOO_LONG));
            return Err(TransportError::TooLong {
                max: MAX_STREAM_BYTES,
            });
        }
        Err(quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(c))) => {
            return Err(lost(&c));
        }
        Err(e) => return Err(TransportError::Connection(e.to_string())),
    };
    let decoded = match wire::frame_len(&bytes) {
        Ok(Some(len)) if len == bytes.len() => wire::decode(&bytes),
        Ok(Some(len)) if len < bytes.len() => Err(wire::FrameError::Trailing(bytes.len() - len)),
        Ok(Some(len)) => Err(wire::FrameError::Truncated {
            expected: len,
            available: bytes.len(),
        }),
        Ok(None) => Err(wire::FrameError::Truncated {
            expected: HEADER_BYTES,
            available: bytes.len(),
        }),
        Err(e) => Err(e),
    };
    decoded.map_err(|e| {
        let _ = stream.stop(VarInt::from_u32(STOP_BAD_FRAME));
        TransportError::Frame(e)
    })
}
