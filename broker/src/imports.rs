//! Streams and services accounts import from each other, as dispatch follows them.
//!
//! Contract: an import is an internal subscription (owned by the server's internal
//! connection) carrying an [`ImportRoute`]; dispatch hands a message that matches one to
//! [`crate::dispatch::Dispatcher`], which follows the route:
//! - a **stream** import subscribes in the exporting account on the imported subject; a match
//!   is delivered again in the importing account under the mapped subject, to this server's
//!   subscribers only (every server holding the import does the same for its own, so nothing
//!   is delivered twice), reply unchanged;
//! - a **service** import subscribes in the importing account on its `to` subject; a request
//!   published on this server goes on into the exporting account under the exported subject
//!   with its reply replaced by `_R_.<token>.<n>`, remembered by the exporter's
//!   [`ResponseRouter`] (for one response, or for any number until the export's response
//!   threshold, by the export's response type);
//! - the exporter's **responses** subscription (`_R_.<token>.>`) turns a response back into
//!   the importing account on the original reply subject.
//!
//! Stream and response subscriptions are local interest (routes bring the exporter's messages
//! and the responses here); service subscriptions are not (each server serves its own
//! clients' requests). Pending responses are bounded: the oldest are forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::account::Account;
use crate::connection::Connection;
use crate::options::{ExchangeKind, ResponseType, ServerOptions};
use crate::subject::mapping::{covers, SubjectMapping};
use crate::subscription::Subscription;

/// Requests awaiting responses per exporting account, at most.
const MAX_PENDING_RESPONSES: usize = 100_000;

/// Where a message matching an import subscription goes next.
#[derive(Debug)]
pub enum ImportRoute {
    Stream {
        into: Arc<Account>,
        mapping: SubjectMapping,
    },
    Service {
        /// The importing account, where responses return.
        importer: Arc<Account>,
        exporter: Arc<Account>,
        mapping: SubjectMapping,
        responses: Arc<ResponseRouter>,
        response_type: ResponseType,
        response_threshold: Duration,
    },
    Responses {
        router: Arc<ResponseRouter>,
    },
}

#[derive(Debug)]
struct PendingResponse {
    into: Arc<Account>,
    reply: Bytes,
    singleton: bool,
}

#[derive(Debug, Default)]
struct Pending {
    next: u64,
    entries: HashMap<u64, PendingResponse>,
    /// Ids by age, for expiry and the bound.
    order: VecDeque<(Instant, u64)>,
}

/// The reply subjects an exporting account's services answer on, and where each leads.
#[derive(Debug)]
pub struct ResponseRouter {
    /// `_R_.<token>.`
    prefix: Vec<u8>,
    pending: Mutex<Pending>,
}

impl ResponseRouter {
    pub fn new(token: &str) -> Self {
        Self {
            prefix: format!("_R_.{token}.").into_bytes(),
            pending: Mutex::new(Pending::default()),
        }
    }

    /// The subject the exporter's responses subscription listens on.
    pub fn subscription_subject(&self) -> Bytes {
        let mut subject = self.prefix.clone();
        subject.push(b'>');
        Bytes::from(subject)
    }

    /// Remembers where responses to one request go; returns the reply subject to use in the
    /// exporting account.
    pub fn register(
        &self,
        into: &Arc<Account>,
        reply: &[u8],
        response_type: ResponseType,
        threshold: Duration,
        now: Instant,
    ) -> Vec<u8> {
        let mut pending = self.pending.lock();
        pending.expire(now);
        while pending.entries.len() >= MAX_PENDING_RESPONSES {
            let Some((_, oldest)) = pending.order.pop_front() else {
                break;
            };
            pending.entries.remove(&oldest);
        }
        pending.next += 1;
        let id = pending.next;
        let expires = now + threshold;
        pending.entries.insert(
            id,
            PendingResponse {
                into: Arc::clone(into),
                reply: Bytes::copy_from_slice(reply),
                singleton: response_type == ResponseType::Singleton,
            },
        );
        pending.order.push_back((expires, id));
        let mut subject = self.prefix.clone();
        subject.extend_from_slice(id.to_string().as_bytes());
        subject
    }

    /// Where a response on `subject` goes: the importing account and the original reply.
    pub fn resolve(&self, subject: &[u8], now: Instant) -> Option<(Arc<Account>, Bytes)> {
        let id: u64 = std::str::from_utf8(subject.strip_prefix(self.prefix.as_slice())?)
            .ok()?
            .parse()
            .ok()?;
        let mut pending = self.pending.lock();
        pending.expire(now);
        let entry = pending.entries.get(&id)?;
        let found = (Arc::clone(&entry.into), entry.reply.clone());
        if entry.singleton {
            pending.entries.remove(&id);
        }
        Some(found)
    }

    pub fn pending_count(&self) -> usize {
        self.pending.lock().entries.len()
    }
}

impl Pending {
    fn expire(&mut self, now: Instant) {
        while let Some(&(expires, id)) = self.order.front() {
            if expires > now {
                break;
            }
            self.order.pop_front();
            self.entries.remove(&id);
        }
    }
}

/// One import subscription to install.
#[derive(Debug)]
pub struct ImportSubscription {
    pub account: Arc<Account>,
    pub subscription: Arc<Subscription>,
    /// Whether it counts as local interest (routes must bring its messages here).
    pub local_interest: bool,
}

/// The subscriptions `options.imports` need, owned by `internal`. `routers` keeps each
/// exporting account's response router across reloads (pending responses survive one).
/// Imports naming unknown accounts or exports are skipped (the config loader refuses them).
pub fn subscriptions(
    options: &ServerOptions,
    account: impl Fn(&str) -> Option<Arc<Account>>,
    routers: &mut HashMap<String, Arc<ResponseRouter>>,
    internal: &Arc<Connection>,
) -> Vec<ImportSubscription> {
    let mut installed = Vec::new();
    let mut responders: Vec<String> = Vec::new();
    let mut sequence = 0_u64;
    let mut subscribe = |into: &Arc<Account>, subject: Bytes, route: ImportRoute, local| {
        sequence += 1;
        ImportSubscription {
            account: Arc::clone(into),
            subscription: Arc::new(Subscription::for_import(
                Arc::clone(internal),
                subject,
                Bytes::from(format!("import-{sequence}")),
                Arc::new(route),
            )),
            local_interest: local,
        }
    };
    for import in &options.imports {
        let (Some(importer), Some(exporter)) = (account(&import.account), account(&import.from))
        else {
            continue;
        };
        match import.kind {
            ExchangeKind::Stream => {
                let Ok(mapping) = SubjectMapping::new(&import.subject, &import.to) else {
                    continue;
                };
                let route = ImportRoute::Stream {
                    into: Arc::clone(&importer),
                    mapping,
                };
                let subject = Bytes::from(import.subject.clone());
                installed.push(subscribe(&exporter, subject, route, true));
            }
            ExchangeKind::Service => {
                let Some(export) = options.exports.iter().find(|export| {
                    export.account == import.from
                        && export.kind == ExchangeKind::Service
                        && covers(&export.subject, &import.subject)
                }) else {
                    continue;
                };
                let Ok(mapping) = SubjectMapping::new(&import.to, &import.subject) else {
                    continue;
                };
                let router = Arc::clone(routers.entry(import.from.clone()).or_insert_with(|| {
                    Arc::new(ResponseRouter::new(&crate::identity::new_nonce()))
                }));
                if !responders.contains(&import.from) {
                    responders.push(import.from.clone());
                    let route = ImportRoute::Responses {
                        router: Arc::clone(&router),
                    };
                    installed.push(subscribe(
                        &exporter,
                        router.subscription_subject(),
                        route,
                        true,
                    ));
                }
                let route = ImportRoute::Service {
                    importer: Arc::clone(&importer),
                    exporter: Arc::clone(&exporter),
                    mapping,
                    responses: router,
                    response_type: export.response_type,
                    response_threshold: export.response_threshold,
                };
                let subject = Bytes::from(import.to.clone());
                installed.push(subscribe(&importer, subject, route, false));
            }
        }
    }
    installed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn singleton_responses_resolve_once_and_streams_until_the_threshold() {
        let router = ResponseRouter::new("abc");
        assert_eq!(&router.subscription_subject()[..], b"_R_.abc.>");
        let importer = Arc::new(Account::new("B"));
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let single = router.register(&importer, b"_INBOX.1", ResponseType::Singleton, minute, now);
        let stream = router.register(&importer, b"_INBOX.2", ResponseType::Stream, minute, now);
        let (account, reply) = router.resolve(&single, now).unwrap();
        assert_eq!((account.name.as_str(), &reply[..]), ("B", &b"_INBOX.1"[..]));
        assert!(router.resolve(&single, now).is_none());
        assert!(router.resolve(&stream, now).is_some());
        assert!(router.resolve(&stream, now).is_some());
        assert!(router.resolve(&stream, now + minute).is_none());
        assert!(router.resolve(b"_R_.other.1", now).is_none());
        assert_eq!(router.pending_count(), 0);
    }
}
