//! `flock-agent train-local` and `flock-agent evaluate`: train on one CSV without a
//! federation, and evaluate a model file on a CSV, with a progress bar per epoch and a metrics
//! table.
//!
//! `train-local` writes the model (safetensors) and, beside it, a run card (`<model>.json`):
//! the model id, the spec, the backend, the standardisation fitted on the training split and
//! the validation metrics. `evaluate` standardises with the card's statistics when it finds
//! one, so that a model is judged on data scaled as it was trained.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use flock_agent::data::{CsvSource, DataSource, Dataset, Standardizer, split};
use flock_agent::train::{
    BackendChoice, EpochReport, OptimizerKind, TrainConfig, TrainDevice, evaluate, train_local,
};
use flock_model::metrics::Evaluation;
use flock_model::{ModelId, ModelSpec, Params, file};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

/// Where the samples are.
#[derive(clap::Args)]
pub(crate) struct DataArgs {
    /// CSV file with a header row, numeric features and an integer label column.
    #[arg(long)]
    data: PathBuf,
    /// The label column.
    #[arg(long, default_value = "label")]
    label: String,
    /// Number of classes (labels are 0..classes); by default the largest label + 1.
    #[arg(long)]
    classes: Option<usize>,
    /// Train on the GPU (wgpu), the CPU, or the GPU when one exists.
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
}

/// The model architecture to train.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Arch {
    /// A multilayer perceptron (`--hidden`).
    Mlp,
    /// The small CNN for square one-channel images (8×8 digits).
    Cnn,
}

/// The optimiser.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Optim {
    Adam,
    Sgd,
}

/// Arguments of `flock-agent train-local`.
#[derive(clap::Args)]
pub(crate) struct TrainLocalArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Model architecture.
    #[arg(long, value_enum, default_value = "mlp")]
    model: Arch,
    /// Hidden layer widths of the MLP, comma-separated (empty: logistic regression).
    #[arg(long, value_delimiter = ',', default_value = "32")]
    hidden: Vec<usize>,
    /// Passes over the training split.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.003)]
    lr: f64,
    /// Optimiser.
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: Optim,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// FedProx μ (0: off).
    #[arg(long, default_value_t = 0.0)]
    prox_mu: f64,
    /// Fraction of the data held out for validation.
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Seed of the split, the initial model and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the model.
    #[arg(long, default_value = "model.safetensors")]
    out: PathBuf,
}

/// Arguments of `flock-agent evaluate`.
#[derive(clap::Args)]
pub(crate) struct EvaluateArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// Run card whose standardisation to apply; by default `<model>.json` when it exists,
    /// otherwise the data is standardised on itself.
    #[arg(long)]
    card: Option<PathBuf>,
}

/// What `train-local` records beside the model.
#[derive(Serialize, Deserialize)]
struct RunCard {
    model_id: ModelId,
    spec: ModelSpec,
    backend: String,
    data: PathBuf,
    train_samples: usize,
    standardizer: Standardizer,
    val_fraction: f64,
    seed: u64,
    validation: Option<Evaluation>,
}

fn load(args: &DataArgs) -> anyhow::Result<(Dataset, usize)> {
    let source = CsvSource::new(&args.data, &args.label);
    let classes = match args.classes {
        Some(c) => c,
        None => {
            let all = source.load(u32::MAX as usize)?;
            all.labels()
                .iter()
                .max()
                .map_or(2, |&m| (m as usize + 1).max(2))
        }
    };
    Ok((source.load(classes)?, classes))
}

fn spec(args: &TrainLocalArgs, features: usize, classes: usize) -> anyhow::Result<ModelSpec> {
    Ok(match args.model {
        Arch::Mlp => ModelSpec::Mlp {
            inputs: features,
            hidden: args.hidden.clone(),
            classes,
        },
        Arch::Cnn => {
            let side = (features as f64).sqrt().round() as usize;
            if side * side != features {
                bail!("--model cnn needs square images: {features} features is not a square");
            }
            let ModelSpec::Cnn {
                channels, hidden, ..
            } = ModelSpec::digits_cnn()
            else {
                bail!("the digits CNN is not a CNN");
            };
            ModelSpec::Cnn {
                height: side,
                width: side,
                channels,
                hidden,
                classes,
            }
        }
    })
}

pub(crate) fn train(args: &TrainLocalArgs) -> anyhow::Result<()> {
    let (data, classes) = load(&args.data)?;
    let (mut train, mut val) = split(&data, classes, args.val_fraction, args.seed)?;
    let scaler = Standardizer::fit(&train);
    scaler.apply(&mut train)?;
    scaler.apply(&mut val)?;
    let spec = spec(args, data.features(), classes)?;
    let init = Params::init(&spec, args.seed)?;
    let device = TrainDevice::select(args.data.backend)?;
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        optimizer: match args.optimizer {
            Optim::Adam => OptimizerKind::Adam,
            Optim::Sgd => OptimizerKind::Sgd {
                momentum: args.momentum,
            },
        },
        prox_mu: args.prox_mu,
        seed: args.seed,
    };
    println!(
        "training {} ({} parameters) on {} samples of {} ({} held out) on {}",
        spec.describe(),
        init.len(),
        train.len(),
        args.data.data.display(),
        val.len(),
        device.backend()
    );
    let bar = ProgressBar::new(args.epochs as u64).with_style(
        ProgressStyle::with_template("epoch {pos}/{len} [{bar:30}] {msg} ({elapsed})")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let update = train_local(&device, &init, &train, &config, &mut |r: &EpochReport| {
        bar.set_message(format!("loss {:.4}", r.loss));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    if let Some(last) = update.epochs.last() {
        let secs: f64 = update.epochs.iter().map(|e| e.elapsed.as_secs_f64()).sum();
        println!(
            "trained {} epochs in {secs:.1} s, final training loss {:.4}",
            update.epochs.len(),
            last.loss
        );
    }
    let validation = if val.is_empty() {
        None
    } else {
        Some(evaluate(&device, &update.params, &val)?)
    };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let model_id = file::save(&args.out, &update.params)?;
    let card = RunCard {
        model_id,
        spec,
        backend: device.backend().to_string(),
        data: args.data.data.clone(),
        train_samples: train.len(),
        standardizer: scaler,
        val_fraction: args.val_fraction,
        seed: args.seed,
        validation: validation.clone(),
    };
    let card_path = args.out.with_extension("json");
    std::fs::write(&card_path, serde_json::to_vec_pretty(&card)?)
        .with_context(|| format!("writing {}", card_path.display()))?;
    if let Some(eval) = &validation {
        print_metrics("validation", eval);
    }
    println!("model {} written to {}", model_id, args.out.display());
    println!("run card: {}", card_path.display());
    Ok(())
}

pub(crate) fn evaluate_cmd(args: &EvaluateArgs) -> anyhow::Result<()> {
    let (params, model_id) = file::load(&args.model)?;
    let (mut data, _) = load(&args.data)?;
    let card_path = args
        .card
        .clone()
        .unwrap_or_else(|| args.model.with_extension("json"));
    let scaler = match read_card(&card_path) {
        Ok(card) => card.standardizer,
        Err(e) if args.card.is_some() => return Err(e),
        Err(_) => {
            eprintln!(
                "no run card at {}: standardising the data on itself",
                card_path.display()
            );
            Standardizer::fit(&data)
        }
    };
    scaler.apply(&mut data)?;
    let device = TrainDevice::select(args.data.backend)?;
    let eval = evaluate(&device, &params, &data)?;
    println!(
        "model {model_id} ({}) on {}",
        params.spec().describe(),
        device.backend()
    );
    print_metrics(&args.data.data.display().to_string(), &eval);
    Ok(())
}

fn read_card(path: &Path) -> anyhow::Result<RunCard> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a run card", path.display()))
}

fn print_metrics(what: &str, eval: &Evaluation) {
    println!(
        "{what} ({} samples): accuracy {:.4}  macro F1 {:.4}  loss {:.4}",
        eval.samples,
        eval.accuracy,
        eval.macro_f1(),
        eval.loss
    );
    println!("  class  support      F1");
    for (class, (f1, row)) in eval.f1.iter().zip(&eval.confusion).enumerate() {
        println!("  {class:>5}  {:>7}  {f1:.4}", row.iter().sum::<u64>());
    }
}
