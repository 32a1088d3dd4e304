//! The CPU reference against its definitions: rand_chacha's word stream, exact cancellation of
//! pairwise masks, the quantiser's error bound and unbiasedness.

mod support;

use edge_kernels::{
    KernelError, Mask, QuantParams, RoundingStream, Sign, apply_mask, apply_mask_at, apply_masks,
    apply_masks_parallel, dequantise_mean, quantise, sum_mod,
};
use proptest::prelude::*;
use support::{LENGTHS, floats, reference_words, words};

const STREAMS: [u64; 5] = [0, 1, 0xFFFF_FFFF, 1 << 32, u64::MAX];

#[test]
fn masking_zeros_yields_rand_chachas_words_for_every_length_and_stream() {
    for &len in &LENGTHS {
        for &stream in &STREAMS {
            let seed = [len as u8 ^ 0x5A; 32];
            let mut v = vec![0u32; len];
            apply_mask(&mut v, &Mask::new(seed, stream, Sign::Add));
            assert!(
                v == reference_words(seed, stream, 0, len),
                "len {len} stream {stream:#x}"
            );
        }
    }
}

#[test]
fn subtracting_yields_the_negated_words() {
    let seed = [9; 32];
    let mut v = vec![0u32; 1023];
    apply_mask(&mut v, &Mask::new(seed, 3, Sign::Sub));
    let expected: Vec<u32> = reference_words(seed, 3, 0, 1023)
        .into_iter()
        .map(u32::wrapping_neg)
        .collect();
    assert_eq!(v, expected);
}

#[test]
fn the_parallel_batch_equals_the_sequential_batch() {
    let masks: Vec<Mask> = (0..6u8)
        .map(|i| {
            Mask::new(
                [i; 32],
                u64::from(i) << 40,
                if i % 3 == 0 { Sign::Sub } else { Sign::Add },
            )
        })
        .collect();
    for &len in &LENGTHS {
        let base = words(1, len);
        let mut seq = base.clone();
        let mut par = base.clone();
        apply_masks(&mut seq, &masks);
        apply_masks_parallel(&mut par, &masks);
        assert!(seq == par, "len {len}");
    }
}

#[test]
fn pairwise_masks_cancel_in_the_sum_and_self_masks_come_off_exactly() {
    // Five clients, each adds a self mask and, for every pair (u, v), u < v adds and v
    // subtracts the pair's keystream: the same arithmetic SecAgg+ relies on.
    let n = 5usize;
    let d = 10_007;
    let inputs: Vec<Vec<u32>> = (0..n)
        .map(|u| words(u as u8, d).iter().map(|w| w >> 12).collect())
        .collect();
    let pair_seed = |u: usize, v: usize| [(u * 16 + v) as u8; 32];
    let self_mask = |u: usize| Mask::new([200 + u as u8; 32], 7, Sign::Add);
    let masked: Vec<Vec<u32>> = (0..n)
        .map(|u| {
            let mut y = inputs[u].clone();
            let mut masks = vec![self_mask(u)];
            for v in (0..n).filter(|&v| v != u) {
                let (lo, hi) = (u.min(v), u.max(v));
                masks.push(Mask::new(
                    pair_seed(lo, hi),
                    0,
                    if u < v { Sign::Add } else { Sign::Sub },
                ));
            }
            apply_masks(&mut y, &masks);
            y
        })
        .collect();
    for (u, y) in masked.iter().enumerate() {
        assert_ne!(y, &inputs[u], "client {u} sent its input in the clear");
    }
    let refs: Vec<&[u32]> = masked.iter().map(Vec::as_slice).collect();
    let mut total = sum_mod(&refs).unwrap();
    let unmask: Vec<Mask> = (0..n)
        .map(|u| Mask::new(self_mask(u).seed, 7, Sign::Sub))
        .collect();
    apply_masks(&mut total, &unmask);
    let plain_refs: Vec<&[u32]> = inputs.iter().map(Vec::as_slice).collect();
    assert_eq!(total, sum_mod(&plain_refs).unwrap());
}

#[test]
fn quantise_then_dequantise_is_within_one_step() {
    for bits in [4, 8, 16, 24] {
        for range in [0.01f32, 1.0, 300.0] {
            let p = QuantParams::new(bits, range).unwrap();
            let x = floats(bits as u8, 4099, range * 1.5);
            let mut q = vec![0u32; x.len()];
            quantise(
                &x,
                &p,
                &RoundingStream {
                    seed: [bits as u8; 32],
                    stream: 1,
                },
                &mut q,
            )
            .unwrap();
            assert!(q.iter().all(|&v| v <= p.max_level()));
            let back = dequantise_mean(&q, 1, &p).unwrap();
            let step = 2.0 * f64::from(range) / f64::from(p.max_level());
            for (i, (&a, &b)) in x.iter().zip(&back).enumerate() {
                let clamped = f64::from(a.clamp(-range, range));
                let err = (f64::from(b) - clamped).abs();
                assert!(
                    err <= step * 1.001 + f64::from(range) * 1e-6,
                    "bits {bits} range {range} i {i}: {a} -> {b}"
                );
            }
        }
    }
}

#[test]
fn stochastic_rounding_is_unbiased() {
    // 64 values that sit between quantisation levels at 4 bits, rounded under 4 000 independent
    // streams: each mean must be within 6 standard errors (step / (2·√K)) of the true value.
    let p = QuantParams::new(4, 1.0).unwrap();
    let x = floats(42, 64, 1.0);
    let k = 4_000u64;
    let mut sums = vec![0u64; x.len()];
    let mut q = vec![0u32; x.len()];
    for stream in 0..k {
        quantise(
            &x,
            &p,
            &RoundingStream {
                seed: [1; 32],
                stream,
            },
            &mut q,
        )
        .unwrap();
        for (s, &v) in sums.iter_mut().zip(&q) {
            *s += u64::from(v);
        }
    }
    let step = 2.0 / f64::from(p.max_level());
    let bound = 6.0 * step / (2.0 * (k as f64).sqrt());
    for (i, (&xi, &s)) in x.iter().zip(&sums).enumerate() {
        let mean = s as f64 / k as f64 / f64::from(p.scale()) - 1.0;
        assert!(
            (mean - f64::from(xi)).abs() < bound,
            "value {i}: {xi} averaged to {mean}"
        );
    }
}

#[test]
fn mean_of_many_clients_dequantises_to_the_true_mean() {
    let p = QuantParams::new(16, 2.0).unwrap();
    let n = 50u64;
    let d = 1000;
    let clients: Vec<Vec<f32>> = (0..n).map(|c| floats(c as u8, d, 2.0)).collect();
    let mut sum = vec![0u32; d];
    for (c, x) in clients.iter().enumerate() {
        let mut q = vec![0u32; d];
        quantise(
            x,
            &p,
            &RoundingStream {
                seed: [c as u8; 32],
                stream: 0,
            },
            &mut q,
        )
        .unwrap();
        edge_kernels::add_assign_mod(&mut sum, &q).unwrap();
    }
    let mean = dequantise_mean(&sum, n, &p).unwrap();
    let step = 4.0 / f64::from(p.max_level());
    for i in 0..d {
        let truth: f64 = clients.iter().map(|x| f64::from(x[i])).sum::<f64>() / n as f64;
        assert!((f64::from(mean[i]) - truth).abs() <= step, "element {i}");
    }
    assert!(matches!(
        dequantise_mean(&sum, 70_000, &p),
        Err(KernelError::SumOverflow { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_slice_of_the_stream_matches_rand_chacha(
        seed in any::<[u8; 32]>(),
        stream in any::<u64>(),
        offset in 0u64..100_000,
        len in 0usize..3000,
        sign_add in any::<bool>(),
    ) {
        let mut v = vec![0u32; len];
        let sign = if sign_add { Sign::Add } else { Sign::Sub };
        apply_mask_at(&mut v, &Mask::new(seed, stream, sign), offset);
        let mut expected = reference_words(seed, stream, offset, len);
        if !sign_add {
            expected.iter_mut().for_each(|w| *w = w.wrapping_neg());
        }
        prop_assert_eq!(v, expected);
    }

    #[test]
    fn quantised_values_stay_in_range(
        bits in 1u32..=32,
        range in 1e-3f32..1e6,
        x in proptest::collection::vec(-1e7f32..1e7, 0..200),
        stream in any::<u64>(),
    ) {
        let p = QuantParams::new(bits, range).unwrap();
        let mut q = vec![0u32; x.len()];
        quantise(&x, &p, &RoundingStream { seed: [3; 32], stream }, &mut q).unwrap();
        prop_assert!(q.iter().all(|&v| v <= p.max_level()));
    }
}
