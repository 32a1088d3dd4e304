//! Client, phase 3 → 4: check the survivor list the server announces and sign it. The list is
//! what decides, for every neighbour, which of its two secrets this client will reveal; the
//! signature is this client's promise that it saw this list and no other in this attempt.

use super::{Client, ClientError, State};
use crate::keys::survivors_hash;
use crate::phase::Phase;
use crate::wire::{ClientMessage, SurvivorSignature};

impl Client {
    pub(super) fn on_survivors(&mut self, list: Vec<crate::ClientId>) -> Result<(), ClientError> {
        if list.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ClientError::SurvivorList(
                "not sorted by id without duplicates",
            ));
        }
        if let Some(&stranger) = list.iter().find(|&&c| self.config.index_of(c).is_none()) {
            return Err(ClientError::UnknownPeer(stranger));
        }
        if list.binary_search(&self.id).is_err() {
            return Err(ClientError::SurvivorList(
                "this client's own input is not on it",
            ));
        }
        let quorum = self.config.consistency_quorum() as usize;
        if list.len() < quorum {
            return Err(ClientError::NotEnoughSurvivors {
                have: list.len(),
                need: quorum,
            });
        }
        // A neighbour on the list must be one whose share this client got (everyone on the
        // list shared keys), and enough of them must be on it to rebuild this client's seed.
        let mut on_list = 0;
        for &peer in self.graph.neighbours(self.index) {
            let Some(id) = self.config.id_at(peer) else {
                continue;
            };
            if list.binary_search(&id).is_ok() {
                if !self.held.contains_key(&id) && !self.refused.contains_key(&id) {
                    return Err(ClientError::UnknownPeer(id));
                }
                on_list += 1;
            }
        }
        let need = self.config.threshold as usize;
        if on_list < need {
            return Err(ClientError::NotEnoughNeighbours {
                phase: Phase::Consistency,
                have: on_list,
                need,
            });
        }
        self.survivors_hash = survivors_hash(&list);
        self.survivors = list;
        let signature = self
            .identity
            .sign_survivors(&self.digest, self.id, &self.survivors_hash);
        self.outbox
            .push_back(ClientMessage::Survivors(SurvivorSignature {
                client: self.id,
                signature,
            }));
        self.state = State::AwaitingUnmaskRequest;
        Ok(())
    }
}
