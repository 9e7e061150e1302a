//! `/accountz`: the account names, or one account's details with `acc`.
//!
//! Contract: without `acc`, the sorted account names and the system account; with `acc`, that
//! account's counters and subject index statistics in nats-server's `account_detail` shape, or
//! HTTP 400 `Account <name> does not exist`. Imports, exports, mappings and JWT fields are
//! omitted, as nats-server omits them for an account that has none. Accounts are created with
//! the server, so `update_time` is the server's start.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::Serialize;

use super::query::Query;
use super::subsz::SublistStats;
use super::time_format::rfc3339;
use super::MonitoringError;
use crate::server::Server;

#[derive(Debug, Serialize)]
pub struct Accountz {
    server_id: String,
    now: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    system_account: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    accounts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_detail: Option<AccountInfo>,
}

#[derive(Debug, Serialize)]
pub struct AccountInfo {
    account_name: String,
    update_time: String,
    #[serde(skip_serializing_if = "is_false")]
    is_system: bool,
    expired: bool,
    complete: bool,
    jetstream_enabled: bool,
    leafnode_connections: u64,
    client_connections: u64,
    subscriptions: usize,
    sublist_stats: SublistStats,
}

fn is_false(value: &bool) -> bool {
    !*value
}

pub fn accountz(server: &Server, query: &Query) -> Result<Accountz, MonitoringError> {
    let system_account = server.system_account_name();
    let accounts = server.accounts();
    let (names, account_detail) = match query.text("acc") {
        None => (
            accounts
                .iter()
                .map(|account| account.name.clone())
                .collect(),
            None,
        ),
        Some(wanted) => {
            let account = accounts
                .iter()
                .find(|account| account.name == wanted)
                .ok_or(MonitoringError::UnknownAccount { account: wanted })?;
            let stats = account.with_index(|index| index.stats());
            let detail = AccountInfo {
                account_name: account.name.clone(),
                update_time: rfc3339(server.started),
                is_system: account.name == system_account,
                expired: false,
                complete: true,
                jetstream_enabled: false,
                leafnode_connections: 0,
                client_connections: account.client_connections.load(Ordering::Relaxed),
                subscriptions: stats.subscriptions,
                sublist_stats: SublistStats::of(&stats),
            };
            (Vec::new(), Some(detail))
        }
    };
    Ok(Accountz {
        server_id: server.server_id.clone(),
        now: rfc3339(SystemTime::now()),
        system_account,
        accounts: names,
        account_detail,
    })
}
