//! The server side of a round as a sans-IO state machine, one file per phase:
//! `advertise.rs`, `share_keys.rs`, `masked_input.rs`, `consistency.rs`, `unmask.rs`.
//!
//! Feed it each client's messages with [`Server::handle`], lost connections with
//! [`Server::client_lost`] and time with [`Server::handle_timeout`]; send what
//! [`Server::poll_transmit`] returns. A phase ends when every client still in it has
//! answered, or at its deadline with whoever did. A client whose message is refused is
//! excluded and treated as dropped; the round goes on while enough remain, and otherwise ends
//! with an [`AbortError`] naming the phase and the counts. [`Server::outcome`] holds the
//! result: the exact sum of the contributors' quantised inputs, who they are, and who
//! revealed a wrong share. Every secret it rebuilds is checked against what its owner
//! advertised, so a corrupted share never yields a wrong sum: it is outvoted when there are
//! shares to spare, and the round aborts when there are not.

mod advertise;
mod consistency;
mod error;
mod masked_input;
mod share_keys;
mod unmask;

pub use error::{AbortError, ServerError};

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use zeroize::Zeroizing;

use crate::config::{ClientId, ConfigError, RoundConfig};
use crate::graph::NeighbourGraph;
use crate::phase::Phase;
use crate::shamir::Share;
use crate::wire::{ClientMessage, KeyAdvert, SealedShare, ServerMessage, SurvivorSignature};

/// What a finished round produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundOutput {
    /// Σ of the contributors' quantised inputs, mod 2^32 (no wrap, by the overflow guard).
    pub sum: Vec<u32>,
    /// Whose inputs are in the sum, sorted by id.
    pub contributors: Vec<ClientId>,
    /// Clients that revealed a share not on its secret's polynomial (outvoted by the others),
    /// sorted by id: a lying device, or one whose storage is corrupt.
    pub suspects: Vec<ClientId>,
    /// (refuser, refused): a contributor that refused a neighbour's signed share because it
    /// did not open. The refused device sealed a bad share (or the refuser lies); the round
    /// went on without that one pairwise mask. Sorted.
    pub refusals: Vec<(ClientId, ClientId)>,
}

/// A client's share upload whose signature verified, with the hash tree it signed.
struct SignedUpload {
    shares: Vec<SealedShare>,
    signature: [u8; 64],
    tree: crate::merkle::Tree,
}

/// The shares a survivor must reveal, as the survivor list decides them.
struct Expected {
    survivors: Vec<ClientId>,
    dropped: Vec<ClientId>,
}

/// The server's part in one round.
pub struct Server {
    config: RoundConfig,
    /// [`RoundConfig::digest`].
    digest: [u8; 32],
    graph: NeighbourGraph,
    phase: Option<Phase>,
    deadline: Instant,
    outbox: VecDeque<(ClientId, ServerMessage)>,
    outcome: Option<Result<RoundOutput, AbortError>>,
    /// Clients refused or lost: no further message of theirs is accepted.
    excluded: BTreeSet<u32>,
    /// The set of clients in the round at the start of the current phase (by index).
    active: BTreeSet<u32>,
    /// Clients that delivered the current phase's message.
    delivered: BTreeSet<u32>,
    adverts: BTreeMap<u32, KeyAdvert>,
    /// Every public key advertised so far: no two clients may share one.
    advertised_keys: BTreeSet<[u8; 32]>,
    uploads: BTreeMap<u32, SignedUpload>,
    /// Clients whose shares went out: `U2`.
    sharers: BTreeSet<u32>,
    acc: Vec<u32>,
    /// Refusals of the clients whose whole masked input arrived: refuser → (refused → their
    /// pairwise mask seed). The refuser neither holds nor masks against the refused.
    refusals: BTreeMap<u32, BTreeMap<u32, Zeroizing<[u8; 32]>>>,
    /// Masked inputs still arriving, by client: the chunks received so far.
    partial: HashMap<u32, masked_input::Upload>,
    /// `U3`, the survivor list the clients sign, and its hash.
    survivors: BTreeSet<u32>,
    survivors_hash: [u8; 32],
    signatures: Vec<SurvivorSignature>,
    requests: BTreeMap<u32, Expected>,
    self_mask_shares: BTreeMap<u32, Vec<Share>>,
    mask_key_shares: BTreeMap<u32, Vec<Share>>,
}

impl Server {
    /// Starts a round: checks the configuration and queues it to every participant.
    ///
    /// # Errors
    /// [`ConfigError`] if the configuration is invalid.
    pub fn new(config: RoundConfig, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let graph = config.graph()?;
        let n = config.participant_count();
        let mut outbox = VecDeque::with_capacity(n as usize);
        for p in &config.participants {
            outbox.push_back((p.id, ServerMessage::Start(config.clone())));
        }
        Ok(Self {
            deadline: now + config.phase_timeout(),
            acc: vec![0; config.vector_len as usize],
            digest: config.digest(),
            config,
            graph,
            phase: Some(Phase::AdvertiseKeys),
            outbox,
            outcome: None,
            excluded: BTreeSet::new(),
            active: (0..n).collect(),
            delivered: BTreeSet::new(),
            adverts: BTreeMap::new(),
            advertised_keys: BTreeSet::new(),
            uploads: BTreeMap::new(),
            sharers: BTreeSet::new(),
            refusals: BTreeMap::new(),
            partial: HashMap::new(),
            survivors: BTreeSet::new(),
            survivors_hash: [0; 32],
            signatures: Vec::new(),
            requests: BTreeMap::new(),
            self_mask_shares: BTreeMap::new(),
            mask_key_shares: BTreeMap::new(),
        })
    }

    /// Processes one message from client `from`. On error the client is excluded from the
    /// round (and treated as dropped); the round goes on.
    ///
    /// # Errors
    /// The [`ServerError`] naming what was wrong with the message.
    pub fn handle(
        &mut self,
        from: ClientId,
        msg: ClientMessage,
        now: Instant,
    ) -> Result<(), ServerError> {
        let index = self
            .config
            .index_of(from)
            .ok_or(ServerError::UnknownClient(from))?;
        let Some(phase) = self.phase else {
            return Err(ServerError::RoundOver(from));
        };
        let result = if !self.active.contains(&index) || self.excluded.contains(&index) {
            Err(ServerError::UnexpectedMessage {
                from,
                phase,
                got: message_name(&msg),
            })
        } else {
            match (phase, msg) {
                (Phase::AdvertiseKeys, ClientMessage::Advert(a)) => self.on_advert(index, from, a),
                (Phase::ShareKeys, ClientMessage::Shares(s)) => self.on_shares(index, from, s),
                (Phase::MaskedInput, ClientMessage::MaskedChunk(c)) => {
                    self.on_chunk(index, from, c)
                }
                (Phase::Consistency, ClientMessage::Survivors(s)) => {
                    self.on_signature(index, from, s)
                }
                (Phase::Unmask, ClientMessage::Unmask(r)) => self.on_unmask(index, from, r),
                (phase, other) => Err(ServerError::UnexpectedMessage {
                    from,
                    phase,
                    got: message_name(&other),
                }),
            }
        };
        if result.is_err() {
            self.exclude(index);
        }
        self.advance_if_complete(now);
        result
    }

    /// The transport lost client `id`: treat it as dropped from now on.
    pub fn client_lost(&mut self, id: ClientId, now: Instant) {
        if let Some(index) = self.config.index_of(id) {
            self.exclude(index);
            self.advance_if_complete(now);
        }
    }

    /// Ends the current phase if its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase.is_some() && now >= self.deadline {
            self.advance(now);
        }
    }

    /// The next message to send and its receiver.
    pub fn poll_transmit(&mut self) -> Option<(ClientId, ServerMessage)> {
        self.outbox.pop_front()
    }

    /// When [`Server::handle_timeout`] should next be called; `None` once the round is over.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.phase.map(|_| self.deadline)
    }

    /// The current phase; `None` once the round is over.
    #[must_use]
    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// The result, once the round is over.
    #[must_use]
    pub fn outcome(&self) -> Option<&Result<RoundOutput, AbortError>> {
        self.outcome.as_ref()
    }

    /// Takes the result out, once the round is over.
    pub fn take_outcome(&mut self) -> Option<Result<RoundOutput, AbortError>> {
        self.outcome.take()
    }

    /// The round configuration.
    #[must_use]
    pub fn config(&self) -> &RoundConfig {
        &self.config
    }

    fn exclude(&mut self, index: u32) {
        self.excluded.insert(index);
        self.partial.remove(&index);
    }

    /// Clients still expected to answer in this phase.
    fn pending(&self) -> impl Iterator<Item = &u32> {
        self.active
            .iter()
            .filter(|i| !self.delivered.contains(i) && !self.excluded.contains(i))
    }

    fn advance_if_complete(&mut self, now: Instant) {
        if self.phase.is_some() && self.pending().next().is_none() {
            self.advance(now);
        }
    }

    fn advance(&mut self, now: Instant) {
        let step = match self.phase {
            Some(Phase::AdvertiseKeys) => self.end_advertise(),
            Some(Phase::ShareKeys) => self.end_share_keys(),
            Some(Phase::MaskedInput) => self.end_masked_input(),
            Some(Phase::Consistency) => self.end_consistency(),
            Some(Phase::Unmask) => self.end_unmask(),
            None => return,
        };
        match step {
            Ok(next) => {
                self.phase = next;
                self.delivered.clear();
                self.deadline = now + self.config.phase_timeout();
                // A phase whose every client is already gone ends at once.
                if next.is_some() {
                    self.advance_if_complete(now);
                }
            }
            Err(e) => self.abort(e),
        }
    }

    fn abort(&mut self, e: AbortError) {
        let note = e.to_string();
        for &i in &self.active {
            if let Some(id) = self.config.id_at(i) {
                self.outbox
                    .push_back((id, ServerMessage::Aborted(note.clone())));
            }
        }
        self.phase = None;
        self.partial.clear();
        self.outcome = Some(Err(e));
    }

    fn id(&self, index: u32) -> ClientId {
        self.config.id_at(index).unwrap_or(ClientId(u64::MAX))
    }

    /// The members of `set` that are neighbours of `u`.
    fn neighbours_in<'a>(
        &'a self,
        u: u32,
        set: &'a BTreeSet<u32>,
    ) -> impl Iterator<Item = u32> + 'a {
        self.graph
            .neighbours(u)
            .iter()
            .copied()
            .filter(move |v| set.contains(v))
    }

    /// The clients that answered this phase and were not excluded.
    fn answered(&self) -> BTreeSet<u32> {
        self.delivered.difference(&self.excluded).copied().collect()
    }

    /// Removes from `set`, until none is left, every client with fewer than `t` neighbours in
    /// it: its secrets could not be rebuilt. Removed clients are told the round goes on without
    /// them. Fails if fewer than `min_clients` remain.
    fn prune(&mut self, mut set: BTreeSet<u32>, phase: Phase) -> Result<BTreeSet<u32>, AbortError> {
        let t = self.config.threshold as usize;
        loop {
            let weak: Vec<u32> = set
                .iter()
                .copied()
                .filter(|&u| self.neighbours_in(u, &set).count() < t)
                .collect();
            if weak.is_empty() {
                break;
            }
            for u in weak {
                set.remove(&u);
                let note = format!("{phase}: excluded, fewer than {t} of its neighbours are left");
                self.outbox
                    .push_back((self.id(u), ServerMessage::Aborted(note)));
            }
        }
        self.require_count(&set, phase)?;
        Ok(set)
    }

    fn require_count(&self, set: &BTreeSet<u32>, phase: Phase) -> Result<(), AbortError> {
        let need = self.config.min_clients as usize;
        if set.len() < need {
            return Err(AbortError::TooFewClients {
                phase,
                have: set.len(),
                need,
            });
        }
        Ok(())
    }

    /// Fails unless `set` holds the consistency quorum and every client that shared keys has
    /// `t` neighbours in it (the holders its secrets are rebuilt from).
    fn require_quorum_and_holders(
        &self,
        set: &BTreeSet<u32>,
        phase: Phase,
    ) -> Result<(), AbortError> {
        let quorum = self.config.consistency_quorum() as usize;
        if set.len() < quorum {
            return Err(AbortError::TooFewClients {
                phase,
                have: set.len(),
                need: quorum,
            });
        }
        let t = self.config.threshold as usize;
        for &u in &self.sharers {
            let have = self.holders_in(u, set).count();
            if have < t {
                let refusers: Vec<ClientId> = self
                    .neighbours_in(u, set)
                    .filter(|&h| !self.holds(h, u))
                    .map(|h| self.id(h))
                    .collect();
                if !refusers.is_empty() {
                    return Err(AbortError::RefusedShares {
                        phase,
                        client: self.id(u),
                        refusers,
                        holders: have,
                        need: t,
                    });
                }
                return Err(AbortError::NotEnoughShares {
                    phase,
                    client: self.id(u),
                    have,
                    need: t,
                });
            }
        }
        Ok(())
    }

    /// Whether `holder` holds `owner`'s shares: it got them (they are neighbours that both
    /// shared keys) and did not refuse them.
    fn holds(&self, holder: u32, owner: u32) -> bool {
        !self
            .refusals
            .get(&holder)
            .is_some_and(|refused| refused.contains_key(&owner))
    }

    /// The clients whose shares `holder` holds.
    fn held_by(&self, holder: u32) -> impl Iterator<Item = u32> + '_ {
        self.neighbours_in(holder, &self.sharers)
            .filter(move |&owner| self.holds(holder, owner))
    }

    /// The members of `set` that hold `owner`'s shares.
    fn holders_in<'a>(
        &'a self,
        owner: u32,
        set: &'a BTreeSet<u32>,
    ) -> impl Iterator<Item = u32> + 'a {
        self.neighbours_in(owner, set)
            .filter(move |&h| self.holds(h, owner))
    }

    /// The checks every phase makes first: the message names its real sender, who has not
    /// answered this phase yet.
    fn check_sender(
        &self,
        index: u32,
        from: ClientId,
        claimed: ClientId,
        phase: Phase,
    ) -> Result<(), ServerError> {
        if claimed != from {
            return Err(ServerError::WrongSender {
                claimed,
                actual: from,
            });
        }
        if self.delivered.contains(&index) {
            return Err(ServerError::Duplicate { from, phase });
        }
        Ok(())
    }

    fn invalid(from: ClientId, phase: Phase, reason: impl Into<String>) -> ServerError {
        ServerError::Invalid {
            from,
            phase,
            reason: reason.into(),
        }
    }
}

fn message_name(m: &ClientMessage) -> &'static str {
    match m {
        ClientMessage::Advert(_) => "advert",
        ClientMessage::Shares(_) => "shares",
        ClientMessage::MaskedChunk(_) => "masked chunk",
        ClientMessage::Survivors(_) => "survivor signature",
        ClientMessage::Unmask(_) => "unmask",
    }
}
