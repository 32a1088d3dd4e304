//! Client, phase 2 → 3: open the shares the neighbours encrypted to this client. Each must
//! carry its sender's signature (through the hash-tree path to the signed root): the server
//! verified it on arrival, so a share without it was forged on the way and the client
//! aborts. A signed share that does not open, or opens to the wrong point, is its sender's
//! doing: the client refuses that neighbour ([`crate::wire::Refusal`]) and goes on. The
//! neighbours whose shares it holds are exactly the ones it masks against.

use super::{Client, ClientError, PeerKeys, State};
use crate::config::ClientId;
use crate::keys::verify_shares;
use crate::merkle;
use crate::phase::Phase;
use crate::wire::{DeliveredShare, ShareBundle};

impl Client {
    pub(super) fn on_shares(&mut self, shares: Vec<DeliveredShare>) -> Result<(), ClientError> {
        for share in shares {
            let from = share.sender;
            let peer = self
                .peers
                .get(&from)
                .ok_or(ClientError::UnknownPeer(from))?;
            if self.held.contains_key(&from) || self.refused.contains_key(&from) {
                return Err(ClientError::Duplicate(from));
            }
            let leaf = merkle::leaf(&self.digest, from, self.id, &share.ciphertext);
            let root = merkle::root_of(leaf, &share.path).ok_or(ClientError::ForgedShare(from))?;
            verify_shares(&peer.identity, &self.digest, from, &root, &share.signature)
                .map_err(|_| ClientError::ForgedShare(from))?;
            match self.open_share(from, peer, &share.ciphertext) {
                Some(bundle) => {
                    self.held.insert(from, bundle);
                }
                None => {
                    self.refused.insert(from, peer.pair_seed.clone());
                }
            }
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

    /// The bundle `from` sealed for this client, if it opens, parses and holds this client's
    /// point of both polynomials.
    fn open_share(
        &self,
        from: ClientId,
        peer: &PeerKeys,
        ciphertext: &[u8],
    ) -> Option<ShareBundle> {
        let my_x = u64::from(self.index) + 1;
        let plaintext = self
            .binding()
            .open(&self.keys.enc_sk, from, self.id, &peer.enc_pk, ciphertext)
            .ok()?;
        let bundle: ShareBundle = postcard::from_bytes(&plaintext).ok()?;
        (bundle.self_mask.x == my_x && bundle.mask_key.x == my_x).then_some(bundle)
    }
}
