//! The initial model of a task, made from a seed, identical on every machine.
//!
//! Every tensor is drawn uniformly from `[−1/√fan_in, 1/√fan_in)` (the scale burn and PyTorch
//! give linear and convolution layers by default) from a ChaCha20 stream seeded with the
//! task's seed, tensor after tensor in layout order. It does not depend on burn's own RNG, so
//! an aggregator without burn makes the same model an agent would.

use rand::RngExt;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::{ModelError, ModelSpec, Params};

impl Params {
    /// The initial parameters of `spec` for `seed`.
    pub fn init(spec: &ModelSpec, seed: u64) -> Result<Params, ModelError> {
        let layout = spec.layout()?;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut values = Vec::with_capacity(layout.num_params());
        for tensor in layout.tensors() {
            // fan_in ≥ 1 for a valid spec; the cast is exact below 2^24 and close above.
            let bound = 1.0 / (tensor.fan_in.max(1) as f32).sqrt();
            values.extend((0..tensor.len()).map(|_| {
                let u: f32 = rng.random();
                (2.0 * u - 1.0) * bound
            }));
        }
        Params::new(spec.clone(), values)
    }
}
