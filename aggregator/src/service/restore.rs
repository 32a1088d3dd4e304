//! What a starting aggregator continues from: the task state in the model store (the last
//! completed round, its model and FedAdam's moments), or, for a new task, the seeded initial
//! model, stored with a state of round 0.

use flock_model::Params;
use tracing::info;

use crate::config::Config;
use crate::optimizer::Moments;
use crate::round::Restored;
use crate::store::{ModelStore, TaskState};

use super::ServeError;

/// Reads the task's state from `store`, or starts it.
pub(super) fn restore(store: &ModelStore, config: &Config) -> Result<Restored, ServeError> {
    let name = &config.task.name;
    let (global, state) = match store.state(name)? {
        Some(state) => {
            info!(round = state.round, model = %state.model, "continuing the task from the store");
            (store.get(&state.model)?, state)
        }
        None => {
            let init = Params::init(&config.model, config.task.seed)?;
            let model = store.put(&init)?;
            let state = TaskState {
                task: name.clone(),
                round: 0,
                model,
                moments: None,
            };
            store.save_state(&state)?;
            info!(model = %model, "initial model stored");
            (init, state)
        }
    };
    let moments = match state.moments {
        Some([m, v]) => Some(Moments {
            first: store.get(&m)?,
            second: store.get(&v)?,
        }),
        None => None,
    };
    Ok(Restored {
        state,
        global,
        moments,
    })
}
