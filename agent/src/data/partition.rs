//! Non-IID partitions for simulations: each class is spread over the clients in proportions
//! drawn from a symmetric Dirichlet(α) distribution (Hsu et al., 2019). Small α gives each
//! client few classes; large α approaches an IID split.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_distr::{Distribution, Gamma};

use super::{CsvSource, DataError};

/// Draws tried before giving up on giving every client `min_samples`.
const MAX_ATTEMPTS: usize = 1000;

/// Assigns every sample (by its label in `labels`) to one of `clients`, class by class in
/// Dirichlet(α) proportions, redrawing until every client holds at least `min_samples`.
/// Returns each client's sample indices, ascending.
pub fn dirichlet(
    labels: &[u32],
    classes: usize,
    clients: usize,
    alpha: f64,
    min_samples: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>, DataError> {
    if clients == 0 {
        return Err(DataError::Partition("0 clients".into()));
    }
    let gamma = Gamma::new(alpha, 1.0).map_err(|e| {
        DataError::Partition(format!(
            "alpha {alpha} is not a valid Dirichlet parameter: {e}"
        ))
    })?;
    if clients.saturating_mul(min_samples) > labels.len() {
        return Err(DataError::Partition(format!(
            "{} samples cannot give {clients} clients {min_samples} each",
            labels.len()
        )));
    }
    let mut by_class = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class
            .get_mut(l as usize)
            .ok_or_else(|| {
                DataError::Partition(format!("label {l} of sample {i} is not below {classes}"))
            })?
            .push(i);
    }
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    for _ in 0..MAX_ATTEMPTS {
        let mut parts = vec![Vec::new(); clients];
        for indices in &mut by_class {
            indices.shuffle(&mut rng);
            let weights: Vec<f64> = (0..clients).map(|_| gamma.sample(&mut rng)).collect();
            let total: f64 = weights.iter().sum();
            let n = indices.len();
            let mut start = 0;
            let mut cumulative = 0.0;
            for (client, w) in weights.iter().enumerate() {
                cumulative += w;
                let end = if client + 1 == clients || total <= 0.0 {
                    n
                } else {
                    ((cumulative / total) * n as f64).round() as usize
                }
                .clamp(start, n);
                parts[client].extend_from_slice(&indices[start..end]);
                start = end;
            }
        }
        if parts.iter().all(|p| p.len() >= min_samples) {
            for p in &mut parts {
                p.sort_unstable();
            }
            return Ok(parts);
        }
    }
    Err(DataError::Partition(format!(
        "no Dirichlet(alpha={alpha}) draw in {MAX_ATTEMPTS} gave each of {clients} clients \
         {min_samples} samples: raise alpha or lower the client count"
    )))
}

/// One client's partition file.
#[derive(Clone, Debug)]
pub struct PartitionFile {
    /// Where it was written.
    pub path: PathBuf,
    /// Samples per class.
    pub per_class: Vec<usize>,
}

impl PartitionFile {
    /// Total samples.
    pub fn samples(&self) -> usize {
        self.per_class.iter().sum()
    }
}

/// Partitions the CSV `source` over `clients` ([`dirichlet`]) and writes `client-{i}.csv` into
/// `out_dir` (created if missing): the same header, the rows verbatim.
pub fn write_partitions(
    source: &CsvSource,
    classes: usize,
    clients: usize,
    alpha: f64,
    min_samples: usize,
    seed: u64,
    out_dir: &Path,
) -> Result<Vec<PartitionFile>, DataError> {
    let path = source.path();
    let mut table = source.open()?;
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    let mut row = csv::StringRecord::new();
    while let Some(line) = table.next_row(path, &mut row)? {
        labels.push(table.label(path, line, &row, classes)?);
        rows.push(row.clone());
    }
    if rows.is_empty() {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    let parts = dirichlet(&labels, classes, clients, alpha, min_samples, seed)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |cause: std::io::Error| DataError::Io { path, cause }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let mut files = Vec::with_capacity(clients);
    for (i, part) in parts.iter().enumerate() {
        let file_path = out_dir.join(format!("client-{i}.csv"));
        let mut writer = csv::Writer::from_path(&file_path).map_err(|e| DataError::Io {
            path: file_path.clone(),
            cause: e.into(),
        })?;
        let mut per_class = vec![0; classes];
        let write_error = |e: csv::Error| DataError::Io {
            path: file_path.clone(),
            cause: e.into(),
        };
        writer.write_record(&table.headers).map_err(write_error)?;
        for &s in part {
            writer.write_record(&rows[s]).map_err(write_error)?;
            per_class[labels[s] as usize] += 1;
        }
        writer.flush().map_err(io(&file_path))?;
        files.push(PartitionFile {
            path: file_path,
            per_class,
        });
    }
    Ok(files)
}
