//! One demo run from start to end, in order: check the options, load the data, make the run
//! directory ([`crate::setup`]), start the chain and create the task ([`crate::chain`]), write
//! the configs, start the baseline ([`crate::baseline`]), start the agents and wait for their
//! stakes, start the aggregator and follow the task to its end ([`crate::watch`]), stop every
//! process, build the report ([`crate::collect`]), write its files and print its table. The
//! exit status says whether the run learned (final accuracy at the threshold), whether the
//! final model is the chain's, and whether every round was finalised.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flock_aggregator::store::ModelStore;
use flock_chain::roles::proposer_count;
use flock_model::Params;

use crate::baseline::{self, BaselineInput};
use crate::chain;
use crate::cli::RunArgs;
use crate::collect::{self, Settings, Sources};
use crate::dataset::{self, DataChoice};
use crate::processes::{Kind, Proc, Processes};
use crate::progress::Progress;
use crate::setup::{self, ChainRefs, STAKE_FLOCK, agent_name};
use crate::watch::{Drops, Watch};
use flock_demo::report::{self, RunReport, table};

/// How long agents get to leave on their own once the aggregator is done.
const AGENTS_LEAVE: Duration = Duration::from_secs(10);

/// Runs the demo; the exit status is the verdict.
pub(crate) fn main(args: &RunArgs) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let choice = dataset::resolve(&args.dataset, args.label.as_deref())?;
    let root = run_dir(args.out.as_deref())?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(args, &choice, &root))
}

async fn run(args: &RunArgs, choice: &DataChoice, root: &Path) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let n = args.agents;
    let rounds = u64::from(args.rounds);
    let loaded = dataset::load(choice)?;
    println!(
        "flock-demo: {n} agents, {rounds} rounds on {} ({} samples, {} features, {} classes), \
         Dirichlet alpha {}",
        choice.name,
        loaded.data.len(),
        loaded.data.features(),
        loaded.classes,
        args.alpha
    );
    println!("run directory {}", root.display());
    let prep = setup::prepare(root, n, choice, &loaded, args.alpha, args.seed)?;
    let initial = Params::init(&prep.spec, args.seed)?;
    let (_, initial_id) = flock_model::file::encode(&initial)?;

    if args.chain.is_none() {
        chain::ensure_anvil(|m| println!("{m}"))?;
    }
    let chain = chain::start(
        args.chain.as_deref(),
        root,
        n,
        args.rounds,
        &prep.spec,
        initial_id,
    )
    .await?;
    let proposers = proposer_count(n, chain::proposer_share_bps(n));
    println!(
        "chain {} (anvil): task {}; each round draws {proposers} of the {n} agents as proposers, \
         the others vote",
        chain.devnet.url(),
        chain.task,
    );
    let rpc = chain.devnet.url();
    let refs = ChainRefs {
        rpc: &rpc,
        task: chain.task,
        accounts: &chain.agents,
    };
    let configs = setup::write_configs(&prep, &refs, args.rounds, args.seed, args.backend())?;

    let baseline = baseline::spawn(BaselineInput {
        train: prep.pooled_train.clone(),
        test: prep.pooled_test.clone(),
        initial: initial.clone(),
        training: configs.config.training.clone(),
        rounds,
    });

    let names: Vec<String> = (0..n).map(agent_name).collect();
    let mut procs = Processes {
        aggregator: Proc::new(root, "aggregator", Kind::Aggregator, &configs.aggregator),
        agents: names
            .iter()
            .zip(&configs.agents)
            .map(|(name, config)| Proc::new(root, name, Kind::Agent, config))
            .collect(),
    };
    println!(
        "starting {n} agents and the aggregator (separate processes, QUIC on loopback); logs in {}",
        root.join("logs").display()
    );
    let progress = Progress::new(rounds, &names);
    let mut watch = Watch::new(
        &chain.reader,
        &chain.agents,
        &mut procs,
        &progress,
        rounds,
        Drops {
            rate: args.drop_rate,
            asked: args.drops.clone(),
            seed: args.seed,
        },
    );
    let followed = match watch.start_agents().await {
        Ok(()) => watch.follow().await,
        Err(e) => Err(e),
    };
    progress.finish();
    let watched = followed?;
    let leave_by = Instant::now() + AGENTS_LEAVE;
    while Instant::now() < leave_by
        && procs
            .agents
            .iter_mut()
            .any(|p| p.poll().is_none() && p.is_running())
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    procs.stop_all();

    let centralised = match baseline.join() {
        Ok(Ok(accuracy)) => accuracy,
        Ok(Err(e)) => {
            println!("the centralised baseline failed: {e:#}");
            Vec::new()
        }
        Err(_) => {
            println!("the centralised baseline failed (it panicked)");
            Vec::new()
        }
    };
    let backend = agents_backend(&procs.agents[0].log)
        .unwrap_or_else(|| format!("{:?}", args.backend()).to_lowercase());
    println!("collecting the report from the chain and the aggregator's model store");
    let store = ModelStore::open_at(&configs.config.server.store)?;
    let sources = Sources {
        chain: &chain.reader,
        accounts: &chain.agents,
        names: &names,
        store: &store,
        task_name: &prep.task_name,
        initial: &initial,
        test: &prep.pooled_test,
        dropped: &watched.dropped,
        stake_start: STAKE_FLOCK as f64,
    };
    let settings = Settings {
        dataset: choice.name.clone(),
        rounds,
        alpha: args.alpha,
        backend,
        threshold: args.threshold.unwrap_or(choice.default_threshold),
        centralised,
        started,
    };
    let report = collect::build(&sources, settings).await?;
    report::write_all(root, &report)?;
    println!();
    print!("{}", table::render(&report));
    println!(
        "\nfiles: {} (rounds.json, metrics.csv, report.txt, accuracy.png, phases.png, stakes.png; logs/)",
        root.display()
    );
    Ok(verdict(&report))
}

/// The backend agent 0 trained on, from its log (`training device selected backend=…`).
fn agents_backend(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .find(|l| l.contains("training device selected"))?;
    let (_, backend) = line.split_once("backend=")?;
    Some(backend.trim().to_owned())
}

/// Exit status 0 if every planned round was finalised, the run learned and the final model is
/// the chain's; else 1, saying why.
fn verdict(report: &RunReport) -> ExitCode {
    let mut problems = Vec::new();
    let finalised = report
        .rounds
        .iter()
        .filter(|r| r.outcome != "pending")
        .count();
    if finalised as u64 != report.rounds_planned {
        problems.push(format!(
            "{finalised} of {} rounds were finalised",
            report.rounds_planned
        ));
    }
    if !report.learned() {
        problems.push(format!(
            "final accuracy {:.4} is below the threshold {}",
            report.final_accuracy, report.accuracy_threshold
        ));
    }
    if !report.hash_matches_chain() {
        problems.push(format!(
            "the aggregator's final model {} is not the chain's {}",
            report.final_model_hash, report.chain_final_model_hash
        ));
    }
    if problems.is_empty() {
        println!("result: ok ({:.0} s)", report.seconds_total);
        ExitCode::SUCCESS
    } else {
        println!("result: FAILED: {}", problems.join("; "));
        ExitCode::FAILURE
    }
}

/// `--out`, or `runs/<UTC timestamp>`; created, and refused if it holds files already.
fn run_dir(out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match out {
        Some(d) => d.to_path_buf(),
        None => {
            let t = time::OffsetDateTime::now_utc();
            PathBuf::from("runs").join(format!(
                "{:04}{:02}{:02}-{:02}{:02}{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::path::absolute(&dir)?;
    if std::fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{} is not empty: a run directory must be new (choose another --out)",
            dir.display()
        );
    }
    Ok(dir)
}
