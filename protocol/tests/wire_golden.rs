//! The wire format against the bytes on disk (`fixtures/wire/`): every message decodes from its
//! golden frame and encodes back to the same bytes, so any change of format shows up here and
//! must be made on purpose (`FLOCK_BLESS_WIRE=1 cargo test -p flock-protocol --test wire_golden`
//! rewrites the files). Then random and mutated frames: a typed error or a message, never a
//! panic. The same golden frames seed the `cargo fuzz` target in `protocol/fuzz`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use flock_protocol::merkle::PathStep;
use flock_protocol::session::{AgentMessage, AggregatorMessage};
use flock_protocol::shamir::Share;
use flock_protocol::wire::{
    self, ClientMessage, DeliveredShare, KeyAdvert, MaskedChunk, Refusal, SealedShare,
    ServerMessage, ShareUpload, SurvivorSignature, UnmaskRequest, UnmaskResponse,
};
use flock_protocol::{ClientId, Participant, RoundConfig, TaskId, ThreatModel};
use proptest::prelude::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/wire")
}

fn share(x: u64) -> Share {
    Share {
        x,
        y: [1, 2, 3, 4, (1 << 61) - 2],
    }
}

fn advert(c: u64) -> KeyAdvert {
    KeyAdvert {
        client: ClientId(c),
        enc_pk: [0xE0 | c as u8; 32],
        mask_pk: [0x40 | c as u8; 32],
        self_mask_commitment: [0xC0 | c as u8; 32],
        signature: [0x5A; 64],
    }
}

fn client_samples() -> Vec<(&'static str, ClientMessage)> {
    vec![
        ("client-advert", ClientMessage::Advert(advert(7))),
        (
            "client-shares",
            ClientMessage::Shares(ShareUpload {
                client: ClientId(7),
                shares: vec![
                    SealedShare {
                        peer: ClientId(3),
                        ciphertext: vec![0xC1; 48],
                    },
                    SealedShare {
                        peer: ClientId(9),
                        ciphertext: vec![0xC2; 48],
                    },
                ],
                signature: [0x5A; 64],
            }),
        ),
        (
            "client-masked-chunk",
            ClientMessage::MaskedChunk(MaskedChunk {
                client: ClientId(7),
                offset: 65_536,
                total: 65_540,
                words: wire::words_to_bytes(&[0, 1, 0xDEAD_BEEF, u32::MAX]),
                refusals: vec![Refusal {
                    peer: ClientId(9),
                    pair_seed: [0x77; 32],
                }],
            }),
        ),
        (
            "client-survivors",
            ClientMessage::Survivors(SurvivorSignature {
                client: ClientId(7),
                signature: [0x5B; 64],
            }),
        ),
        (
            "client-unmask",
            ClientMessage::Unmask(UnmaskResponse {
                client: ClientId(7),
                self_mask_shares: vec![(ClientId(3), share(8))],
                mask_key_shares: vec![(ClientId(9), share(8))],
            }),
        ),
    ]
}

fn server_samples() -> Vec<(&'static str, ServerMessage)> {
    let config = RoundConfig {
        task: TaskId([0x7A; 32]),
        round: 42,
        attempt: 1,
        participants: (0..3)
            .map(|i| Participant {
                id: ClientId(i * 10),
                identity: [i as u8 + 1; 32],
            })
            .collect(),
        degree: 2,
        threshold: 2,
        min_clients: 2,
        threat: ThreatModel::default(),
        graph_seed: [0x65; 32],
        vector_len: 1_000_000,
        bits: 24,
        clip_norm: 2.5,
        phase_timeout_ms: 30_000,
    };
    vec![
        ("server-start", ServerMessage::Start(config)),
        (
            "server-adverts",
            ServerMessage::Adverts(vec![advert(3), advert(9)]),
        ),
        (
            "server-shares",
            ServerMessage::Shares(vec![DeliveredShare {
                sender: ClientId(3),
                ciphertext: vec![0xC3; 48],
                path: vec![
                    PathStep {
                        left: true,
                        sibling: [0xA1; 32],
                    },
                    PathStep {
                        left: false,
                        sibling: [0xA2; 32],
                    },
                ],
                signature: [0x5B; 64],
            }]),
        ),
        (
            "server-unmask-request",
            ServerMessage::UnmaskRequest(UnmaskRequest {
                signatures: vec![
                    SurvivorSignature {
                        client: ClientId(3),
                        signature: [0x5C; 64],
                    },
                    SurvivorSignature {
                        client: ClientId(7),
                        signature: [0x5D; 64],
                    },
                ],
            }),
        ),
        (
            "server-survivors",
            ServerMessage::Survivors(vec![ClientId(3), ClientId(7)]),
        ),
        (
            "server-finished",
            ServerMessage::Finished(vec![ClientId(3), ClientId(7)]),
        ),
        (
            "server-aborted",
            ServerMessage::Aborted("masked-input: 1 clients left, the round needs 3".into()),
        ),
    ]
}

fn check<M: wire::WireMessage + PartialEq + std::fmt::Debug>(name: &str, msg: &M) {
    let path = dir().join(format!("{name}.bin"));
    let bytes = wire::encode(msg).unwrap();
    if std::env::var_os("FLOCK_BLESS_WIRE").is_some() {
        std::fs::create_dir_all(dir()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
    }
    let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &wire::decode::<M>(&golden).unwrap(),
        msg,
        "{name}: golden frame decodes differently"
    );
    assert!(
        bytes == golden,
        "{name}: the encoding changed; bump PROTOCOL_VERSION and re-bless"
    );
}

fn agent_samples() -> Vec<(&'static str, AgentMessage)> {
    vec![
        (
            "agent-hello",
            AgentMessage::Hello {
                task: TaskId([0x7A; 32]),
                last_round: Some(4),
            },
        ),
        (
            "agent-fetch-model",
            AgentMessage::FetchModel { id: [0x11; 32] },
        ),
        (
            "agent-secagg",
            AgentMessage::Secagg {
                attempt: 9,
                msg: ClientMessage::Advert(advert(7)),
            },
        ),
        ("agent-leave", AgentMessage::Leave),
    ]
}

fn aggregator_samples() -> Vec<(&'static str, AggregatorMessage)> {
    let config = server_samples()
        .into_iter()
        .find_map(|(_, m)| match m {
            ServerMessage::Start(c) => Some(c),
            _ => None,
        })
        .unwrap();
    vec![
        (
            "aggregator-welcome",
            AggregatorMessage::Welcome {
                client: ClientId(7),
                task: br#"{"name":"t"}"#.to_vec(),
            },
        ),
        (
            "aggregator-round",
            AggregatorMessage::Round {
                attempt: 9,
                config,
                model: [0x22; 32],
                sample_cap: 100,
            },
        ),
        (
            "aggregator-model-chunk",
            AggregatorMessage::ModelChunk {
                id: [0x22; 32],
                offset: 512,
                total: 1000,
                bytes: vec![0xAB; 16],
            },
        ),
        (
            "aggregator-secagg",
            AggregatorMessage::Secagg {
                attempt: 9,
                msg: ServerMessage::Finished(vec![ClientId(3), ClientId(7)]),
            },
        ),
        (
            "aggregator-round-done",
            AggregatorMessage::RoundDone {
                round: 4,
                model: [0x33; 32],
                contributors: vec![ClientId(3), ClientId(7)],
                last: false,
            },
        ),
        (
            "aggregator-task-complete",
            AggregatorMessage::TaskComplete {
                round: 10,
                model: [0x44; 32],
            },
        ),
        (
            "aggregator-refused",
            AggregatorMessage::Refused("another task".into()),
        ),
    ]
}

#[test]
fn golden_frames_decode_and_re_encode_byte_for_byte() {
    for (name, msg) in client_samples() {
        check(name, &msg);
    }
    for (name, msg) in server_samples() {
        check(name, &msg);
    }
    for (name, msg) in agent_samples() {
        check(name, &msg);
    }
    for (name, msg) in aggregator_samples() {
        check(name, &msg);
    }
}

fn golden_frames() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = client_samples()
        .iter()
        .map(|(_, m)| wire::encode(m).unwrap())
        .collect();
    v.extend(
        server_samples()
            .iter()
            .map(|(_, m)| wire::encode(m).unwrap()),
    );
    v.extend(
        agent_samples()
            .iter()
            .map(|(_, m)| wire::encode(m).unwrap()),
    );
    v.extend(
        aggregator_samples()
            .iter()
            .map(|(_, m)| wire::encode(m).unwrap()),
    );
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = wire::decode::<ClientMessage>(&bytes);
        let _ = wire::decode::<ServerMessage>(&bytes);
        let _ = wire::decode::<AgentMessage>(&bytes);
        let _ = wire::decode::<AggregatorMessage>(&bytes);
        let _ = wire::frame_len(&bytes);
    }

    #[test]
    fn mutated_golden_frames_never_panic(
        which in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let frames = golden_frames();
        let mut f = frames[which.index(frames.len())].clone();
        for (at, byte) in flips {
            let i = at.index(f.len());
            f[i] ^= byte;
        }
        let _ = wire::decode::<ClientMessage>(&f);
        let _ = wire::decode::<ServerMessage>(&f);
        let _ = wire::decode::<AgentMessage>(&f);
        let _ = wire::decode::<AggregatorMessage>(&f);
        let end = cut.index(f.len() + 1);
        prop_assert!(wire::decode::<ClientMessage>(&f[..end]).is_err() || end == f.len());
    }
}
