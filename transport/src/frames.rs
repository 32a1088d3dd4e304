//! One frame per unidirectional stream: the sender opens a stream, writes one protocol frame
//! (length prefix, version, postcard body) and finishes it; the receiver reads at most one
//! frame's worth of bytes and decodes. A stream that is too long, truncated or undecodable is
//! stopped with an application error code and reported; the connection stays up.
//!
//! [`read_frames`] is the one reader every service uses: it accepts a connection's streams,
//! reads them concurrently, and hands each decoded message on, until the connection ends.
//! [`wire::decode`] alone judges whether a frame is valid.

use flock_protocol::wire::{self, HEADER_BYTES, MAX_FRAME_BYTES, WireMessage};
use quinn::{Connection, RecvStream, VarInt};
use tokio::task::JoinSet;

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
    wire::decode(&bytes).map_err(|e| {
        let _ = stream.stop(VarInt::from_u32(STOP_BAD_FRAME));
        TransportError::Frame(e)
    })
}

/// Reads every frame the peer sends on `conn`, each stream in a task of its own (streams
/// overtake each other, as QUIC lets them), and passes each decoded message to `deliver`; a
/// stream that does not carry exactly one valid frame is stopped and its error passed to
/// `refused`. Returns when the connection ends, with the reason, after every stream accepted
/// before the end has been delivered (a message that arrived before a peer vanished counts).
pub async fn read_frames<M, D, R>(conn: &Connection, deliver: D, refused: R) -> TransportError
where
    M: WireMessage + Send + 'static,
    D: Fn(M) + Clone + Send + 'static,
    R: Fn(TransportError) + Clone + Send + 'static,
{
    let mut reads = JoinSet::new();
    loop {
        let stream = match conn.accept_uni().await {
            Ok(s) => s,
            Err(e) => {
                while reads.join_next().await.is_some() {}
                return lost(&e);
            }
        };
        let (deliver, refused) = (deliver.clone(), refused.clone());
        reads.spawn(async move {
            match read::<M>(stream).await {
                Ok(msg) => deliver(msg),
                Err(e) => refused(e),
            }
        });
        // Reap finished reads so the set does not grow over a long connection.
        while reads.try_join_next().is_some() {}
    }
}
