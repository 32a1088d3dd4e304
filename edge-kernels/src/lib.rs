//! The numeric kernels that both sides of a flock-edge round run, bit for bit.
//!
//! A device turns its model update into a masked vector of `u32` words; the aggregator adds
//! those vectors and removes the masks. This crate owns every arithmetic step of that path and
//! nothing else: it knows no protocol, no network and no ML framework.
//!
//! * [`clip_l2`] bounds the update's L2 norm.
//! * [`quantise`] maps `f32` values in `[-c, c]` to `b`-bit fixed point with unbiased stochastic
//!   rounding; [`check_sum_capacity`] proves that a sum of `n` such vectors cannot wrap mod 2^32;
//!   [`dequantise_mean`] turns the sum back into the mean update.
//! * [`apply_mask`] and [`apply_masks`] add or subtract ChaCha20 keystreams (exactly the words
//!   `rand_chacha::ChaCha20Rng` yields for a seed and stream) into a vector in place, without a
//!   vector-sized temporary.
//! * [`add_assign_mod`] and [`sum_mod`] add vectors modulo 2^32.
//!
//! The functions here are the CPU reference. With the `gpu` feature, [`gpu::GpuKernels`] runs
//! the same kernels as WGSL compute shaders through wgpu and returns the same words.
//!
//! ```
//! use edge_kernels::{apply_masks, sum_mod, Mask, Sign};
//!
//! // Two clients share a pairwise seed: one adds its keystream, the other subtracts it.
//! let shared = [7u8; 32];
//! let mut a = vec![1u32, 2, 3];
//! let mut b = vec![10u32, 20, 30];
//! apply_masks(&mut a, &[Mask::new(shared, 0, Sign::Add)]);
//! apply_masks(&mut b, &[Mask::new(shared, 0, Sign::Sub)]);
//! assert_ne!(a, vec![1, 2, 3]);
//! assert_eq!(sum_mod(&[&a[..], &b[..]])?, vec![11, 22, 33]);
//! # Ok::<(), edge_kernels::KernelError>(())
//! ```

mod clip;
mod error;
mod keystream;
mod mask;
mod quantise;
mod sum;

#[cfg(feature = "gpu")]
pub mod gpu;

pub use clip::{ClipOutcome, clip_l2};
pub use error::KernelError;
pub use keystream::{BLOCK_WORDS, keystream_rng};
#[cfg(feature = "parallel")]
pub use mask::apply_masks_parallel;
pub use mask::{Mask, Sign, apply_mask, apply_mask_at, apply_masks};
pub use quantise::{QuantParams, RoundingStream, check_sum_capacity, dequantise_mean, quantise};
pub use sum::{add_assign_mod, sum_mod};
