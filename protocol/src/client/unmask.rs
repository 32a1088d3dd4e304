//! Client, phase 5: once a quorum of survivors' signatures on the list it signed verify,
//! reveal the self-mask shares of the neighbours on the list and the mask-key shares of the
//! neighbours not on it. Never both for one neighbour: that would hand the server its input.
//! Every honest client that gets here saw the same list (the quorum argument of
//! [`crate::RoundConfig::consistency_quorum`]), so no server can ask one neighbour of a client
//! for its seed and another for its key.

use std::collections::BTreeSet;

use super::{Client, ClientError, State};
use crate::keys::verify_survivors_all;
use crate::wire::{ClientMessage, UnmaskRequest, UnmaskResponse};

impl Client {
    pub(super) fn on_unmask_request(&mut self, request: UnmaskRequest) -> Result<(), ClientError> {
        let mut signers = BTreeSet::new();
        let mut signed = Vec::with_capacity(request.signatures.len());
        for s in &request.signatures {
            if self.survivors.binary_search(&s.client).is_err() {
                return Err(ClientError::SurvivorList(
                    "a signature comes from a client not on the list",
                ));
            }
            if !signers.insert(s.client) {
                return Err(ClientError::Duplicate(s.client));
            }
            let identity = self
                .config
                .index_of(s.client)
                .and_then(|i| self.config.identity_at(i))
                .ok_or(ClientError::UnknownPeer(s.client))?;
            signed.push((s.client, identity, s.signature));
        }
        verify_survivors_all(&self.digest, &self.survivors_hash, &signed)?;
        let quorum = self.config.consistency_quorum() as usize;
        if signers.len() < quorum {
            return Err(ClientError::NotEnoughSurvivors {
                have: signers.len(),
                need: quorum,
            });
        }
        let mut self_mask_shares = Vec::new();
        let mut mask_key_shares = Vec::new();
        for (&peer, bundle) in &self.held {
            if self.survivors.binary_search(&peer).is_ok() {
                self_mask_shares.push((peer, bundle.self_mask.clone()));
            } else {
                mask_key_shares.push((peer, bundle.mask_key.clone()));
            }
        }
        self.outbox.push_back(ClientMessage::Unmask(UnmaskResponse {
            client: self.id,
            self_mask_shares,
            mask_key_shares,
        }));
        self.state = State::AwaitingResult;
        Ok(())
    }
}
