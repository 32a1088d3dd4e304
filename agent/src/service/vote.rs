//! A voter's question and its answer, between the chain follower (which knows the round's
//! anchored candidate) and the session (which holds the held-out data and talks to the
//! aggregator that serves the model files).

use flock_model::ModelId;
use tokio::sync::oneshot;

/// Judge `candidate` against `previous` on this agent's held-out data.
#[derive(Debug)]
pub(crate) struct Evaluate {
    /// The round voted on.
    pub round: u64,
    /// The anchored candidate.
    pub candidate: ModelId,
    /// The model it builds on (the chain's last accepted one).
    pub previous: ModelId,
    /// Where the verdict goes; an error says why the candidate could not be judged.
    pub reply: oneshot::Sender<Result<Verdict, String>>,
}

/// Accuracy of both models on this agent's held-out data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Verdict {
    /// The candidate's.
    pub candidate: f64,
    /// The previous model's.
    pub previous: f64,
}

#[cfg(feature = "chain")]
impl Verdict {
    /// Whether to vote to accept: the candidate is not worse than the previous model by more
    /// than `tolerance`.
    pub(crate) fn accepts(&self, tolerance: f64) -> bool {
        self.candidate + tolerance >= self.previous
    }
}
