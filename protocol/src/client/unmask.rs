//! Client, phase 4: reveal the self-mask shares of neighbours that sent input and the
//! mask-key shares of neighbours that did not. Never both for one neighbour: that would hand
//! the server its input.

use std::collections::BTreeSet;

use super::{Client, ClientError, State};
use crate::phase::Phase;
use crate::wire::{ClientMessage, UnmaskRequest, UnmaskResponse};

impl Client {
    pub(super) fn on_unmask_request(&mut self, request: UnmaskRequest) -> Result<(), ClientError> {
        let mut seen = BTreeSet::new();
        for &peer in request.survivors.iter().chain(&request.dropped) {
            if !seen.insert(peer) {
                return Err(
                    if request.survivors.contains(&peer) && request.dropped.contains(&peer) {
                        ClientError::RevealBoth(peer)
                    } else {
                        ClientError::Duplicate(peer)
                    },
                );
            }
            if !self.held.contains_key(&peer) {
                return Err(ClientError::UnknownPeer(peer));
            }
        }
        let need = self.config.threshold as usize;
        if request.survivors.len() < need {
            return Err(ClientError::NotEnoughNeighbours {
                phase: Phase::Unmask,
                have: request.survivors.len(),
                need,
            });
        }
        let pick = |peers: &[crate::config::ClientId], self_mask: bool| {
            peers
                .iter()
                .filter_map(|p| {
                    let b = self.held.get(p)?;
                    Some((
                        *p,
                        if self_mask {
                            b.self_mask.clone()
                        } else {
                            b.mask_key.clone()
                        },
                    ))
                })
                .collect()
        };
        let response = UnmaskResponse {
            client: self.id,
            self_mask_shares: pick(&request.survivors, true),
            mask_key_shares: pick(&request.dropped, false),
        };
        self.outbox.push_back(ClientMessage::Unmask(response));
        self.state = State::AwaitingResult;
        Ok(())
    }
}
