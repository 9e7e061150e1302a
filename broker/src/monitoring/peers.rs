//! `/routez`, `/gatewayz` and `/leafz`: server-to-server connections.
//!
//! Contract: `/routez` lists this server's routes with nats-server's fields (`subs=1` adds
//! the subjects each route's peer is interested in). Tern has no gateways or leaf nodes yet, so
//! those answers are nats-server's shape with the feature off. Parameters are decoded and a
//! malformed one is HTTP 400. (nats-server 2.9 prints `"leafs": null`; we print `[]`.)

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::query::{Query, SubscriptionListing};
use super::time_format::{elapsed_between, from_unix_millis, rfc3339, round_trip, uptime};
use super::MonitoringError;
use crate::cluster::pool::RouteRole;
use crate::server::Server;

/// Stands for a peer entry until peers exist; never constructed.
#[derive(Debug, Serialize)]
pub enum NoPeer {}

#[derive(Debug, Serialize)]
pub struct Routez {
    server_id: String,
    now: String,
    num_routes: usize,
    routes: Vec<RouteInfo>,
}

/// One route as nats-server's `/routez` shows it.
#[derive(Debug, Serialize)]
pub struct RouteInfo {
    rid: u64,
    remote_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    remote_name: String,
    did_solicit: bool,
    is_configured: bool,
    ip: String,
    port: u16,
    start: String,
    last_activity: String,
    rtt: String,
    uptime: String,
    idle: String,
    pending_size: usize,
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
    subscriptions: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions_list: Option<Vec<String>>,
    /// The account of a dedicated (pinned) route.
    #[serde(skip_serializing_if = "String::is_empty")]
    account: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    compression: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Gatewayz {
    server_id: String,
    now: String,
    outbound_gateways: BTreeMap<String, NoPeer>,
    inbound_gateways: BTreeMap<String, Vec<NoPeer>>,
}

#[derive(Debug, Serialize)]
pub struct Leafz {
    server_id: String,
    now: String,
    leafnodes: usize,
    leafs: Vec<NoPeer>,
}

pub fn routez(server: &Server, query: &Query) -> Result<Routez, MonitoringError> {
    use std::sync::atomic::Ordering::Relaxed;
    let listing = query.subscription_listing()?;
    let now = SystemTime::now();
    let routes: Vec<RouteInfo> = server
        .cluster()
        .map(|cluster| cluster.routes())
        .unwrap_or_default()
        .into_iter()
        .map(|route| {
            let connection = &route.connection;
            let statistics = &connection.statistics;
            let subscriptions = connection.subscriptions_snapshot();
            let last_activity = from_unix_millis(connection.last_activity_millis.load(Relaxed));
            RouteInfo {
                rid: connection.id,
                remote_id: route.remote.id.clone(),
                remote_name: route.remote.name.clone(),
                did_solicit: route.remote.solicited,
                is_configured: route.remote.configured,
                ip: route.remote.remote_address.ip().to_string(),
                port: route.remote.remote_address.port(),
                start: rfc3339(route.remote.started),
                last_activity: rfc3339(last_activity),
                rtt: round_trip(connection.round_trip_nanos.load(Relaxed)),
                uptime: uptime(elapsed_between(route.remote.started, now)),
                idle: uptime(elapsed_between(last_activity, now)),
                pending_size: connection.pending_bytes(),
                in_msgs: statistics.in_messages.load(Relaxed),
                out_msgs: statistics.out_messages.load(Relaxed),
                in_bytes: statistics.in_bytes.load(Relaxed),
                out_bytes: statistics.out_bytes.load(Relaxed),
                subscriptions: subscriptions.len(),
                subscriptions_list: (listing != SubscriptionListing::None).then(|| {
                    let mut subjects: Vec<String> = subscriptions
                        .iter()
                        .map(|subscription| {
                            String::from_utf8_lossy(&subscription.subject).into_owned()
                        })
                        .collect();
                    subjects.sort();
                    subjects
                }),
                account: match &route.role {
                    RouteRole::Pinned { account } => account.clone(),
                    _ => String::new(),
                },
                compression: connection.compression(),
            }
        })
        .collect();
    Ok(Routez {
        server_id: server.server_id.clone(),
        now: rfc3339(now),
        num_routes: routes.len(),
        routes,
    })
}

pub fn gatewayz(server: &Server, query: &Query) -> Result<Gatewayz, MonitoringError> {
    query.boolean("accs")?;
    Ok(Gatewayz {
        server_id: server.server_id.clone(),
        now: rfc3339(SystemTime::now()),
        outbound_gateways: BTreeMap::new(),
        inbound_gateways: BTreeMap::new(),
    })
}

pub fn leafz(server: &Server, query: &Query) -> Result<Leafz, MonitoringError> {
    query.boolean("subs")?;
    Ok(Leafz {
        server_id: server.server_id.clone(),
        now: rfc3339(SystemTime::now()),
        leafnodes: 0,
        leafs: Vec::new(),
    })
}
