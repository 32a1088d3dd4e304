//! CPU kernels beside their floors, in one run (`cargo bench -p edge-kernels --bench cpu_kernels`):
//! fused mask + add vs rand_chacha's raw `fill_bytes` into a buffer of the same size;
//! modular sum vs `copy_from_slice`; a batch of masks on all cores vs on one.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use edge_kernels::{Mask, Sign, add_assign_mod, apply_mask, apply_masks, apply_masks_parallel};
use rand_core::Rng;
use std::hint::black_box;

const SIZES: [usize; 2] = [1 << 20, 16 << 20];

fn mask_vs_keystream(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask_vs_keystream");
    g.sample_size(10);
    for d in SIZES {
        g.throughput(Throughput::Bytes((d * 4) as u64));
        let mut bytes = vec![0u8; d * 4];
        g.bench_with_input(BenchmarkId::new("rand_chacha_fill_bytes", d), &d, |b, _| {
            let mut rng = edge_kernels::keystream_rng([5; 32], 1, 0);
            b.iter(|| rng.fill_bytes(black_box(&mut bytes)));
        });
        let mut v = vec![0u32; d];
        let mask = Mask::new([5; 32], 1, Sign::Add);
        g.bench_with_input(BenchmarkId::new("fused_mask_add", d), &d, |b, _| {
            b.iter(|| apply_mask(black_box(&mut v), &mask));
        });
    }
    g.finish();
}

fn sum_vs_memcpy(c: &mut Criterion) {
    let mut g = c.benchmark_group("sum_vs_memcpy");
    g.sample_size(20);
    for d in SIZES {
        g.throughput(Throughput::Bytes((d * 4) as u64));
        let src: Vec<u32> = (0..d as u32).collect();
        let mut dst = vec![0u32; d];
        g.bench_with_input(BenchmarkId::new("copy_from_slice", d), &d, |b, _| {
            b.iter(|| dst.copy_from_slice(black_box(&src)));
        });
        g.bench_with_input(BenchmarkId::new("add_assign_mod", d), &d, |b, _| {
            b.iter(|| add_assign_mod(black_box(&mut dst), black_box(&src)).unwrap());
        });
    }
    g.finish();
}

fn batch_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask_batch_threads");
    g.sample_size(10);
    let d = 1 << 20;
    let masks: Vec<Mask> = (0..8u8)
        .map(|i| {
            Mask::new(
                [i; 32],
                u64::from(i),
                if i % 2 == 0 { Sign::Add } else { Sign::Sub },
            )
        })
        .collect();
    g.throughput(Throughput::Bytes((d * 4 * masks.len()) as u64));
    let mut v = vec![0u32; d];
    g.bench_function(BenchmarkId::new("single_thread_8_masks", d), |b| {
        b.iter(|| apply_masks(black_box(&mut v), &masks));
    });
    g.bench_function(BenchmarkId::new("rayon_8_masks", d), |b| {
        b.iter(|| apply_masks_parallel(black_box(&mut v), &masks));
    });
    g.finish();
}

criterion_group!(benches, mask_vs_keystream, sum_vs_memcpy, batch_threads);
criterion_main!(benches);
