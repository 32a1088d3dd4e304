//! Client, phase 3: mask the quantised update,
//! `y = q + PRG(b_u) + Σ_{v>u} PRG(s_uv) − Σ_{v<u} PRG(s_uv) (mod 2^32)` over the neighbours
//! whose shares arrived (and opened), and send it in chunks; the first chunk names the
//! refused neighbours.

use edge_kernels::{Mask, Sign, apply_masks};

use super::{Client, ClientError, ClientPhase, State};
use crate::keys::{MASK_STREAM, pair_sign};
use crate::wire::{CHUNK_WORDS, ClientMessage, MaskedChunk, Refusal, words_to_bytes};

impl Client {
    /// The masks this client's input needs: its self mask and one pairwise mask per neighbour
    /// it exchanged shares with. For callers that mask elsewhere (a GPU) and then call
    /// [`Client::submit_masked_input`].
    ///
    /// # Errors
    /// [`ClientError::UnexpectedMessage`] outside the input phase, or a key error.
    pub fn input_masks(&self) -> Result<Vec<Mask>, ClientError> {
        self.require_state(ClientPhase::AwaitingInput, "input masks")?;
        let mut masks = Vec::with_capacity(self.held.len() + 1);
        masks.push(Mask::new(*self.self_seed, MASK_STREAM, Sign::Add));
        for peer in self.held.keys() {
            let keys = self
                .peers
                .get(peer)
                .ok_or(ClientError::UnknownPeer(*peer))?;
            masks.push(Mask::new(
                *keys.pair_seed,
                MASK_STREAM,
                pair_sign(self.id, *peer),
            ));
        }
        Ok(masks)
    }

    /// Masks the quantised update `input` on the CPU and queues it for sending.
    ///
    /// # Errors
    /// [`ClientError::InputLength`], [`ClientError::InputOutOfRange`] (a word above
    /// `2^bits − 1` could make the sum wrap), or a phase error.
    pub fn submit_input(&mut self, mut input: Vec<u32>) -> Result<(), ClientError> {
        self.check_len(input.len())?;
        let max = self.config.quant_params()?.max_level();
        if let Some(index) = input.iter().position(|&w| w > max) {
            return Err(ClientError::InputOutOfRange {
                index,
                value: input[index],
                max,
            });
        }
        let masks = self.input_masks()?;
        apply_masks(&mut input, &masks);
        self.submit_masked_input(input)
    }

    /// Queues an input that the caller already masked with [`Client::input_masks`].
    ///
    /// # Errors
    /// [`ClientError::InputLength`] or a phase error.
    pub fn submit_masked_input(&mut self, masked: Vec<u32>) -> Result<(), ClientError> {
        self.require_state(ClientPhase::AwaitingInput, "input")?;
        self.check_len(masked.len())?;
        let total = self.config.vector_len;
        let mut refusals: Vec<Refusal> = self
            .refused
            .iter()
            .map(|(&peer, seed)| Refusal {
                peer,
                pair_seed: **seed,
            })
            .collect();
        for (i, chunk) in masked.chunks(CHUNK_WORDS).enumerate() {
            self.outbox
                .push_back(ClientMessage::MaskedChunk(MaskedChunk {
                    client: self.id,
                    offset: (i * CHUNK_WORDS) as u32,
                    total,
                    words: words_to_bytes(chunk),
                    refusals: std::mem::take(&mut refusals),
                }));
        }
        self.state = State::AwaitingSurvivors;
        Ok(())
    }

    fn check_len(&self, got: usize) -> Result<(), ClientError> {
        let expected = self.config.vector_len as usize;
        if got == expected {
            Ok(())
        } else {
            Err(ClientError::InputLength { expected, got })
        }
    }
}
