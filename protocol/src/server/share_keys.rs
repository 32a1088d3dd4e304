//! Server, phase 2: collect each client's encrypted shares (one per neighbour that advertised),
//! then deliver to each client the shares addressed to it.

use std::collections::BTreeSet;

use super::{AbortError, Server, ServerError};
use crate::config::ClientId;
use crate::phase::Phase;
use crate::wire::{SealedShare, ServerMessage, ShareUpload};

/// Largest accepted share ciphertext: two shares, postcard framing and the AEAD tag fit well
/// within it.
const MAX_SHARE_CIPHERTEXT: usize = 256;

impl Server {
    pub(super) fn on_shares(
        &mut self,
        index: u32,
        from: ClientId,
        upload: ShareUpload,
    ) -> Result<(), ServerError> {
        let phase = Phase::ShareKeys;
        self.check_sender(index, from, upload.client, phase)?;
        let expected: BTreeSet<ClientId> = self
            .neighbours_in(index, &self.active)
            .map(|v| self.id(v))
            .collect();
        let mut got = BTreeSet::new();
        for s in &upload.shares {
            if !expected.contains(&s.peer) {
                return Err(Self::invalid(
                    from,
                    phase,
                    format!("share for client {}, not a neighbour", s.peer),
                ));
            }
            if !got.insert(s.peer) {
                return Err(Self::invalid(
                    from,
                    phase,
                    format!("two shares for client {}", s.peer),
                ));
            }
            if s.ciphertext.len() > MAX_SHARE_CIPHERTEXT {
                return Err(Self::invalid(from, phase, "share ciphertext too long"));
            }
        }
        if got.len() != expected.len() {
            return Err(Self::invalid(
                from,
                phase,
                format!("{} shares for {} neighbours", got.len(), expected.len()),
            ));
        }
        self.uploads.insert(index, upload.shares);
        self.delivered.insert(index);
        Ok(())
    }

    pub(super) fn end_share_keys(&mut self) -> Result<Option<Phase>, AbortError> {
        let phase = Phase::ShareKeys;
        let u2 = self.prune(self.answered(), phase)?;
        for &v in &u2 {
            let v_id = self.id(v);
            let delivery: Vec<SealedShare> = self
                .neighbours_in(v, &u2)
                .filter_map(|u| {
                    let sealed = self.uploads.get(&u)?.iter().find(|s| s.peer == v_id)?;
                    Some(SealedShare {
                        peer: self.id(u),
                        ciphertext: sealed.ciphertext.clone(),
                    })
                })
                .collect();
            self.outbox
                .push_back((v_id, ServerMessage::Shares(delivery)));
        }
        self.uploads.clear();
        self.sharers = u2.clone();
        self.active = u2;
        Ok(Some(Phase::MaskedInput))
    }
}
