//! GPU kernels beside the CPU reference doing the same work, in one run
//! (`cargo bench -p edge-kernels --features gpu --bench gpu_kernels`). Each GPU figure includes
//! upload and read-back: it is what a caller with host vectors pays. The adapter is printed
//! first so that a figure is never quoted without its machine.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use edge_kernels::gpu::GpuKernels;
use edge_kernels::{Mask, QuantParams, RoundingStream, Sign, apply_masks, quantise, sum_mod};
use std::hint::black_box;

const D: usize = 1 << 20;

fn masks(n: u8) -> Vec<Mask> {
    (0..n)
        .map(|i| {
            Mask::new(
                [i; 32],
                u64::from(i),
                if i % 2 == 0 { Sign::Add } else { Sign::Sub },
            )
        })
        .collect()
}

fn gpu_vs_cpu(c: &mut Criterion) {
    let gpu = GpuKernels::new().expect("the GPU benchmarks need a wgpu adapter");
    let info = gpu.adapter_info();
    eprintln!(
        "adapter: {} ({:?}, {:?}, driver {})",
        info.name, info.device_type, info.backend, info.driver_info
    );

    let mut g = c.benchmark_group("mask_batch_8");
    g.sample_size(10);
    let batch = masks(8);
    g.throughput(Throughput::Bytes((D * 4 * batch.len()) as u64));
    let mut v = vec![0u32; D];
    g.bench_function(BenchmarkId::new("cpu_single_thread", D), |b| {
        b.iter(|| apply_masks(black_box(&mut v), &batch));
    });
    g.bench_function(BenchmarkId::new("gpu", D), |b| {
        b.iter(|| gpu.apply_masks(black_box(&mut v), &batch).unwrap());
    });
    g.finish();

    let mut g = c.benchmark_group("quantise_and_mask_4");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((D * 4) as u64));
    let p = QuantParams::new(16, 1.0).unwrap();
    let rs = RoundingStream {
        seed: [9; 32],
        stream: 0,
    };
    let x: Vec<f32> = (0..D)
        .map(|i| ((i % 2001) as f32 - 1000.0) / 1000.0)
        .collect();
    let four = masks(4);
    let mut q = vec![0u32; D];
    g.bench_function(BenchmarkId::new("cpu_single_thread", D), |b| {
        b.iter(|| {
            quantise(black_box(&x), &p, &rs, &mut q).unwrap();
            apply_masks(&mut q, &four);
        });
    });
    g.bench_function(BenchmarkId::new("gpu", D), |b| {
        b.iter(|| {
            gpu.quantise_and_mask(black_box(&x), &p, &rs, &four, &mut q)
                .unwrap()
        });
    });
    g.finish();

    let mut g = c.benchmark_group("sum_16_vectors");
    g.sample_size(10);
    let vs: Vec<Vec<u32>> = (0..16u32).map(|i| vec![i; D]).collect();
    let refs: Vec<&[u32]> = vs.iter().map(Vec::as_slice).collect();
    g.throughput(Throughput::Bytes((D * 4 * refs.len()) as u64));
    g.bench_function(BenchmarkId::new("cpu", D), |b| {
        b.iter(|| sum_mod(black_box(&refs)).unwrap())
    });
    g.bench_function(BenchmarkId::new("gpu", D), |b| {
        b.iter(|| gpu.sum_mod(black_box(&refs)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, gpu_vs_cpu);
criterion_main!(benches);
