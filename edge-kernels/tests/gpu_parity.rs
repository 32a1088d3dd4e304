//! The wgpu kernels against the CPU reference, word for word, on the same vectors: every length
//! the issue names, several stream ids, forced chunking, edge values of the quantiser, and
//! random cases (proptest). These run on whatever adapter wgpu finds; in CI that is Mesa's
//! lavapipe. Without an adapter they fail: they are never skipped silently.
#![cfg(feature = "gpu")]

mod support;

use edge_kernels::gpu::GpuKernels;
use edge_kernels::{
    KernelError, Mask, QuantParams, RoundingStream, Sign, apply_masks, quantise, sum_mod,
};
use proptest::prelude::*;
use support::{LENGTHS, floats, gpu, reference_words, words};

const STREAMS: [u64; 4] = [0, 0xFFFF_FFFF, 1 << 32, u64::MAX];

fn batch(tag: u8, n: u8) -> Vec<Mask> {
    (0..n)
        .map(|i| {
            let sign = if i % 2 == 0 { Sign::Add } else { Sign::Sub };
            Mask::new(
                [tag.wrapping_add(i); 32],
                STREAMS[usize::from(i) % STREAMS.len()],
                sign,
            )
        })
        .collect()
}

#[test]
fn a_single_mask_on_zeros_is_rand_chachas_stream_for_every_length() {
    for &len in &LENGTHS {
        for &stream in &STREAMS {
            let seed = [len as u8 ^ 0x3C; 32];
            let mut v = vec![0u32; len];
            gpu()
                .apply_masks(&mut v, &[Mask::new(seed, stream, Sign::Add)])
                .unwrap();
            assert!(
                v == reference_words(seed, stream, 0, len),
                "len {len} stream {stream:#x}"
            );
        }
    }
}

#[test]
fn a_batch_of_masks_equals_the_cpu_for_every_length() {
    let masks = batch(11, 5);
    for &len in &LENGTHS {
        let mut cpu = words(2, len);
        let mut gpu_out = cpu.clone();
        apply_masks(&mut cpu, &masks);
        gpu().apply_masks(&mut gpu_out, &masks).unwrap();
        assert!(cpu == gpu_out, "len {len}");
    }
}

#[test]
fn chunked_runs_equal_unchunked_runs() {
    // 1 024-word chunks force 98 and 977 chunks on the two long vectors.
    let small = GpuKernels::new().unwrap().with_chunk_words(1024);
    assert_eq!(small.chunk_words(), 1024);
    let masks = batch(40, 3);
    let p = QuantParams::new(12, 0.5).unwrap();
    let rs = RoundingStream {
        seed: [8; 32],
        stream: 1 << 33,
    };
    for len in [1025usize, 100_003, 1_000_003] {
        let mut a = words(3, len);
        let mut b = a.clone();
        small.apply_masks(&mut a, &masks).unwrap();
        apply_masks(&mut b, &masks);
        assert!(a == b, "mask, len {len}");

        let x = floats(4, len, 0.7);
        let mut qa = vec![0u32; len];
        let mut qb = vec![0u32; len];
        small
            .quantise_and_mask(&x, &p, &rs, &masks, &mut qa)
            .unwrap();
        quantise(&x, &p, &rs, &mut qb).unwrap();
        apply_masks(&mut qb, &masks);
        assert!(qa == qb, "quantise+mask, len {len}");

        let vs: Vec<Vec<u32>> = (0..3).map(|i| words(i, len)).collect();
        let refs: Vec<&[u32]> = vs.iter().map(Vec::as_slice).collect();
        assert!(
            small.sum_mod(&refs).unwrap() == sum_mod(&refs).unwrap(),
            "sum, len {len}"
        );
    }
}

#[test]
fn quantise_equals_the_cpu_for_every_length_width_and_range() {
    for &len in &LENGTHS {
        for (bits, range) in [(1, 1.0f32), (8, 0.01), (16, 1.0), (24, 3.0e5), (32, 2.0)] {
            let p = QuantParams::new(bits, range).unwrap();
            let rs = RoundingStream {
                seed: [bits as u8; 32],
                stream: len as u64,
            };
            let x = floats(bits as u8, len, range * 1.25);
            let mut cpu = vec![0u32; len];
            let mut gpu_out = vec![0u32; len];
            quantise(&x, &p, &rs, &mut cpu).unwrap();
            gpu().quantise(&x, &p, &rs, &mut gpu_out).unwrap();
            assert!(cpu == gpu_out, "len {len} bits {bits} range {range}");
        }
    }
}

#[test]
fn quantise_edge_values_agree() {
    // Ends of the range, signed zeros, subnormals, values just inside and outside the range,
    // values that land exactly on a level, and the largest finite floats.
    let range = 1.0f32;
    let mut x = vec![
        -1.0,
        1.0,
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1.0e-40,
        -1.0e-40,
        1.0f32.next_down(),
        (-1.0f32).next_up(),
        1.0f32.next_up(),
        f32::MAX,
        f32::MIN,
        0.5,
        -0.5,
    ];
    x.extend((0..=255).map(|l| l as f32 / 255.0 * 2.0 - 1.0));
    for bits in [1, 2, 8, 23, 24, 25, 31, 32] {
        let p = QuantParams::new(bits, range).unwrap();
        for stream in 0..4 {
            let rs = RoundingStream {
                seed: [0xEE; 32],
                stream,
            };
            let mut cpu = vec![0u32; x.len()];
            let mut gpu_out = vec![0u32; x.len()];
            quantise(&x, &p, &rs, &mut cpu).unwrap();
            gpu().quantise(&x, &p, &rs, &mut gpu_out).unwrap();
            for i in 0..x.len() {
                assert_eq!(
                    cpu[i], gpu_out[i],
                    "bits {bits} stream {stream} x = {:e}",
                    x[i]
                );
            }
        }
    }
}

#[test]
fn quantise_and_mask_equals_quantise_then_mask() {
    let masks = batch(77, 4);
    let p = QuantParams::new(20, 4.0).unwrap();
    let rs = RoundingStream {
        seed: [5; 32],
        stream: 9,
    };
    for &len in &LENGTHS {
        let x = floats(6, len, 5.0);
        let mut cpu = vec![0u32; len];
        quantise(&x, &p, &rs, &mut cpu).unwrap();
        apply_masks(&mut cpu, &masks);
        let mut gpu_out = vec![0u32; len];
        gpu()
            .quantise_and_mask(&x, &p, &rs, &masks, &mut gpu_out)
            .unwrap();
        assert!(cpu == gpu_out, "len {len}");
    }
}

#[test]
fn non_finite_input_is_refused_with_the_cpus_error() {
    let p = QuantParams::new(8, 1.0).unwrap();
    let rs = RoundingStream {
        seed: [0; 32],
        stream: 0,
    };
    let small = GpuKernels::new().unwrap().with_chunk_words(64);
    for (bad_at, value) in [
        (0usize, f32::NAN),
        (100, f32::INFINITY),
        (999, f32::NEG_INFINITY),
    ] {
        let mut x = floats(1, 1000, 0.5);
        x[bad_at] = value;
        x[999.min(bad_at + 7)] = f32::NAN;
        let mut out = vec![0u32; x.len()];
        let cpu_err = quantise(&x, &p, &rs, &mut out).unwrap_err();
        for k in [gpu(), &small] {
            match k.quantise(&x, &p, &rs, &mut out).unwrap_err() {
                edge_kernels::gpu::GpuError::Kernel(e) => {
                    assert!(matches!(e, KernelError::NonFinite { index, .. } if index == bad_at));
                    assert_eq!(e.to_string(), cpu_err.to_string());
                }
                other => panic!("unexpected error {other}"),
            }
        }
    }
    let mut short = vec![0u32; 3];
    assert!(gpu().quantise(&[0.0; 4], &p, &rs, &mut short).is_err());
}

#[test]
fn sum_equals_the_cpu_for_every_length() {
    for &len in &LENGTHS {
        let vs: Vec<Vec<u32>> = (0..7).map(|i| words(i + 20, len)).collect();
        let refs: Vec<&[u32]> = vs.iter().map(Vec::as_slice).collect();
        assert!(
            gpu().sum_mod(&refs).unwrap() == sum_mod(&refs).unwrap(),
            "len {len}"
        );
    }
    assert!(gpu().sum_mod(&[]).unwrap().is_empty());
    assert!(gpu().sum_mod(&[&[1, 2][..], &[3][..]]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_batches_agree(
        len in 0usize..5000,
        seeds in proptest::collection::vec((any::<[u8; 32]>(), any::<u64>(), any::<bool>()), 1..6),
        x_seed in any::<u8>(),
        bits in 1u32..=24,
    ) {
        let masks: Vec<Mask> = seeds
            .into_iter()
            .map(|(s, stream, add)| Mask::new(s, stream, if add { Sign::Add } else { Sign::Sub }))
            .collect();
        let p = QuantParams::new(bits, 1.0).unwrap();
        let rs = RoundingStream { seed: [x_seed; 32], stream: u64::from(bits) };
        let x = floats(x_seed, len, 1.1);
        let mut cpu = vec![0u32; len];
        quantise(&x, &p, &rs, &mut cpu).unwrap();
        apply_masks(&mut cpu, &masks);
        let mut gpu_out = vec![0u32; len];
        gpu().quantise_and_mask(&x, &p, &rs, &masks, &mut gpu_out).unwrap();
        prop_assert_eq!(cpu, gpu_out);
    }
}
