//! Following a round's windows from a long-running service: waiting for an on-chain deadline
//! by the wall clock, and sending a call the chain refuses for a moment because its clock (the
//! timestamp of the block that will hold the call) has not reached the deadline yet.
//!
//! A deadline is a Unix time read from the task (`roundInfo`); a node's next block carries a
//! timestamp at or a little behind the wall clock, so a call sent right at a deadline may still
//! revert with `WrongPhase`, `NotFinalisable` or `RandomnessNotReady`: [`when_open`] retries
//! those (and transient failures) for a bounded time, and returns any other refusal at once.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::ChainError;

/// Revert names that mean "not yet": the window the call needs has not opened on chain.
const NOT_YET: [&str; 3] = ["WrongPhase", "NotFinalisable", "RandomnessNotReady"];

/// How long to wait between two tries of a call refused as "not yet".
const RETRY_EVERY: Duration = Duration::from_millis(400);

/// Seconds since the Unix epoch, by this machine's clock.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sleeps until this machine's clock reads `deadline` (Unix seconds), or returns at once.
pub async fn sleep_until_unix(deadline: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let target = Duration::from_secs(deadline);
    if target > now {
        tokio::time::sleep(target - now).await;
    }
}

/// Whether `e` says the call came too early (its window not open on chain yet).
pub fn is_not_yet(e: &ChainError) -> bool {
    e.revert_name().is_some_and(|n| NOT_YET.contains(&n))
}

/// Runs `call` until it succeeds, retrying while the chain answers "not yet" or cannot be
/// reached, for at most `patience`; then (or at once for any other refusal) returns the last
/// error.
pub async fn when_open<T, F, Fut>(patience: Duration, mut call: F) -> Result<T, ChainError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ChainError>>,
{
    let started = tokio::time::Instant::now();
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if (is_not_yet(&e) || e.is_transient()) && started.elapsed() < patience => {
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Revert;
    use alloy::primitives::Bytes;

    fn reverted(name_selector: &[u8]) -> ChainError {
        ChainError::Reverted(Revert::decode(Bytes::copy_from_slice(name_selector)))
    }

    #[tokio::test]
    async fn retries_transient_failures_then_succeeds() {
        let mut tries = 0;
        let v = when_open(Duration::from_secs(5), || {
            tries += 1;
            let t = tries;
            async move {
                if t < 3 {
                    Err(ChainError::Unreachable("node restarting".into()))
                } else {
                    Ok(t)
                }
            }
        })
        .await;
        assert_eq!(v.ok(), Some(3));
    }

    #[tokio::test]
    async fn a_refusal_that_is_not_about_time_returns_at_once() {
        let mut tries = 0;
        let e = when_open(Duration::from_secs(5), || {
            tries += 1;
            // Four bytes that select no known error: a refusal, not "not yet".
            async { Err::<(), _>(reverted(&[1, 2, 3, 4])) }
        })
        .await;
        assert!(e.is_err());
        assert_eq!(tries, 1);
    }

    #[tokio::test]
    async fn gives_up_after_its_patience() {
        let started = std::time::Instant::now();
        let e = when_open(Duration::from_millis(900), || async {
            Err::<(), _>(ChainError::Unreachable("down".into()))
        })
        .await;
        assert!(e.is_err_and(|e| e.is_transient()));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn unix_now_is_after_2025() {
        assert!(unix_now() > 1_735_689_600);
    }
}
