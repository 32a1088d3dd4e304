//! Server, phase 3: receive masked inputs chunk by chunk, in any order (each chunk names its
//! offset; streams overtake each other). A client's vector is folded into the
//! running modular sum the moment its last chunk arrives, and its buffer freed; a client that
//! stops half-way contributes nothing (its partial vector is dropped with it), so the sum only
//! ever holds whole inputs. The chunk at offset 0 names the neighbours the input is not
//! masked against (their signed shares did not open for this client), with the pairwise seed
//! that takes the neighbour's half of their mask out of the sum; they count once the whole
//! input is in.

use std::collections::{BTreeMap, BTreeSet};

use zeroize::Zeroizing;

use super::{AbortError, Server, ServerError};
use crate::config::ClientId;
use crate::phase::Phase;
use crate::wire::{CHUNK_WORDS, MaskedChunk, Refusal, ServerMessage};

/// A client's masked vector while its chunks arrive.
pub(super) struct Upload {
    words: Vec<u32>,
    filled: Vec<bool>,
    missing: usize,
    refusals: BTreeMap<u32, Zeroizing<[u8; 32]>>,
}

impl Upload {
    fn new(total: usize) -> Self {
        let slots = total.div_ceil(CHUNK_WORDS);
        Self {
            words: vec![0; total],
            filled: vec![false; slots],
            missing: slots,
            refusals: BTreeMap::new(),
        }
    }
}

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
        // Chunks travel on independent streams and may arrive in any order: each lands at its
        // offset, which must start a chunk slot; a slot filled twice is refused.
        let count = chunk.words.len() / 4;
        let offset = chunk.offset as usize;
        let slot = offset / CHUNK_WORDS;
        let expected = CHUNK_WORDS.min(total.saturating_sub(offset));
        if !offset.is_multiple_of(CHUNK_WORDS) || offset >= total || count != expected {
            return Err(Self::invalid(
                from,
                phase,
                format!(
                    "chunk at word {offset} of {count} words: chunks start at multiples of \
                     {CHUNK_WORDS} and fill their slot of a {total}-word vector"
                ),
            ));
        }
        let refusals = if offset == 0 {
            self.check_refusals(index, from, &chunk.refusals)?
        } else if chunk.refusals.is_empty() {
            BTreeMap::new()
        } else {
            return Err(Self::invalid(
                from,
                phase,
                format!("chunk at word {offset} names refusals: only the first chunk does"),
            ));
        };
        let upload = self
            .partial
            .entry(index)
            .or_insert_with(|| Upload::new(total));
        if upload.filled[slot] {
            return Err(Self::invalid(
                from,
                phase,
                format!("chunk at word {offset} sent twice"),
            ));
        }
        let (words, _) = chunk.words.as_chunks::<4>();
        for (dst, w) in upload.words[offset..offset + count].iter_mut().zip(words) {
            *dst = u32::from_le_bytes(*w);
        }
        upload.filled[slot] = true;
        upload.missing -= 1;
        if offset == 0 {
            upload.refusals = refusals;
        }
        if upload.missing == 0 {
            if let Some(done) = self.partial.remove(&index) {
                edge_kernels::add_assign_mod(&mut self.acc, &done.words)
                    .map_err(|e| Self::invalid(from, phase, e.to_string()))?;
                if !done.refusals.is_empty() {
                    self.refusals.insert(index, done.refusals);
                }
            }
            self.delivered.insert(index);
        }
        Ok(())
    }

    /// Checks the refusals of client `index`: each names, once, a neighbour whose share it
    /// was sent, and it still holds `t` shares.
    fn check_refusals(
        &self,
        index: u32,
        from: ClientId,
        refusals: &[Refusal],
    ) -> Result<BTreeMap<u32, Zeroizing<[u8; 32]>>, ServerError> {
        let phase = Phase::MaskedInput;
        let sent: BTreeSet<u32> = self.neighbours_in(index, &self.sharers).collect();
        let mut out = BTreeMap::new();
        for r in refusals {
            let peer = self
                .config
                .index_of(r.peer)
                .filter(|p| sent.contains(p))
                .ok_or_else(|| {
                    Self::invalid(
                        from,
                        phase,
                        format!("refuses client {}, whose share it was not sent", r.peer),
                    )
                })?;
            if out.insert(peer, Zeroizing::new(r.pair_seed)).is_some() {
                return Err(Self::invalid(
                    from,
                    phase,
                    format!("refuses client {} twice", r.peer),
                ));
            }
        }
        let t = self.config.threshold as usize;
        if sent.len() - out.len() < t {
            return Err(Self::invalid(
                from,
                phase,
                format!(
                    "refuses {} of its {} neighbours' shares and holds fewer than t = {t}",
                    out.len(),
                    sent.len()
                ),
            ));
        }
        Ok(out)
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
        // Every survivor's self-mask seed and every dropped client's key must be rebuildable
        // from shares held by survivors; and each survivor refuses to sign with fewer than t
        // surviving neighbours. One condition covers both. Then the survivor list goes to
        // every survivor, to be signed; it needs a quorum of survivors to be signable at all.
        self.require_quorum_and_holders(&u3, phase)?;
        let list: Vec<ClientId> = u3.iter().map(|&v| self.id(v)).collect();
        self.survivors_hash = crate::keys::survivors_hash(&list);
        for &v in &u3 {
            self.outbox
                .push_back((self.id(v), ServerMessage::Survivors(list.clone())));
        }
        self.survivors = u3.clone();
        self.active = u3;
        Ok(Some(Phase::Consistency))
    }
}
