//! Wall time of one aggregation round over loopback QUIC with mutual TLS, SecAgg+ against a
//! plain sum of the same quantised vectors, in one run.
//!
//! Every client is a task in this process with its own QUIC endpoint and certificate. The
//! SecAgg+ round is the protocol's client and server state machines with frames on QUIC streams
//! (adverts, shares, masked input in 64 Ki-word chunks, unmasking); the plain round sends the
//! same vectors unmasked in the same chunks and the server sums them. The clock starts when
//! every client is connected and the server sends the first message, and stops when the sum is
//! out. Clients and server share this machine's cores: on a real deployment each client's
//! masking runs on its own device, so the figure overstates the round's wall time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use flock_protocol::wire::{ClientMessage, MaskedChunk, ServerMessage, words_to_bytes};
use flock_protocol::{
    Client, ClientId, ClientPhase, ClientPolicy, Identity, Participant, RoundConfig, Server,
    TaskId, ThreatModel,
};
use flock_transport::endpoint::{self, Settings};
use flock_transport::frames;
use flock_transport::pki::{Ca, CertKind, Validity};
use flock_transport::tls::{Credentials, Trust, client_config, server_config};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tokio::sync::mpsc;

struct Pki {
    server: Credentials,
    trust: Trust,
    devices: Vec<(Credentials, [u8; 32])>,
}

fn pki(n: usize) -> anyhow::Result<Pki> {
    let root = std::env::temp_dir().join(format!("flock-round-bench-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let ca = Ca::init(&root.join("ca"), "bench CA")?;
    let out = root.join("certs");
    let s = ca.issue(
        "aggregator",
        &CertKind::Server {
            names: vec!["localhost".into()],
        },
        Validity::days(1),
        &out,
    )?;
    let mut devices = Vec::new();
    for i in 0..n {
        let d = ca.issue(&format!("d{i}"), &CertKind::Device, Validity::days(1), &out)?;
        let key = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(&d.key)?)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        devices.push((Credentials::load(&d.cert, &d.key)?, key.to_bytes()));
    }
    Ok(Pki {
        server: Credentials::load(&s.cert, &s.key)?,
        trust: Trust::load(&ca.cert_path(), Some(&ca.crl_path()))?,
        devices,
    })
}

fn input(i: usize, d: usize, bits: u32) -> Vec<u32> {
    let max = if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    (0..d)
        .map(|j| ((i * 7919 + j * 104_729) as u32) & max)
        .collect()
}

/// One round's figures.
struct Round {
    /// Wall time from the first server message to the sum.
    wall: f64,
    /// The sum.
    sum: Vec<u32>,
    /// Time in the server's state machine (or, plain, in its summing), on the loop's thread.
    server_cpu: f64,
    /// Time in the clients' state machines, summed over clients.
    clients_cpu: f64,
    /// The largest one client spent.
    slowest_client: f64,
    /// Neighbours per client (SecAgg+).
    degree: u32,
}

/// Runs `f`, adding its duration to `acc`.
fn timed<T>(acc: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    *acc += t.elapsed();
    out
}

/// Runs one round.
async fn round(pki: &Pki, d: usize, secure: bool) -> anyhow::Result<Round> {
    let n = pki.devices.len();
    let settings = Settings::default();
    let ep = endpoint::server(
        ([127, 0, 0, 1], 0).into(),
        server_config(&pki.server, &pki.trust)?,
        &settings,
    )?;
    let addr: SocketAddr = ep.local_addr()?;
    // Connect everyone first (the server accepts while the clients connect).
    let accept_ep = ep.clone();
    let accepting = tokio::spawn(async move {
        let mut side = BTreeMap::new();
        for _ in 0..n {
            let conn = accept_ep
                .accept()
                .await
                .ok_or_else(|| anyhow::anyhow!("endpoint closed"))?
                .await?;
            let key = endpoint::peer_ed25519(&conn)?;
            side.insert(ClientId::from_identity(&key), conn);
        }
        anyhow::Ok(side)
    });
    let mut clients = Vec::new();
    for (creds, secret) in &pki.devices {
        let public = Identity::from_secret_bytes(secret).public();
        let cep = endpoint::client(addr, client_config(creds, &pki.trust)?, &settings)?;
        let conn = endpoint::connect(&cep, addr, "localhost").await?;
        clients.push((cep, conn, ClientId::from_identity(&public), public, *secret));
    }
    let server_side = accepting.await??;
    let participants: Vec<Participant> = clients
        .iter()
        .map(|(_, _, id, pk, _)| Participant {
            id: *id,
            identity: *pk,
        })
        .collect();
    let config = RoundConfig::derive(
        TaskId([1; 32]),
        1,
        0,
        participants,
        ThreatModel::default(),
        [2; 32],
        d as u32,
        1.0,
        120_000,
    )?;
    let bits = config.bits;
    let degree = config.degree;

    // Server: every stream becomes an event.
    let (tx, mut rx) = mpsc::unbounded_channel::<(ClientId, ClientMessage)>();
    for (id, conn) in &server_side {
        let (id, conn, tx) = (*id, conn.clone(), tx.clone());
        tokio::spawn(async move {
            let deliver = move |msg: ClientMessage| {
                let _ = tx.send((id, msg));
            };
            frames::read_frames(&conn, deliver, |_| {}).await
        });
    }
    // Clients.
    let mut tasks = Vec::new();
    for (i, (cep, conn, id, _, secret)) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let _endpoint = cep;
            let mut cpu = Duration::ZERO;
            let identity = Identity::from_secret_bytes(&secret);
            let q = input(i, d, bits);
            if !secure {
                for (c, words) in q.chunks(flock_protocol::wire::CHUNK_WORDS).enumerate() {
                    let msg = ClientMessage::MaskedChunk(MaskedChunk {
                        client: id,
                        offset: (c * flock_protocol::wire::CHUNK_WORDS) as u32,
                        total: d as u32,
                        words: words_to_bytes(words),
                        refusals: Vec::new(),
                    });
                    frames::send(&conn, &msg).await?;
                }
                return anyhow::Ok(cpu);
            }
            let mut client: Option<Client> = None;
            let mut input = Some(q);
            let mut rng = ChaCha20Rng::seed_from_u64(i as u64);
            let (tx, mut inbox) = mpsc::unbounded_channel::<ServerMessage>();
            let reader = conn.clone();
            tokio::spawn(async move {
                let deliver = move |msg| {
                    let _ = tx.send(msg);
                };
                frames::read_frames(&reader, deliver, |_| {}).await
            });
            loop {
                let Some(msg) = inbox.recv().await else {
                    return Ok(cpu);
                };
                match (&mut client, msg) {
                    (_, ServerMessage::Start(c)) => {
                        client = Some(timed(&mut cpu, || {
                            Client::new(
                                c,
                                id,
                                &identity,
                                &ClientPolicy::default(),
                                &[2; 32],
                                &mut rng,
                                Instant::now(),
                            )
                        })?);
                    }
                    (Some(_), ServerMessage::Finished(_)) => return Ok(cpu),
                    (Some(c), msg) => {
                        timed(&mut cpu, || {
                            c.handle(msg, Instant::now())?;
                            if c.phase() == ClientPhase::AwaitingInput
                                && let Some(q) = input.take()
                            {
                                c.submit_input(q)?;
                            }
                            anyhow::Ok(())
                        })?;
                    }
                    (None, _) => {}
                }
                if let Some(c) = &mut client {
                    while let Some(m) = timed(&mut cpu, || c.poll_transmit()) {
                        frames::send(&conn, &m).await?;
                    }
                }
            }
        }));
    }

    let start = Instant::now();
    let mut server_cpu = Duration::ZERO;
    let sum = if secure {
        let mut server = timed(&mut server_cpu, || Server::new(config, Instant::now()))?;
        loop {
            while let Some((to, msg)) = timed(&mut server_cpu, || server.poll_transmit()) {
                if let Some(conn) = server_side.get(&to) {
                    let conn = conn.clone();
                    tokio::spawn(async move { frames::send(&conn, &msg).await });
                }
            }
            if let Some(out) = timed(&mut server_cpu, || server.take_outcome()) {
                break out?.sum;
            }
            let (from, msg) = rx
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("clients gone"))?;
            let _ = timed(&mut server_cpu, || server.handle(from, msg, Instant::now()));
        }
    } else {
        let mut sum = vec![0u32; d];
        let mut buffers: BTreeMap<ClientId, (Vec<u32>, usize)> = BTreeMap::new();
        let mut done = 0;
        while done < n {
            let (from, msg) = rx
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("clients gone"))?;
            if let ClientMessage::MaskedChunk(c) = msg {
                let t = Instant::now();
                let (buf, got) = buffers.entry(from).or_insert_with(|| (vec![0u32; d], 0));
                for (k, w) in c.words.chunks_exact(4).enumerate() {
                    buf[c.offset as usize + k] = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                }
                *got += c.words.len() / 4;
                if *got == d {
                    edge_kernels::add_assign_mod(&mut sum, buf)?;
                    buffers.remove(&from);
                    done += 1;
                }
                server_cpu += t.elapsed();
            }
        }
        sum
    };
    let wall = start.elapsed().as_secs_f64();
    let (mut clients_cpu, mut slowest_client) = (0.0f64, 0.0f64);
    for t in tasks {
        let cpu = t.await??.as_secs_f64();
        clients_cpu += cpu;
        slowest_client = slowest_client.max(cpu);
    }
    ep.close(0u32.into(), b"done");
    Ok(Round {
        wall,
        sum,
        server_cpu: server_cpu.as_secs_f64(),
        clients_cpu,
        slowest_client,
        degree,
    })
}

/// The SecAgg+ and plain rounds for every `n` in `ns` and `d` in `ds`, as a Markdown table.
pub(crate) fn table(ns: &[usize], ds: &[usize]) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut out = String::from(
        "| clients | d | k | SecAgg+ s | plain s | SecAgg+ / plain | sums equal | \
         server SecAgg+ s | server plain s | clients Σ s | slowest client s | \
         deployment estimate s | estimate / plain |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for &n in ns {
        let pki = pki(n)?;
        for &d in ds {
            let plain = rt.block_on(round(&pki, d, false))?;
            let secure = rt.block_on(round(&pki, d, true))?;
            // On a deployment every client computes on its own device, in parallel: the
            // round costs the plain round's transfers, plus the slowest client's compute, plus
            // the server's extra compute.
            let estimate = plain.wall
                + secure.slowest_client
                + (secure.server_cpu - plain.server_cpu).max(0.0);
            let row = format!(
                "| {n} | {d} | {} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {:.2} | {:.3} | {:.2} | {:.2} |\n",
                secure.degree,
                secure.wall,
                plain.wall,
                secure.wall / plain.wall,
                secure.sum == plain.sum,
                secure.server_cpu,
                plain.server_cpu,
                secure.clients_cpu,
                secure.slowest_client,
                estimate,
                estimate / plain.wall,
            );
            eprint!("{row}");
            out.push_str(&row);
        }
    }
    Ok(out)
}
