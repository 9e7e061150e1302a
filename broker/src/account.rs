//! An account: an isolated subject space with its own subject index.
//!
//! Contract: a message published in one account reaches only subscriptions of that account.
//! The index sits behind a read-write lock taken briefly per subscribe, unsubscribe and cache
//! miss; `generation` changes on every subscribe and unsubscribe so connections can keep their
//! own match cache and skip the shared lock while nothing changed. Lock order: the account's
//! index lock may be taken while holding nothing, or a connection's subscription map; never
//! while holding a connection's outbound lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::limits::AccountLimits;
use crate::subject::SubjectError;
use crate::subject::{MatchResult, SubjectIndex};
use crate::subscription::{Subscription, SubscriptionRef};

/// The default account every client without an account binds to.
pub const GLOBAL_ACCOUNT: &str = "$G";
/// The system account.
pub const SYSTEM_ACCOUNT: &str = "$SYS";

/// Entries in the shared match cache of each account, as nats-server sizes it.
const MATCH_CACHE_CAPACITY: usize = 1024;

pub type Matches = Arc<MatchResult<SubscriptionRef>>;

/// Local interest as routes see it: a subject, optionally in a queue group.
pub type InterestKey = (Bytes, Option<Bytes>);

/// How the local interest in one key changed, and what the routes must be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterestChange {
    /// Nothing to announce (a second plain subscription on a subject, say).
    Unchanged,
    /// `RS+`; for a queue group with the new member count.
    Added { weight: u32 },
    /// `RS-`.
    Removed,
}

#[derive(Debug)]
pub struct Account {
    pub name: String,
    index: RwLock<SubjectIndex<SubscriptionRef>>,
    generation: AtomicU64,
    pub client_connections: AtomicU64,
    /// `limits { }` of the account (replaced on reload).
    limits: RwLock<AccountLimits>,
    /// Counts of local subscriptions per key, which routes learn through `RS+`/`RS-`. Lock
    /// order: taken before the cluster's route registry and any connection's outbound.
    local_interest: Mutex<std::collections::HashMap<InterestKey, u32>>,
}

impl Account {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            index: RwLock::new(SubjectIndex::new(MATCH_CACHE_CAPACITY)),
            generation: AtomicU64::new(0),
            client_connections: AtomicU64::new(0),
            limits: RwLock::new(AccountLimits::default()),
            local_interest: Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub fn limits(&self) -> AccountLimits {
        *self.limits.read()
    }

    pub fn set_limits(&self, limits: AccountLimits) {
        *self.limits.write() = limits;
    }

    /// Counts one more client connection unless the account already has `max_connections`
    /// (checked and counted in one step, so racing connections cannot both pass).
    pub fn admit_client_connection(&self) -> bool {
        let limit = self.limits().max_connections.map(u64::from);
        self.client_connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| match limit {
                Some(limit) if count >= limit => None,
                _ => Some(count + 1),
            })
            .is_ok()
    }

    /// Changes whenever the set of subscriptions changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn subscribe(&self, subscription: &Arc<Subscription>) -> Result<(), SubjectError> {
        let mut index = self.index.write();
        index.insert(
            &subscription.subject,
            subscription.queue_group.as_deref(),
            SubscriptionRef(Arc::clone(subscription)),
        )?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Removes subscriptions; each is removed once even if several callers race.
    pub fn unsubscribe<'a>(&self, subscriptions: impl IntoIterator<Item = &'a Arc<Subscription>>) {
        let mut index = None;
        for subscription in subscriptions {
            if !subscription.mark_removed() {
                continue;
            }
            let index = index.get_or_insert_with(|| self.index.write());
            index.remove(
                &subscription.subject,
                subscription.queue_group.as_deref(),
                &SubscriptionRef(Arc::clone(subscription)),
            );
        }
        if index.is_some() {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Counts one local subscription more (`delta` 1) or less (-1) and says what routes must
    /// hear; `announce` runs under the interest lock, so announcements keep their order.
    pub fn change_local_interest(
        &self,
        subscription: &Subscription,
        delta: i32,
        announce: impl FnOnce(&InterestKey, &InterestChange),
    ) {
        let key = (
            subscription.subject.clone(),
            subscription.queue_group.clone(),
        );
        let mut interest = self.local_interest.lock();
        let count = interest.entry(key.clone()).or_insert(0);
        let before = *count;
        *count = if delta >= 0 {
            count.saturating_add(delta.unsigned_abs())
        } else {
            count.saturating_sub(delta.unsigned_abs())
        };
        let after = *count;
        if after == 0 {
            interest.remove(&key);
        }
        let change = match (key.1.is_some(), before, after) {
            (_, before, after) if before == after => InterestChange::Unchanged,
            (_, _, 0) => InterestChange::Removed,
            (true, _, weight) => InterestChange::Added { weight },
            (false, 0, _) => InterestChange::Added { weight: 1 },
            (false, _, _) => InterestChange::Unchanged,
        };
        if change != InterestChange::Unchanged {
            announce(&key, &change);
        }
    }

    /// Runs `visit` over all local interest with the interest lock held, so nothing changes
    /// until a new route has been sent the full state.
    pub fn with_local_interest(
        &self,
        visit: impl FnOnce(&std::collections::HashMap<InterestKey, u32>),
    ) {
        visit(&self.local_interest.lock());
    }

    /// Removes one subscription; `true` only for the caller that removed it.
    pub fn unsubscribe_one(&self, subscription: &Arc<Subscription>) -> bool {
        if !subscription.mark_removed() {
            return false;
        }
        self.index.write().remove(
            &subscription.subject,
            subscription.queue_group.as_deref(),
            &SubscriptionRef(Arc::clone(subscription)),
        );
        self.generation.fetch_add(1, Ordering::AcqRel);
        true
    }

    pub fn matches(&self, subject: &[u8]) -> Matches {
        self.index.read().matches(subject)
    }

    /// Runs `visit` with the index read-locked (monitoring only).
    pub fn with_index<R>(&self, visit: impl FnOnce(&SubjectIndex<SubscriptionRef>) -> R) -> R {
        visit(&self.index.read())
    }
}
