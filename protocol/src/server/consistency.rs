//! Server, phase 4: collect the survivors' signatures on the survivor list, then hand every
//! signer all the signatures as its unmask request. A client reveals shares only for a list a
//! quorum signed, and decides from that list alone whose seed and whose key to reveal: the
//! server cannot show two clients two different lists.

use super::{AbortError, Expected, Server, ServerError};
use crate::config::ClientId;
use crate::keys::verify_survivors;
use crate::phase::Phase;
use crate::wire::{ServerMessage, SurvivorSignature, UnmaskRequest};

impl Server {
    pub(super) fn on_signature(
        &mut self,
        index: u32,
        from: ClientId,
        signed: SurvivorSignature,
    ) -> Result<(), ServerError> {
        let phase = Phase::Consistency;
        self.check_sender(index, from, signed.client, phase)?;
        let identity = self
            .config
            .identity_at(index)
            .ok_or(ServerError::UnknownClient(from))?;
        verify_survivors(
            &identity,
            &self.digest,
            from,
            &self.survivors_hash,
            &signed.signature,
        )
        .map_err(|e| Self::invalid(from, phase, e.to_string()))?;
        self.signatures.push(signed);
        self.delivered.insert(index);
        Ok(())
    }

    pub(super) fn end_consistency(&mut self) -> Result<Option<Phase>, AbortError> {
        let phase = Phase::Consistency;
        let signers = self.answered();
        self.require_quorum_and_holders(&signers, phase)?;
        // A quorum of signatures is what a client needs, and all it is sent: each one it
        // checks costs it a signature verification, the round's largest fixed cost at small k.
        let quorum = self.config.consistency_quorum() as usize;
        let signatures: Vec<SurvivorSignature> = self
            .signatures
            .iter()
            .filter(|s| {
                self.config
                    .index_of(s.client)
                    .is_some_and(|i| signers.contains(&i))
            })
            .take(quorum)
            .cloned()
            .collect();
        for &v in &signers {
            // The shares v holds came from its neighbours that shared keys, less those it
            // refused: the list decides which of the two each one's share v reveals.
            let (survivors, dropped): (Vec<u32>, Vec<u32>) =
                self.held_by(v).partition(|u| self.survivors.contains(u));
            self.requests.insert(
                v,
                Expected {
                    survivors: survivors.iter().map(|&u| self.id(u)).collect(),
                    dropped: dropped.iter().map(|&u| self.id(u)).collect(),
                },
            );
            self.outbox.push_back((
                self.id(v),
                ServerMessage::UnmaskRequest(UnmaskRequest {
                    signatures: signatures.clone(),
                }),
            ));
        }
        self.signatures.clear();
        self.active = signers;
        Ok(Some(Phase::Unmask))
    }
}
