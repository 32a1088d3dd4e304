//! Mutual TLS over QUIC on loopback: certificates from the federation's CA are accepted; one
//! from another CA, an expired one and a revoked one (after a reload, no restart) are refused
//! with an error an operator can read, while the server keeps serving the others; garbage,
//! truncated and oversized frames close only their stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;

use flock_protocol::ClientId;
use flock_protocol::wire::{ClientMessage, KeyAdvert, MAX_FRAME_BYTES, ServerMessage};
use flock_transport::endpoint::{self, Settings};
use flock_transport::pki::{Ca, CertKind, Validity};
use flock_transport::revocation::RevocationWatch;
use flock_transport::tls::{Credentials, Trust, client_config, server_config};
use flock_transport::{TransportError, frames};
use quinn::Endpoint;
use time::{Duration, OffsetDateTime};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("flock-mtls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

struct Pki {
    ca: Ca,
    out: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        let root = dir(name);
        let ca = Ca::init(&root.join("ca"), &format!("{name} CA")).unwrap();
        Pki {
            ca,
            out: root.join("certs"),
        }
    }

    fn issue(&self, name: &str, kind: CertKind, validity: Validity) -> Credentials {
        let issued = self.ca.issue(name, &kind, validity, &self.out).unwrap();
        Credentials::load(&issued.cert, &issued.key).unwrap()
    }

    fn device(&self, name: &str) -> Credentials {
        self.issue(name, CertKind::Device, Validity::days(30))
    }

    fn trust(&self, with_crl: bool) -> Trust {
        let crl = self.ca.crl_path();
        Trust::load(&self.ca.cert_path(), with_crl.then_some(crl.as_path())).unwrap()
    }
}

fn server(pki: &Pki) -> (Endpoint, SocketAddr) {
    let identity = pki.issue(
        "aggregator",
        CertKind::Server {
            names: vec!["localhost".into(), "127.0.0.1".into()],
        },
        Validity::days(30),
    );
    let tls = server_config(&identity, &pki.trust(true)).unwrap();
    let ep = endpoint::server(([127, 0, 0, 1], 0).into(), tls, &Settings::default()).unwrap();
    let addr = ep.local_addr().unwrap();
    (ep, addr)
}

fn advert(id: u64) -> ClientMessage {
    ClientMessage::Advert(KeyAdvert {
        client: ClientId(id),
        enc_pk: [1; 32],
        mask_pk: [2; 32],
        self_mask_commitment: [4; 32],
        signature: [3; 64],
    })
}

/// The server side of the tests: accepts connections forever; on each, answers every
/// well-formed client message with `Finished([id])` and reports bad streams on `errors`.
fn serve(ep: Endpoint, errors: tokio::sync::mpsc::UnboundedSender<String>) {
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let errors = errors.clone();
            tokio::spawn(async move {
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = errors.send(format!("handshake: {e}"));
                        return;
                    }
                };
                let answer = {
                    let conn = conn.clone();
                    move |msg: ClientMessage| {
                        let conn = conn.clone();
                        tokio::spawn(async move {
                            match msg {
                                ClientMessage::Advert(a) => {
                                    frames::send(&conn, &ServerMessage::Finished(vec![a.client]))
                                        .await
                                        .unwrap();
                                }
                                other => panic!("unexpected {other:?}"),
                            }
                        });
                    }
                };
                let report = move |e: TransportError| {
                    let _ = errors.send(e.to_string());
                };
                frames::read_frames(&conn, answer, report).await;
            });
        }
    });
}

async fn client(
    pki_trust: &Trust,
    identity: &Credentials,
    addr: SocketAddr,
) -> Result<quinn::Connection, TransportError> {
    let tls = client_config(identity, pki_trust).unwrap();
    let ep = endpoint::client(addr, tls, &Settings::default()).unwrap();
    endpoint::connect(&ep, addr, "localhost").await
}

/// Connects, sends an advert and waits for the answer.
async fn round_trip(
    trust: &Trust,
    identity: &Credentials,
    addr: SocketAddr,
    id: u64,
) -> Result<(), TransportError> {
    let conn = client(trust, identity, addr).await?;
    frames::send(&conn, &advert(id)).await?;
    let answer: ServerMessage = frames::recv(&conn).await?;
    assert_eq!(answer, ServerMessage::Finished(vec![ClientId(id)]));
    Ok(())
}

fn expect_refused(result: Result<(), TransportError>, alert: u8, words: &str) {
    match result {
        Err(e @ TransportError::Refused { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("TLS alert {alert}")) && text.contains(words),
                "{text}"
            );
            assert!(text.starts_with("the peer refused"), "{text}");
        }
        other => panic!("expected a refusal with alert {alert}, got {other:?}"),
    }
}

#[tokio::test]
async fn devices_of_the_ca_are_served_others_are_refused_readably() {
    let pki = Pki::new("refusals");
    let (ep, addr) = server(&pki);
    let (tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    serve(ep, tx);
    let trust = pki.trust(false);

    round_trip(&trust, &pki.device("good"), addr, 1)
        .await
        .unwrap();

    // A device of another federation.
    let stranger = Pki::new("stranger").device("intruder");
    expect_refused(
        round_trip(&trust, &stranger, addr, 2).await,
        48,
        "unknown CA",
    );

    // An expired certificate.
    let past = Validity {
        not_before: OffsetDateTime::now_utc() - Duration::days(10),
        not_after: OffsetDateTime::now_utc() - Duration::days(1),
    };
    let expired = pki.issue("expired", CertKind::Device, past);
    expect_refused(round_trip(&trust, &expired, addr, 3).await, 45, "expired");

    // The server logged both and still serves the good device.
    round_trip(&trust, &pki.device("good-2"), addr, 4)
        .await
        .unwrap();
    let logged: Vec<String> = std::iter::from_fn(|| errors.try_recv().ok()).collect();
    assert!(logged.iter().any(|e| e.contains("handshake")), "{logged:?}");
}

#[tokio::test]
async fn a_revoked_device_is_refused_after_a_reload_without_restart() {
    let pki = Pki::new("revocation");
    let identity = pki.issue(
        "aggregator",
        CertKind::Server {
            names: vec!["localhost".into()],
        },
        Validity::days(30),
    );
    let tls = server_config(&identity, &pki.trust(true)).unwrap();
    let settings = Settings::default();
    let ep = endpoint::server(([127, 0, 0, 1], 0).into(), tls, &settings).unwrap();
    let addr = ep.local_addr().unwrap();
    let (tx, _errors) = tokio::sync::mpsc::unbounded_channel();
    serve(ep.clone(), tx);
    let trust = pki.trust(false);
    let device = pki.device("laptop-7");
    round_trip(&trust, &device, addr, 1).await.unwrap();

    let mut watch = RevocationWatch::new(
        ep.clone(),
        identity,
        pki.ca.cert_path(),
        pki.ca.crl_path(),
        settings,
    );
    assert!(!watch.check().unwrap(), "nothing changed yet");
    pki.ca.revoke("laptop-7").unwrap();
    // The same endpoint takes a configuration with the new CRL, for new connections.
    assert!(watch.check().unwrap(), "the new CRL is loaded");
    assert!(!watch.check().unwrap(), "and only once");

    expect_refused(round_trip(&trust, &device, addr, 2).await, 44, "revoked");
    round_trip(&trust, &pki.device("laptop-8"), addr, 3)
        .await
        .unwrap();

    // A CRL file that does not parse is refused once and the previous list stays in force.
    std::fs::write(pki.ca.crl_path(), b"-----BEGIN X509 CRL-----\ngarbage\n").unwrap();
    assert!(watch.check().is_err());
    assert!(
        !watch.check().unwrap(),
        "the same bad content is not retried"
    );
    expect_refused(round_trip(&trust, &device, addr, 4).await, 44, "revoked");
    round_trip(&trust, &pki.device("laptop-9"), addr, 5)
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_frames_close_their_stream_not_the_connection() {
    let pki = Pki::new("frames");
    let (ep, addr) = server(&pki);
    let (tx, mut errors) = tokio::sync::mpsc::unbounded_channel();
    serve(ep, tx);
    let trust = pki.trust(false);
    let conn = client(&trust, &pki.device("fuzzer"), addr).await.unwrap();

    let good = flock_protocol::wire::encode(&advert(9)).unwrap();
    let mut oversized_header = good.clone();
    oversized_header[..4].copy_from_slice(&((MAX_FRAME_BYTES + 1) as u32).to_le_bytes());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            vec![0xde, 0xad, 0xbe, 0xef, 0x01, 0x02],
            "exceeds the limit",
        ),
        (vec![0x01, 0x02], "truncated"),
        (good[..good.len() - 3].to_vec(), "truncated"),
        ([good.clone(), vec![0]].concat(), "unexpected bytes"),
        (oversized_header, "exceeds the limit"),
        (vec![0u8; MAX_FRAME_BYTES + 64], "exceeds the frame limit"),
        (
            {
                let mut g = good.clone();
                g[4] = 9;
                g
            },
            "protocol version 9",
        ),
        (
            {
                let mut g = good.clone();
                g[5] = 0xff;
                g
            },
            "malformed client message",
        ),
    ];
    for (bytes, expected) in cases {
        // The sender sees its stream stopped (or finished), never its connection lost.
        let _ = frames::send_raw(&conn, &bytes).await;
        let err = tokio::time::timeout(std::time::Duration::from_secs(10), errors.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(err.contains(expected), "{expected:?} not in {err:?}");
    }
    // A wrong-kind message (a server message sent by a client) is malformed as a client one.
    let _ = frames::send(&conn, &ServerMessage::Aborted("x".into())).await;
    let err = errors.recv().await.unwrap();
    assert!(err.contains("malformed client message"), "{err}");

    // The same connection still carries a good message.
    frames::send(&conn, &advert(9)).await.unwrap();
    let answer: ServerMessage = frames::recv(&conn).await.unwrap();
    assert_eq!(answer, ServerMessage::Finished(vec![ClientId(9)]));
}
