//! Server, phase 5: collect the revealed shares, rebuild each survivor's self-mask seed and
//! each dropped client's mask-agreement key, and strip every mask from the sum: the survivors'
//! self masks, the pairwise masks the survivors shared with the dropped clients, and the halves
//! of pairwise masks whose other end refused the share (from the seed its refusal revealed). Each
//! rebuilt secret is checked against its owner's advert (the seed's commitment, the key's
//! public half): a corrupted share is outvoted when there are spare shares and its holder
//! named, and the round aborts rather than output a wrong sum when there are none. The
//! keystreams are applied in one batch (on all cores with the `parallel` feature).

use std::collections::BTreeSet;

use edge_kernels::Mask;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::{AbortError, RoundOutput, Server, ServerError};
use crate::config::ClientId;
use crate::keys::{Binding, MASK_STREAM, pair_sign, self_mask_commitment};
use crate::phase::Phase;
use crate::shamir::{self, Share};
use crate::wire::{ServerMessage, UnmaskResponse};

impl Server {
    pub(super) fn on_unmask(
        &mut self,
        index: u32,
        from: ClientId,
        response: UnmaskResponse,
    ) -> Result<(), ServerError> {
        let phase = Phase::Unmask;
        self.check_sender(index, from, response.client, phase)?;
        let Some(request) = self.requests.get(&index) else {
            return Err(ServerError::UnexpectedMessage {
                from,
                phase,
                got: "unmask",
            });
        };
        let x = u64::from(index) + 1;
        let matches = |shares: &[(ClientId, Share)], asked: &[ClientId]| {
            shares.len() == asked.len()
                && shares
                    .iter()
                    .zip(asked)
                    .all(|((id, share), want)| id == want && share.x == x)
        };
        if !matches(&response.self_mask_shares, &request.survivors)
            || !matches(&response.mask_key_shares, &request.dropped)
        {
            return Err(Self::invalid(
                from,
                phase,
                "the shares do not answer the request",
            ));
        }
        for (id, share) in response.self_mask_shares {
            if let Some(u) = self.config.index_of(id) {
                self.self_mask_shares.entry(u).or_default().push(share);
            }
        }
        for (id, share) in response.mask_key_shares {
            if let Some(u) = self.config.index_of(id) {
                self.mask_key_shares.entry(u).or_default().push(share);
            }
        }
        self.delivered.insert(index);
        Ok(())
    }

    pub(super) fn end_unmask(&mut self) -> Result<Option<Phase>, AbortError> {
        let survivors = self.survivors.clone();
        let dropped: BTreeSet<u32> = self.sharers.difference(&survivors).copied().collect();
        let mut suspects = BTreeSet::new();
        let mut masks = Vec::new();
        for &u in &survivors {
            let commitment = self.adverts.get(&u).map(|a| a.self_mask_commitment);
            let u_id = self.id(u);
            let seed = self.rebuild(u, &self.self_mask_shares, &mut suspects, |seed| {
                commitment == Some(self_mask_commitment(&self.digest, u_id, seed))
            })?;
            masks.push(Mask::new(*seed, MASK_STREAM, edge_kernels::Sign::Sub));
        }
        let binding = Binding {
            digest: &self.digest,
        };
        for &u in &dropped {
            let mask_pk = self.adverts.get(&u).map(|a| a.mask_pk);
            let key = self.rebuild(u, &self.mask_key_shares, &mut suspects, |sk| {
                mask_pk == Some(PublicKey::from(&StaticSecret::from(*sk)).to_bytes())
            })?;
            let key = StaticSecret::from(*key);
            let u_id = self.id(u);
            // Each survivor masked against the neighbours whose shares it holds.
            for v in self.holders_in(u, &survivors) {
                let v_id = self.id(v);
                let Some(advert) = self.adverts.get(&v) else {
                    continue;
                };
                let seed = binding.pair_seed(&key, u_id, v_id, &advert.mask_pk)?;
                masks.push(Mask::new(
                    *seed,
                    MASK_STREAM,
                    pair_sign(v_id, u_id).opposite(),
                ));
            }
        }
        // A survivor p that refused survivor s's share did not mask against s, while s masked
        // against p: p's refusal carries their seed, which takes s's half out.
        let mut refusals = Vec::new();
        for (&p, refused) in &self.refusals {
            if !survivors.contains(&p) {
                continue;
            }
            let p_id = self.id(p);
            for (&s, seed) in refused {
                let s_id = self.id(s);
                refusals.push((p_id, s_id));
                if survivors.contains(&s) && self.holds(s, p) {
                    masks.push(Mask::new(
                        **seed,
                        MASK_STREAM,
                        pair_sign(s_id, p_id).opposite(),
                    ));
                }
            }
        }
        refusals.sort_unstable();
        let mut sum = std::mem::take(&mut self.acc);
        #[cfg(feature = "parallel")]
        edge_kernels::apply_masks_parallel(&mut sum, &masks);
        #[cfg(not(feature = "parallel"))]
        edge_kernels::apply_masks(&mut sum, &masks);

        let contributors: Vec<ClientId> = survivors.iter().map(|&u| self.id(u)).collect();
        for &v in &self.delivered {
            self.outbox
                .push_back((self.id(v), ServerMessage::Finished(contributors.clone())));
        }
        let suspects = suspects.into_iter().map(|v| self.id(v)).collect();
        self.outcome = Some(Ok(RoundOutput {
            sum,
            contributors,
            suspects,
            refusals,
        }));
        Ok(None)
    }

    /// Rebuilds client `u`'s secret from the shares revealed for it, accepting only the one
    /// `is_right` recognises (checked against its advert); the holders of shares that disagree
    /// join `suspects`.
    fn rebuild(
        &self,
        u: u32,
        shares: &std::collections::BTreeMap<u32, Vec<Share>>,
        suspects: &mut BTreeSet<u32>,
        is_right: impl Fn(&[u8; 32]) -> bool,
    ) -> Result<Zeroizing<[u8; 32]>, AbortError> {
        let phase = Phase::Unmask;
        let t = self.config.threshold as usize;
        let client = self.id(u);
        let have = shares.get(&u).map_or(&[][..], Vec::as_slice);
        if have.len() < t {
            return Err(AbortError::NotEnoughShares {
                phase,
                client,
                have: have.len(),
                need: t,
            });
        }
        let recovered = shamir::reconstruct_checked(have, t, is_right)
            .map_err(|source| AbortError::Reconstruction { client, source })?;
        // A share's x is its holder's index + 1.
        suspects.extend(
            recovered
                .wrong
                .iter()
                .filter_map(|&x| x.checked_sub(1).and_then(|i| u32::try_from(i).ok())),
        );
        Ok(recovered.secret)
    }
}
