//! The ChaCha20 keystream that masks and stochastic rounding draw from.
//!
//! A keystream is named by a 32-byte seed and a 64-bit stream id; word `i` of it is the `i`-th
//! value `rand_chacha::ChaCha20Rng::from_seed(seed)` yields from `next_u32` after
//! `set_stream(stream)`. In state-matrix terms (rand_chacha's layout, which is Bernstein's
//! original ChaCha, not RFC 8439's): words 4–11 hold the seed, 12–13 a 64-bit little-endian
//! block counter and 14–15 the stream id, so word `i` of the stream is word `i % 16` of the
//! block with counter `i / 16`.
//!
//! [`keystream_rng`] is that definition, straight from rand_chacha; the tests hold every kernel
//! to it. The kernels themselves generate the same words with RustCrypto's `chacha20` in its
//! 64-bit-nonce ("legacy") mode, whose nonce is exactly the stream id: it dispatches to AVX2 at
//! run time, and to AVX-512 when built with `--cfg chacha20_avx512 -C target-feature=+avx512f`.

use chacha20::ChaCha20Legacy;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Words in one ChaCha20 block.
pub const BLOCK_WORDS: usize = 16;

/// A generator positioned at word `word_pos` of the keystream `(seed, stream)`: the reference
/// definition of every keystream in this crate.
pub fn keystream_rng(seed: [u8; 32], stream: u64, word_pos: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::from_seed(seed);
    rng.set_stream(stream);
    if word_pos != 0 {
        rng.set_word_pos(u128::from(word_pos));
    }
    rng
}

/// The kernels' keystream generator: the same words as [`keystream_rng`], faster.
pub(crate) struct Keystream(ChaCha20Legacy);

impl Keystream {
    /// Positioned at word `word_pos` of `(seed, stream)`.
    pub(crate) fn new(seed: &[u8; 32], stream: u64, word_pos: u64) -> Self {
        let mut cipher = ChaCha20Legacy::new(seed.into(), &stream.to_le_bytes().into());
        if word_pos != 0 {
            // 4·word_pos < 2^66 bytes: inside the 64-bit block counter's 2^70-byte range.
            cipher.seek(u128::from(word_pos) * 4);
        }
        Self(cipher)
    }

    /// Overwrites `buf` with the next `buf.len()` keystream bytes.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(0);
        self.0.apply_keystream(buf);
    }
}
