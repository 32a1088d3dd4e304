//! Which device trains: wgpu when an adapter exists (lavapipe counts), the CPU otherwise, or
//! what the config forces. The choice and the adapter's name are logged.
//!
//! burn registers a wgpu runtime once per process, so the GPU device is opened once and shared
//! by every trainer in the process (and, through [`TrainDevice::wgpu_handles`], by the masking
//! kernels).

use std::fmt;

use burn::tensor::Device;

use super::TrainError;

/// What the config asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// The GPU when an adapter exists, else the CPU.
    #[default]
    Auto,
    /// The CPU (burn's `flex` backend), even where a GPU exists.
    Cpu,
    /// The GPU; an error where there is none.
    Gpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            other => Err(TrainError::Config(format!(
                "backend {other:?} is not one of auto, cpu, gpu"
            ))),
        }
    }
}

/// The backend a [`TrainDevice`] runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// burn's pure-Rust CPU backend.
    Cpu,
    /// burn's wgpu backend on this adapter.
    Gpu {
        /// The adapter's name (`NVIDIA H100`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
        adapter: String,
        /// The graphics API (`Vulkan`, `Metal`, `Dx12`).
        api: String,
    },
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cpu => f.write_str("cpu (burn flex)"),
            Backend::Gpu { adapter, api } => write!(f, "gpu ({adapter}, {api})"),
        }
    }
}

/// A burn device to train on, and what it is.
#[derive(Clone, Debug)]
pub struct TrainDevice {
    device: Device,
    backend: Backend,
    #[cfg(feature = "train-gpu")]
    setup: Option<burn::tensor::wgpu::WgpuSetup>,
}

impl TrainDevice {
    /// Chooses the device as `choice` says and logs the choice.
    ///
    /// # Errors
    /// [`TrainError::NoGpu`] when the GPU is forced and none can be used (no adapter, or a build
    /// without the `train-gpu` feature).
    pub fn select(choice: BackendChoice) -> Result<Self, TrainError> {
        let selected = match choice {
            BackendChoice::Cpu => Ok(Self::cpu()),
            BackendChoice::Gpu => Self::gpu(),
            BackendChoice::Auto => Self::gpu().or_else(|e| {
                tracing::info!("{e}; training on the CPU");
                Ok(Self::cpu())
            }),
        };
        if let Ok(device) = &selected {
            tracing::info!(backend = %device.backend, "training device selected");
        }
        selected
    }

    /// burn's CPU backend.
    pub fn cpu() -> Self {
        Self {
            device: Device::flex(),
            backend: Backend::Cpu,
            #[cfg(feature = "train-gpu")]
            setup: None,
        }
    }

    #[cfg(feature = "train-gpu")]
    fn gpu() -> Result<Self, TrainError> {
        use std::sync::OnceLock;
        static GPU: OnceLock<Result<TrainDevice, String>> = OnceLock::new();
        GPU.get_or_init(|| {
            // Ask wgpu first: burn's runtime must not be asked for an adapter that is absent.
            let adapter = edge_kernels::gpu::find_adapter().map_err(|e| e.to_string())?;
            let info = adapter.get_info();
            drop(adapter);
            let (device, setup) = Device::wgpu_options()
                .init_with_setup()
                .map_err(|e| format!("burn could not open {}: {e}", info.name))?;
            let info = setup.adapter.get_info();
            Ok(TrainDevice {
                device,
                backend: Backend::Gpu {
                    adapter: info.name,
                    api: format!("{:?}", info.backend),
                },
                setup: Some(setup),
            })
        })
        .clone()
        .map_err(TrainError::NoGpu)
    }

    #[cfg(not(feature = "train-gpu"))]
    fn gpu() -> Result<Self, TrainError> {
        Err(TrainError::NoGpu(
            "this build has no GPU trainer (feature `train-gpu`)".into(),
        ))
    }

    /// The burn device (without autodiff).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Which backend this is.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The wgpu device, queue and adapter info the trainer runs on, to hand to
    /// `edge_kernels::gpu::GpuKernels::from_device` so that the update never leaves the GPU
    /// unmasked. `None` on the CPU.
    #[cfg(feature = "train-gpu")]
    pub fn wgpu_handles(
        &self,
    ) -> Option<(
        edge_kernels::gpu::wgpu::Device,
        edge_kernels::gpu::wgpu::Queue,
        edge_kernels::gpu::wgpu::AdapterInfo,
    )> {
        self.setup
            .as_ref()
            .map(|s| (s.device.clone(), s.queue.clone(), s.adapter.get_info()))
    }
}
