//! Client, phase 2 → 3: open the shares the neighbours encrypted to this client. The
//! neighbours whose shares arrived are exactly the ones this client masks against.

use super::{Client, ClientError, State};
use crate::phase::Phase;
use crate::wire::{SealedShare, ShareBundle};

impl Client {
    pub(super) fn on_shares(&mut self, shares: Vec<SealedShare>) -> Result<(), ClientError> {
        let my_x = u64::from(self.index) + 1;
        for sealed in shares {
            let from = sealed.peer;
            let peer = self
                .peers
                .get(&from)
                .ok_or(ClientError::UnknownPeer(from))?;
            if self.held.contains_key(&from) {
                return Err(ClientError::Duplicate(from));
            }
            let plaintext = self.binding().open(
                &self.keys.enc_sk,
                from,
                self.id,
                &peer.enc_pk,
                &sealed.ciphertext,
            )?;
            let bundle: ShareBundle =
                postcard::from_bytes(&plaintext).map_err(|_| ClientError::BadShare(from))?;
            if bundle.self_mask.x != my_x || bundle.mask_key.x != my_x {
                return Err(ClientError::BadShare(from));
            }
            self.held.insert(from, bundle);
        }
        let need = self.config.threshold as usize;
        if self.held.len() < need {
            return Err(ClientError::NotEnoughNeighbours {
                phase: Phase::ShareKeys,
                have: self.held.len(),
                need,
            });
        }
        self.state = State::AwaitingInput;
        Ok(())
    }
}
