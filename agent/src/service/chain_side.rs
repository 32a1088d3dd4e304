//! What the agent's chain side (`[chain]` with a key) hands the session, whichever build: the
//! gate that announced models must pass (an agent on chain trains only from the chain's last
//! accepted model), the voter's requests, and the follower task that plays the rounds on chain.
//! The chain side is `chain` (feature `chain`) or its stand-in `no_chain`; this neutral module
//! is what both and the session share. [`check`] retries a chain that does not answer, with
//! backoff, before it gives up.

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

/// Where the last accepted model is read.
pub(crate) trait ModelGate: Send + Sync {
    /// The last accepted model and the round that produced it (0: the initial model).
    fn last_accepted(&self) -> BoxFuture<'_, Result<(ModelId, u64), AgentError>>;
}

/// How long a chain that does not answer is retried before the check gives up.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// Refuses `announced` ([`AgentError::ModelRefused`]) unless it is the gate's last accepted
/// model. Errors a reconnect could cure ([`AgentError::is_fatal`] false: a chain that did not
/// answer) are retried with doubling pauses from 250 ms for up to `patience`.
pub(crate) async fn check(
    gate: &dyn ModelGate,
    announced: ModelId,
    patience: Duration,
) -> Result<(), AgentError> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match gate.last_accepted().await {
            Ok((accepted, _)) if accepted == announced => return Ok(()),
            Ok((accepted, round)) => {
                return Err(AgentError::ModelRefused(format!(
                    "the aggregator announced model {announced}, but the chain's last accepted \
                     model (round {round}) is {accepted}"
                )));
            }
            Err(e) if !e.is_fatal() && started.elapsed() + pause <= patience => {
                warn!("checking model {announced} on chain: {e}; trying again in {pause:?}");
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
        check(&gate, m, PATIENCE).await.unwrap();
        assert!(gate.0.lock().unwrap().is_empty(), "asked three times");
        // Not for ever: past the patience the error comes out, and it is not fatal.
        let gate = Scripted(Mutex::new((0..100).map(|_| Err(unreachable())).collect()));
        let err = check(&gate, m, Duration::from_secs(3)).await.unwrap_err();
        assert!(!err.is_fatal(), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_model_that_is_not_the_chains_is_refused_and_a_refusal_is_not_retried() {
        let gate = Scripted(Mutex::new(vec![Ok((ModelId([2; 32]), 4))]));
        let err = check(&gate, ModelId([1; 32]), PATIENCE).await.unwrap_err();
        assert!(
            matches!(&err, AgentError::ModelRefused(r) if r.contains("round 4")),
            "{err}"
        );
        let gate = Scripted(Mutex::new(vec![Err(AgentError::ChainSetup(
            "banned".into(),
        ))]));
        let err = check(&gate, ModelId([1; 32]), PATIENCE).await.unwrap_err();
        assert!(err.is_fatal());
    }
}
