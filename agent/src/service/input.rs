//! The vector an agent contributes to a round and where it is masked.
//!
//! The vector is `[w·clip(Δ), w·C]` ([`flock_model::contribution`]): the secure sum then
//! carries both `Σ w_k Δ_k` and `Σ w_k`. It is quantised with stochastic rounding and masked with the SecAgg+ client's masks either
//! on the CPU, or, with a [`Masker`] holding GPU kernels, on the GPU in one pass where only the
//! masked words are read back. Both give the same words (edge-kernels' bit-exactness).

use edge_kernels::{QuantParams, RoundingStream, clip_l2, quantise};
use flock_model::contribution;
use flock_protocol::{Client, RoundConfig};

use super::AgentError;

/// Where the masking runs.
#[derive(Clone, Debug, Default)]
pub enum Masker {
    /// edge-kernels on the CPU.
    #[default]
    Cpu,
    /// edge-kernels on a wgpu device (ideally the trainer's own).
    #[cfg(feature = "gpu")]
    Gpu(std::sync::Arc<edge_kernels::gpu::GpuKernels>),
}

/// A round's input before quantisation: the clipped, weighted values and the rounding stream.
pub(crate) struct PendingInput {
    values: Vec<f32>,
    params: QuantParams,
    rounding: RoundingStream,
}

impl PendingInput {
    /// Clips and weights `delta` for `config`'s round; `rounding_seed` seeds the stochastic
    /// rounding (fresh randomness for every input).
    pub(crate) fn new(
        config: &RoundConfig,
        mut delta: Vec<f32>,
        samples: u64,
        sample_cap: u64,
        rounding_seed: [u8; 32],
    ) -> Result<Self, AgentError> {
        let round = config.round;
        if contribution::vector_len(delta.len()) != config.vector_len as usize {
            return Err(AgentError::Aggregator(format!(
                "round {round}: a vector of {} words for a model of {} parameters",
                config.vector_len,
                delta.len()
            )));
        }
        if samples == 0 {
            // A weight of zero is not one the aggregator accepts (`contribution::decode`).
            return Err(AgentError::Local(format!(
                "round {round}: an update trained on no samples"
            )));
        }
        let clip = config.clip_norm;
        clip_l2(&mut delta, clip)
            .map_err(|e| AgentError::Local(format!("round {round}: clipping the update: {e}")))?;
        let values = contribution::encode(delta, samples, sample_cap, clip);
        let params = config
            .quant_params()
            .map_err(|e| AgentError::Aggregator(format!("round {round}: {e}")))?;
        Ok(Self {
            values,
            params,
            rounding: RoundingStream {
                seed: rounding_seed,
                stream: 0,
            },
        })
    }

    /// The quantised, unmasked words (on the CPU).
    pub(crate) fn quantised(&self) -> Result<Vec<u32>, AgentError> {
        let mut out = vec![0u32; self.values.len()];
        quantise(&self.values, &self.params, &self.rounding, &mut out)
            .map_err(|e| AgentError::Local(format!("quantising the update: {e}")))?;
        Ok(out)
    }

    /// Quantises, masks with `client`'s masks on `masker` and queues the masked vector.
    pub(crate) fn submit(self, client: &mut Client, masker: &Masker) -> Result<(), AgentError> {
        let refused =
            |e: &dyn std::fmt::Display| AgentError::Local(format!("masking the update: {e}"));
        match masker {
            Masker::Cpu => client
                .submit_input(self.quantised()?)
                .map_err(|e| refused(&e)),
            #[cfg(feature = "gpu")]
            Masker::Gpu(gpu) => {
                let masks = client.input_masks().map_err(|e| refused(&e))?;
                let mut out = vec![0u32; self.values.len()];
                gpu.quantise_and_mask(&self.values, &self.params, &self.rounding, &masks, &mut out)
                    .map_err(|e| refused(&e))?;
                client.submit_masked_input(out).map_err(|e| refused(&e))
            }
        }
    }
}
