//! Server, phase 2: collect each client's encrypted shares (one per neighbour that advertised),
//! check its signature on them (one, over the root of their hash tree), then deliver to each
//! client the shares addressed to it, each with its path to the signed root: a receiver can
//! then tell a share its sender botched from one the server altered.

use std::collections::BTreeSet;

use super::{AbortError, Server, ServerError, SignedUpload};
use crate::config::ClientId;
use crate::keys::verify_shares;
use crate::merkle;
use crate::phase::Phase;
use crate::wire::{DeliveredShare, ServerMessage, ShareUpload};

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
        let tree = merkle::upload_tree(&self.digest, &upload);
        let identity = self
            .config
            .identity_at(index)
            .ok_or(ServerError::UnknownClient(from))?;
        verify_shares(
            &identity,
            &self.digest,
            from,
            &tree.root(),
            &upload.signature,
        )
        .map_err(|e| Self::invalid(from, phase, e.to_string()))?;
        self.uploads.insert(
            index,
            SignedUpload {
                shares: upload.shares,
                signature: upload.signature,
                tree,
            },
        );
        self.delivered.insert(index);
        Ok(())
    }

    pub(super) fn end_share_keys(&mut self) -> Result<Option<Phase>, AbortError> {
        let phase = Phase::ShareKeys;
        let u2 = self.prune(self.answered(), phase)?;
        for &v in &u2 {
            let v_id = self.id(v);
            let delivery: Vec<DeliveredShare> = self
                .neighbours_in(v, &u2)
                .filter_map(|u| {
                    let upload = self.uploads.get(&u)?;
                    let (at, sealed) = upload
                        .shares
                        .iter()
                        .enumerate()
                        .find(|(_, s)| s.peer == v_id)?;
                    Some(DeliveredShare {
                        sender: self.id(u),
                        ciphertext: sealed.ciphertext.clone(),
                        path: upload.tree.path(at),
                        signature: upload.signature,
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
