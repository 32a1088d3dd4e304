//! What the agent's chain side (`[chain]` with a key) hands the session, whichever build: the
//! gate that announced rounds must pass (an agent on chain trains only from the chain's last
//! accepted model, and only in a round whose roles the chain drew: its seed is the graph
//! seed's beacon, its proposers the only cohort the agent accepts), the voter's requests, and
//! the follower task that plays the rounds on chain. The chain side is `chain` (feature
//! `chain`) or its stand-in `no_chain`; this neutral module is what both and the session share.
//! [`check`] retries a chain that does not answer, with backoff, before it gives up.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use flock_model::ModelId;
use tokio::sync::mpsc;
use tracing::warn;

use super::AgentError;
use super::vote::Evaluate;

/// A running chain side.
pub(crate) struct ChainParts {
    /// Where announced models are checked.
    pub gate: std::sync::Arc<dyn ModelGate>,
    /// The follower's voter requests.
    pub evaluations: mpsc::UnboundedReceiver<Evaluate>,
    /// The follower (beacon, roles, votes); aborted when the agent stops.
    pub follower: tokio::task::JoinHandle<()>,
}

/// A boxed future (the gate is used as a trait object).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the chain drew for a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoundRoles {
    /// The round's seed (from the stakers' commit-reveal beacon).
    pub seed: [u8; 32],
    /// The registered identity keys of its proposers.
    pub proposers: Vec<[u8; 32]>,
}

/// Where the last accepted model and a round's roles are read.
pub(crate) trait ModelGate: Send + Sync {
    /// The last accepted model and the round that produced it (0: the initial model).
    fn last_accepted(&self) -> BoxFuture<'_, Result<(ModelId, u64), AgentError>>;
    /// The roles drawn for `round` ([`AgentError::RoundRefused`] if none are drawn yet).
    fn roles(&self, round: u64) -> BoxFuture<'_, Result<RoundRoles, AgentError>>;
}

/// How long a chain that does not answer is retried before the check gives up.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// Refuses `announced` ([`AgentError::ModelRefused`]) unless it is the gate's last accepted
/// model; then reads the roles of `round`. Errors a reconnect could cure
/// ([`AgentError::is_fatal`] false: a chain that did not answer) are retried with doubling
/// pauses from 250 ms for up to `patience` in all.
pub(crate) async fn check(
    gate: &dyn ModelGate,
    announced: ModelId,
    round: u64,
    patience: Duration,
) -> Result<RoundRoles, AgentError> {
    let started = tokio::time::Instant::now();
    let what = format!("model {announced}");
    match patiently(started, patience, &what, || gate.last_accepted()).await? {
        (accepted, _) if accepted == announced => {}
        (accepted, last) => {
            return Err(AgentError::ModelRefused(format!(
                "the aggregator announced model {announced}, but the chain's last accepted \
                 model (round {last}) is {accepted}"
            )));
        }
    }
    let what = format!("the roles of round {round}");
    patiently(started, patience, &what, || gate.roles(round)).await
}

/// `ask()` until it answers or fails for good, or `patience` from `started` has passed.
async fn patiently<'a, T>(
    started: tokio::time::Instant,
    patience: Duration,
    what: &str,
    mut ask: impl FnMut() -> BoxFuture<'a, Result<T, AgentError>>,
) -> Result<T, AgentError> {
    let mut pause = Duration::from_millis(250);
    loop {
        match ask().await {
            Ok(v) => return Ok(v),
            Err(e) if !e.is_fatal() && started.elapsed() + pause <= patience => {
                warn!("reading {what} on chain: {e}; trying again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use super::*;

    /// Answers from a script, one per call.
    struct Scripted(Mutex<Vec<Result<(ModelId, u64), AgentError>>>);

    impl ModelGate for Scripted {
        fn last_accepted(&self) -> BoxFuture<'_, Result<(ModelId, u64), AgentError>> {
            let next = self.0.lock().unwrap().remove(0);
            Box::pin(async move { next })
        }

        fn roles(&self, _round: u64) -> BoxFuture<'_, Result<RoundRoles, AgentError>> {
            let roles = RoundRoles {
                seed: [5; 32],
                proposers: vec![[6; 32]],
            };
            Box::pin(async move { Ok(roles) })
        }
    }

    #[cfg(feature = "chain")]
    fn unreachable() -> AgentError {
        AgentError::Chain(flock_chain::ChainError::Unreachable("timed out".into()))
    }

    #[cfg(feature = "chain")]
    #[tokio::test(start_paused = true)]
    async fn a_chain_that_does_not_answer_is_asked_again() {
        let m = ModelId([1; 32]);
        let gate = Scripted(Mutex::new(vec![
            Err(unreachable()),
            Err(unreachable()),
            Ok((m, 2)),
        ]));
        let roles = check(&gate, m, 3, PATIENCE).await.unwrap();
        assert_eq!(roles.seed, [5; 32]);
        assert!(gate.0.lock().unwrap().is_empty(), "asked three times");
        // Not for ever: past the patience the error comes out, and it is not fatal.
        let gate = Scripted(Mutex::new((0..100).map(|_| Err(unreachable())).collect()));
        let err = check(&gate, m, 3, Duration::from_secs(3))
            .await
            .unwrap_err();
        assert!(!err.is_fatal(), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_model_that_is_not_the_chains_is_refused_and_a_refusal_is_not_retried() {
        let gate = Scripted(Mutex::new(vec![Ok((ModelId([2; 32]), 4))]));
        let err = check(&gate, ModelId([1; 32]), 3, PATIENCE)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AgentError::ModelRefused(r) if r.contains("round 4")),
            "{err}"
        );
        let gate = Scripted(Mutex::new(vec![Err(AgentError::ChainSetup(
            "banned".into(),
        ))]));
        let err = check(&gate, ModelId([1; 32]), 3, PATIENCE)
            .await
            .unwrap_err();
        assert!(err.is_fatal());
    }
}
