//! Every way a GPU kernel call can fail. [`GpuError::NoAdapter`] is the one callers expect on
//! machines without a GPU: it means "use the CPU kernels".

use crate::KernelError;

/// Why the GPU backend could not run a kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// No wgpu adapter exists on this machine (or none matches `WGPU_BACKEND`).
    #[error("no GPU adapter available ({0}); fall back to the CPU kernels")]
    NoAdapter(String),
    /// The adapter exists but refused to open a device.
    #[error("could not open a device on adapter {adapter:?}: {reason}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's explanation.
        reason: String,
    },
    /// wgpu rejected a command (validation) or ran out of memory while running a kernel.
    #[error("GPU error in the {kernel} kernel: {message}")]
    Device {
        /// Which kernel was running.
        kernel: &'static str,
        /// wgpu's explanation.
        message: String,
    },
    /// Waiting for the GPU or mapping a result buffer failed (device lost, timeout).
    #[error("reading the {kernel} result back from the GPU failed: {message}")]
    Readback {
        /// Which kernel was running.
        kernel: &'static str,
        /// wgpu's explanation.
        message: String,
    },
    /// The input was refused, exactly as the CPU kernel refuses it.
    #[error(transparent)]
    Kernel(#[from] KernelError),
}
