//! The CPU kernels of a round against their floors, in one run: the fused ChaCha20 mask + add
//! against generating the same keystream bytes (rand_chacha `fill_bytes`), stochastic
//! quantisation (one keystream word per value) against the same keystream, and the modular sum
//! against `copy_from_slice` of the same vector. Median of several timed runs each.

use std::hint::black_box;
use std::time::{Duration, Instant};

use edge_kernels::{
    KernelError, Mask, QuantParams, RoundingStream, Sign, add_assign_mod, apply_mask, quantise,
};
use rand_core::Rng;

/// Median wall time of `runs` calls of `f` (after one warm-up call); the first error stops it.
fn median<E>(runs: usize, mut f: impl FnMut() -> Result<(), E>) -> Result<Duration, E> {
    f()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn row(kernel: &str, d: usize, k: Duration, floor: &str, f: Duration) -> String {
    format!(
        "| {kernel} | {d} | {:.3} ms | {floor} | {:.3} ms | **{:.3}** |\n",
        k.as_secs_f64() * 1e3,
        f.as_secs_f64() * 1e3,
        f.as_secs_f64() / k.as_secs_f64()
    )
}

/// The kernels at `d` words, as a Markdown table (ratio = floor time / kernel time: 1 means
/// the kernel runs at its floor's speed).
pub(crate) fn table(d: usize, runs: usize) -> anyhow::Result<String> {
    let mut out = String::from(
        "| kernel | d (words) | kernel time | floor | floor time | floor / kernel |\n\
         | --- | ---: | ---: | --- | ---: | ---: |\n",
    );
    let mut bytes = vec![0u8; d * 4];
    let mut rng = edge_kernels::keystream_rng([5; 32], 1, 0);
    let keystream = median(runs, || {
        rng.fill_bytes(black_box(&mut bytes));
        Ok::<_, KernelError>(())
    })?;

    let mut v = vec![0u32; d];
    let mask = Mask::new([5; 32], 1, Sign::Add);
    let masked = median(runs, || {
        apply_mask(black_box(&mut v), &mask);
        Ok::<_, KernelError>(())
    })?;
    out.push_str(&row(
        "fused ChaCha20 mask + add, one thread",
        d,
        masked,
        "rand_chacha `fill_bytes`, same bytes",
        keystream,
    ));

    let input: Vec<f32> = (0..d)
        .map(|i| ((i % 2001) as f32 - 1000.0) / 1000.0)
        .collect();
    let params = QuantParams::new(16, 1.0)?;
    let rounding = RoundingStream {
        seed: [7; 32],
        stream: 3,
    };
    let mut q = vec![0u32; d];
    let quantised = median(runs, || {
        quantise(black_box(&input), &params, &rounding, &mut q)
    })?;
    out.push_str(&row(
        "stochastic quantisation (16 bits)",
        d,
        quantised,
        "rand_chacha `fill_bytes`, one word per value",
        keystream,
    ));

    let src: Vec<u32> = (0..d as u32).collect();
    let mut dst = vec![0u32; d];
    let copy = median(runs, || {
        dst.copy_from_slice(black_box(&src));
        Ok::<_, KernelError>(())
    })?;
    let summed = median(runs, || {
        add_assign_mod(black_box(&mut dst), black_box(&src))
    })?;
    out.push_str(&row(
        "modular sum `add_assign_mod`",
        d,
        summed,
        "`copy_from_slice`, same size",
        copy,
    ));
    Ok(out)
}
