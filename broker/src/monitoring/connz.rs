//! `/connz`: open and recently closed client connections, filtered, sorted and paged.
//!
//! Contract (nats-server's semantics):
//! - `state` is `open` (default), `closed` or `any`/`all`; `acc` and `user` filter by account
//!   and authorized user; `cid` picks one connection and forces `limit` to 1.
//! - `sort`: `cid` and `start` ascending by connection id; `subs`, `pending`, `msgs_to`,
//!   `msgs_from`, `bytes_to`, `bytes_from`, `last`, `idle`, `stop`, `rtt` descending; `uptime`
//!   and `reason` ascending; ties by connection id. `stop` and `reason` need `state=closed`.
//! - `total` counts the connections in the requested state (and account), before the `user`
//!   and `cid` filters and paging; `num_connections` is the size of the page.
//! - `auth` adds `authorized_user` and, outside the global account, `account`; `subs` adds
//!   subject lists, `subs=detail` per-subscription details.
//!
//! Work per request: one pass over open connections (a few atomics and two short locks each)
//! and the closed ring, a sort of compact summaries, then full detail for the page only. Listed
//! subscriptions are capped at [`MAX_LISTED_SUBSCRIPTIONS`] per answer; a connection past the
//! cap lists none, and its `subscriptions` count still tells the client so.

use std::cmp::Ordering as Order;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::query::{Paging, Query, SubscriptionListing};
use super::subsz::SubscriptionDetail;
use super::time_format::{elapsed_between, from_unix_millis, rfc3339, round_trip, uptime};
use super::MonitoringError;
use crate::account::GLOBAL_ACCOUNT;
use crate::connection::{ClientMetadata, Connection, ConnectionKind};
use crate::server::{ClosedConnection, Server};

/// The most subscriptions one `/connz` answer lists, over all its connections.
pub const MAX_LISTED_SUBSCRIPTIONS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOption {
    ConnectionId,
    Start,
    Subscriptions,
    PendingBytes,
    OutMessages,
    InMessages,
    OutBytes,
    InBytes,
    LastActivity,
    Idle,
    Uptime,
    Stop,
    Reason,
    RoundTrip,
}

impl SortOption {
    fn parse(text: &str) -> Result<Self, MonitoringError> {
        Ok(match text {
            "" | "cid" => Self::ConnectionId,
            "start" => Self::Start,
            "subs" => Self::Subscriptions,
            "pending" => Self::PendingBytes,
            "msgs_to" => Self::OutMessages,
            "msgs_from" => Self::InMessages,
            "bytes_to" => Self::OutBytes,
            "bytes_from" => Self::InBytes,
            "last" => Self::LastActivity,
            "idle" => Self::Idle,
            "uptime" => Self::Uptime,
            "stop" => Self::Stop,
            "reason" => Self::Reason,
            "rtt" => Self::RoundTrip,
            _ => {
                return Err(MonitoringError::InvalidSortOption {
                    sort: text.to_string(),
                })
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Open,
    Closed,
    Any,
}

impl ConnectionState {
    fn parse(text: &str) -> Result<Self, MonitoringError> {
        match text.to_ascii_lowercase().as_str() {
            "" | "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            "any" | "all" => Ok(Self::Any),
            _ => Err(MonitoringError::InvalidState {
                state: text.to_string(),
            }),
        }
    }

    fn includes_open(self) -> bool {
        matches!(self, Self::Open | Self::Any)
    }

    fn includes_closed(self) -> bool {
        matches!(self, Self::Closed | Self::Any)
    }
}

/// A validated `/connz` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnzOptions {
    pub sort: SortOption,
    pub auth: bool,
    pub listing: SubscriptionListing,
    pub paging: Paging,
    pub connection_id: Option<u64>,
    pub state: ConnectionState,
    pub user: Option<String>,
    pub account: Option<String>,
}

impl ConnzOptions {
    /// Decodes parameters in nats-server's order, so the first bad one is the one reported.
    pub fn from_query(query: &Query) -> Result<Self, MonitoringError> {
        let sort_text = query.get("sort");
        let auth = query.boolean("auth")?;
        let listing = query.subscription_listing()?;
        let mut paging = query.paging()?;
        let connection_id = query.unsigned("cid")?;
        let state = ConnectionState::parse(query.get("state"))?;
        let sort = SortOption::parse(sort_text)?;
        if state != ConnectionState::Closed {
            match sort {
                SortOption::Stop => {
                    return Err(MonitoringError::SortRequiresClosedConnections { sort: "stop" })
                }
                SortOption::Reason => {
                    return Err(MonitoringError::SortRequiresClosedConnections { sort: "reason" })
                }
                _ => {}
            }
        }
        let connection_id = (connection_id > 0).then_some(connection_id);
        if connection_id.is_some() {
            paging.limit = 1;
        }
        Ok(Self {
            sort,
            auth,
            listing,
            paging,
            connection_id,
            state,
            user: query.text("user"),
            account: query.text("acc"),
        })
    }
}

/// What sorting looks at, copied once per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSummary {
    pub id: u64,
    pub started: SystemTime,
    pub last_activity: SystemTime,
    pub stopped: Option<SystemTime>,
    pub reason: &'static str,
    pub subscriptions: usize,
    pub pending_bytes: usize,
    pub in_messages: u64,
    pub in_bytes: u64,
    pub out_messages: u64,
    pub out_bytes: u64,
    pub round_trip_nanos: u64,
}

impl ConnectionSummary {
    fn idle(&self, now: SystemTime) -> std::time::Duration {
        elapsed_between(self.last_activity, now)
    }

    fn uptime(&self, now: SystemTime) -> std::time::Duration {
        elapsed_between(self.started, self.stopped.unwrap_or(now))
    }
}

/// The order of two connections under `sort`; ties go to the lower connection id.
pub fn compare(
    left: &ConnectionSummary,
    right: &ConnectionSummary,
    sort: SortOption,
    now: SystemTime,
) -> Order {
    let primary = match sort {
        SortOption::ConnectionId | SortOption::Start => Order::Equal,
        SortOption::Subscriptions => right.subscriptions.cmp(&left.subscriptions),
        SortOption::PendingBytes => right.pending_bytes.cmp(&left.pending_bytes),
        SortOption::OutMessages => right.out_messages.cmp(&left.out_messages),
        SortOption::InMessages => right.in_messages.cmp(&left.in_messages),
        SortOption::OutBytes => right.out_bytes.cmp(&left.out_bytes),
        SortOption::InBytes => right.in_bytes.cmp(&left.in_bytes),
        SortOption::LastActivity => right.last_activity.cmp(&left.last_activity),
        SortOption::Idle => right.idle(now).cmp(&left.idle(now)),
        SortOption::Uptime => left.uptime(now).cmp(&right.uptime(now)),
        SortOption::Stop => right.stopped.cmp(&left.stopped),
        SortOption::Reason => left.reason.cmp(right.reason),
        SortOption::RoundTrip => right.round_trip_nanos.cmp(&left.round_trip_nanos),
    };
    primary.then(left.id.cmp(&right.id))
}

enum Source {
    Open(Arc<Connection>),
    Closed(Box<ClosedConnection>),
}

struct Row {
    summary: ConnectionSummary,
    source: Source,
}

#[derive(Debug, Serialize)]
pub struct Connz {
    server_id: String,
    now: String,
    num_connections: usize,
    total: usize,
    offset: usize,
    limit: usize,
    connections: Vec<ConnectionInfo>,
}

#[derive(Debug, Serialize)]
pub struct ConnectionInfo {
    cid: u64,
    kind: &'static str,
    #[serde(rename = "type")]
    client_type: &'static str,
    ip: String,
    port: u16,
    start: String,
    last_activity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'static str,
    rtt: String,
    uptime: String,
    idle: String,
    pending_bytes: usize,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    subscriptions: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    version: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    tls_version: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    tls_cipher_suite: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    authorized_user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    account: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions_list_detail: Vec<SubscriptionDetail>,
}

pub fn connz(server: &Server, query: &Query) -> Result<Connz, MonitoringError> {
    let options = ConnzOptions::from_query(query)?;
    let now = SystemTime::now();
    let (total, mut rows) = collect_rows(server, &options);
    rows.sort_by(|left, right| compare(&left.summary, &right.summary, options.sort, now));
    let page = options.paging.bounds(rows.len());
    let mut subscription_budget = MAX_LISTED_SUBSCRIPTIONS;
    let connections: Vec<_> = rows
        .drain(page)
        .map(|row| render(row, &options, now, &mut subscription_budget))
        .collect();
    Ok(Connz {
        server_id: server.server_id.clone(),
        now: rfc3339(now),
        num_connections: connections.len(),
        total,
        offset: options.paging.offset,
        limit: options.paging.limit,
        connections,
    })
}

/// The rows that pass every filter, and the `total` nats-server reports.
fn collect_rows(server: &Server, options: &ConnzOptions) -> (usize, Vec<Row>) {
    let mut total = 0;
    let mut rows = Vec::new();
    let wanted_id = |id: u64| options.connection_id.is_none_or(|wanted| wanted == id);
    let wanted_user = |user: &str| options.user.as_deref().is_none_or(|wanted| wanted == user);
    let in_account = |account: &str| {
        options
            .account
            .as_deref()
            .is_none_or(|wanted| wanted == account)
    };
    if options.state.includes_open() {
        for connection in server.connections() {
            let (account_matches, user_matches) = {
                let metadata = connection.metadata.lock();
                (
                    in_account(&metadata.account),
                    wanted_user(&metadata.authorized_user),
                )
            };
            if !account_matches {
                continue;
            }
            total += 1;
            if user_matches && wanted_id(connection.id) {
                rows.push(Row {
                    summary: open_summary(&connection),
                    source: Source::Open(connection),
                });
            }
        }
    }
    if options.state.includes_closed() {
        for closed in server.closed_connections() {
            if !in_account(&closed.metadata.account) {
                continue;
            }
            total += 1;
            if wanted_user(&closed.metadata.authorized_user) && wanted_id(closed.id) {
                rows.push(Row {
                    summary: closed_summary(&closed),
                    source: Source::Closed(Box::new(closed)),
                });
            }
        }
    }
    (total, rows)
}

fn open_summary(connection: &Connection) -> ConnectionSummary {
    let statistics = &connection.statistics;
    ConnectionSummary {
        id: connection.id,
        started: connection.started,
        last_activity: from_unix_millis(connection.last_activity_millis.load(Ordering::Relaxed)),
        stopped: None,
        reason: "",
        subscriptions: connection.subscription_count(),
        pending_bytes: connection.pending_bytes(),
        in_messages: statistics.in_messages.load(Ordering::Relaxed),
        in_bytes: statistics.in_bytes.load(Ordering::Relaxed),
        out_messages: statistics.out_messages.load(Ordering::Relaxed),
        out_bytes: statistics.out_bytes.load(Ordering::Relaxed),
        round_trip_nanos: connection.round_trip_nanos.load(Ordering::Relaxed),
    }
}

fn closed_summary(closed: &ClosedConnection) -> ConnectionSummary {
    ConnectionSummary {
        id: closed.id,
        started: closed.started,
        last_activity: from_unix_millis(closed.last_activity_millis),
        stopped: Some(closed.stopped),
        reason: closed.reason.as_str(),
        subscriptions: closed.subjects.len(),
        pending_bytes: 0,
        in_messages: closed.in_messages,
        in_bytes: closed.in_bytes,
        out_messages: closed.out_messages,
        out_bytes: closed.out_bytes,
        round_trip_nanos: closed.round_trip_nanos,
    }
}

/// nats-server's `type` of a client connection: the protocol it speaks.
fn client_type(kind: ConnectionKind, websocket: bool) -> &'static str {
    match kind {
        ConnectionKind::Client if websocket => "websocket",
        ConnectionKind::Client | ConnectionKind::Route => "nats",
        ConnectionKind::Internal => "internal",
    }
}

fn render(
    row: Row,
    options: &ConnzOptions,
    now: SystemTime,
    subscription_budget: &mut usize,
) -> ConnectionInfo {
    let summary = row.summary;
    let (transport, address, metadata, subscriptions_list, subscriptions_list_detail) =
        match row.source {
            Source::Open(connection) => {
                let metadata = connection.metadata.lock().clone();
                let (list, detail) =
                    open_subscriptions(&connection, options.listing, subscription_budget);
                (
                    (
                        connection.kind,
                        connection.websocket,
                        connection.tls_details(),
                    ),
                    connection.remote_address,
                    metadata,
                    list,
                    detail,
                )
            }
            Source::Closed(closed) => {
                let (list, detail) =
                    closed_subscriptions(&closed, options.listing, subscription_budget);
                (
                    (closed.kind, closed.websocket, closed.tls),
                    closed.remote_address,
                    closed.metadata,
                    list,
                    detail,
                )
            }
        };
    let (kind, websocket, tls) = transport;
    let ClientMetadata {
        name,
        lang,
        version,
        authorized_user,
        account,
    } = metadata;
    let (authorized_user, account) = if options.auth {
        let account = if account == GLOBAL_ACCOUNT {
            String::new()
        } else {
            account
        };
        (authorized_user, account)
    } else {
        (String::new(), String::new())
    };
    let ended = summary.stopped.unwrap_or(now);
    ConnectionInfo {
        cid: summary.id,
        kind: kind.as_str(),
        client_type: client_type(kind, websocket),
        ip: address.ip().to_canonical().to_string(),
        port: address.port(),
        start: rfc3339(summary.started),
        last_activity: rfc3339(summary.last_activity),
        stop: summary.stopped.map(rfc3339),
        reason: summary.reason,
        rtt: round_trip(summary.round_trip_nanos),
        uptime: uptime(elapsed_between(summary.started, ended)),
        idle: uptime(elapsed_between(summary.last_activity, ended)),
        pending_bytes: summary.pending_bytes,
        in_msgs: summary.in_messages,
        out_msgs: summary.out_messages,
        in_bytes: summary.in_bytes,
        out_bytes: summary.out_bytes,
        subscriptions: summary.subscriptions,
        name,
        lang,
        version,
        tls_version: tls.map_or("", |tls| tls.version),
        tls_cipher_suite: tls.map_or("", |tls| tls.cipher_suite),
        authorized_user,
        account,
        subscriptions_list,
        subscriptions_list_detail,
    }
}

/// Takes up to `count` entries from the shared budget; all or nothing per connection, so a
/// listed connection is always listed completely.
fn claim(budget: &mut usize, count: usize) -> bool {
    if count > *budget {
        *budget = 0;
        return false;
    }
    *budget -= count;
    true
}

fn open_subscriptions(
    connection: &Connection,
    listing: SubscriptionListing,
    budget: &mut usize,
) -> (Vec<String>, Vec<SubscriptionDetail>) {
    if listing == SubscriptionListing::None {
        return (Vec::new(), Vec::new());
    }
    let subscriptions = connection.subscriptions_snapshot();
    if !claim(budget, subscriptions.len()) {
        return (Vec::new(), Vec::new());
    }
    match listing {
        SubscriptionListing::Detail => (
            Vec::new(),
            subscriptions
                .iter()
                .map(|subscription| SubscriptionDetail::of(subscription, None))
                .collect(),
        ),
        _ => (
            subscriptions
                .iter()
                .map(|subscription| String::from_utf8_lossy(&subscription.subject).into_owned())
                .collect(),
            Vec::new(),
        ),
    }
}

/// A closed connection keeps only its subjects, so details carry subject and connection id.
fn closed_subscriptions(
    closed: &ClosedConnection,
    listing: SubscriptionListing,
    budget: &mut usize,
) -> (Vec<String>, Vec<SubscriptionDetail>) {
    if listing == SubscriptionListing::None || !claim(budget, closed.subjects.len()) {
        return (Vec::new(), Vec::new());
    }
    match listing {
        SubscriptionListing::Detail => (
            Vec::new(),
            closed
                .subjects
                .iter()
                .map(|subject| SubscriptionDetail::subject_only(subject.clone(), closed.id))
                .collect(),
        ),
        _ => (closed.subjects.clone(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn summary(id: u64) -> ConnectionSummary {
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        ConnectionSummary {
            id,
            started: epoch,
            last_activity: epoch,
            stopped: None,
            reason: "",
            subscriptions: 0,
            pending_bytes: 0,
            in_messages: 0,
            in_bytes: 0,
            out_messages: 0,
            out_bytes: 0,
            round_trip_nanos: 0,
        }
    }

    fn sorted_ids(mut summaries: Vec<ConnectionSummary>, sort: SortOption) -> Vec<u64> {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000);
        summaries.sort_by(|left, right| compare(left, right, sort, now));
        summaries.iter().map(|summary| summary.id).collect()
    }

    fn options(raw: &str) -> Result<ConnzOptions, String> {
        ConnzOptions::from_query(&Query::parse(Some(raw))).map_err(|error| error.to_string())
    }

    #[test]
    fn default_sort_is_by_connection_id() {
        let summaries = vec![summary(3), summary(1), summary(2)];
        assert_eq!(sorted_ids(summaries, SortOption::ConnectionId), [1, 2, 3]);
    }

    #[test]
    fn counters_sort_descending_with_ties_by_id() {
        let mut busy = summary(2);
        busy.out_messages = 10;
        let mut idle = summary(1);
        idle.out_messages = 1;
        let summaries = vec![idle, busy, summary(3), summary(0)];
        assert_eq!(sorted_ids(summaries, SortOption::OutMessages), [2, 1, 0, 3]);
    }

    #[test]
    fn idle_sorts_longest_idle_first_and_uptime_shortest_first() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut recent = summary(1);
        recent.last_activity = base + Duration::from_secs(900);
        recent.started = base + Duration::from_secs(500);
        let old = summary(2);
        assert_eq!(
            sorted_ids(vec![recent.clone(), old.clone()], SortOption::Idle),
            [2, 1]
        );
        assert_eq!(sorted_ids(vec![old, recent], SortOption::Uptime), [1, 2]);
    }

    #[test]
    fn closed_connections_sort_by_stop_and_reason() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut first = summary(1);
        first.stopped = Some(base + Duration::from_secs(1));
        first.reason = "Read Error";
        let mut second = summary(2);
        second.stopped = Some(base + Duration::from_secs(5));
        second.reason = "Client Closed";
        assert_eq!(
            sorted_ids(vec![first.clone(), second.clone()], SortOption::Stop),
            [2, 1]
        );
        assert_eq!(sorted_ids(vec![first, second], SortOption::Reason), [2, 1]);
    }

    #[test]
    fn round_trip_sorts_slowest_first() {
        let mut slow = summary(1);
        slow.round_trip_nanos = 5_000;
        let mut fast = summary(2);
        fast.round_trip_nanos = 10;
        assert_eq!(sorted_ids(vec![fast, slow], SortOption::RoundTrip), [1, 2]);
    }

    #[test]
    fn options_have_nats_server_defaults() {
        let parsed = options("").map(|options| {
            (
                options.sort,
                options.state,
                options.paging,
                options.listing,
                options.connection_id,
            )
        });
        assert_eq!(
            parsed,
            Ok((
                SortOption::ConnectionId,
                ConnectionState::Open,
                Paging::default(),
                SubscriptionListing::None,
                None
            ))
        );
    }

    #[test]
    fn a_connection_id_limits_the_page_to_one() {
        let parsed =
            options("cid=5&limit=50").map(|options| (options.connection_id, options.paging.limit));
        assert_eq!(parsed, Ok((Some(5), 1)));
    }

    #[test]
    fn invalid_sort_options_are_worded_like_nats_server() {
        assert_eq!(
            options("sort=foo").map(|_| ()),
            Err("invalid sorting option: foo".to_string())
        );
        assert_eq!(
            options("sort=stop").map(|_| ()),
            Err("sort by stop only valid on closed connections".to_string())
        );
        assert_eq!(
            options("sort=reason&state=any").map(|_| ()),
            Err("sort by reason only valid on closed connections".to_string())
        );
        assert!(options("sort=stop&state=closed").is_ok());
        assert!(options("sort=rtt").is_ok());
    }

    #[test]
    fn earlier_parameters_are_reported_first() {
        assert_eq!(
            options("sort=foo&auth=maybe").map(|_| ()),
            Err(
                "Error decoding boolean for 'auth': strconv.ParseBool: parsing \"maybe\": invalid syntax"
                    .to_string()
            )
        );
        assert_eq!(
            options("state=bogus").map(|_| ()),
            Err("Error decoding state for bogus".to_string())
        );
        assert_eq!(
            options("state=ALL").map(|options| options.state),
            Ok(ConnectionState::Any)
        );
    }

    #[test]
    fn the_subscription_budget_lists_whole_connections_only() {
        let mut budget = 5;
        assert!(claim(&mut budget, 3));
        assert!(!claim(&mut budget, 3));
        assert_eq!(budget, 0);
        assert!(claim(&mut budget, 0));
    }
}
