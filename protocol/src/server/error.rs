//! What can go wrong on the server: a client's message refused ([`ServerError`], the round
//! goes on without that client) or the round itself aborted ([`AbortError`]).

use crate::config::ClientId;
use crate::keys::KeyError;
use crate::phase::Phase;
use crate::shamir::ShamirError;

/// A message refused. The sender is excluded from the rest of the round; everyone else goes
/// on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The sender is not a participant.
    #[error("client {0} is not a participant of this round")]
    UnknownClient(ClientId),
    /// The message claims another sender than the connection it came on.
    #[error("message from client {actual} claims to be from client {claimed}")]
    WrongSender {
        /// Id in the message.
        claimed: ClientId,
        /// Id of the connection.
        actual: ClientId,
    },
    /// The message does not belong to the current phase, or the sender is no longer in it.
    #[error("unexpected {got} message from client {from} in phase {phase}")]
    UnexpectedMessage {
        /// Sender.
        from: ClientId,
        /// Current phase.
        phase: Phase,
        /// What arrived.
        got: &'static str,
    },
    /// The sender already sent this phase's message.
    #[error("client {from} sent its {phase} message twice")]
    Duplicate {
        /// Sender.
        from: ClientId,
        /// Phase.
        phase: Phase,
    },
    /// The advert's signature or keys are bad.
    #[error("advert of client {from} refused: {source}")]
    BadAdvert {
        /// Sender.
        from: ClientId,
        /// What was wrong.
        source: KeyError,
    },
    /// A message's content is inconsistent with the round.
    #[error("{phase} message of client {from} refused: {reason}")]
    Invalid {
        /// Sender.
        from: ClientId,
        /// Phase.
        phase: Phase,
        /// What was wrong.
        reason: String,
    },
    /// The round is over.
    #[error("the round is over; message from client {0} ignored")]
    RoundOver(ClientId),
}

/// Why the server aborted the round.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AbortError {
    /// Fewer clients than the round needs are left.
    #[error("{phase}: {have} clients left, the round needs {need}")]
    TooFewClients {
        /// Phase that ended with too few.
        phase: Phase,
        /// Clients left.
        have: usize,
        /// `min_clients`.
        need: usize,
    },
    /// A secret cannot be rebuilt: too few of its holders are left or answered.
    #[error("{phase}: only {have} of client {client}'s share holders are left, {need} needed")]
    NotEnoughShares {
        /// Phase.
        phase: Phase,
        /// Whose secret.
        client: ClientId,
        /// Shares available.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// So many of a client's neighbours refused its signed shares (they did not open) that
    /// fewer than `t` survivors hold them: its secret cannot be rebuilt (for a survivor, whose
    /// masked input is already in the sum, its self mask). Signing shares that do not open is
    /// a dishonest device's doing (or the accusers lie: they are named too); the attempt ends
    /// and a retry goes on without it.
    #[error(
        "{phase}: client {client}'s shares were refused by {} of its neighbours ({}), {holders} hold them, {need} needed",
        refusers.len(),
        refusers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    RefusedShares {
        /// Phase.
        phase: Phase,
        /// Whose shares.
        client: ClientId,
        /// The neighbours that refused them, sorted.
        refusers: Vec<ClientId>,
        /// Survivors that hold them.
        holders: usize,
        /// Threshold.
        need: usize,
    },
    /// The shares of a secret do not agree (a holder sent a corrupted share).
    #[error("unmask: the shares of client {client}'s secret are inconsistent: {source}")]
    Reconstruction {
        /// Whose secret.
        client: ClientId,
        /// Shamir's complaint.
        source: ShamirError,
    },
    /// Removing a dropped client's masks failed.
    #[error("unmask: {0}")]
    Key(#[from] KeyError),
}
