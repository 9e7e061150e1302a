//! `/subsz` (alias `/subscriptionsz`): subject index statistics and, on request, a page of the
//! subscriptions themselves.
//!
//! Contract (nats-server's semantics):
//! - Statistics are summed over every account, or only `acc`; the hit rate and average fanout
//!   are recomputed from the summed hits and fanouts, not averaged.
//! - `subs=true` lists subscriptions (account by account, each in its index's order, which is
//!   stable while nothing subscribes or unsubscribes); `test` keeps only those a message
//!   published on that literal subject would reach; `offset`/`limit` page; `total` is the size
//!   of the page.
//! - When no subscription is listed the answer is the statistics alone, without `server_id` or
//!   paging fields, exactly as nats-server prints it.
//!
//! Work per request: a walk of each index under its read lock, keeping at most `limit` entries.

use std::time::SystemTime;

use serde::Serialize;

use super::json::go_float;
use super::query::{Paging, Query};
use super::time_format::rfc3339;
use super::{MonitoringError, Reply};
use crate::server::Server;
use crate::subject::{is_valid_literal_subject, subject_matches_pattern, SubjectIndexStats};
use crate::subscription::Subscription;

/// One subscription, as `/subsz` and `/connz?subs=detail` list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionDetail {
    #[serde(skip_serializing_if = "String::is_empty")]
    account: String,
    subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    qgroup: String,
    sid: String,
    msgs: u64,
    #[serde(skip_serializing_if = "is_zero")]
    max: u64,
    cid: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl SubscriptionDetail {
    /// `account` is named in `/subsz` and left out under a connection in `/connz`.
    pub fn of(subscription: &Subscription, account: Option<&str>) -> Self {
        Self {
            account: account.unwrap_or_default().to_string(),
            subject: String::from_utf8_lossy(&subscription.subject).into_owned(),
            qgroup: subscription
                .queue_group
                .as_ref()
                .map(|queue_group| String::from_utf8_lossy(queue_group).into_owned())
                .unwrap_or_default(),
            sid: String::from_utf8_lossy(&subscription.sid).into_owned(),
            msgs: subscription.delivered(),
            max: subscription.max_messages(),
            cid: subscription.connection.id,
        }
    }

    /// What is known of a subscription of a closed connection: its subject.
    pub fn subject_only(subject: String, connection_id: u64) -> Self {
        Self {
            account: String::new(),
            subject,
            qgroup: String::new(),
            sid: String::new(),
            msgs: 0,
            max: 0,
            cid: connection_id,
        }
    }
}

/// nats-server's `SublistStats`, summable over accounts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SublistStats {
    num_subscriptions: usize,
    num_cache: usize,
    num_inserts: u64,
    num_removes: u64,
    num_matches: u64,
    #[serde(serialize_with = "go_float")]
    cache_hit_rate: f64,
    max_fanout: usize,
    #[serde(serialize_with = "go_float")]
    avg_fanout: f64,
    #[serde(skip)]
    cache_hits: u64,
    #[serde(skip)]
    total_fanout: f64,
}

impl SublistStats {
    pub fn of(stats: &SubjectIndexStats) -> Self {
        let mut sum = Self::default();
        sum.add(stats);
        sum
    }

    pub fn add(&mut self, stats: &SubjectIndexStats) {
        self.num_subscriptions += stats.subscriptions;
        self.num_cache += stats.cache_entries;
        self.num_inserts += stats.inserts;
        self.num_removes += stats.removes;
        self.num_matches += stats.matches;
        self.cache_hits += stats.cache_hits;
        self.max_fanout = self.max_fanout.max(stats.max_fanout);
        // The index reports an average; its sum is recovered to average over all accounts.
        self.total_fanout += stats.avg_fanout * stats.cache_entries as f64;
        if self.num_cache > 0 {
            self.avg_fanout = self.total_fanout / self.num_cache as f64;
        }
        if self.num_matches > 0 {
            self.cache_hit_rate = self.cache_hits as f64 / self.num_matches as f64;
        }
    }
}

/// A validated `/subsz` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubszOptions {
    pub list: bool,
    pub paging: Paging,
    pub test: Option<String>,
    pub account: Option<String>,
}

impl SubszOptions {
    pub fn from_query(query: &Query) -> Result<Self, MonitoringError> {
        let list = query.boolean("subs")?;
        let paging = query.paging()?;
        let test = query.text("test");
        if let Some(subject) = &test {
            if !is_valid_literal_subject(subject.as_bytes()) {
                return Err(MonitoringError::InvalidTestSubject {
                    subject: subject.clone(),
                });
            }
        }
        Ok(Self {
            list,
            paging,
            test,
            account: query.text("acc"),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct Subsz {
    server_id: String,
    now: String,
    #[serde(flatten)]
    stats: SublistStats,
    total: usize,
    offset: usize,
    limit: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions_list: Vec<SubscriptionDetail>,
}

impl Subsz {
    pub fn into_reply(self) -> Result<Reply, MonitoringError> {
        if self.subscriptions_list.is_empty() {
            Reply::json(&self.stats)
        } else {
            Reply::json(&self)
        }
    }
}

/// Keeps the entries of one page while a listing streams past.
#[derive(Debug)]
pub struct PageCollector<T> {
    to_skip: usize,
    room: usize,
    entries: Vec<T>,
}

impl<T> PageCollector<T> {
    pub fn new(paging: Paging) -> Self {
        Self {
            to_skip: paging.offset,
            room: paging.limit,
            entries: Vec::new(),
        }
    }

    /// Counts one entry; `make` runs only for entries on the page.
    pub fn offer(&mut self, make: impl FnOnce() -> T) {
        if self.to_skip > 0 {
            self.to_skip -= 1;
        } else if self.room > 0 {
            self.room -= 1;
            self.entries.push(make());
        }
    }

    pub fn is_full(&self) -> bool {
        self.room == 0
    }

    pub fn into_entries(self) -> Vec<T> {
        self.entries
    }
}

pub fn subsz(server: &Server, query: &Query) -> Result<Subsz, MonitoringError> {
    let options = SubszOptions::from_query(query)?;
    let mut stats = SublistStats::default();
    let mut page = PageCollector::new(options.paging);
    let accounts = server.accounts().into_iter().filter(|account| {
        options
            .account
            .as_deref()
            .is_none_or(|wanted| wanted == account.name)
    });
    for account in accounts {
        account.with_index(|index| {
            stats.add(&index.stats());
            if !options.list || page.is_full() {
                return;
            }
            index.for_each(|subject, _, subscription| {
                let reached = options
                    .test
                    .as_deref()
                    .is_none_or(|test| subject_matches_pattern(subject, test.as_bytes()));
                if reached {
                    page.offer(|| SubscriptionDetail::of(subscription, Some(&account.name)));
                }
            });
        });
    }
    let subscriptions_list = page.into_entries();
    Ok(Subsz {
        server_id: server.server_id.clone(),
        now: rfc3339(SystemTime::now()),
        stats,
        total: subscriptions_list.len(),
        offset: options.paging.offset,
        limit: options.paging.limit,
        subscriptions_list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_stats(
        subscriptions: usize,
        cache_entries: usize,
        avg_fanout: f64,
    ) -> SubjectIndexStats {
        SubjectIndexStats {
            subscriptions,
            cache_entries,
            inserts: subscriptions as u64,
            removes: 0,
            matches: 10,
            cache_hits: 5,
            cache_hit_rate: 0.5,
            max_fanout: 3,
            avg_fanout,
        }
    }

    #[test]
    fn stats_sum_over_accounts_and_reaverage() {
        let mut sum = SublistStats::of(&index_stats(4, 2, 1.0));
        sum.add(&index_stats(6, 6, 3.0));
        assert_eq!(sum.num_subscriptions, 10);
        assert_eq!(sum.num_cache, 8);
        assert_eq!(sum.num_matches, 20);
        assert_eq!(sum.cache_hit_rate, 0.5);
        assert_eq!(sum.avg_fanout, 2.5);
        assert_eq!(sum.max_fanout, 3);
    }

    #[test]
    fn stats_serialize_like_nats_server() {
        let text =
            serde_json::to_string(&SublistStats::default()).map_err(|error| error.to_string());
        assert_eq!(
            text,
            Ok(r#"{"num_subscriptions":0,"num_cache":0,"num_inserts":0,"num_removes":0,"num_matches":0,"cache_hit_rate":0,"max_fanout":0,"avg_fanout":0}"#.to_string())
        );
    }

    #[test]
    fn page_collector_skips_then_keeps_at_most_the_limit() {
        let mut page = PageCollector::new(Paging::new(2, 3));
        for value in 0..10 {
            page.offer(|| value);
        }
        assert!(page.is_full());
        assert_eq!(page.into_entries(), [2, 3, 4]);
    }

    #[test]
    fn test_subject_must_be_a_valid_publish_subject() {
        let parse = |raw| {
            SubszOptions::from_query(&Query::parse(Some(raw))).map_err(|error| error.to_string())
        };
        assert_eq!(
            parse("test=foo..x").map(|_| ()),
            Err("invalid test subject, must be valid publish subject: foo..x".to_string())
        );
        assert_eq!(
            parse("test=foo.*").map(|_| ()),
            Err("invalid test subject, must be valid publish subject: foo.*".to_string())
        );
        assert_eq!(
            parse("subs=1&test=foo.bar&acc=%24G").map(|options| (
                options.list,
                options.test,
                options.account
            )),
            Ok((true, Some("foo.bar".to_string()), Some("$G".to_string())))
        );
    }
}
