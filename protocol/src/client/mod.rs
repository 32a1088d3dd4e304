//! The client side of a round as a sans-IO state machine.
//!
//! Feed it what the server sends with [`Client::handle`] and the passage of time with
//! [`Client::handle_timeout`]; take what it wants to send from [`Client::poll_transmit`] and
//! when it next needs waking from [`Client::poll_timeout`]. Between share delivery and the
//! unmask request the caller provides the quantised update ([`Client::submit_input`]), or
//! masks it elsewhere, say on a GPU, with the masks of [`Client::input_masks`] and hands over
//! the result ([`Client::submit_masked_input`]).
//!
//! The client trusts the server for nothing it can check: the configuration must pass the
//! device's [`ClientPolicy`], and it reveals shares only for a survivor list that a quorum of
//! survivors signed ([`RoundConfig::consistency_quorum`]), deciding from that list alone whose
//! shares to reveal. A share must carry its sender's signature (which the server checked when
//! it arrived, so a forged one means the server forged it, and the client aborts); a signed
//! share that does not open is its sender's fault, and the client refuses it instead of
//! aborting: it masks without that neighbour and hands the server their pairwise seed. The
//! one message that reveals shares is the [`ClientMessage::Unmask`] it polls: a caller that
//! must record, durably and first, that it contributed to this attempt does so before
//! sending it.
//!
//! One file per phase: `advertise.rs` (keys in, shares out), `share_keys.rs` (shares in),
//! `masked_input.rs` (input out), `consistency.rs` (survivor list in, signature out),
//! `unmask.rs` (signatures in, shares out).

mod advertise;
mod consistency;
mod error;
mod masked_input;
mod share_keys;
mod unmask;

pub use error::ClientError;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, SeedableRng};
use zeroize::Zeroizing;

use crate::config::{ClientId, ConfigError, RoundConfig};
use crate::graph::NeighbourGraph;
use crate::keys::{AdvertContext, Binding, Identity, RoundKeys, self_mask_commitment};
use crate::phase::Phase;
use crate::policy::ClientPolicy;
use crate::wire::{ClientMessage, KeyAdvert, ServerMessage, ShareBundle};

/// What the client is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientPhase {
    /// Its advert is sent; the neighbours' adverts are awaited.
    AwaitingAdverts,
    /// Its shares are sent; the neighbours' shares are awaited.
    AwaitingShares,
    /// The caller must provide the input ([`Client::submit_input`]).
    AwaitingInput,
    /// Its masked input is sent; the survivor list is awaited.
    AwaitingSurvivors,
    /// It signed the survivor list; the signatures (the unmask request) are awaited.
    AwaitingUnmaskRequest,
    /// Its unmask response is sent; the result is awaited.
    AwaitingResult,
    /// The round finished.
    Finished,
    /// The round was aborted ([`Client::outcome`] says why).
    Aborted,
}

enum State {
    AwaitingAdverts,
    AwaitingShares,
    AwaitingInput,
    AwaitingSurvivors,
    AwaitingUnmaskRequest,
    AwaitingResult,
    Finished(Vec<ClientId>),
    Aborted(ClientError),
}

/// A neighbour's verified round keys.
struct PeerKeys {
    /// Its long-term ed25519 key, from the configuration.
    identity: [u8; 32],
    enc_pk: [u8; 32],
    /// `s_uv`, from this client's mask key and the neighbour's.
    pair_seed: Zeroizing<[u8; 32]>,
}

/// One client's part in one round.
pub struct Client {
    id: ClientId,
    index: u32,
    config: RoundConfig,
    /// [`RoundConfig::digest`]: what every signature and derived key is bound to.
    digest: [u8; 32],
    identity: Identity,
    graph: NeighbourGraph,
    keys: RoundKeys,
    self_seed: Zeroizing<[u8; 32]>,
    rng: ChaCha20Rng,
    state: State,
    outbox: VecDeque<ClientMessage>,
    deadline: Instant,
    /// Neighbours whose adverts verified, by id.
    peers: BTreeMap<ClientId, PeerKeys>,
    /// Shares this client holds, by the neighbour that sent them.
    held: BTreeMap<ClientId, ShareBundle>,
    /// Neighbours whose signed share did not open, with the pairwise mask seed this client
    /// reveals instead of masking against them ([`crate::wire::Refusal`]).
    refused: BTreeMap<ClientId, Zeroizing<[u8; 32]>>,
    /// The survivor list it signed, and its hash.
    survivors: Vec<ClientId>,
    survivors_hash: [u8; 32],
}

impl Client {
    /// Joins the round described by `config` as `id`: checks the configuration (its own
    /// consistency, then the device's `policy`, with the graph seed recomputed from `beacon`:
    /// the round's seed on chain, zero off chain), draws the round's secrets from `rng` and
    /// queues the signed key advert.
    ///
    /// # Errors
    /// [`ClientError::Config`] if the configuration is unsafe or `id` is not a participant,
    /// [`ClientError::Policy`] if it is below the device's floors.
    pub fn new<R: CryptoRng + ?Sized>(
        config: RoundConfig,
        id: ClientId,
        identity: &Identity,
        policy: &ClientPolicy,
        beacon: &[u8; 32],
        rng: &mut R,
        now: Instant,
    ) -> Result<Self, ClientError> {
        config.validate()?;
        policy.check(&config, beacon)?;
        let index = config
            .index_of(id)
            .ok_or(ConfigError::NotAParticipant(id))?;
        let graph = config.graph()?;
        let mut secrets = Zeroizing::new([0u8; 32 * 4]);
        rng.fill_bytes(secrets.as_mut());
        let part = |i: usize| -> [u8; 32] { std::array::from_fn(|j| secrets[32 * i + j]) };
        let keys = RoundKeys::from_secrets(part(0), part(1));
        let self_seed = Zeroizing::new(part(2));
        let rng = ChaCha20Rng::from_seed(part(3));
        let (enc_pk, mask_pk) = (keys.enc_pk(), keys.mask_pk());
        let digest = config.digest();
        let commitment = self_mask_commitment(&digest, id, &self_seed);
        let signature = identity.sign_advert(&AdvertContext {
            digest: &digest,
            client: id,
            enc_pk: &enc_pk,
            mask_pk: &mask_pk,
            self_mask_commitment: &commitment,
        });
        let deadline = now + config.phase_timeout();
        let mut outbox = VecDeque::new();
        outbox.push_back(ClientMessage::Advert(KeyAdvert {
            client: id,
            enc_pk,
            mask_pk,
            self_mask_commitment: commitment,
            signature,
        }));
        Ok(Self {
            id,
            index,
            config,
            digest,
            identity: identity.duplicate(),
            graph,
            keys,
            self_seed,
            rng,
            state: State::AwaitingAdverts,
            outbox,
            deadline,
            peers: BTreeMap::new(),
            held: BTreeMap::new(),
            refused: BTreeMap::new(),
            survivors: Vec::new(),
            survivors_hash: [0; 32],
        })
    }

    /// Processes one message from the server.
    ///
    /// # Errors
    /// The [`ClientError`] that made the client abort; it then sends nothing more.
    pub fn handle(&mut self, msg: ServerMessage, now: Instant) -> Result<(), ClientError> {
        let result = match (&self.state, msg) {
            (State::Finished(_) | State::Aborted(_), _) => return Ok(()),
            (_, ServerMessage::Aborted(reason)) => Err(ClientError::ServerAborted(reason)),
            (State::AwaitingAdverts, ServerMessage::Adverts(adverts)) => self.on_adverts(adverts),
            (State::AwaitingShares, ServerMessage::Shares(shares)) => self.on_shares(shares),
            (State::AwaitingResult, ServerMessage::Finished(contributors)) => {
                self.state = State::Finished(contributors);
                Ok(())
            }
            (State::AwaitingSurvivors, ServerMessage::Survivors(list)) => self.on_survivors(list),
            (State::AwaitingUnmaskRequest, ServerMessage::UnmaskRequest(request)) => {
                self.on_unmask_request(request)
            }
            (_, other) => Err(ClientError::UnexpectedMessage {
                got: message_name(&other),
                state: self.state_name(),
            }),
        };
        match result {
            Ok(()) => {
                self.deadline = now + self.config.phase_timeout();
                Ok(())
            }
            Err(e) => Err(self.abort(e)),
        }
    }

    /// Aborts the round if its current phase has outlived its deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.deadline && !self.is_done() {
            let phase = self.current_phase();
            self.abort(ClientError::Timeout(phase));
        }
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<ClientMessage> {
        self.outbox.pop_front()
    }

    /// When [`Client::handle_timeout`] should next be called; `None` once the round is over.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.is_done()).then_some(self.deadline)
    }

    /// Where the client stands.
    #[must_use]
    pub fn phase(&self) -> ClientPhase {
        match self.state {
            State::AwaitingAdverts => ClientPhase::AwaitingAdverts,
            State::AwaitingShares => ClientPhase::AwaitingShares,
            State::AwaitingInput => ClientPhase::AwaitingInput,
            State::AwaitingSurvivors => ClientPhase::AwaitingSurvivors,
            State::AwaitingUnmaskRequest => ClientPhase::AwaitingUnmaskRequest,
            State::AwaitingResult => ClientPhase::AwaitingResult,
            State::Finished(_) => ClientPhase::Finished,
            State::Aborted(_) => ClientPhase::Aborted,
        }
    }

    /// The round's end: the contributors, or why this client aborted; `None` while running.
    #[must_use]
    pub fn outcome(&self) -> Option<Result<&[ClientId], &ClientError>> {
        match &self.state {
            State::Finished(c) => Some(Ok(c)),
            State::Aborted(e) => Some(Err(e)),
            _ => None,
        }
    }

    /// This client's id.
    #[must_use]
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The round configuration.
    #[must_use]
    pub fn config(&self) -> &RoundConfig {
        &self.config
    }

    fn is_done(&self) -> bool {
        matches!(self.state, State::Finished(_) | State::Aborted(_))
    }

    fn binding(&self) -> Binding<'_> {
        Binding {
            digest: &self.digest,
        }
    }

    fn current_phase(&self) -> Phase {
        match self.state {
            State::AwaitingAdverts => Phase::AdvertiseKeys,
            State::AwaitingShares => Phase::ShareKeys,
            State::AwaitingInput | State::AwaitingSurvivors => Phase::MaskedInput,
            State::AwaitingUnmaskRequest => Phase::Consistency,
            _ => Phase::Unmask,
        }
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::AwaitingAdverts => "awaiting adverts",
            State::AwaitingShares => "awaiting shares",
            State::AwaitingInput => "awaiting the local input",
            State::AwaitingSurvivors => "awaiting the survivor list",
            State::AwaitingUnmaskRequest => "awaiting the unmask request",
            State::AwaitingResult => "awaiting the result",
            State::Finished(_) => "finished",
            State::Aborted(_) => "aborted",
        }
    }

    fn abort(&mut self, e: ClientError) -> ClientError {
        self.outbox.clear();
        self.held.clear();
        self.refused.clear();
        self.state = State::Aborted(e.clone());
        e
    }

    fn require_state(
        &self,
        expected: ClientPhase,
        action: &'static str,
    ) -> Result<(), ClientError> {
        if self.phase() == expected {
            Ok(())
        } else {
            Err(ClientError::UnexpectedMessage {
                got: action,
                state: self.state_name(),
            })
        }
    }
}

fn message_name(m: &ServerMessage) -> &'static str {
    match m {
        ServerMessage::Start(_) => "start",
        ServerMessage::Adverts(_) => "adverts",
        ServerMessage::Shares(_) => "shares",
        ServerMessage::Survivors(_) => "survivors",
        ServerMessage::UnmaskRequest(_) => "unmask request",
        ServerMessage::Finished(_) => "finished",
        ServerMessage::Aborted(_) => "aborted",
    }
}
