//! Alloy bindings of the FL Alliance contracts, generated at compile time from the committed
//! artefacts in `fixtures/contracts/` (ABI and bytecode), so the Rust side always matches the
//! bytecode that `chain/scripts/check-contracts.mjs` vouches for.
//!
//! `FlTask` and `TaskManager` live in separate modules: both ABIs define `TaskParams`.
#![allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]

/// `FlTask`: one task (stakes, rounds, beacon, roles, anchors, votes, rewards, slashing).
pub mod fl_task {
    alloy::sol!(
        #[sol(rpc, abi, all_derives)]
        FlTask,
        "../fixtures/contracts/FlTask.json"
    );
}

/// `TaskManager`: the task registry and factory.
pub mod task_manager {
    alloy::sol!(
        #[sol(rpc, abi, all_derives)]
        TaskManager,
        "../fixtures/contracts/TaskManager.json"
    );
}

/// `FlockToken`: the ERC-20 FLOCK of local chains.
pub mod flock_token {
    alloy::sol!(
        #[sol(rpc, abi, all_derives)]
        FlockToken,
        "../fixtures/contracts/FlockToken.json"
    );
}

/// `LocalRandomnessSource`: an owner-set randomness value (chain id 31337 only).
pub mod local_randomness {
    alloy::sol!(
        #[sol(rpc, abi, all_derives)]
        LocalRandomnessSource,
        "../fixtures/contracts/LocalRandomnessSource.json"
    );
}

pub use fl_task::FlTask;
pub use flock_token::FlockToken;
pub use local_randomness::LocalRandomnessSource;
pub use task_manager::TaskManager;
