//! The wgpu backend: the kernels of this crate as WGSL compute shaders, equal to the CPU
//! reference word for word.
//!
//! [`GpuKernels`] owns a device, a queue and one pipeline per kernel. It opens its own device
//! with [`GpuKernels::new`], or shares one (the trainer's, so that an update can stay on the GPU)
//! through [`GpuKernels::from_device`]. Vectors longer than the device lets one storage binding
//! hold are processed in chunks; each chunk starts every keystream at its own block, so chunking
//! never changes a word.

mod error;
mod pipelines;
mod run;

pub use error::GpuError;
/// The wgpu this crate is built on, for callers that share a device with it.
pub use wgpu;

use crate::{KernelError, Mask, QuantParams, RoundingStream};
use pipelines::Pipelines;

/// Words one invocation of every kernel owns: one ChaCha20 block.
const WORDS_PER_INVOCATION: usize = 16;
/// Invocations per workgroup, as declared in the shaders.
const WORKGROUP_SIZE: usize = 64;
/// Words one dispatch can cover with a one-dimensional grid of at most 65 535 workgroups.
const MAX_DISPATCH_WORDS: usize = 65_535 * WORKGROUP_SIZE * WORDS_PER_INVOCATION;

/// The GPU kernels on one wgpu device.
pub struct GpuKernels {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pipelines: Pipelines,
    chunk_words: usize,
}

impl std::fmt::Debug for GpuKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuKernels")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("chunk_words", &self.chunk_words)
            .finish()
    }
}

/// Finds the adapter [`GpuKernels::new`] would open, without opening a device: the cheap way to
/// ask whether this machine has a GPU (a CPU implementation such as lavapipe counts).
/// `WGPU_BACKEND` and `WGPU_ADAPTER_NAME` narrow the choice.
///
/// # Errors
/// [`GpuError::NoAdapter`] when there is none.
pub fn find_adapter() -> Result<wgpu::Adapter, GpuError> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        ..Default::default()
    }))
    .map_err(|e| GpuError::NoAdapter(e.to_string()))
}

impl GpuKernels {
    /// Opens the highest-performance adapter wgpu finds (Vulkan, Metal or DX12; a CPU
    /// implementation such as Mesa's lavapipe counts). `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`
    /// narrow the choice.
    ///
    /// # Errors
    /// [`GpuError::NoAdapter`] when there is none: callers then use the CPU kernels.
    pub fn new() -> Result<Self, GpuError> {
        let adapter = find_adapter()?;
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("edge-kernels"),
            required_features: wgpu::Features::empty(),
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        Self::from_device(device, queue, info)
    }

    /// Uses a device opened elsewhere, typically the trainer's.
    ///
    /// # Errors
    /// [`GpuError::Device`] if the shaders do not compile on this device.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
    ) -> Result<Self, GpuError> {
        let limits = device.limits();
        let binding_words = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            / 4;
        let chunk_words = usize::try_from(binding_words)
            .unwrap_or(usize::MAX)
            .min(MAX_DISPATCH_WORDS);
        let pipelines = Pipelines::new(&device)?;
        Ok(Self {
            device,
            queue,
            info,
            pipelines,
            chunk_words: round_down_to_block(chunk_words),
        })
    }

    /// The adapter this runs on (name, backend, device type).
    #[must_use]
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Words processed per chunk: the device's storage binding limit, or less if set.
    #[must_use]
    pub fn chunk_words(&self) -> usize {
        self.chunk_words
    }

    /// Caps the chunk size (rounded down to a whole block, at least one block). Only useful to
    /// test chunking or to bound GPU memory; results do not depend on it.
    #[must_use]
    pub fn with_chunk_words(mut self, words: usize) -> Self {
        self.chunk_words = round_down_to_block(words.min(self.chunk_words));
        self
    }

    /// [`crate::apply_masks`] on the GPU: every mask of the batch in one submission per chunk.
    ///
    /// # Errors
    /// [`GpuError::Device`] or [`GpuError::Readback`]; `out` may then be partly written.
    pub fn apply_masks(&self, out: &mut [u32], masks: &[Mask]) -> Result<(), GpuError> {
        if masks.is_empty() || out.is_empty() {
            return Ok(());
        }
        run::masks(self, out, masks)
    }

    /// [`crate::quantise`] on the GPU.
    ///
    /// # Errors
    /// As the CPU kernel ([`KernelError::LengthMismatch`], [`KernelError::NonFinite`]), plus
    /// [`GpuError::Device`] and [`GpuError::Readback`].
    pub fn quantise(
        &self,
        input: &[f32],
        params: &QuantParams,
        rounding: &RoundingStream,
        out: &mut [u32],
    ) -> Result<(), GpuError> {
        self.quantise_and_mask(input, params, rounding, &[], out)
    }

    /// Quantises `input` and applies `masks` in one submission per chunk: the unmasked
    /// quantised vector never leaves the GPU; only the masked words are read back. Equal to
    /// [`crate::quantise`] followed by [`crate::apply_masks`].
    ///
    /// # Errors
    /// As [`GpuKernels::quantise`].
    pub fn quantise_and_mask(
        &self,
        input: &[f32],
        params: &QuantParams,
        rounding: &RoundingStream,
        masks: &[Mask],
        out: &mut [u32],
    ) -> Result<(), GpuError> {
        if input.len() != out.len() {
            return Err(KernelError::LengthMismatch {
                what: "quantise output",
                expected: input.len(),
                actual: out.len(),
            }
            .into());
        }
        if input.is_empty() {
            return Ok(());
        }
        run::quantise_and_mask(self, input, params, rounding, masks, out)
    }

    /// [`crate::sum_mod`] on the GPU.
    ///
    /// # Errors
    /// [`KernelError::LengthMismatch`] if the vectors differ in length, [`GpuError::Device`],
    /// [`GpuError::Readback`].
    pub fn sum_mod(&self, vectors: &[&[u32]]) -> Result<Vec<u32>, GpuError> {
        let Some(first) = vectors.first() else {
            return Ok(Vec::new());
        };
        if let Some(bad) = vectors.iter().find(|v| v.len() != first.len()) {
            return Err(KernelError::LengthMismatch {
                what: "summand",
                expected: first.len(),
                actual: bad.len(),
            }
            .into());
        }
        let mut acc = vec![0u32; first.len()];
        if !acc.is_empty() {
            run::sum(self, &mut acc, vectors)?;
        }
        Ok(acc)
    }
}

fn round_down_to_block(words: usize) -> usize {
    (words / WORDS_PER_INVOCATION).max(1) * WORDS_PER_INVOCATION
}

/// Workgroups that cover `words` words.
fn workgroups_for(words: usize) -> u32 {
    let per_group = WORKGROUP_SIZE * WORDS_PER_INVOCATION;
    // At most MAX_DISPATCH_WORDS / per_group = 65 535: the chunk size guarantees it.
    u32::try_from(words.div_ceil(per_group)).unwrap_or(u32::MAX)
}
