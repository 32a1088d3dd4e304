//! The round configuration: everything both sides must agree on before a round starts.
//! The server builds it ([`RoundConfig::derive`]); every client checks it
//! ([`RoundConfig::validate`]) and refuses to take part in an unsafe round.

use serde::{Deserialize, Serialize};

use crate::graph::{GraphError, NeighbourGraph};
use crate::params::{self, GraphParams, ParamError, ThreatModel};
use edge_kernels::{KernelError, QuantParams};

/// Most clients one round accepts.
pub const MAX_CLIENTS: u32 = 100_000;
/// Most words in one update vector (2^28: 1 GiB of `u32`).
pub const MAX_VECTOR_WORDS: u32 = 1 << 28;
/// Widest quantisation the derivation picks: `f32` carries 24 significant bits.
pub const MAX_DERIVED_BITS: u32 = 24;

/// A client's id, stable across rounds (bound to its certificate by the transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u64);

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A task's id (the hash of its definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskId(pub [u8; 32]);

impl ClientId {
    /// A device's id: the first 8 bytes (big-endian) of the SHA-256 of its ed25519 identity
    /// key, so that agent and aggregator derive it alike from the certificate.
    pub fn from_identity(identity: &[u8; 32]) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(identity);
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[..8]);
        ClientId(u64::from_be_bytes(b))
    }
}

impl TaskId {
    /// A task's id: the SHA-256 of its name.
    pub fn from_name(name: &str) -> Self {
        use sha2::Digest;
        TaskId(sha2::Sha256::digest(name.as_bytes()).into())
    }
}

/// A client taking part in a round and the ed25519 key its adverts are signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Its id.
    pub id: ClientId,
    /// Its long-term ed25519 public key.
    pub identity: [u8; 32],
}

/// Everything a round's parties agree on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundConfig {
    /// Task.
    pub task: TaskId,
    /// Round number within the task.
    pub round: u64,
    /// Which attempt at this round, from 0: a round aborted by dropouts is tried again under a
    /// new attempt number, with fresh keys. A device contributes to at most one attempt of a
    /// round (see `ARCHITECTURE.md`, threat model).
    pub attempt: u64,
    /// Participants sorted by id; a client's index in this list is its index in the graph.
    pub participants: Vec<Participant>,
    /// Neighbours per client, `k`.
    pub degree: u32,
    /// Shares needed to rebuild a secret, `t`.
    pub threshold: u32,
    /// Fewest contributors the server may output a sum for.
    pub min_clients: u32,
    /// The threat model `k` and `t` were derived for; clients re-check against it.
    pub threat: ThreatModel,
    /// Public seed of the neighbour graph's permutation: [`graph_seed`] of the round's task,
    /// round, attempt, participants and beacon, so that the server cannot pick it (clients
    /// recompute it, [`crate::ClientPolicy::check`]).
    pub graph_seed: [u8; 32],
    /// Words in each update vector.
    pub vector_len: u32,
    /// Quantisation width.
    pub bits: u32,
    /// L2 clipping bound of an update, also the quantiser's range.
    pub clip_norm: f32,
    /// How long each phase may last before the parties give up on the silent ones, in ms.
    pub phase_timeout_ms: u64,
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Participants are missing, duplicated or unsorted.
    #[error("participants: {0}")]
    Participants(&'static str),
    /// Degree and threshold are unsafe or impossible.
    #[error(transparent)]
    Params(#[from] ParamError),
    /// No such neighbour graph.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The quantiser or the sum's capacity is wrong.
    #[error("quantisation: {0}")]
    Quantisation(#[from] KernelError),
    /// `min_clients` outside `threshold..=n`.
    #[error(
        "min_clients {min} must be between the threshold {threshold} and the {clients} participants"
    )]
    MinClients {
        /// Configured minimum.
        min: u32,
        /// `t`.
        threshold: u32,
        /// `n`.
        clients: u32,
    },
    /// The vector length is zero or too large.
    #[error("vector_len {0} must be in 1..={MAX_VECTOR_WORDS}")]
    VectorLen(u32),
    /// Zero timeout.
    #[error("phase_timeout_ms must be positive")]
    Timeout,
    /// This client is not in the participant list.
    #[error("client {0} is not a participant of this round")]
    NotAParticipant(ClientId),
}

impl RoundConfig {
    /// A configuration whose degree, threshold and bit width are derived from the threat model
    /// (see [`crate::params`]); `min_clients` is the larger of the threshold and the
    /// consistency quorum (no round finishes with fewer). `participants` is sorted here,
    /// and the graph seed is [`graph_seed`] of the round and `beacon` (on chain the round's
    /// drawn seed; off chain all zero).
    ///
    /// # Errors
    /// [`ConfigError`] if no safe parameters exist or an argument is out of range.
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        task: TaskId,
        round: u64,
        attempt: u64,
        mut participants: Vec<Participant>,
        threat: ThreatModel,
        beacon: [u8; 32],
        vector_len: u32,
        clip_norm: f32,
        phase_timeout_ms: u64,
    ) -> Result<Self, ConfigError> {
        participants.sort_by_key(|p| p.id);
        let n = client_count(&participants)?;
        let graph_seed = graph_seed(&task, round, attempt, &participants, &beacon);
        let GraphParams { degree, threshold } = params::derive(n, &threat)?;
        let bits = (1..=MAX_DERIVED_BITS)
            .rev()
            .find(|&b| edge_kernels::check_sum_capacity(u64::from(n), b).is_ok())
            .ok_or(KernelError::SumOverflow {
                clients: u64::from(n),
                bits: 1,
                max_clients: u64::from(u32::MAX),
            })?;
        let mut config = Self {
            task,
            round,
            attempt,
            participants,
            degree,
            threshold,
            min_clients: threshold,
            threat,
            graph_seed,
            vector_len,
            bits,
            clip_norm,
            phase_timeout_ms,
        };
        // A round cannot finish with fewer survivors than sign the list anyway.
        config.min_clients = threshold.max(config.consistency_quorum());
        config.validate()?;
        Ok(config)
    }

    /// Checks everything a client must check before taking part.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = client_count(&self.participants)?;
        if self.participants.windows(2).any(|w| w[0].id >= w[1].id) {
            return Err(ConfigError::Participants(
                "must be sorted by id without duplicates",
            ));
        }
        params::check(
            n,
            GraphParams {
                degree: self.degree,
                threshold: self.threshold,
            },
            &self.threat,
        )?;
        NeighbourGraph::new(n, self.degree, self.graph_seed)?;
        self.quant_params()?;
        edge_kernels::check_sum_capacity(u64::from(n), self.bits)?;
        if self.min_clients < self.threshold || self.min_clients > n {
            return Err(ConfigError::MinClients {
                min: self.min_clients,
                threshold: self.threshold,
                clients: n,
            });
        }
        if self.vector_len == 0 || self.vector_len > MAX_VECTOR_WORDS {
            return Err(ConfigError::VectorLen(self.vector_len));
        }
        if self.phase_timeout_ms == 0 {
            return Err(ConfigError::Timeout);
        }
        Ok(())
    }

    /// The quantiser of this round: `bits` over `[-clip_norm, clip_norm]`.
    ///
    /// # Errors
    /// [`ConfigError::Quantisation`] for a bad width or range.
    pub fn quant_params(&self) -> Result<QuantParams, ConfigError> {
        Ok(QuantParams::new(self.bits, self.clip_norm)?)
    }

    /// The neighbour graph of this round.
    ///
    /// # Errors
    /// [`ConfigError::Graph`] if the degree is impossible.
    pub fn graph(&self) -> Result<NeighbourGraph, ConfigError> {
        Ok(NeighbourGraph::new(
            self.participant_count(),
            self.degree,
            self.graph_seed,
        )?)
    }

    /// Number of participants.
    #[must_use]
    pub fn participant_count(&self) -> u32 {
        u32::try_from(self.participants.len()).unwrap_or(u32::MAX)
    }

    /// The graph index of client `id`.
    #[must_use]
    pub fn index_of(&self, id: ClientId) -> Option<u32> {
        self.participants
            .binary_search_by_key(&id, |p| p.id)
            .ok()
            .map(|i| i as u32)
    }

    /// The id at graph index `i`.
    #[must_use]
    pub fn id_at(&self, i: u32) -> Option<ClientId> {
        self.participants.get(i as usize).map(|p| p.id)
    }

    /// The ed25519 identity key of the participant at graph index `i`.
    #[must_use]
    pub fn identity_at(&self, i: u32) -> Option<[u8; 32]> {
        self.participants.get(i as usize).map(|p| p.identity)
    }

    /// The phase timeout.
    #[must_use]
    pub fn phase_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.phase_timeout_ms)
    }

    /// SHA-256 of the whole configuration (its postcard encoding, domain-separated). Adverts
    /// and consistency signatures sign it and every derived key is bound to it, so clients
    /// given different configurations (or attempts) cannot complete a round together.
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(CONFIG_CONTEXT);
        // Encoding a plain struct of integers, arrays and vectors into memory cannot fail.
        h.update(postcard::to_allocvec(self).unwrap_or_default());
        h.finalize().into()
    }

    /// How many distinct participants must sign the survivor list before a client unmasks:
    /// `⌊(n + c)/2⌋ + 1` with `c = ⌈γn⌉` corrupt clients. Two lists each signed by that many
    /// share more than `c` signers, so at least one honest client signed both, which an honest
    /// client never does: every honest client that unmasks saw the same list.
    #[must_use]
    pub fn consistency_quorum(&self) -> u32 {
        let n = self.participant_count();
        let c = self.threat.corrupt_count(n);
        (n + c) / 2 + 1
    }
}

const CONFIG_CONTEXT: &[u8] = b"flock/secagg+/v2/config";
const GRAPH_SEED_CONTEXT: &[u8] = b"flock/secagg+/v2/graph-seed";

/// The beacon of a round off chain, where there is no drawn seed: zero. The graph seed then
/// still depends only on what the devices see (task, round, attempt, participants).
pub const OFF_CHAIN_BEACON: [u8; 32] = [0; 32];

/// The neighbour graph's seed of a round: SHA-256 of the task, round, attempt, the
/// participants (ids and identity keys, sorted) and a beacon the server does not control (on
/// chain: the round's seed drawn from the stakers' commit-reveal beacon; off chain: zero). A
/// server can still vary the seed by choosing which devices take part and, within the
/// device's `max_attempts`, the attempt; it can no longer name the seed.
#[must_use]
pub fn graph_seed(
    task: &TaskId,
    round: u64,
    attempt: u64,
    participants: &[Participant],
    beacon: &[u8; 32],
) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(GRAPH_SEED_CONTEXT);
    h.update(task.0);
    h.update(round.to_le_bytes());
    h.update(attempt.to_le_bytes());
    h.update(beacon);
    h.update((participants.len() as u64).to_le_bytes());
    for p in participants {
        h.update(p.id.0.to_le_bytes());
        h.update(p.identity);
    }
    h.finalize().into()
}

fn client_count(participants: &[Participant]) -> Result<u32, ConfigError> {
    let n = u32::try_from(participants.len()).unwrap_or(u32::MAX);
    if n < 2 {
        return Err(ConfigError::Participants("a round needs at least 2"));
    }
    if n > MAX_CLIENTS {
        return Err(ConfigError::Participants("more than MAX_CLIENTS"));
    }
    Ok(n)
}
