//! A local chain for tests and demos: an anvil child process, deterministic funded accounts
//! (keys derived from a label, ETH set with `anvil_setBalance`), FlockToken and TaskManager
//! deployed by account 0, tasks created from [`TaskParams`], FLOCK minted, and time advanced
//! (`evm_increaseTime` + `evm_mine`).

use std::time::Duration;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;

use crate::anvil::{Anvil, AnvilError, AnvilOptions};
use crate::contracts::{FlockToken, TaskManager};
use crate::error::ChainError;
use crate::identity::IdentityKey;
use crate::params::{FLOCK, TaskParams};
use crate::provider::{self, DEFAULT_REQUEST_TIMEOUT};
use crate::task::TaskClient;
use crate::tx::{self, ConfirmOptions, Confirmation};

/// ETH given to every devnet account (wei): 10 000 ETH.
const ETH_PER_ACCOUNT: U256 = U256::from_limbs([0x19e0_c9ba_b240_0000, 0x21e, 0, 0]);

/// Why the devnet could not be set up or driven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevnetError {
    /// anvil could not be found or started.
    #[error(transparent)]
    Anvil(#[from] AnvilError),
    /// A chain call failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
}

/// The key of devnet account `i`: `keccak256("flock-edge devnet account" ‖ i)`.
pub fn dev_key(i: usize) -> Result<PrivateKeySigner, DevnetError> {
    let mut seed = b"flock-edge devnet account".to_vec();
    seed.extend_from_slice(&(i as u64).to_be_bytes());
    PrivateKeySigner::from_bytes(&keccak256(seed))
        .map_err(|e| DevnetError::Invalid(format!("devnet key {i}: {e}")))
}

/// A stand-in for the ed25519 identity key of devnet account `i`:
/// `keccak256("flock-edge devnet identity" ‖ i)`. The chain only stores the 32 bytes; tests that
/// need a usable key register a real one.
pub fn dev_identity(i: usize) -> IdentityKey {
    let mut seed = b"flock-edge devnet identity".to_vec();
    seed.extend_from_slice(&(i as u64).to_be_bytes());
    keccak256(seed)
}

/// A task made by [`Devnet::staked_task`].
pub struct StakedTask {
    /// Its id in the task manager.
    pub id: u64,
    /// Its contract.
    pub task: Address,
    /// One client per member (accounts 2, 3, …).
    pub members: Vec<TaskClient>,
    /// The aggregator's client (account 1).
    pub aggregator: TaskClient,
}

/// A running devnet with the token and the task manager deployed.
#[derive(Debug)]
pub struct Devnet {
    /// The node this devnet started (none when attached to a running one).
    anvil: Option<Anvil>,
    url: String,
    provider: DynProvider,
    accounts: Vec<PrivateKeySigner>,
    token: Address,
    manager: Address,
    confirm: ConfirmOptions,
}

impl Devnet {
    /// Starts anvil, funds `accounts` accounts with ETH (account 0 deploys and owns the token)
    /// and deploys FlockToken and TaskManager.
    pub async fn start(accounts: usize, options: AnvilOptions) -> Result<Self, DevnetError> {
        let anvil = Anvil::spawn(options)?;
        let url = anvil.url();
        Self::on(Some(anvil), url, accounts).await
    }

    /// Like [`Devnet::start`] on a node already running at `url`: a development node that
    /// answers `anvil_setBalance` (anvil; the devnet accounts are funded that way). The node is
    /// left running on drop.
    pub async fn attach(url: &str, accounts: usize) -> Result<Self, DevnetError> {
        Self::on(None, url.to_owned(), accounts).await
    }

    async fn on(anvil: Option<Anvil>, url: String, accounts: usize) -> Result<Self, DevnetError> {
        let accounts = (0..accounts.max(1))
            .map(dev_key)
            .collect::<Result<Vec<_>, _>>()?;
        let provider = provider::connect(&url, accounts.clone(), DEFAULT_REQUEST_TIMEOUT)?;
        for a in &accounts {
            let _: serde_json::Value = provider
                .raw_request("anvil_setBalance".into(), (a.address(), ETH_PER_ACCOUNT))
                .await
                .map_err(ChainError::from)?;
        }
        let owner = accounts[0].address();
        let token = FlockToken::deploy(provider.clone(), owner)
            .await
            .map_err(ChainError::from)?;
        let manager = TaskManager::deploy(provider.clone(), *token.address())
            .await
            .map_err(ChainError::from)?;
        Ok(Self {
            token: *token.address(),
            manager: *manager.address(),
            anvil,
            url,
            provider,
            accounts,
            confirm: ConfirmOptions::local(),
        })
    }

    /// The anvil process this devnet started (to stop or restart it); `None` when attached to
    /// a running node.
    pub fn anvil(&mut self) -> Option<&mut Anvil> {
        self.anvil.as_mut()
    }

    /// The node's URL.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A provider that signs for every devnet account.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Address of account `i`.
    pub fn account(&self, i: usize) -> Option<Address> {
        self.accounts.get(i).map(PrivateKeySigner::address)
    }

    /// All account addresses.
    pub fn accounts(&self) -> Vec<Address> {
        self.accounts
            .iter()
            .map(PrivateKeySigner::address)
            .collect()
    }

    /// The key of account `i`.
    pub fn signer(&self, i: usize) -> Option<&PrivateKeySigner> {
        self.accounts.get(i)
    }

    /// Writes account `i`'s private key into `path` (64 hex digits, the format
    /// [`crate::provider::load_key`] reads), readable by its owner only, for a service's config.
    pub fn write_key(&self, i: usize, path: &std::path::Path) -> Result<(), DevnetError> {
        let signer = self
            .signer(i)
            .ok_or_else(|| DevnetError::Invalid(format!("no devnet account {i}")))?;
        let failed = |e: flock_durable::DurableError| DevnetError::Invalid(e.to_string());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            flock_durable::create_dir_all(dir, flock_durable::Access::Private).map_err(failed)?;
        }
        let text = format!("{}\n", alloy::hex::encode(signer.to_bytes()));
        // Mode 0600 from the moment the file exists: a key is never readable by others.
        flock_durable::write(path, flock_durable::Access::Private, text.as_bytes()).map_err(failed)
    }

    /// FlockToken's address.
    pub fn token(&self) -> Address {
        self.token
    }

    /// TaskManager's address.
    pub fn manager(&self) -> Address {
        self.manager
    }

    /// How transactions are awaited.
    pub fn confirm_options(&self) -> ConfirmOptions {
        self.confirm
    }

    /// Mints `amount` FLOCK wei to `to` (account 0 owns the token).
    pub async fn mint(&self, to: Address, amount: U256) -> Result<Confirmation, DevnetError> {
        let token = FlockToken::new(self.token, self.provider.clone());
        let call = token.mint(to, amount).from(self.accounts[0].address());
        Ok(tx::send(call, &self.provider, &self.confirm).await?)
    }

    /// Creates a task as account 0; returns its id and address.
    pub async fn create_task(&self, params: &TaskParams) -> Result<(u64, Address), DevnetError> {
        let manager = TaskManager::new(self.manager, self.provider.clone());
        let call = manager
            .createTask(params.into())
            .from(self.accounts[0].address());
        let c = tx::send(call, &self.provider, &self.confirm).await?;
        let receipt = self
            .provider
            .get_transaction_receipt(c.hash)
            .await
            .map_err(ChainError::from)?
            .ok_or_else(|| DevnetError::Invalid("createTask receipt vanished".into()))?;
        for log in receipt.logs() {
            if let Ok(ev) = log.log_decode::<TaskManager::TaskCreated>() {
                let id = u64::try_from(ev.inner.taskId)
                    .map_err(|_| DevnetError::Invalid("task id overflows u64".into()))?;
                return Ok((id, ev.inner.task));
            }
        }
        Err(DevnetError::Invalid(
            "createTask emitted no TaskCreated".into(),
        ))
    }

    /// Mints `amount` to account 0 and moves it into task `id`'s reward pool.
    pub async fn fund_task(&self, id: u64, amount: U256) -> Result<(), DevnetError> {
        let from = self.accounts[0].address();
        self.mint(from, amount).await?;
        let token = FlockToken::new(self.token, self.provider.clone());
        tx::send(
            token.approve(self.manager, amount).from(from),
            &self.provider,
            &self.confirm,
        )
        .await?;
        let manager = TaskManager::new(self.manager, self.provider.clone());
        let call = manager.fundTask(U256::from(id), amount).from(from);
        tx::send(call, &self.provider, &self.confirm).await?;
        Ok(())
    }

    /// A task with [`TaskParams::new`] defaults aggregated by account 1, its pool funded with
    /// `pool` FLOCK, and `n` members (accounts 2, 3, …; the devnet needs `n + 2` accounts) each
    /// minted 1 000 FLOCK and joined with `stake` FLOCK and its [`dev_identity`].
    pub async fn staked_task(
        &self,
        n: usize,
        stake: u64,
        pool: u64,
    ) -> Result<StakedTask, DevnetError> {
        let aggregator = self
            .account(1)
            .ok_or_else(|| DevnetError::Invalid("no devnet account 1".into()))?;
        let (id, task) = self.create_task(&TaskParams::new(aggregator)).await?;
        if pool > 0 {
            self.fund_task(id, FLOCK * U256::from(pool)).await?;
        }
        let mut members = Vec::with_capacity(n);
        for i in 2..2 + n {
            let client = self.task_client(task, i).await?;
            self.mint(client.address(), FLOCK * U256::from(1000u32))
                .await?;
            client
                .join(FLOCK * U256::from(stake), dev_identity(i))
                .await?;
            members.push(client);
        }
        Ok(StakedTask {
            id,
            task,
            members,
            aggregator: self.task_client(task, 1).await?,
        })
    }

    /// A client of `task` for account `i`.
    pub async fn task_client(&self, task: Address, i: usize) -> Result<TaskClient, DevnetError> {
        let from = self
            .account(i)
            .ok_or_else(|| DevnetError::Invalid(format!("no devnet account {i}")))?;
        Ok(TaskClient::connect(self.provider.clone(), task, from, self.confirm).await?)
    }

    /// FLOCK balance of `who`.
    pub async fn balance(&self, who: Address) -> Result<U256, DevnetError> {
        let token = FlockToken::new(self.token, self.provider.clone());
        Ok(token
            .balanceOf(who)
            .call()
            .await
            .map_err(ChainError::from)?)
    }

    /// FLOCK total supply.
    pub async fn total_supply(&self) -> Result<U256, DevnetError> {
        let token = FlockToken::new(self.token, self.provider.clone());
        Ok(token.totalSupply().call().await.map_err(ChainError::from)?)
    }

    /// Moves the chain's clock forward by `by` and mines a block.
    pub async fn advance_time(&self, by: Duration) -> Result<(), DevnetError> {
        let _: serde_json::Value = self
            .provider
            .raw_request("evm_increaseTime".into(), (by.as_secs(),))
            .await
            .map_err(ChainError::from)?;
        self.mine().await
    }

    /// Mines one empty block.
    pub async fn mine(&self) -> Result<(), DevnetError> {
        let _: serde_json::Value = self
            .provider
            .raw_request("evm_mine".into(), ())
            .await
            .map_err(ChainError::from)?;
        Ok(())
    }

    /// Timestamp of the latest block.
    pub async fn now(&self) -> Result<u64, DevnetError> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(ChainError::from)?
            .ok_or_else(|| DevnetError::Invalid("no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    /// A fresh random 32-byte value (secrets and salts in scripted rounds).
    pub fn random(&self) -> Result<B256, DevnetError> {
        Ok(crate::task::random_b256()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_eth() {
        let eth = U256::from(10u8).pow(U256::from(18u8));
        assert_eq!(ETH_PER_ACCOUNT, eth * U256::from(10_000u32));
    }

    #[test]
    fn dev_keys_are_distinct_and_stable() {
        let a = dev_key(0).map(|k| k.address()).ok();
        let b = dev_key(1).map(|k| k.address()).ok();
        assert!(a.is_some() && a != b);
        assert_eq!(a, dev_key(0).map(|k| k.address()).ok());
    }
}
