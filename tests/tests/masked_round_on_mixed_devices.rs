//! One round of masked aggregation at the kernel level, with devices of both kinds: some
//! clients quantise and mask on the GPU, others on the CPU, and the aggregator sums on the GPU.
//! The masks must cancel exactly and the mean must come back within one quantisation step.
#![cfg(feature = "gpu")]

use edge_kernels::gpu::GpuKernels;
use edge_kernels::{
    Mask, QuantParams, RoundingStream, Sign, apply_masks, check_sum_capacity, clip_l2,
    dequantise_mean, quantise, sum_mod,
};

const CLIENTS: usize = 6;
const D: usize = 50_021;

fn update(client: usize) -> Vec<f32> {
    (0..D)
        .map(|i| (((i * 31 + client * 7919) % 2003) as f32 - 1001.0) / 4000.0)
        .collect()
}

fn pair_seed(u: usize, v: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[0] = u.min(v) as u8;
    s[1] = u.max(v) as u8;
    s
}

fn self_seed(u: usize) -> [u8; 32] {
    [0xA0 + u as u8; 32]
}

#[test]
fn gpu_and_cpu_clients_sum_to_the_plain_mean() {
    let gpu = GpuKernels::new().expect("this test needs a wgpu adapter (lavapipe in CI)");
    let params = QuantParams::new(16, 0.5).unwrap();
    check_sum_capacity(CLIENTS as u64, params.bits()).unwrap();

    let mut masked = Vec::new();
    let mut plain = Vec::new();
    for u in 0..CLIENTS {
        let mut x = update(u);
        clip_l2(&mut x, 100.0).unwrap();
        let rounding = RoundingStream {
            seed: [u as u8; 32],
            stream: 0,
        };
        let mut masks = vec![Mask::new(self_seed(u), 0, Sign::Add)];
        for v in (0..CLIENTS).filter(|&v| v != u) {
            masks.push(Mask::new(
                pair_seed(u, v),
                0,
                if u < v { Sign::Add } else { Sign::Sub },
            ));
        }
        let mut q = vec![0u32; D];
        quantise(&x, &params, &rounding, &mut q).unwrap();
        plain.push(q);
        let mut y = vec![0u32; D];
        if u % 2 == 0 {
            gpu.quantise_and_mask(&x, &params, &rounding, &masks, &mut y)
                .unwrap();
        } else {
            quantise(&x, &params, &rounding, &mut y).unwrap();
            apply_masks(&mut y, &masks);
        }
        masked.push(y);
    }

    let refs: Vec<&[u32]> = masked.iter().map(Vec::as_slice).collect();
    let mut total = gpu.sum_mod(&refs).unwrap();
    let self_masks: Vec<Mask> = (0..CLIENTS)
        .map(|u| Mask::new(self_seed(u), 0, Sign::Sub))
        .collect();
    gpu.apply_masks(&mut total, &self_masks).unwrap();

    let plain_refs: Vec<&[u32]> = plain.iter().map(Vec::as_slice).collect();
    assert_eq!(
        total,
        sum_mod(&plain_refs).unwrap(),
        "unmasked sum differs from the plain sum"
    );

    let mean = dequantise_mean(&total, CLIENTS as u64, &params).unwrap();
    let step = 1.0 / f64::from(params.max_level());
    for i in (0..D).step_by(97) {
        let truth: f64 =
            (0..CLIENTS).map(|u| f64::from(update(u)[i])).sum::<f64>() / CLIENTS as f64;
        assert!((f64::from(mean[i]) - truth).abs() <= step, "element {i}");
    }
}
