//! The keystream against RFC 8439: the block function test vector of §2.3.2 and the five
//! keystreams of Appendix A.1, on the CPU (rand_chacha, which every kernel reproduces) and, with
//! the `gpu` feature, through the GPU mask kernel.

mod support;
use support::{a1_vectors, hex_words, reference_words};

#[test]
fn rfc8439_section_2_3_2_block_function() {
    let key: [u8; 32] = std::array::from_fn(|i| i as u8);
    // Nonce 00 00 00 09 | 00 00 00 4a | 00 00 00 00 and counter 1. In rand_chacha's layout the
    // nonce's first word (state word 13) is the high half of the 64-bit block counter and the
    // other two form the stream id.
    let block = (0x0900_0000u64 << 32) | 1;
    let stream = 0x4a00_0000u64;
    let expected = hex_words(
        "10 f1 e7 e4 d1 3b 59 15 50 0f dd 1f a3 20 71 c4 c7 d1 f4 c7 33 c0 68 03 04 22 aa 9a c3 d4 \
         6c 4e d2 82 64 46 07 9f aa 09 14 c2 d7 05 d9 8b 02 a2 b5 12 9c d1 de 16 4e b9 cb d0 83 e8 \
         a2 50 3c 4e",
    );
    assert_eq!(reference_words(key, stream, block * 16, 16), expected);
}

#[test]
fn rfc8439_appendix_a1_keystreams_on_the_cpu() {
    for (i, v) in a1_vectors().into_iter().enumerate() {
        let got = reference_words(v.key, v.stream, v.block * 16, 16);
        assert_eq!(got, hex_words(v.keystream), "A.1 test vector #{}", i + 1);
    }
}

#[test]
fn the_cpu_mask_kernel_adds_exactly_the_keystream() {
    for (i, v) in a1_vectors().into_iter().enumerate() {
        let mut out = vec![0u32; (v.block as usize + 1) * 16];
        edge_kernels::apply_mask(
            &mut out,
            &edge_kernels::Mask::new(v.key, v.stream, edge_kernels::Sign::Add),
        );
        assert_eq!(
            &out[v.block as usize * 16..],
            &hex_words(v.keystream)[..],
            "vector #{}",
            i + 1
        );
    }
}

#[cfg(feature = "gpu")]
#[test]
fn rfc8439_appendix_a1_keystreams_on_the_gpu() {
    use edge_kernels::{Mask, Sign};
    for (i, v) in a1_vectors().into_iter().enumerate() {
        let mut out = vec![0u32; (v.block as usize + 1) * 16];
        support::gpu()
            .apply_masks(&mut out, &[Mask::new(v.key, v.stream, Sign::Add)])
            .unwrap();
        assert_eq!(
            &out[v.block as usize * 16..],
            &hex_words(v.keystream)[..],
            "vector #{}",
            i + 1
        );
    }
}
