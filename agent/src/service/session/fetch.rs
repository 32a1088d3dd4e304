//! How the session gets a model file: from the cache, else from the aggregator in chunks
//! (a [`Download`], bounded by the task's architecture and checked against the id), and who
//! was waiting for it: the round's training or a voter's judging.

use flock_model::{ModelId, Params, file};
use flock_protocol::session::AgentMessage;
use tracing::error;

use super::super::AgentError;
use super::super::models::{Download, max_file_bytes};
use super::{Action, Session, Waiter};

impl Session {
    pub(super) fn need_model(&mut self, id: ModelId, waiter: Waiter) {
        let waiters = self.waiting.entry(id).or_default();
        let first = waiters.is_empty();
        waiters.push(waiter);
        if first {
            self.actions.push_back(Action::LoadModel { id });
        }
    }

    /// What the cache holds of model `id`; fetched from the aggregator if nothing.
    pub(crate) fn cache_done(
        &mut self,
        id: ModelId,
        cached: Option<Params>,
    ) -> Result<(), AgentError> {
        match cached {
            Some(params) => self.model_ready(id, params),
            None => {
                let max = self
                    .prepared
                    .as_ref()
                    .map_or(u64::MAX, |p| max_file_bytes(&p.info.spec));
                self.downloads.insert(id, Download::new(id, max));
                self.transmits
                    .push_back(AgentMessage::FetchModel { id: id.0 });
                Ok(())
            }
        }
    }

    pub(super) fn chunk(
        &mut self,
        id: ModelId,
        offset: u64,
        total: u64,
        piece: &[u8],
    ) -> Result<(), AgentError> {
        let Some(download) = self.downloads.get_mut(&id) else {
            return Ok(());
        };
        let done = match download.add(offset, total, piece) {
            Ok(None) => return Ok(()),
            Ok(Some(bytes)) => bytes,
            Err(AgentError::ModelRefused(reason)) => {
                self.downloads.remove(&id);
                self.model_refused(id, &reason);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.downloads.remove(&id);
        let params = match file::decode(&done, std::path::Path::new("<download>")) {
            Ok(p) => p,
            Err(e) => {
                self.model_refused(id, &format!("model {id} is not a model file: {e}"));
                return Ok(());
            }
        };
        self.actions
            .push_back(Action::KeepModel { id, bytes: done });
        self.model_ready(id, params)
    }

    /// Model `id` cannot be used: whoever waits for it gives up.
    fn model_refused(&mut self, id: ModelId, reason: &str) {
        for waiter in self.waiting.remove(&id).unwrap_or_default() {
            match waiter {
                Waiter::Round(attempt) => {
                    if let Some(round) = self
                        .offer
                        .as_ref()
                        .filter(|o| o.attempt == attempt)
                        .map(|o| o.config.round)
                    {
                        self.refuse_round(round, reason);
                    }
                }
                Waiter::Vote(request) => {
                    if let Some(j) = self.judging.remove(&request) {
                        error!(round = j.round, "cannot judge the candidate: {reason}");
                        self.state.last_refusal = Some(format!("round {}: {reason}", j.round));
                        self.actions.push_back(Action::SaveState);
                        let reason = reason.to_owned();
                        self.actions.push_back(Action::Unjudged { request, reason });
                    }
                }
            }
        }
    }

    fn model_ready(&mut self, id: ModelId, params: Params) -> Result<(), AgentError> {
        for waiter in self.waiting.remove(&id).unwrap_or_default() {
            match waiter {
                Waiter::Round(attempt) => self.train(attempt, id, params.clone())?,
                Waiter::Vote(request) => self.judge(request, id, params.clone()),
            }
        }
        Ok(())
    }
}
