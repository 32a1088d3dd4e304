//! Shared by the integration tests: the RFC 8439 vectors, reference keystreams and the GPU.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use rand_core::Rng;

/// The keystream words `[from, from + n)` of `(seed, stream)` straight from rand_chacha's
/// `next_u32`: the definition every kernel must match.
pub fn reference_words(seed: [u8; 32], stream: u64, from: u64, n: usize) -> Vec<u32> {
    let mut rng = edge_kernels::keystream_rng(seed, stream, from);
    (0..n).map(|_| rng.next_u32()).collect()
}

pub fn hex_words(hex: &str) -> Vec<u32> {
    let bytes: Vec<u8> = hex
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect()
}

/// An RFC 8439 Appendix A.1 vector restated in rand_chacha's layout: the 96-bit nonce's last
/// 64 bits are the stream id and its first 32 bits (zero in all of A.1) the high half of the
/// block counter. Vectors #1–#4 have a zero nonce; #5 has nonce 00…00 02.
pub struct A1Vector {
    pub key: [u8; 32],
    pub stream: u64,
    pub block: u64,
    pub keystream: &'static str,
}

pub fn a1_vectors() -> Vec<A1Vector> {
    let mut key_one = [0u8; 32];
    key_one[31] = 1;
    let mut key_ff = [0u8; 32];
    key_ff[1] = 0xff;
    // Nonce 00..00 02: state word 15 = 0x02000000, the high half of the stream id.
    let nonce_two = 0x0200_0000u64 << 32;
    vec![
        A1Vector {
            key: [0; 32],
            stream: 0,
            block: 0,
            keystream: "76 b8 e0 ad a0 f1 3d 90 40 5d 6a e5 53 86 bd 28 bd d2 19 b8 a0 8d ed 1a \
                a8 36 ef cc 8b 77 0d c7 da 41 59 7c 51 57 48 8d 77 24 e0 3f b8 d8 4a 37 6a 43 b8 f4 \
                15 18 a1 1c c3 87 b6 69 b2 ee 65 86",
        },
        A1Vector {
            key: [0; 32],
            stream: 0,
            block: 1,
            keystream: "9f 07 e7 be 55 51 38 7a 98 ba 97 7c 73 2d 08 0d cb 0f 29 a0 48 e3 65 69 \
                12 c6 53 3e 32 ee 7a ed 29 b7 21 76 9c e6 4e 43 d5 71 33 b0 74 d8 39 d5 31 ed 1f 28 \
                51 0a fb 45 ac e1 0a 1f 4b 79 4d 6f",
        },
        A1Vector {
            key: key_one,
            stream: 0,
            block: 1,
            keystream: "3a eb 52 24 ec f8 49 92 9b 9d 82 8d b1 ce d4 dd 83 20 25 e8 01 8b 81 60 \
                b8 22 84 f3 c9 49 aa 5a 8e ca 00 bb b4 a7 3b da d1 92 b5 c4 2f 73 f2 fd 4e 27 36 44 \
                c8 b3 61 25 a6 4a dd eb 00 6c 13 a0",
        },
        A1Vector {
            key: key_ff,
            stream: 0,
            block: 2,
            keystream: "72 d5 4d fb f1 2e c4 4b 36 26 92 df 94 13 7f 32 8f ea 8d a7 39 90 26 5e \
                c1 bb be a1 ae 9a f0 ca 13 b2 5a a2 6c b4 a6 48 cb 9b 9d 1b e6 5b 2c 09 24 a6 6c 54 \
                d5 45 ec 1b 73 74 f4 87 2e 99 f0 96",
        },
        A1Vector {
            key: [0; 32],
            stream: nonce_two,
            block: 0,
            keystream: "c2 c6 4d 37 8c d5 36 37 4a e2 04 b9 ef 93 3f cd 1a 8b 22 88 b3 df a4 96 \
                72 ab 76 5b 54 ee 27 c7 8a 97 0e 0e 95 5c 14 f3 a8 8e 74 1b 97 c2 86 f7 5f 8f c2 99 \
                e8 14 83 62 fa 19 8a 39 53 1b ed 6d",
        },
    ]
}

/// Deterministic pseudo-random test data.
pub fn words(seed: u8, n: usize) -> Vec<u32> {
    reference_words([seed; 32], 0xDA7A, 0, n)
}

pub fn floats(seed: u8, n: usize, spread: f32) -> Vec<f32> {
    words(seed, n)
        .into_iter()
        .map(|w| (w as f32 / u32::MAX as f32 * 2.0 - 1.0) * spread)
        .collect()
}

/// The lengths the issue names: empty, one, around a block, around a workgroup, large and odd.
pub const LENGTHS: [usize; 8] = [0, 1, 15, 16, 17, 1023, 65_537, 1_000_003];

#[cfg(feature = "gpu")]
pub fn gpu() -> &'static edge_kernels::gpu::GpuKernels {
    use std::sync::OnceLock;
    static GPU: OnceLock<edge_kernels::gpu::GpuKernels> = OnceLock::new();
    GPU.get_or_init(|| match edge_kernels::gpu::GpuKernels::new() {
        Ok(k) => {
            eprintln!("GPU tests run on {:?}", k.adapter_info());
            k
        }
        Err(e) => panic!(
            "GPU tests need a wgpu adapter (Mesa's lavapipe will do: apt install \
             mesa-vulkan-drivers libvulkan1): {e}"
        ),
    })
}
