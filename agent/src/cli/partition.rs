//! `flock-agent partition`: split a CSV into non-IID per-client CSVs for a simulation.

use std::path::PathBuf;

use anyhow::Context;
use flock_agent::data::CsvSource;
use flock_agent::data::partition::write_partitions;

/// Arguments of `flock-agent partition`.
#[derive(clap::Args)]
pub(crate) struct PartitionArgs {
    /// The CSV to split (header row, numeric features, integer label).
    #[arg(long)]
    data: PathBuf,
    /// The label column.
    #[arg(long, default_value = "label")]
    label: String,
    /// Number of classes (labels are 0..classes).
    #[arg(long)]
    classes: usize,
    /// Number of clients.
    #[arg(long, default_value_t = 5)]
    clients: usize,
    /// Dirichlet concentration: small is skewed, large is close to IID.
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Fewest samples any client may get.
    #[arg(long, default_value_t = 10)]
    min_samples: usize,
    /// Seed of the draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory for `client-<i>.csv`.
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn run(args: &PartitionArgs) -> anyhow::Result<()> {
    let source = CsvSource::new(&args.data, &args.label);
    let files = write_partitions(
        &source,
        args.classes,
        args.clients,
        args.alpha,
        args.min_samples,
        args.seed,
        &args.out,
    )
    .context("partitioning failed")?;
    println!(
        "{} clients, Dirichlet alpha {} (samples per class):",
        files.len(),
        args.alpha
    );
    for f in &files {
        println!(
            "  {}  {:>5} samples  {:?}",
            f.path.display(),
            f.samples(),
            f.per_class
        );
    }
    Ok(())
}
