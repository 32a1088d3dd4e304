//! Mask expansion fused with modular add or subtract: the CPU reference.
//!
//! A mask is a ChaCha20 keystream (word for word [`crate::keystream_rng`]'s) added to or subtracted from a
//! vector word by word, modulo 2^32. The keystream is produced 1 KiB at a time into a buffer on
//! the stack and folded into the output at once, so masking a vector of `d` words allocates
//! nothing of size `d` and reads and writes the output exactly once per batch.

use crate::keystream::Keystream;

/// Words produced per keystream refill: 1 KiB, small enough to stay in L1.
const CHUNK_WORDS: usize = 256;

/// Whether a mask is added to or subtracted from the vector (mod 2^32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sign {
    /// `out[i] = out[i] + keystream[i] (mod 2^32)`.
    Add,
    /// `out[i] = out[i] − keystream[i] (mod 2^32)`.
    Sub,
}

impl Sign {
    /// The sign that cancels this one.
    #[must_use]
    pub fn opposite(self) -> Self {
        match self {
            Sign::Add => Sign::Sub,
            Sign::Sub => Sign::Add,
        }
    }
}

/// One keystream to add or subtract: seed, stream id and sign.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mask {
    /// The 32-byte ChaCha20 key.
    pub seed: [u8; 32],
    /// The 64-bit stream id (rand_chacha's `set_stream`).
    pub stream: u64,
    /// Add or subtract.
    pub sign: Sign,
}

impl Mask {
    /// A mask from its parts.
    #[must_use]
    pub fn new(seed: [u8; 32], stream: u64, sign: Sign) -> Self {
        Self { seed, stream, sign }
    }
}

// The seed is secret key material: never print it.
impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mask")
            .field("seed", &"<redacted>")
            .field("stream", &self.stream)
            .field("sign", &self.sign)
            .finish()
    }
}

/// Adds or subtracts the keystream of `mask`, from its first word, into `out`.
pub fn apply_mask(out: &mut [u32], mask: &Mask) {
    apply_mask_at(out, mask, 0);
}

/// Like [`apply_mask`], but `out[0]` receives keystream word `word_pos`: the form used to mask
/// a vector in independent slices (threads, GPU chunks, streamed frames).
pub fn apply_mask_at(out: &mut [u32], mask: &Mask, word_pos: u64) {
    apply_masks_at(out, std::slice::from_ref(mask), word_pos);
}

/// Applies every mask of a batch to `out`, each from its first word.
///
/// The vector is walked once: each 1 KiB slice of `out` receives all masks before the next.
pub fn apply_masks(out: &mut [u32], masks: &[Mask]) {
    apply_masks_at(out, masks, 0);
}

/// [`apply_masks`] on all cores (rayon): `out` is split into slices at block boundaries and
/// each slice starts every keystream at its own word position. Same result, word for word.
#[cfg(feature = "parallel")]
pub fn apply_masks_parallel(out: &mut [u32], masks: &[Mask]) {
    use rayon::prelude::*;
    /// Words per task: large enough to amortise seeking each keystream, a multiple of a block.
    const TASK_WORDS: usize = 64 * 1024;
    out.par_chunks_mut(TASK_WORDS)
        .enumerate()
        .for_each(|(i, slice)| apply_masks_at(slice, masks, (i * TASK_WORDS) as u64));
}

fn apply_masks_at(out: &mut [u32], masks: &[Mask], word_pos: u64) {
    let mut streams: Vec<(Keystream, Sign)> = masks
        .iter()
        .map(|m| (Keystream::new(&m.seed, m.stream, word_pos), m.sign))
        .collect();
    let mut buf = [0u8; CHUNK_WORDS * 4];
    for slice in out.chunks_mut(CHUNK_WORDS) {
        let bytes = &mut buf[..slice.len() * 4];
        for (rng, sign) in &mut streams {
            rng.fill(bytes);
            fold(slice, bytes, *sign);
        }
    }
}

/// `slice[i] ±= le_u32(bytes[4i..4i+4])`, written as two straight loops so that each vectorises.
fn fold(slice: &mut [u32], bytes: &[u8], sign: Sign) {
    let (words, _) = bytes.as_chunks::<4>();
    match sign {
        Sign::Add => {
            for (o, w) in slice.iter_mut().zip(words) {
                *o = o.wrapping_add(u32::from_le_bytes(*w));
            }
        }
        Sign::Sub => {
            for (o, w) in slice.iter_mut().zip(words) {
                *o = o.wrapping_sub(u32::from_le_bytes(*w));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_sub_restores_the_vector() {
        let original: Vec<u32> = (0..1000).collect();
        let mut v = original.clone();
        let m = Mask::new([3; 32], 9, Sign::Add);
        apply_mask(&mut v, &m);
        assert_ne!(v, original);
        apply_mask(&mut v, &Mask::new(m.seed, m.stream, m.sign.opposite()));
        assert_eq!(v, original);
    }

    #[test]
    fn debug_output_hides_the_seed() {
        let text = format!("{:?}", Mask::new([0xAB; 32], 1, Sign::Sub));
        assert!(!text.contains("171"), "{text}");
        assert!(text.contains("redacted"));
    }
}
