//! The voter's side of the session: a request from the chain follower waits for both models
//! (the anchored candidate and the previous one), then both are evaluated on the held-out data.

use flock_model::{ModelId, Params};

use super::{Action, Judging, Session, Waiter};

impl Session {
    /// A voter request (from the chain follower): judge `candidate` against `previous`.
    pub(crate) fn evaluate(
        &mut self,
        request: u64,
        round: u64,
        candidate: ModelId,
        previous: ModelId,
    ) {
        if self.prepared.is_none() {
            let reason = "the task description has not arrived".into();
            self.actions.push_back(Action::Unjudged { request, reason });
            return;
        }
        self.judging.insert(
            request,
            Judging {
                round,
                ids: [candidate, previous],
                found: [None, None],
            },
        );
        self.need_model(candidate, Waiter::Vote(request));
        if previous != candidate {
            self.need_model(previous, Waiter::Vote(request));
        }
    }

    pub(super) fn judge(&mut self, request: u64, id: ModelId, params: Params) {
        let Some(j) = self.judging.get_mut(&request) else {
            return;
        };
        for (slot, want) in j.found.iter_mut().zip(j.ids) {
            if want == id && slot.is_none() {
                *slot = Some(params.clone());
            }
        }
        if j.found.iter().all(Option::is_some)
            && let (Some(j), Some(prepared)) = (self.judging.remove(&request), &self.prepared)
            && let [Some(candidate), Some(previous)] = j.found
        {
            // Judged on the held-out data; on the training data when none is held out.
            let data = if prepared.val.is_empty() {
                prepared.train.clone()
            } else {
                prepared.val.clone()
            };
            self.actions.push_back(Action::Evaluate {
                request,
                round: j.round,
                models: [candidate, previous],
                data,
            });
        }
    }
}
