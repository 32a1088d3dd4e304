//! Shader compilation: one compute pipeline per kernel, and the error scope every GPU call
//! runs under so that a wgpu validation or out-of-memory error becomes a [`GpuError`] instead
//! of wgpu's default panic.

use super::GpuError;

const CHACHA: &str = include_str!("shaders/chacha.wgsl");
const MASK: &str = include_str!("shaders/mask.wgsl");
const QUANTISE: &str = include_str!("shaders/quantise.wgsl");
const SUM: &str = include_str!("shaders/sum.wgsl");

/// The compiled kernels.
pub(super) struct Pipelines {
    pub(super) mask: wgpu::ComputePipeline,
    pub(super) quantise: wgpu::ComputePipeline,
    pub(super) sum: wgpu::ComputePipeline,
}

impl Pipelines {
    pub(super) fn new(device: &wgpu::Device) -> Result<Self, GpuError> {
        Ok(Self {
            mask: build(device, "mask", &[CHACHA, MASK], "mask_main")?,
            quantise: build(device, "quantise", &[CHACHA, QUANTISE], "quantise_main")?,
            sum: build(device, "sum", &[SUM], "sum_main")?,
        })
    }
}

fn build(
    device: &wgpu::Device,
    kernel: &'static str,
    sources: &[&str],
    entry: &str,
) -> Result<wgpu::ComputePipeline, GpuError> {
    scoped(device, kernel, || {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel),
            source: wgpu::ShaderSource::Wgsl(sources.join("\n").into()),
        });
        Ok(
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            }),
        )
    })
}

/// Runs `f` under validation and out-of-memory error scopes; an error either scope caught
/// is returned as [`GpuError::Device`] naming `kernel`.
pub(super) fn scoped<T>(
    device: &wgpu::Device,
    kernel: &'static str,
    f: impl FnOnce() -> Result<T, GpuError>,
) -> Result<T, GpuError> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let result = f();
    let caught = pollster::block_on(validation.pop()).or(pollster::block_on(oom.pop()));
    match caught {
        Some(e) => Err(GpuError::Device {
            kernel,
            message: e.to_string(),
        }),
        None => result,
    }
}
