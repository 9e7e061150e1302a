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

use parking_lot::RwLock;

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

#[derive(Debug)]
pub struct Account {
    pub name: String,
    index: RwLock<SubjectIndex<SubscriptionRef>>,
    generation: AtomicU64,
    pub client_connections: AtomicU64,
}

impl Account {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            index: RwLock::new(SubjectIndex::new(MATCH_CACHE_CAPACITY)),
            generation: AtomicU64::new(0),
            client_connections: AtomicU64::new(0),
        }
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

    pub fn matches(&self, subject: &[u8]) -> Matches {
        self.index.read().matches(subject)
    }

    /// Runs `visit` with the index read-locked (monitoring only).
    pub fn with_index<R>(&self, visit: impl FnOnce(&SubjectIndex<SubscriptionRef>) -> R) -> R {
        visit(&self.index.read())
    }
}
