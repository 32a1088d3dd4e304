//! One agent's connection: the TLS handshake and the agent's identity (its certificate's
//! ed25519 key), every stream read into a [`NetEvent`] for the round loop, and the model files
//! it asks for, served here from the store, one request at a time, so that a slow store (an
//! `s3://` one) never stalls the round loop.

use std::sync::Arc;

use flock_model::ModelId;
use flock_protocol::ClientId;
use flock_protocol::session::{AgentMessage, AggregatorMessage, MODEL_CHUNK_BYTES};
use flock_transport::{endpoint, frames};
use quinn::Connection;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::store::ModelStore;

/// Model requests one connection may have waiting; more are dropped (an honest agent has at
/// most two: a voter's candidate and previous model).
const FETCH_QUEUE: usize = 4;

/// What a connection tells the round loop.
pub(super) enum NetEvent {
    /// An agent connected.
    Joined {
        client: ClientId,
        identity: [u8; 32],
        conn: Connection,
    },
    /// A message arrived.
    Message { client: ClientId, msg: AgentMessage },
    /// The connection `conn_id` of `client` ended.
    Lost { client: ClientId, conn_id: usize },
}

/// Sends `msg` to `conn` without waiting (each message on its own task and stream).
pub(super) fn send(conn: &Connection, msg: AggregatorMessage) {
    let conn = conn.clone();
    tokio::spawn(async move {
        if let Err(e) = frames::send(&conn, &msg).await {
            warn!("sending to {}: {e}", conn.remote_address());
        }
    });
}

/// Runs one incoming connection until it ends.
pub(super) async fn run(
    incoming: quinn::Incoming,
    events: mpsc::UnboundedSender<NetEvent>,
    store: ModelStore,
    metrics: Arc<Metrics>,
) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            metrics.refused_handshakes.inc();
            warn!(%remote, "handshake refused: {e}");
            return;
        }
    };
    let identity = match endpoint::peer_ed25519(&conn) {
        Ok(k) => k,
        Err(e) => {
            warn!(%remote, "{e}");
            conn.close(1u32.into(), b"certificate key must be ed25519");
            return;
        }
    };
    let client = ClientId::from_identity(&identity);
    let conn_id = conn.stable_id();
    let joined = NetEvent::Joined {
        client,
        identity,
        conn: conn.clone(),
    };
    if events.send(joined).is_err() {
        return;
    }
    let (fetches, queue) = mpsc::channel(FETCH_QUEUE);
    let fetcher = tokio::spawn(serve_models(conn.clone(), queue, store, metrics.clone()));
    let deliver = {
        let events = events.clone();
        move |msg: AgentMessage| match msg {
            AgentMessage::FetchModel { id } => {
                if fetches.try_send(ModelId(id)).is_err() {
                    warn!(%client, "more than {FETCH_QUEUE} model requests waiting: one dropped");
                }
            }
            msg => {
                let _ = events.send(NetEvent::Message { client, msg });
            }
        }
    };
    let refused = move |e: flock_transport::TransportError| {
        metrics.bad_streams.inc();
        warn!(%client, "stream closed: {e}");
    };
    let ended = frames::read_frames(&conn, deliver, refused).await;
    info!(%client, "connection closed: {ended}");
    fetcher.abort();
    let _ = events.send(NetEvent::Lost { client, conn_id });
}

/// Serves the model files asked for on `conn`, in order, from `store`.
async fn serve_models(
    conn: Connection,
    mut queue: mpsc::Receiver<ModelId>,
    store: ModelStore,
    metrics: Arc<Metrics>,
) {
    while let Some(id) = queue.recv().await {
        let read = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.bytes(&id)).await
        };
        let bytes = match read {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => {
                warn!("model {id} asked for: {e}");
                send(&conn, AggregatorMessage::Refused(format!("no model {id}")));
                continue;
            }
            Err(e) => {
                warn!("model {id}: the store's reader failed: {e}");
                continue;
            }
        };
        let total = bytes.len() as u64;
        metrics.model_bytes_served.inc_by(total);
        // The pieces travel on streams of their own, side by side (QUIC's stream limit paces
        // them); the next request waits until this file has left.
        let mut sending = tokio::task::JoinSet::new();
        for (i, piece) in bytes.chunks(MODEL_CHUNK_BYTES).enumerate() {
            let chunk = AggregatorMessage::ModelChunk {
                id: id.0,
                offset: (i * MODEL_CHUNK_BYTES) as u64,
                total,
                bytes: piece.to_vec(),
            };
            let conn = conn.clone();
            sending.spawn(async move { frames::send(&conn, &chunk).await });
        }
        while let Some(sent) = sending.join_next().await {
            if let Ok(Err(e)) = sent {
                warn!("sending model {id}: {e}");
            }
        }
    }
}
