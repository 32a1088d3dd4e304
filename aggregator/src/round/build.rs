//! From a round's secure sum to its candidate model: dequantise the sum of the contributors'
//! vectors, decode the weighted FedAvg update ([`flock_model::contribution`]; a sum no honest
//! cohort gives, out of range, badly weighted, non-finite or too long, is refused), take the server
//! optimiser's step and encode the model file, whose hash is its id. Pure: the files to store
//! are returned, not written.

use flock_model::contribution::{self, Bounds, DecodeError};
use flock_model::{ModelError, ModelId, Params, file};
use flock_protocol::{ConfigError, RoundConfig, RoundOutput};

use crate::optimizer::{Moments, ServerOptimizer};

/// A model file to store: its id and its bytes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ModelFile {
    /// SHA-256 of `bytes`.
    pub id: ModelId,
    /// The safetensors bytes.
    pub bytes: Vec<u8>,
}

impl ModelFile {
    /// Encodes `params`.
    pub(crate) fn of(params: &Params) -> Result<Self, ModelError> {
        let (bytes, id) = file::encode(params)?;
        Ok(Self { id, bytes })
    }
}

/// A candidate model and the optimiser state that comes with it.
#[derive(Clone, Debug)]
pub(crate) struct Built {
    /// The candidate's parameters.
    pub params: Params,
    /// Its file.
    pub file: ModelFile,
    /// FedAdam's moments after the step, and their files (none for FedAvg).
    pub moments: Option<(Moments, [ModelFile; 2])>,
}

/// Why a round's sum could not become a model. The round's attempt ends without a model; the
/// aggregator goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The round's quantisation parameters are unusable.
    #[error("the round's quantisation: {0}")]
    Quantisation(#[source] ConfigError),
    /// The sum could not be dequantised (no contributors, a wrong length, a word no in-range
    /// inputs sum to).
    #[error("dequantising the sum: {0}")]
    Dequantise(#[source] edge_kernels::KernelError),
    /// The sum is not one honest contributors give (its weight, finiteness or norm).
    #[error("decoding the update: {0}")]
    Decode(#[source] DecodeError),
    /// The server optimiser refused the update.
    #[error("the server optimiser: {0}")]
    Optimizer(#[source] ModelError),
    /// The new parameters could not be encoded as a model file.
    #[error("encoding the model: {0}")]
    Encode(#[source] ModelError),
}

impl BuildError {
    /// Whether some contributor's input is to blame (rather than the round's parameters or
    /// this aggregator).
    pub fn is_contributors_fault(&self) -> bool {
        matches!(
            self,
            Self::Decode(_) | Self::Dequantise(edge_kernels::KernelError::SumOutOfRange { .. })
        )
    }
}

/// The candidate after `global` for the secure sum `output` of a round configured by `config`
/// whose devices' weights saturate at `sample_cap` samples.
pub(crate) fn build(
    config: &RoundConfig,
    sample_cap: u64,
    output: &RoundOutput,
    global: &Params,
    moments: Option<&Moments>,
    optimizer: &ServerOptimizer,
) -> Result<Built, BuildError> {
    let quant = config.quant_params().map_err(BuildError::Quantisation)?;
    let mean = edge_kernels::dequantise_mean(&output.sum, output.contributors.len() as u64, &quant)
        .map_err(BuildError::Dequantise)?;
    let bounds = Bounds {
        clip: config.clip_norm,
        sample_cap,
        resolution: quant.resolution(),
    };
    let update = contribution::decode(&mean, &bounds).map_err(BuildError::Decode)?;
    let (params, moments) = optimizer
        .step(global, &update, moments)
        .map_err(BuildError::Optimizer)?;
    let file = ModelFile::of(&params).map_err(BuildError::Encode)?;
    let moments = match moments {
        Some(m) => {
            let files = [
                ModelFile::of(&m.first).map_err(BuildError::Encode)?,
                ModelFile::of(&m.second).map_err(BuildError::Encode)?,
            ];
            Some((m, files))
        }
        None => None,
    };
    Ok(Built {
        params,
        file,
        moments,
    })
}
