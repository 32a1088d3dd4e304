//! The kernel self-check behind `flock-agent doctor`: runs clip, quantise and a batch of masks
//! on a fixed vector with the CPU kernels and, when the `gpu` feature is on and an adapter is
//! found, with the GPU kernels, and checks that both give the same words and that the masks
//! come off again. A device whose GPU disagrees with its CPU must not take part in a round.

use edge_kernels::{KernelError, Mask, QuantParams, RoundingStream, Sign};
use std::time::{Duration, Instant};

/// Result of [`run`].
#[derive(Debug)]
pub struct Report {
    /// Words in the test vector.
    pub words: usize,
    /// Time the CPU kernels took.
    pub cpu_time: Duration,
    /// What happened on the GPU.
    pub gpu: GpuOutcome,
}

/// The GPU half of a [`Report`].
#[derive(Debug)]
pub enum GpuOutcome {
    /// Not asked for (`--cpu-only`) or built without the `gpu` feature.
    Skipped(&'static str),
    /// No adapter: this device will use the CPU kernels.
    Unavailable(String),
    /// The GPU kernels ran and matched the CPU word for word.
    Matched {
        /// Adapter name and backend.
        adapter: String,
        /// Time the GPU kernels took, upload and read-back included.
        time: Duration,
    },
}

/// Why the self-check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// A CPU kernel refused the fixed test input (a bug, never expected).
    #[error("CPU kernel error: {0}")]
    Cpu(#[from] KernelError),
    /// Removing the masks did not restore the quantised vector.
    #[error("masks did not cancel on the CPU: word {index} differs")]
    MasksDidNotCancel {
        /// First differing word.
        index: usize,
    },
    /// The GPU produced different words from the CPU.
    #[error("GPU ({adapter}) disagrees with the CPU at word {index}: {gpu:#010x} vs {cpu:#010x}")]
    GpuMismatch {
        /// Adapter name.
        adapter: String,
        /// First differing word.
        index: usize,
        /// The GPU's word.
        gpu: u32,
        /// The CPU's word.
        cpu: u32,
    },
    /// The GPU was found but failed while running.
    #[cfg(feature = "gpu")]
    #[error("GPU kernel error: {0}")]
    Gpu(#[from] edge_kernels::gpu::GpuError),
}

/// Runs the self-check on a vector of `words` words; `try_gpu` also runs the GPU kernels.
///
/// # Errors
/// A [`CheckError`] naming the first disagreement.
pub fn run(words: usize, try_gpu: bool) -> Result<Report, CheckError> {
    let input: Vec<f32> = (0..words)
        .map(|i| ((i % 1999) as f32 - 999.0) / 250.0)
        .collect();
    let params = QuantParams::new(16, 1.0)?;
    let rounding = RoundingStream {
        seed: [0x52; 32],
        stream: 1,
    };
    let masks: Vec<Mask> = (0..4u8)
        .map(|i| {
            Mask::new(
                [i + 1; 32],
                u64::from(i),
                if i % 2 == 0 { Sign::Add } else { Sign::Sub },
            )
        })
        .collect();

    let start = Instant::now();
    let mut clipped = input.clone();
    edge_kernels::clip_l2(&mut clipped, (words as f32).sqrt())?;
    let mut quantised = vec![0u32; words];
    edge_kernels::quantise(&clipped, &params, &rounding, &mut quantised)?;
    let mut masked = quantised.clone();
    edge_kernels::apply_masks(&mut masked, &masks);
    let cpu_time = start.elapsed();

    let mut unmasked = masked.clone();
    let opposite: Vec<Mask> = masks
        .iter()
        .map(|m| Mask::new(m.seed, m.stream, m.sign.opposite()))
        .collect();
    edge_kernels::apply_masks(&mut unmasked, &opposite);
    if let Some(index) = first_difference(&unmasked, &quantised) {
        return Err(CheckError::MasksDidNotCancel { index });
    }

    let gpu = if try_gpu {
        gpu_check(&clipped, &params, &rounding, &masks, &masked)?
    } else {
        GpuOutcome::Skipped("--cpu-only")
    };
    Ok(Report {
        words,
        cpu_time,
        gpu,
    })
}

#[cfg(feature = "gpu")]
fn gpu_check(
    clipped: &[f32],
    params: &QuantParams,
    rounding: &RoundingStream,
    masks: &[Mask],
    cpu_masked: &[u32],
) -> Result<GpuOutcome, CheckError> {
    use edge_kernels::gpu::{GpuError, GpuKernels};
    let kernels = match GpuKernels::new() {
        Ok(k) => k,
        Err(GpuError::NoAdapter(why)) => return Ok(GpuOutcome::Unavailable(why)),
        Err(e) => return Err(e.into()),
    };
    let info = kernels.adapter_info();
    let adapter = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
    let start = Instant::now();
    let mut out = vec![0u32; clipped.len()];
    kernels.quantise_and_mask(clipped, params, rounding, masks, &mut out)?;
    let time = start.elapsed();
    if let Some(index) = first_difference(&out, cpu_masked) {
        return Err(CheckError::GpuMismatch {
            adapter,
            index,
            gpu: out[index],
            cpu: cpu_masked[index],
        });
    }
    Ok(GpuOutcome::Matched { adapter, time })
}

#[cfg(not(feature = "gpu"))]
fn gpu_check(
    _: &[f32],
    _: &QuantParams,
    _: &RoundingStream,
    _: &[Mask],
    _: &[u32],
) -> Result<GpuOutcome, CheckError> {
    Ok(GpuOutcome::Skipped("built without the gpu feature"))
}

fn first_difference(a: &[u32], b: &[u32]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_check_passes_and_reports_its_size() {
        let r = run(10_001, false).unwrap();
        assert_eq!(r.words, 10_001);
        assert!(matches!(r.gpu, GpuOutcome::Skipped(_)));
    }
}
