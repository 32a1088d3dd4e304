//! The agent's message loop in memory against a scripted aggregator (no QUIC): a whole
//! SecAgg+ round with three simulated peers; a model file whose bytes do not hash to the
//! announced id (the round is skipped, the agent stays up); a chain that does not answer the
//! first time (asked again, the agent trains); a model that is not the chain's (refused); the
//! pledge, on disk before each binding message leaves, refusing another attempt of a round it
//! signed in (across restarts) and still taking an honest retry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flock_model::task::{TaskInfo, TrainConfig};
use flock_model::{ModelId, ModelSpec, Params, file};
use flock_protocol::session::{AgentMessage, AggregatorMessage, MODEL_CHUNK_BYTES};
use flock_protocol::wire::{ClientMessage, ServerMessage};
use flock_protocol::{
    Client, ClientId, ClientPhase, ClientPolicy, Identity, Participant, RoundConfig, Server,
    TaskId, ThreatModel,
};
use flock_transport::TransportError;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tokio::sync::mpsc;

use super::chain_side::{BoxFuture, ModelGate, RoundRoles};
use super::driver::{Driver, End, Link, Outbox, Work};
use super::input::Masker;
use super::models::ModelCache;
use super::session::Session;
use super::state::{Pledge, PledgeStage};
use super::{AgentError, AgentState, RoundReport};
use crate::data::Dataset;
use crate::train::TrainDevice;

const TASK: &str = "loop";

fn spec() -> ModelSpec {
    ModelSpec::Mlp {
        inputs: 3,
        hidden: vec![4],
        classes: 2,
    }
}

/// 40 samples, 3 features, 2 classes.
fn data() -> Dataset {
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for i in 0..40u32 {
        let label = i % 2;
        let x = i as f32 / 40.0;
        values.extend([x, label as f32 - x, 0.5]);
        labels.push(label);
    }
    Dataset::new(values, labels, 3).unwrap()
}

/// The agent's messages, for the scripted aggregator.
struct ToAggregator(mpsc::UnboundedSender<AgentMessage>);

impl Outbox for ToAggregator {
    fn send<'a>(&'a self, msg: &'a AgentMessage) -> BoxFuture<'a, Result<(), TransportError>> {
        let sent = self
            .0
            .send(msg.clone())
            .map_err(|_| TransportError::Connection("the aggregator is gone".into()));
        Box::pin(async move { sent })
    }
}

/// A chain that answers from a script: `None` for "unreachable"; every round has `roles`.
#[cfg(feature = "chain")]
struct ScriptedChain {
    models: Mutex<Vec<Option<ModelId>>>,
    roles: RoundRoles,
}

#[cfg(feature = "chain")]
impl ScriptedChain {
    /// Answers `models` in turn; the roles draw the test cohort (this agent and its three
    /// peers) from the zero seed the test rounds are derived with.
    fn new(models: Vec<Option<ModelId>>) -> Self {
        let peers = (1..=3).map(|i| Identity::from_secret_bytes(&[i; 32]).public());
        let me = Identity::from_secret_bytes(&[42; 32]).public();
        Self {
            models: Mutex::new(models),
            roles: RoundRoles {
                seed: [0; 32],
                proposers: peers.chain([me]).collect(),
            },
        }
    }
}

#[cfg(feature = "chain")]
impl ModelGate for ScriptedChain {
    fn last_accepted(&self) -> BoxFuture<'_, Result<(ModelId, u64), AgentError>> {
        let next = self.models.lock().unwrap().remove(0);
        Box::pin(async move {
            next.map(|m| (m, 0)).ok_or_else(|| {
                AgentError::Chain(flock_chain::ChainError::Unreachable("timed out".into()))
            })
        })
    }

    fn roles(&self, _round: u64) -> BoxFuture<'_, Result<RoundRoles, AgentError>> {
        let roles = self.roles.clone();
        Box::pin(async move { Ok(roles) })
    }
}

/// The aggregator's end of the link.
struct Aggregator {
    to_agent: mpsc::UnboundedSender<Result<AggregatorMessage, TransportError>>,
    from_agent: mpsc::UnboundedReceiver<AgentMessage>,
}

impl Aggregator {
    fn send(&self, msg: AggregatorMessage) {
        self.to_agent.send(Ok(msg)).unwrap();
    }

    async fn recv(&mut self) -> AgentMessage {
        tokio::time::timeout(Duration::from_secs(60), self.from_agent.recv())
            .await
            .expect("the agent answers")
            .expect("the agent is running")
    }

    fn welcome(&self, client: ClientId) {
        let info = TaskInfo {
            name: TASK.into(),
            spec: spec(),
            classes: 2,
            training: TrainConfig {
                epochs: 1,
                batch_size: 8,
                ..TrainConfig::default()
            },
            normalisation: None,
        };
        let task = serde_json::to_vec(&info).unwrap();
        self.send(AggregatorMessage::Welcome { client, task });
    }

    /// Sends `bytes` as the model file `id`.
    fn model(&self, id: ModelId, bytes: &[u8]) {
        let total = bytes.len() as u64;
        for (i, piece) in bytes.chunks(MODEL_CHUNK_BYTES).enumerate() {
            self.send(AggregatorMessage::ModelChunk {
                id: id.0,
                offset: (i * MODEL_CHUNK_BYTES) as u64,
                total,
                bytes: piece.to_vec(),
            });
        }
    }
}

/// An agent's driver on a link in memory, with the aggregator's end.
struct Rig {
    driver: Driver,
    link: Link,
    aggregator: Aggregator,
    client: ClientId,
    identity: Identity,
    dir: std::path::PathBuf,
    rounds: Arc<Mutex<Vec<RoundReport>>>,
}

fn rig(name: &str, gate: Option<Arc<dyn ModelGate>>) -> Rig {
    rig_pledged(name, gate, None)
}

/// A rig whose agent starts from a state with `pledge` in it (as after a restart).
fn rig_pledged(name: &str, gate: Option<Arc<dyn ModelGate>>, pledge: Option<Pledge>) -> Rig {
    let dir = std::env::temp_dir().join(format!("flock-loop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let identity = Identity::from_secret_bytes(&[42; 32]);
    let client = ClientId::from_identity(&identity.public());
    let state = AgentState {
        task: TASK.into(),
        pledge,
        ..AgentState::default()
    };
    let session = Session::new(
        Identity::from_secret_bytes(&[42; 32]),
        TASK,
        ClientPolicy::default(),
        state,
        Masker::Cpu,
    );
    let work = Work {
        cache: ModelCache::new(&dir),
        device: TrainDevice::cpu(),
        source: Arc::new(data()),
        val_fraction: 0.2,
        state_dir: dir.clone(),
        gate,
    };
    let rounds = Arc::new(Mutex::new(Vec::new()));
    let seen = rounds.clone();
    let on_round = Box::new(move |r: &RoundReport| seen.lock().unwrap().push(r.clone()));
    let driver = Driver::new(session, work, None, Some(on_round));
    let (to_agent, inbox) = mpsc::unbounded_channel();
    let (out, from_agent) = mpsc::unbounded_channel();
    Rig {
        driver,
        link: Link {
            out: Arc::new(ToAggregator(out)),
            inbox,
        },
        aggregator: Aggregator {
            to_agent,
            from_agent,
        },
        client,
        identity,
        dir,
        rounds,
    }
}

type Running = tokio::task::JoinHandle<(Driver, Result<End, AgentError>)>;

/// Starts the driver; the aggregator's end and the rig's other parts come back.
fn start(rig: Rig) -> (Running, Aggregator, Rig2) {
    let Rig {
        mut driver,
        mut link,
        aggregator,
        client,
        identity,
        dir,
        rounds,
    } = rig;
    let task = tokio::spawn(async move {
        let r = driver.serve(&mut link).await;
        (driver, r)
    });
    let rest = Rig2 {
        client,
        identity,
        dir,
        rounds,
    };
    (task, aggregator, rest)
}

struct Rig2 {
    client: ClientId,
    identity: Identity,
    dir: std::path::PathBuf,
    rounds: Arc<Mutex<Vec<RoundReport>>>,
}

/// Attempt `attempt` of round 1 for `participants`, derived as an aggregator would.
fn round_config(participants: Vec<Participant>, attempt: u64) -> RoundConfig {
    let len = flock_model::contribution::vector_len(Params::init(&spec(), 1).unwrap().len());
    let threat = ThreatModel::default();
    RoundConfig::derive(
        TaskId::from_name(TASK),
        1,
        attempt,
        participants,
        threat,
        [0; 32],
        len as u32,
        2.0,
        30_000,
    )
    .unwrap()
}

async fn says_hello(aggregator: &mut Aggregator) {
    match aggregator.recv().await {
        AgentMessage::Hello { task, last_round } => {
            assert_eq!(task, TaskId::from_name(TASK));
            assert_eq!(last_round, None);
        }
        other => panic!("expected Hello, got {other:?}"),
    }
}

async fn fetches(aggregator: &mut Aggregator, id: ModelId) {
    match aggregator.recv().await {
        AgentMessage::FetchModel { id: asked } => assert_eq!(ModelId(asked), id),
        other => panic!("expected FetchModel, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_against_a_scripted_aggregator() {
    let (running, mut agg, rest) = start(rig("round", None));
    says_hello(&mut agg).await;
    agg.welcome(rest.client);
    let global = Params::init(&spec(), 1).unwrap();
    let (bytes, id) = file::encode(&global).unwrap();
    // Three peers played by the protocol's own clients.
    let (peers, participants) = cohort(&rest);
    let config = round_config(participants, 0);
    let now = Instant::now();
    let mut server = Server::new(config.clone(), now).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut sims: Vec<(ClientId, Client)> = peers
        .iter()
        .map(|p| {
            let id = ClientId::from_identity(&p.public());
            (
                id,
                Client::new(
                    config.clone(),
                    id,
                    p,
                    &ClientPolicy::default(),
                    &[0; 32],
                    &mut rng,
                    now,
                )
                .unwrap(),
            )
        })
        .collect();
    agg.send(AggregatorMessage::Round {
        attempt: 7,
        config: config.clone(),
        model: id.0,
        sample_cap: 100,
    });
    fetches(&mut agg, id).await;
    agg.model(id, &bytes);
    // Route every SecAgg+ message until the server has its outcome.
    let outcome = loop {
        let mut idle = true;
        for (sid, c) in &mut sims {
            if c.phase() == ClientPhase::AwaitingInput {
                c.submit_input(vec![0; config.vector_len as usize]).unwrap();
            }
            while let Some(m) = c.poll_transmit() {
                idle = false;
                let _ = server.handle(*sid, m, Instant::now());
            }
        }
        while let Some((to, m)) = server.poll_transmit() {
            idle = false;
            // The configuration travels in `Round` (as the aggregator sends it).
            if matches!(m, ServerMessage::Start(_)) {
                continue;
            }
            if to == rest.client {
                agg.send(AggregatorMessage::Secagg { attempt: 7, msg: m });
            } else if let Some((_, c)) = sims.iter_mut().find(|(s, _)| *s == to) {
                let _ = c.handle(m, Instant::now());
            }
        }
        if let Some(out) = server.take_outcome() {
            break out.unwrap();
        }
        if idle {
            match agg.recv().await {
                AgentMessage::Secagg { attempt, msg } => {
                    assert_eq!(attempt, 7, "tagged with the round's attempt");
                    // What the message gives away was on disk before it left.
                    let binds = match &msg {
                        ClientMessage::MaskedChunk(_) => Some(PledgeStage::Input),
                        ClientMessage::Survivors(_) => Some(PledgeStage::Signed),
                        ClientMessage::Unmask(_) => Some(PledgeStage::Revealed),
                        ClientMessage::Advert(_) | ClientMessage::Shares(_) => None,
                    };
                    if let Some(stage) = binds {
                        let saved = AgentState::load(&rest.dir).unwrap().pledge.unwrap();
                        assert!(saved.stage >= stage, "{saved:?} before {msg:?} left");
                        assert_eq!((saved.round, saved.attempt), (1, 0));
                    }
                    let _ = server.handle(rest.client, msg, Instant::now());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    assert!(
        outcome.contributors.contains(&rest.client),
        "the agent's input is in the sum"
    );
    let next = ModelId([9; 32]);
    agg.send(AggregatorMessage::RoundDone {
        round: 1,
        model: next.0,
        contributors: outcome.contributors.clone(),
        last: true,
    });
    let (driver, ended) = running.await.unwrap();
    assert_eq!(ended.unwrap(), End::Completed);
    let state = driver.session.state();
    assert_eq!(state.last_round, Some(1));
    assert_eq!(state.contributed, 1);
    assert_eq!(state.model, Some(next.to_string()));
    let saved = AgentState::load(&rest.dir).unwrap();
    assert_eq!(saved, *state, "the state is on disk");
    assert_eq!(
        saved.pledge,
        Some(Pledge {
            round: 1,
            attempt: 0,
            model: id.to_string(),
            stage: PledgeStage::Revealed,
        })
    );
    assert!(
        ModelCache::new(&rest.dir).get(&id).is_some(),
        "the model is kept"
    );
    let rounds = rest.rounds.lock().unwrap();
    assert_eq!(rounds.len(), 1);
    assert!(rounds[0].contributed && rounds[0].samples > 0);
}

/// Tells the agent the task is complete (its last model `id`) and waits for it to end so.
async fn completes(agg: &Aggregator, running: Running, id: ModelId) {
    agg.send(AggregatorMessage::TaskComplete {
        round: 1,
        model: id.0,
    });
    let (_, ended) = running.await.unwrap();
    assert_eq!(ended.unwrap(), End::Completed);
}

/// Waits (bounded) until the agent has saved a refusal; returns it.
async fn refusal_saved(dir: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = AgentState::load(dir).ok().and_then(|s| s.last_refusal) {
            return r;
        }
        assert!(Instant::now() < deadline, "no refusal was saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three peers' identities, and the cohort of them and this agent.
fn cohort(rest: &Rig2) -> (Vec<Identity>, Vec<Participant>) {
    let peers: Vec<Identity> = (1..=3)
        .map(|i| Identity::from_secret_bytes(&[i; 32]))
        .collect();
    let participants = peers
        .iter()
        .map(|p| (ClientId::from_identity(&p.public()), p.public()))
        .chain([(rest.client, rest.identity.public())])
        .map(|(id, identity)| Participant { id, identity })
        .collect();
    (peers, participants)
}

/// Plays welcome and a round of this agent and 3 others announcing `id`.
fn announce(agg: &Aggregator, rest: &Rig2, id: ModelId) {
    announce_attempt(agg, rest, id, 0);
}

/// Plays welcome and attempt `attempt` of round 1 of this agent and 3 others from `id`.
fn announce_attempt(agg: &Aggregator, rest: &Rig2, id: ModelId, attempt: u64) {
    agg.welcome(rest.client);
    let (_, participants) = cohort(rest);
    agg.send(AggregatorMessage::Round {
        attempt: 1,
        config: round_config(participants, attempt),
        model: id.0,
        sample_cap: 100,
    });
}

/// An attempt of round 1 from `id` to an agent restarted with `pledge`: the refusal it saves
/// (having sent nothing), or `None` if it trained and sent its advert.
async fn after_restart(name: &str, pledge: Pledge, attempt: u64, id: ModelId) -> Option<String> {
    let (bytes, real) = file::encode(&Params::init(&spec(), 1).unwrap()).unwrap();
    let (running, mut agg, rest) = start(rig_pledged(name, None, Some(pledge)));
    says_hello(&mut agg).await;
    announce_attempt(&agg, &rest, id, attempt);
    let refusal = if id == real {
        fetches(&mut agg, id).await;
        agg.model(id, &bytes);
        match agg.recv().await {
            AgentMessage::Secagg {
                msg: ClientMessage::Advert(a),
                ..
            } => {
                assert_eq!(a.client, rest.client);
                None
            }
            other => panic!("expected the advert, got {other:?}"),
        }
    } else {
        Some(refusal_saved(&rest.dir).await)
    };
    completes(&agg, running, id).await;
    if refusal.is_some() {
        assert!(
            agg.from_agent.try_recv().is_err(),
            "no FetchModel, no SecAgg+"
        );
    }
    refusal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_signed_or_revealed_in_one_attempt_takes_part_in_no_other() {
    let (_, id) = file::encode(&Params::init(&spec(), 1).unwrap()).unwrap();
    let pledge = |stage| Pledge {
        round: 1,
        attempt: 0,
        model: id.to_string(),
        stage,
    };
    // Attempt differencing: the same round again after the device revealed or signed.
    for (name, stage, attempt) in [
        ("revealed-again", PledgeStage::Revealed, 1),
        ("signed-again", PledgeStage::Signed, 1),
        ("signed-same", PledgeStage::Signed, 0),
    ] {
        let refusal = after_restart(name, pledge(stage), attempt, ModelId([7; 32]))
            .await
            .expect("refused");
        assert!(refusal.contains("attempt 0 of round 1"), "{refusal}");
    }
    // An older round than one it sent an input for.
    let later = Pledge {
        round: 2,
        ..pledge(PledgeStage::Input)
    };
    let refusal = after_restart("older", later, 0, ModelId([7; 32])).await;
    assert!(refusal.unwrap().contains("round 2, a later round"));
    // The same round from another model than the one its input was trained from.
    let refusal = after_restart(
        "other-model",
        pledge(PledgeStage::Input),
        1,
        ModelId([7; 32]),
    );
    assert!(refusal.await.unwrap().contains("from model"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_retry_after_an_abort_before_the_survivor_list_still_counts_on_the_device() {
    let (_, id) = file::encode(&Params::init(&spec(), 1).unwrap()).unwrap();
    let pledge = Pledge {
        round: 1,
        attempt: 0,
        model: id.to_string(),
        stage: PledgeStage::Input,
    };
    assert_eq!(after_restart("retry", pledge, 1, id).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_whose_bytes_do_not_hash_to_its_id_is_refused_and_the_agent_stays_up() {
    let (running, mut agg, rest) = start(rig("tampered", None));
    says_hello(&mut agg).await;
    let (mut bytes, id) = file::encode(&Params::init(&spec(), 1).unwrap()).unwrap();
    announce(&agg, &rest, id);
    fetches(&mut agg, id).await;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    agg.model(id, &bytes);
    let refusal = refusal_saved(&rest.dir).await;
    assert!(refusal.contains("hash"), "{refusal}");
    // The agent trains nothing and sends nothing for the round; it still serves the session.
    completes(&agg, running, id).await;
    assert!(
        agg.from_agent.try_recv().is_err(),
        "no SecAgg+ message was sent"
    );
    assert!(
        ModelCache::new(&rest.dir).get(&id).is_none(),
        "nothing was kept"
    );
}

#[cfg(feature = "chain")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_that_does_not_answer_at_first_is_asked_again_and_the_agent_trains() {
    let (bytes, id) = file::encode(&Params::init(&spec(), 1).unwrap()).unwrap();
    let chain = Arc::new(ScriptedChain::new(vec![None, Some(id)]));
    let (running, mut agg, rest) = start(rig("transient", Some(chain.clone())));
    says_hello(&mut agg).await;
    announce(&agg, &rest, id);
    fetches(&mut agg, id).await;
    assert!(
        chain.models.lock().unwrap().is_empty(),
        "asked twice before fetching"
    );
    agg.model(id, &bytes);
    // Trained: the round's first SecAgg+ message, the key advert, arrives.
    match agg.recv().await {
        AgentMessage::Secagg {
            attempt: 1,
            msg: ClientMessage::Advert(a),
        } => assert_eq!(a.client, rest.client),
        other => panic!("expected the advert, got {other:?}"),
    }
    completes(&agg, running, id).await;
}

#[cfg(feature = "chain")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_is_not_the_chains_is_not_even_fetched() {
    let (_, id) = file::encode(&Params::init(&spec(), 1).unwrap()).unwrap();
    let chain = Arc::new(ScriptedChain::new(vec![Some(ModelId([3; 32]))]));
    let (running, mut agg, rest) = start(rig("not-the-chains", Some(chain)));
    says_hello(&mut agg).await;
    announce(&agg, &rest, id);
    let refusal = refusal_saved(&rest.dir).await;
    assert!(refusal.contains("last accepted"), "{refusal}");
    completes(&agg, running, id).await;
    assert!(
        agg.from_agent.try_recv().is_err(),
        "no FetchModel, no SecAgg+"
    );
}

/// A round on chain whose roles are `change`d from the test cohort's: the refusal saved.
#[cfg(feature = "chain")]
async fn refused_on_chain(name: &str, change: impl FnOnce(&mut RoundRoles)) -> String {
    let (_, id) = file::encode(&Params::init(&spec(), 1).unwrap()).unwrap();
    let mut chain = ScriptedChain::new(vec![Some(id)]);
    change(&mut chain.roles);
    let (running, mut agg, rest) = start(rig(name, Some(Arc::new(chain))));
    says_hello(&mut agg).await;
    announce(&agg, &rest, id);
    let refusal = refusal_saved(&rest.dir).await;
    completes(&agg, running, id).await;
    assert!(
        agg.from_agent.try_recv().is_err(),
        "no FetchModel, no SecAgg+"
    );
    refusal
}

#[cfg(feature = "chain")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_chain_a_cohort_that_is_not_the_drawn_proposers_or_another_seed_is_refused() {
    // A participant the chain did not draw (the aggregator's colluder, say).
    let refusal = refused_on_chain("not-drawn", |r| {
        r.proposers.remove(0);
    })
    .await;
    assert!(refusal.contains("is not one of its proposers"), "{refusal}");
    // This device is not a proposer of the round.
    let refusal = refused_on_chain("not-me", |r| {
        r.proposers.pop();
    })
    .await;
    assert!(refusal.contains("not a drawn proposer"), "{refusal}");
    // The graph seed was not derived from the chain's seed.
    let refusal = refused_on_chain("other-seed", |r| r.seed = [9; 32]).await;
    assert!(refusal.contains("seed"), "{refusal}");
}
