//! How an attempt ends: aborted (no model; off chain the round runs again, on chain it goes
//! without a candidate), or with a secure sum that becomes the next model at once (local
//! rounds) or a candidate that waits for the chain's vote; and a round's commit, which makes
//! the candidate the model if accepted, queues the state to persist and tells every agent.

use std::collections::BTreeSet;
use std::time::Instant;

use flock_model::Params;
use flock_protocol::session::AggregatorMessage;
use flock_protocol::{AbortError, ClientId, RoundOutput};
use tracing::{info, warn};

use super::build::{self, Built, ModelFile};
use super::{Event, Governance, Pending, RoundMachine, RoundSummary, Running};

impl RoundMachine {
    pub(super) fn aborted(&mut self, r: &Running, e: &dyn std::fmt::Display) {
        self.metrics.rounds_aborted.inc();
        match self.governance {
            Governance::Chain { .. } => {
                warn!(
                    round = r.number,
                    "SecAgg+ aborted, no candidate this round: {e}"
                );
                self.events.push_back(Event::Candidate {
                    round: r.number,
                    candidate: None,
                });
            }
            Governance::Local { .. } => {
                warn!(round = r.number, "round aborted, it will run again: {e}");
                self.sit_out(r.number, r.listed.iter().copied());
            }
        }
    }

    /// A device whose signed shares so many neighbours refused that its secret cannot be
    /// rebuilt sits out the rest of the round: only a dishonest device signs shares that do
    /// not open (or its accusers lie, and are named with it), and with it in, every retry
    /// would end the same way.
    pub(super) fn leave_out_refused(&mut self, r: &Running, e: &AbortError) {
        let AbortError::RefusedShares {
            client, refusers, ..
        } = e
        else {
            return;
        };
        warn!(
            round = r.number,
            client = %client,
            refused_by = joined(refusers),
            "sealed shares its neighbours could not open; it sits out the rest of this round"
        );
        self.sit_out(r.number, [*client]);
    }

    /// These devices take no further part in attempts of round `round`.
    fn sit_out(&mut self, round: u64, devices: impl IntoIterator<Item = ClientId>) {
        if self.bound.0 != round {
            self.bound = (round, BTreeSet::new());
        }
        self.bound.1.extend(devices);
    }

    /// Turns a secure sum into the candidate model; off chain it becomes the global model at
    /// once, on chain it waits for the vote.
    pub(super) fn finish(&mut self, r: Running, output: RoundOutput, now: Instant) {
        for (refuser, refused) in &output.refusals {
            warn!(
                round = r.number,
                client = %refused,
                refused_by = %refuser,
                "sealed a share its neighbour could not open; the round went on without that pairwise mask"
            );
        }
        for suspect in &output.suspects {
            warn!(
                round = r.number,
                client = %suspect,
                "revealed a share that is not on its secret's polynomial (outvoted by the others)"
            );
        }
        let config = r.server.config();
        let built = build::build(
            config,
            self.config.cohort.sample_cap,
            &output,
            &self.global,
            self.moments.as_ref(),
            &self.config.server_optimizer,
        );
        let built = match built {
            Ok(b) => self.test_hook_break(r.number, b),
            Err(e) => {
                if e.is_contributors_fault() {
                    // A secure sum cannot say whose input it was: every contributor is named.
                    warn!(
                        round = r.number,
                        contributors = joined(&output.contributors),
                        "one of these devices sent an input no honest device sends"
                    );
                }
                self.aborted(&r, &format_args!("the secure sum gives no model: {e}"));
                return;
            }
        };
        let pending = Pending {
            round: r.number,
            contributors: output.contributors,
            participants: r.participants,
            bits: config.bits,
            started: r.started,
            built,
        };
        match &mut self.governance {
            Governance::Chain { pending: slot } => {
                info!(round = r.number, model = %pending.built.file.id, contributors = pending.contributors.len(), "candidate built; anchoring it for the vote");
                self.events.push_back(Event::Persist {
                    models: model_files(&pending.built),
                    state: None,
                });
                self.events.push_back(Event::Candidate {
                    round: r.number,
                    candidate: Some(pending.candidate()),
                });
                *slot = Some(Box::new(pending));
            }
            Governance::Local { .. } => {
                let files = model_files(&pending.built);
                self.commit(r.number, Some(pending), true, files, now);
            }
        }
    }

    #[cfg(feature = "test-hooks")]
    fn test_hook_break(&self, round: u64, built: Built) -> Built {
        if self.config.testing.break_candidate_round != Some(round) {
            return built;
        }
        warn!(round, "test hook: breaking the candidate");
        let zero = Params::new(built.params.spec().clone(), vec![0.0; built.params.len()]);
        match zero.and_then(|p| Ok((ModelFile::of(&p)?, p))) {
            Ok((file, params)) => Built {
                params,
                file,
                ..built
            },
            Err(_) => built,
        }
    }

    #[cfg(not(feature = "test-hooks"))]
    fn test_hook_break(&self, _round: u64, built: Built) -> Built {
        built
    }

    /// Ends `round`: its candidate `p` (none if no candidate was built) becomes the global
    /// model if `accepted` (else the model stays); `unsaved` files and the state are made
    /// durable and every agent is told.
    pub(super) fn commit(
        &mut self,
        round: u64,
        p: Option<Pending>,
        accepted: bool,
        unsaved: Vec<ModelFile>,
        now: Instant,
    ) {
        let (participants, bits, started) = p
            .as_ref()
            .map_or((0, 0, now), |p| (p.participants, p.bits, p.started));
        let mut contributors = Vec::new();
        if let Some(p) = p.filter(|_| accepted) {
            self.global = p.built.params;
            self.state.model = p.built.file.id;
            let (moments, ids) = match p.built.moments {
                Some((m, files)) => (Some(m), Some([files[0].id, files[1].id])),
                None => (None, None),
            };
            self.moments = moments;
            self.state.moments = ids;
            contributors = p.contributors;
        }
        self.state.round = round;
        self.events.push_back(Event::Persist {
            models: unsaved,
            state: Some(self.state.clone()),
        });
        let model = self.state.model;
        info!(round, model = %model, accepted, contributors = contributors.len(), "round complete");
        let last = self.is_done();
        let everyone: Vec<ClientId> = self.members.ids().collect();
        for to in everyone {
            self.send(
                to,
                AggregatorMessage::RoundDone {
                    round,
                    model: model.0,
                    contributors: contributors.clone(),
                    last,
                },
            );
        }
        let elapsed = now.saturating_duration_since(started);
        let m = &self.metrics;
        m.rounds_completed.inc();
        if !accepted {
            m.rounds_rejected.inc();
        }
        m.round.set(round as i64);
        m.last_contributors.set(contributors.len() as i64);
        m.round_seconds.observe(elapsed.as_secs_f64());
        self.summaries.push(RoundSummary {
            round,
            model,
            accepted,
            contributors,
            participants,
            bits,
            elapsed,
        });
    }
}

/// The files a built candidate adds to the store: the model, then FedAdam's moments.
fn model_files(built: &Built) -> Vec<ModelFile> {
    let mut files = vec![built.file.clone()];
    if let Some((_, moments)) = &built.moments {
        files.extend(moments.iter().cloned());
    }
    files
}

/// Device ids as one comma-separated log field.
fn joined(ids: &[ClientId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
