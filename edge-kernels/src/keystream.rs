//! The ChaCha20 keystream that masks and stochastic rounding draw from.
//!
//! A keystream is named by a 32-byte seed and a 64-bit stream id; word `i` of it is the `i`-th
//! value `rand_chacha::ChaCha20Rng::from_seed(seed)` yields from `next_u32` after
//! `set_stream(stream)`. In state-matrix terms (rand_chacha's layout, not RFC 8439's): words 4–11
//! hold the seed, 12–13 a 64-bit little-endian block counter and 14–15 the stream id, so word `i`
//! of the stream is word `i % 16` of the block with counter `i / 16`.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Words in one ChaCha20 block.
pub const BLOCK_WORDS: usize = 16;

/// A generator positioned at word `word_pos` of the keystream `(seed, stream)`.
pub fn keystream_rng(seed: [u8; 32], stream: u64, word_pos: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::from_seed(seed);
    rng.set_stream(stream);
    if word_pos != 0 {
        rng.set_word_pos(u128::from(word_pos));
    }
    rng
}
