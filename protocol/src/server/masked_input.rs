//! Server, phase 3: receive masked inputs chunk by chunk. A client's vector is folded into the
//! running modular sum the moment its last chunk arrives, and its buffer freed; a client that
//! stops half-way contributes nothing (its partial vector is dropped with it), so the sum only
//! ever holds whole inputs.

use super::{AbortError, Server, ServerError};
use crate::config::ClientId;
use crate::phase::Phase;
use crate::wire::{MaskedChunk, ServerMessage, UnmaskRequest};

impl Server {
    pub(super) fn on_chunk(
        &mut self,
        index: u32,
        from: ClientId,
        chunk: MaskedChunk,
    ) -> Result<(), ServerError> {
        let phase = Phase::MaskedInput;
        self.check_sender(index, from, chunk.client, phase)?;
        let total = self.config.vector_len as usize;
        if chunk.total as usize != total {
            return Err(Self::invalid(
                from,
                phase,
                format!("vector of {} words, the round has {total}", chunk.total),
            ));
        }
        if chunk.words.is_empty() || !chunk.words.len().is_multiple_of(4) {
            return Err(Self::invalid(
                from,
                phase,
                format!("chunk of {} bytes is not whole words", chunk.words.len()),
            ));
        }
        let upload = self
            .partial
            .entry(index)
            .or_insert_with(|| Vec::with_capacity(total));
        let received = upload.len();
        let count = chunk.words.len() / 4;
        if chunk.offset as usize != received || received + count > total {
            return Err(Self::invalid(
                from,
                phase,
                format!(
                    "chunk at word {} of {count} words, expected word {received} of {total}",
                    chunk.offset
                ),
            ));
        }
        let (words, _) = chunk.words.as_chunks::<4>();
        upload.extend(words.iter().map(|w| u32::from_le_bytes(*w)));
        if upload.len() == total {
            if let Some(done) = self.partial.remove(&index) {
                edge_kernels::add_assign_mod(&mut self.acc, &done)
                    .map_err(|e| Self::invalid(from, phase, e.to_string()))?;
            }
            self.delivered.insert(index);
        }
        Ok(())
    }

    pub(super) fn end_masked_input(&mut self) -> Result<Option<Phase>, AbortError> {
        let phase = Phase::MaskedInput;
        self.partial.clear();
        // Everyone whose whole masked input arrived is in the sum, even if it was lost (or
        // excluded) afterwards within this phase: its vector is already folded in, so its
        // self mask must be removed like any survivor's (rebuilt from its neighbours' shares),
        // never its pairwise masks cancelled as if it had dropped. It is not asked to answer
        // the unmask request (`excluded` stays set), so the round does not wait for it.
        let u3 = self.delivered.clone();
        self.require_count(&u3, phase)?;
        let t = self.config.threshold as usize;
        // Every survivor's self-mask seed and every dropped client's key must be rebuildable
        // from shares held by survivors; and each survivor refuses to answer with fewer than
        // t surviving neighbours. One condition covers both.
        for &u in &self.sharers {
            let have = self.neighbours_in(u, &u3).count();
            if have < t {
                return Err(AbortError::NotEnoughShares {
                    phase,
                    client: self.id(u),
                    have,
                    need: t,
                });
            }
        }
        for &v in &u3 {
            let survivors = self.neighbours_in(v, &u3).map(|u| self.id(u)).collect();
            let dropped = self
                .neighbours_in(v, &self.sharers)
                .filter(|u| !u3.contains(u))
                .map(|u| self.id(u))
                .collect();
            let request = UnmaskRequest { survivors, dropped };
            self.outbox
                .push_back((self.id(v), ServerMessage::UnmaskRequest(request.clone())));
            self.requests.insert(v, request);
        }
        self.active = u3;
        Ok(Some(Phase::Unmask))
    }
}
