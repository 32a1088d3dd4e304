//! Server, phase 1: collect signed key adverts; then send each client its neighbours'.

use super::{AbortError, Server, ServerError};
use crate::config::ClientId;
use crate::keys::{refuse_low_order, verify_advert};
use crate::phase::Phase;
use crate::wire::{KeyAdvert, ServerMessage};

impl Server {
    pub(super) fn on_advert(
        &mut self,
        index: u32,
        from: ClientId,
        advert: KeyAdvert,
    ) -> Result<(), ServerError> {
        let phase = Phase::AdvertiseKeys;
        self.check_sender(index, from, advert.client, phase)?;
        verify_advert(&self.config, &self.digest, index, &advert)
            .and_then(|()| refuse_low_order(&advert))
            .map_err(|source| ServerError::BadAdvert { from, source })?;
        if advert.enc_pk == advert.mask_pk
            || self.advertised_keys.contains(&advert.enc_pk)
            || self.advertised_keys.contains(&advert.mask_pk)
        {
            return Err(Self::invalid(from, phase, "a round key is reused"));
        }
        self.advertised_keys.insert(advert.enc_pk);
        self.advertised_keys.insert(advert.mask_pk);
        self.adverts.insert(index, advert);
        self.delivered.insert(index);
        Ok(())
    }

    pub(super) fn end_advertise(&mut self) -> Result<Option<Phase>, AbortError> {
        let phase = Phase::AdvertiseKeys;
        let u1 = self.prune(self.answered(), phase)?;
        for &u in &u1 {
            let adverts: Vec<KeyAdvert> = self
                .neighbours_in(u, &u1)
                .filter_map(|v| self.adverts.get(&v).cloned())
                .collect();
            self.outbox
                .push_back((self.id(u), ServerMessage::Adverts(adverts)));
        }
        self.active = u1;
        Ok(Some(Phase::ShareKeys))
    }
}
