//! The aggregator under what goes wrong in a deployment, watched through its own `/metrics`
//! and `/healthz`:
//!
//! - too many agents vanish in a round (below the SecAgg+ threshold t): the attempt aborts
//!   cleanly, no model is made, and once agents are back the round runs again and completes
//!   exactly;
//! - a hostile client with a valid certificate sends garbage, a truncated frame, an oversized
//!   frame and a SecAgg+ message for an attempt that is not running, before and during the
//!   rounds: each stream is stopped or the message refused, counted, and the honest agents'
//!   rounds complete bit for bit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use flock_protocol::ClientPhase;
use flock_protocol::session::AgentMessage;
use flock_protocol::wire::MAX_FRAME_BYTES;
use flock_protocol::wire::{ClientMessage, MaskedChunk};
use flock_transport::endpoint::{self, Settings};
use flock_transport::frames;
use flock_transport::pki::{Ca, CertKind, Validity};
use flock_transport::tls::{Credentials, Trust, client_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_round_below_threshold_aborts_and_runs_again_when_agents_return() {
    const AGENTS: usize = 4;
    const ROUNDS: u64 = 2;
    let fed = Federation::new("abort", AGENTS, AGENTS, ROUNDS, ([127, 0, 0, 1], 0).into());
    let (server, at) = fed.serve_with_metrics(std::future::pending()).await;
    let metrics = at.metrics.expect("metrics configured");
    let seen = Arc::new(Mutex::new(Vec::new()));

    // Agents 0 and 1 vanish in round 1 after the key adverts: 2 of 4 remain, below t = 3.
    let mut agents = fed.agents(at.quic, &seen, |i, b| {
        if i < 2 {
            (b.vanish_at(1, ClientPhase::AwaitingShares), None)
        } else {
            (b, None)
        }
    });
    for a in agents.drain(..2) {
        let e = a.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("vanished in round 1"), "{e}");
    }
    let text = wait_for_metric(metrics, "flock_aggregator_rounds_aborted_total 1").await;
    for line in [
        "flock_aggregator_rounds_completed_total 0",
        "flock_aggregator_round 0",
        "flock_aggregator_round_in_progress 0",
        "flock_aggregator_round_attempts_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
    }
    let (status, health) = http_get(metrics, "/healthz").await;
    assert!(status.contains("200"), "{status}");
    assert!(health.contains(r#""round":0"#), "{health}");
    assert!(health.contains(r#""round_in_progress":null"#), "{health}");
    assert!(fed.store().state("e2e-abort").unwrap().unwrap().round == 0);

    // The two come back (same identities, as after a reboot); round 1 runs again with all four.
    agents.splice(
        0..0,
        (0..2).map(|i| fed.agent(i, at.quic, &seen, |_, b| (b, None))),
    );
    let report = finish_exact(&fed, server, agents).await;
    let rounds: Vec<(u64, usize)> = report
        .rounds
        .iter()
        .map(|r| (r.round, r.contributors.len()))
        .collect();
    assert_eq!(rounds, [(1, 4), (2, 4)], "no round lost or repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_streams_are_refused_while_the_rounds_go_on() {
    const AGENTS: usize = 4;
    const ROUNDS: u64 = 2;
    let fed = Federation::new(
        "hostile",
        AGENTS,
        AGENTS,
        ROUNDS,
        ([127, 0, 0, 1], 0).into(),
    );
    let (server, at) = fed.serve_with_metrics(std::future::pending()).await;
    let metrics = at.metrics.expect("metrics configured");

    // A device with a valid certificate that never says Hello: it is never in a round.
    let ca = Ca::open(&fed.root.join("ca")).unwrap();
    let certs = fed.root.join("certs");
    ca.issue("intruder", &CertKind::Device, Validity::days(2), &certs)
        .unwrap();
    let creds =
        Credentials::load(&certs.join("intruder.pem"), &certs.join("intruder.key")).unwrap();
    let trust = Trust::load(&fed.root.join("ca/ca.pem"), None).unwrap();
    let settings = Settings::default();
    let ep = endpoint::client(at.quic, client_config(&creds, &trust).unwrap(), &settings).unwrap();
    let conn = endpoint::connect(&ep, at.quic, "localhost").await.unwrap();

    // Three of the four agents join; no round can start without the fourth.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut agents: Vec<_> = (0..AGENTS - 1)
        .map(|i| fed.agent(i, at.quic, &seen, |_, b| (b, None)))
        .collect();
    wait_for_health(metrics, r#""agents_connected":4"#).await;

    let good = flock_protocol::wire::encode(&AgentMessage::Leave).unwrap();
    let bad_frames: [(&str, Vec<u8>); 3] = [
        ("garbage", vec![0xde, 0xad, 0xbe, 0xef, 0x01, 0x02]),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("oversized", vec![0u8; MAX_FRAME_BYTES + 64]),
    ];
    // The aggregator stops each stream (the sender sees it unless all was acknowledged first)
    // and counts it; the connection stays up.
    for (what, bytes) in &bad_frames {
        if let Err(e) = frames::send_raw(&conn, bytes).await {
            assert!(
                e.to_string().contains("stopped the stream with code"),
                "{what}: {e}"
            );
        }
    }
    // Well-formed, but for an attempt that is not running, from a device in no round.
    let wrong_phase = AgentMessage::Secagg {
        attempt: 1,
        msg: ClientMessage::MaskedChunk(MaskedChunk {
            client: fed.client_id(0),
            offset: 0,
            total: 4,
            words: vec![0; 16],
            refusals: Vec::new(),
        }),
    };
    frames::send(&conn, &wrong_phase).await.unwrap();
    // Each stream is read on its own task: the counts arrive in any order.
    wait_for_metric(metrics, "flock_aggregator_refused_messages_total 1").await;
    wait_for_metric(metrics, "flock_aggregator_bad_streams_total 3").await;

    // The last agent joins and the rounds run while the intruder keeps sending junk and
    // wrong-phase messages (bounded), until the aggregator closes at the end of the task.
    agents.push(fed.agent(AGENTS - 1, at.quic, &seen, |_, b| (b, None)));
    let junk = tokio::spawn(async move {
        let mut sent_during_rounds = 0;
        for n in 0..2000 {
            let sent = match n % 4 {
                3 => frames::send(&conn, &wrong_phase).await,
                k => frames::send_raw(&conn, &bad_frames[k].1).await,
            };
            match sent {
                Ok(()) => sent_during_rounds += 1,
                Err(e) if e.to_string().contains("stopped the stream with code") => {
                    sent_during_rounds += 1
                }
                Err(e) => {
                    assert!(e.to_string().contains("task complete"), "{e}");
                    return sent_during_rounds;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        sent_during_rounds
    });
    let report = finish_exact(&fed, server, agents).await;
    assert!(report.rounds.iter().all(|r| r.contributors.len() == AGENTS));
    assert_eq!(report.rounds.len() as u64, ROUNDS);
    assert!(junk.await.unwrap() > 0, "junk was sent during the rounds");
}
