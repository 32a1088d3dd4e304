//! Hostile agents with valid certificates over real QUIC with mutual TLS (holes 4 and 5 of
//! issue 14), each a real `flock-agent` whose SecAgg+ messages a test hook rewrites after its
//! client made them (the agent's own checks would refuse to send them):
//!
//! - one agent seals, and signs, share ciphertexts none of its neighbours can open: the attempt
//!   ends naming it and its accusers, it sits out the retry, the retry is exact without it,
//!   and the next round is exact with it (it behaves again);
//! - one agent seals one bad share: its neighbour refuses it, and the round is exact with
//!   everyone, the pair named;
//! - one agent raises a masked word past any honest sum: the attempt aborts after the
//!   signatures (the cohort is named: a sum cannot say whose word it was), the aggregator
//!   keeps serving, and the next round is exact.
//!
//! The aggregator's log is captured and must name the hostile agent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::*;
use flock_protocol::wire::ClientMessage;
use flock_protocol::{Identity, RoundConfig};

/// Everything logged in this test binary (warnings and up).
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .init();
        buffer
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The lines of the log that contain every one of `needles`.
fn logged(needles: &[&str]) -> Vec<String> {
    let text = String::from_utf8_lossy(&log().lock().unwrap()).to_string();
    text.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}

/// A hook that, in round `round`'s first attempt only, garbles the first `count` share
/// ciphertexts of the upload and signs it with the agent's own key.
fn seal_garbage(
    identity: Identity,
    round: u64,
    count: usize,
) -> impl FnMut(&RoundConfig, &mut ClientMessage) + Send + 'static {
    let mut done = false;
    move |config, msg| {
        if let ClientMessage::Shares(upload) = msg
            && config.round == round
            && !done
        {
            done = true;
            for s in upload.shares.iter_mut().take(count) {
                s.ciphertext[2] ^= 0x10;
            }
            upload.signature = identity.sign_shares(&config.digest(), upload);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_sealing_shares_nobody_can_open_is_named_sits_out_the_retry_and_rounds_stay_exact()
{
    log();
    const AGENTS: usize = 5;
    let fed = Federation::new("hostile-shares", AGENTS, 4, 2, ([127, 0, 0, 1], 0).into());
    let (server, at) = fed.serve(std::future::pending()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let liar = fed.client_id(0);
    let key = fed.root.join("certs/device-0.key");
    let agents = fed.agents(at, &seen, |i, b| {
        if i == 0 {
            let identity = flock_agent::service::load_identity(&key).unwrap();
            (b.tamper(seal_garbage(identity, 1, usize::MAX)), None)
        } else {
            (b, None)
        }
    });
    let report = finish_exact(&fed, server, agents).await;
    let rounds: Vec<(u64, usize, bool)> = report
        .rounds
        .iter()
        .map(|r| {
            (
                r.round,
                r.contributors.len(),
                r.contributors.contains(&liar),
            )
        })
        .collect();
    assert_eq!(
        rounds,
        [(1, 4, false), (2, 5, true)],
        "round 1 is retried without it, round 2 takes it back"
    );
    let named = logged(&[
        &format!("client={liar}"),
        "sealed shares its neighbours could not open",
    ]);
    assert_eq!(named.len(), 1, "the hostile agent is named once: {named:?}");
    assert!(named[0].contains("round=1"), "{}", named[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_bad_share_costs_one_mask_and_an_out_of_range_word_one_attempt_and_rounds_stay_exact() {
    log();
    const AGENTS: usize = 5;
    let fed = Federation::new(
        "hostile-words",
        AGENTS,
        AGENTS,
        3,
        ([127, 0, 0, 1], 0).into(),
    );
    let (server, at) = fed.serve(std::future::pending()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (one_share, big_word) = (fed.client_id(1), fed.client_id(2));
    let key = fed.root.join("certs/device-1.key");
    let agents = fed.agents(at, &seen, |i, b| match i {
        1 => {
            let identity = flock_agent::service::load_identity(&key).unwrap();
            (b.tamper(seal_garbage(identity, 1, 1)), None)
        }
        2 => {
            let mut done = false;
            let raise = move |config: &RoundConfig, msg: &mut ClientMessage| {
                if let ClientMessage::MaskedChunk(c) = msg
                    && config.round == 2
                    && c.offset == 0
                    && !done
                    && let Some(first) = c.words.first_chunk_mut::<4>()
                {
                    done = true;
                    let w = u32::from_le_bytes(*first).wrapping_add(i32::MAX as u32);
                    *first = w.to_le_bytes();
                }
            };
            (b.tamper(raise), None)
        }
        _ => (b, None),
    });
    let report = finish_exact(&fed, server, agents).await;
    let rounds: Vec<(u64, usize, bool)> = report
        .rounds
        .iter()
        .map(|r| (r.round, r.contributors.len(), r.accepted))
        .collect();
    // Round 1 is exact with all five; round 2's attempt aborted after every device signed
    // (their pledge bars them from a retry), so it ends without a model; round 3 is exact.
    assert_eq!(rounds, [(1, 5, true), (2, 0, false), (3, 5, true)]);
    let refused = logged(&[
        &format!("client={one_share}"),
        "sealed a share its neighbour could not open",
        "round=1",
    ]);
    assert_eq!(refused.len(), 1, "{refused:?}");
    let cohort = logged(&[
        "one of these devices sent an input no honest device sends",
        "round=2",
    ]);
    assert_eq!(cohort.len(), 1, "{cohort:?}");
    assert!(cohort[0].contains(&big_word.to_string()), "{}", cohort[0]);
}
