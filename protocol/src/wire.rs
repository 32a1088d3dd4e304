//! The wire format: every message of a round, and the frames that carry them.
//!
//! A frame is a 4-byte little-endian length `L`, then `L` bytes: one version byte
//! ([`PROTOCOL_VERSION`]) and one postcard-encoded message. `L` may not exceed
//! [`MAX_FRAME_BYTES`]: a reader checks the header before it allocates anything
//! ([`frame_len`]), and a decoder refuses trailing bytes. Masked vectors travel as
//! [`MaskedChunk`]s of at most [`CHUNK_WORDS`] words, raw little-endian, so that a vector of
//! any length fits frames of bounded size and the server can fold each chunk as it arrives.
//!
//! Golden frames of every message live in `fixtures/wire/`; a test decodes and re-encodes
//! them, so a change of this format is always deliberate (and comes with a version bump).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{ClientId, RoundConfig};
use crate::merkle::PathStep;
use crate::shamir::Share;

/// The version byte every frame starts with.
pub const PROTOCOL_VERSION: u8 = 3;
/// Largest frame body (version byte + message), in bytes.
pub const MAX_FRAME_BYTES: usize = 1 << 20;
/// Words per masked-input chunk: 256 KiB of data per frame.
pub const CHUNK_WORDS: usize = 64 * 1024;
/// Bytes of the length prefix.
pub const HEADER_BYTES: usize = 4;

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Phase 1: the client's signed round keys.
    Advert(KeyAdvert),
    /// Phase 2: its encrypted shares, one per neighbour.
    Shares(ShareUpload),
    /// Phase 3: a slice of its masked input.
    MaskedChunk(MaskedChunk),
    /// Phase 4: its signature on the survivor list.
    Survivors(SurvivorSignature),
    /// Phase 5: the shares the server asked for.
    Unmask(UnmaskResponse),
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// Phase 0: the round's configuration.
    Start(RoundConfig),
    /// Phase 1 result: the adverts of the receiver's neighbours.
    Adverts(Vec<KeyAdvert>),
    /// Phase 2 result: the shares the receiver's neighbours encrypted to it.
    Shares(Vec<DeliveredShare>),
    /// Phase 3 result: every client whose whole masked input arrived, sorted by id; the
    /// receiver signs it.
    Survivors(Vec<ClientId>),
    /// Phase 4 result: the survivors' signatures on that list; the receiver reveals shares
    /// once enough verify.
    UnmaskRequest(UnmaskRequest),
    /// The round finished; these clients' inputs are in the sum.
    Finished(Vec<ClientId>),
    /// The round was aborted, and why.
    Aborted(String),
}

/// A client's two round public keys, signed with its identity key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAdvert {
    /// The advertising client.
    pub client: ClientId,
    /// X25519 key for share encryption.
    pub enc_pk: [u8; 32],
    /// X25519 key for mask agreement.
    pub mask_pk: [u8; 32],
    /// SHA-256 commitment to the client's self-mask seed: the server checks the seed it
    /// rebuilds against it.
    pub self_mask_commitment: [u8; 32],
    /// ed25519 signature over (configuration digest, client, enc_pk, mask_pk, commitment).
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// One encrypted share bundle in an upload, for the neighbour `peer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedShare {
    /// The receiver.
    pub peer: ClientId,
    /// ChaCha20-Poly1305 ciphertext of a [`ShareBundle`].
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// A client's encrypted shares for its neighbours, signed as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareUpload {
    /// The sender.
    pub client: ClientId,
    /// One per neighbour.
    pub shares: Vec<SealedShare>,
    /// ed25519 signature over (configuration digest, sender, root of the hash tree whose
    /// leaves are the shares in this order: [`crate::merkle`]).
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// A share as its receiver gets it: with what proves its sender sealed these bytes for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredShare {
    /// The sender.
    pub sender: ClientId,
    /// ChaCha20-Poly1305 ciphertext of a [`ShareBundle`].
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// The path from this share's leaf to the root the sender signed.
    pub path: Vec<PathStep>,
    /// The sender's [`ShareUpload::signature`].
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// A neighbour whose share did not open although its sender signed it: the client does not
/// mask against it, and reveals the pairwise mask seed the two share so that the server can
/// take that neighbour's half of the mask out of the sum. Both ends know the seed; no honest
/// sender signs a share that does not open, so an honest client reveals it only to a lying
/// neighbour, who knew it already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The neighbour whose share was refused.
    pub peer: ClientId,
    /// The pairwise mask seed `s_uv` of the two.
    pub pair_seed: [u8; 32],
}

/// What a share ciphertext holds: the receiver's shares of the sender's two secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareBundle {
    /// Share of the sender's self-mask seed `b_u`.
    pub self_mask: Share,
    /// Share of the sender's mask-agreement secret key.
    pub mask_key: Share,
}

/// A slice `offset..offset + words/4` of a masked input vector of `total` words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedChunk {
    /// The sender.
    pub client: ClientId,
    /// Index of the first word.
    pub offset: u32,
    /// Words in the whole vector.
    pub total: u32,
    /// The words, little-endian.
    #[serde(with = "serde_bytes")]
    pub words: Vec<u8>,
    /// The neighbours the input is not masked against ([`Refusal`]); only the chunk at
    /// offset 0 carries them, so the server has them once the whole input is in.
    pub refusals: Vec<Refusal>,
}

/// A survivor's ed25519 signature on the survivor list of a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurvivorSignature {
    /// The signer.
    pub client: ClientId,
    /// Over (configuration digest, signer, SHA-256 of the list).
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// The server's request in phase 5: the signatures on the survivor list. The receiver reveals
/// the self-mask shares of its neighbours on the list and the mask-key shares of those that
/// shared keys but are not on it; the list alone decides which, the server names no one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskRequest {
    /// At least [`crate::RoundConfig::consistency_quorum`] distinct survivors' signatures.
    pub signatures: Vec<SurvivorSignature>,
}

/// A client's answer to an [`UnmaskRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskResponse {
    /// The sender.
    pub client: ClientId,
    /// (survivor, its self-mask share).
    pub self_mask_shares: Vec<(ClientId, Share)>,
    /// (dropped client, its mask-key share).
    pub mask_key_shares: Vec<(ClientId, Share)>,
}

/// Why a frame was refused. Every variant names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Fewer bytes than the length prefix announced.
    #[error("frame truncated: {expected} bytes announced, {available} present")]
    Truncated {
        /// Announced length (with header).
        expected: usize,
        /// Bytes present.
        available: usize,
    },
    /// A zero-length frame (no version byte).
    #[error("empty frame")]
    Empty,
    /// An unknown protocol version.
    #[error("protocol version {got} is not supported (this build speaks version {supported})")]
    Version {
        /// The frame's version byte.
        got: u8,
        /// Ours.
        supported: u8,
    },
    /// The body is not a valid message of the expected kind.
    #[error("malformed {kind} message: {reason}")]
    Malformed {
        /// `client` or `server`.
        kind: &'static str,
        /// postcard's explanation.
        reason: String,
    },
    /// Bytes left after the message.
    #[error("{0} unexpected bytes after the message")]
    Trailing(usize),
}

/// A message type that travels in frames.
pub trait WireMessage: Serialize + DeserializeOwned {
    /// `client` or `server`, for error messages.
    const KIND: &'static str;
}

impl WireMessage for ClientMessage {
    const KIND: &'static str = "client";
}

impl WireMessage for ServerMessage {
    const KIND: &'static str = "server";
}

/// Encodes `msg` as one frame (header included).
///
/// # Errors
/// [`FrameError::Oversized`] when the message does not fit a frame (a vector not chunked).
pub fn encode<M: WireMessage>(msg: &M) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_BYTES];
    out.push(PROTOCOL_VERSION);
    let mut out = postcard::to_extend(msg, out).map_err(|e| FrameError::Malformed {
        kind: M::KIND,
        reason: e.to_string(),
    })?;
    let body = out.len() - HEADER_BYTES;
    if body > MAX_FRAME_BYTES {
        return Err(FrameError::Oversized {
            len: body,
            max: MAX_FRAME_BYTES,
        });
    }
    out[..HEADER_BYTES].copy_from_slice(&(body as u32).to_le_bytes());
    Ok(out)
}

/// The length of the complete frame at the start of `buf` (header included), `None` while
/// `buf` holds less than a whole frame. Call before buffering more: an oversized announcement
/// is refused from its first four bytes.
///
/// # Errors
/// [`FrameError::Oversized`] or [`FrameError::Empty`].
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_BYTES>() else {
        return Ok(None);
    };
    let body = u32::from_le_bytes(*header) as usize;
    if body > MAX_FRAME_BYTES {
        return Err(FrameError::Oversized {
            len: body,
            max: MAX_FRAME_BYTES,
        });
    }
    if body == 0 {
        return Err(FrameError::Empty);
    }
    let total = HEADER_BYTES + body;
    Ok((buf.len() >= total).then_some(total))
}

/// Decodes exactly one frame that fills `frame`.
///
/// # Errors
/// Any [`FrameError`]; never panics, whatever the bytes.
pub fn decode<M: WireMessage>(frame: &[u8]) -> Result<M, FrameError> {
    let total = match frame_len(frame)? {
        Some(total) => total,
        None => {
            let expected = frame
                .first_chunk::<HEADER_BYTES>()
                .map_or(HEADER_BYTES, |h| {
                    HEADER_BYTES + u32::from_le_bytes(*h) as usize
                });
            return Err(FrameError::Truncated {
                expected,
                available: frame.len(),
            });
        }
    };
    if total < frame.len() {
        return Err(FrameError::Trailing(frame.len() - total));
    }
    let version = frame[HEADER_BYTES];
    if version != PROTOCOL_VERSION {
        return Err(FrameError::Version {
            got: version,
            supported: PROTOCOL_VERSION,
        });
    }
    let (msg, rest) =
        postcard::take_from_bytes::<M>(&frame[HEADER_BYTES + 1..total]).map_err(|e| {
            FrameError::Malformed {
                kind: M::KIND,
                reason: e.to_string(),
            }
        })?;
    if !rest.is_empty() {
        return Err(FrameError::Trailing(rest.len()));
    }
    Ok(msg)
}

/// Words as the little-endian bytes a [`MaskedChunk`] carries.
#[must_use]
pub fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClientMessage {
        ClientMessage::MaskedChunk(MaskedChunk {
            client: ClientId(3),
            offset: 0,
            total: 2,
            words: words_to_bytes(&[1, u32::MAX]),
            refusals: Vec::new(),
        })
    }

    #[test]
    fn round_trip() {
        let f = encode(&sample()).unwrap();
        assert_eq!(frame_len(&f).unwrap(), Some(f.len()));
        assert_eq!(decode::<ClientMessage>(&f).unwrap(), sample());
    }

    #[test]
    fn every_kind_of_bad_frame_gets_its_own_error() {
        let f = encode(&sample()).unwrap();
        assert!(matches!(
            decode::<ClientMessage>(&f[..f.len() - 1]),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            decode::<ClientMessage>(&f[..2]),
            Err(FrameError::Truncated { .. })
        ));
        let mut long = f.clone();
        long.push(0);
        assert_eq!(decode::<ClientMessage>(&long), Err(FrameError::Trailing(1)));
        let mut v2 = f.clone();
        v2[HEADER_BYTES] = 1;
        assert_eq!(
            decode::<ClientMessage>(&v2),
            Err(FrameError::Version {
                got: 1,
                supported: PROTOCOL_VERSION
            })
        );
        let huge = ((MAX_FRAME_BYTES + 1) as u32).to_le_bytes();
        assert!(matches!(
            frame_len(&huge),
            Err(FrameError::Oversized { .. })
        ));
        assert_eq!(frame_len(&[0, 0, 0, 0]), Err(FrameError::Empty));
        let mut garbage = vec![3, 0, 0, 0, PROTOCOL_VERSION, 0xFF, 0xFF];
        assert!(matches!(
            decode::<ClientMessage>(&garbage),
            Err(FrameError::Malformed { .. })
        ));
        garbage[0] = 2;
        garbage.truncate(6);
        assert!(matches!(
            decode::<ServerMessage>(&garbage),
            Err(FrameError::Malformed { .. })
        ));
    }

    #[test]
    fn an_unchunked_large_vector_is_refused_at_encoding() {
        let msg = ClientMessage::MaskedChunk(MaskedChunk {
            client: ClientId(1),
            offset: 0,
            total: 300_000,
            words: vec![0; 1_200_000],
            refusals: Vec::new(),
        });
        assert!(matches!(encode(&msg), Err(FrameError::Oversized { .. })));
    }
}
