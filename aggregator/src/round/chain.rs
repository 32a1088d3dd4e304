//! The round machine under [`Governance::Chain`]: the chain driver says when a round's
//! proposers are drawn (the SecAgg+ cohort) and how the vote ended; the machine builds the
//! candidate and makes it the global model only if the chain accepted exactly that model.

use std::time::Instant;

use flock_chain::Outcome;
use flock_model::ModelId;
use flock_protocol::Participant;
use tracing::{error, info, warn};

use super::{Event, Governance, RoundError, RoundMachine};
use crate::mailbox::ChainInput;

impl RoundMachine {
    /// What the chain driver reports.
    pub(crate) fn handle_chain(
        &mut self,
        input: ChainInput,
        now: Instant,
    ) -> Result<(), RoundError> {
        if !matches!(self.governance, Governance::Chain { .. }) {
            warn!("a chain event for an aggregator whose rounds are not on chain: ignored");
            return Ok(());
        }
        match input {
            ChainInput::Train {
                round,
                proposers,
                prev,
                seed,
            } => self.on_train(round, proposers, prev, seed, now),
            ChainInput::Finalised {
                round,
                outcome,
                accepted,
            } => self.on_finalised(round, outcome, accepted, now),
        }
        self.pump(now)
    }

    fn no_candidate(&mut self, round: u64) {
        self.events.push_back(Event::Candidate {
            round,
            candidate: None,
        });
    }

    /// The roles of `round` are drawn from `seed`: SecAgg+ over the drawn proposers that are
    /// connected, from `prev`, which must be this machine's model, with `seed` as the graph
    /// seed's beacon (the devices read it from the chain too).
    fn on_train(
        &mut self,
        round: u64,
        proposers: Vec<Participant>,
        prev: ModelId,
        seed: [u8; 32],
        now: Instant,
    ) {
        if let Governance::Chain { pending: Some(p) } = &self.governance
            && p.round == round
        {
            // Asked again (the driver resumed): the candidate is built already.
            let candidate = Some(p.candidate());
            self.events.push_back(Event::Candidate { round, candidate });
            return;
        }
        if prev != self.state.model {
            warn!(
                round,
                "the chain's last accepted model is {prev}, this aggregator's is {}: no candidate this round",
                self.state.model
            );
            return self.no_candidate(round);
        }
        if let Some(r) = self.round.take() {
            warn!(
                round = r.number,
                "a new round on chain replaces the SecAgg+ round still running"
            );
            self.metrics.round_in_progress.set(0);
        }
        let chosen: Vec<Participant> = proposers
            .into_iter()
            .filter(|p| self.members.is_ready_as(p))
            .collect();
        if (chosen.len() as u32) < self.config.cohort.min {
            warn!(
                round,
                connected = chosen.len(),
                min = self.config.cohort.min,
                "too few drawn proposers connected for SecAgg+: no candidate this round"
            );
            return self.no_candidate(round);
        }
        if let Err(e) = self.start_round(round, chosen, &seed, now) {
            error!("{e}: no candidate this round");
            self.no_candidate(round);
        }
    }

    /// `round` is finalised: its candidate becomes the model if the chain accepted it.
    fn on_finalised(&mut self, round: u64, outcome: Outcome, accepted: ModelId, now: Instant) {
        if self.round.as_ref().is_some_and(|r| r.number <= round) {
            warn!(
                round,
                "the round is finalised: its SecAgg+ attempt is dropped"
            );
            self.round = None;
            self.metrics.round_in_progress.set(0);
        }
        let pending = match &mut self.governance {
            Governance::Chain { pending } => pending.take().filter(|p| p.round == round),
            Governance::Local { .. } => None,
        };
        let taken = outcome == Outcome::Accepted
            && pending
                .as_ref()
                .is_some_and(|p| p.built.file.id == accepted);
        if !taken && accepted != self.state.model {
            warn!(
                round,
                "the chain's last accepted model {accepted} is neither this aggregator's \
                 model {} nor its candidate",
                self.state.model
            );
        }
        if !taken {
            info!(
                round,
                ?outcome,
                "the candidate was not accepted: the model stays {}",
                self.state.model
            );
        }
        // The candidate's files were stored when it was built.
        self.commit(round, pending.map(|p| *p), taken, Vec::new(), now);
    }
}
