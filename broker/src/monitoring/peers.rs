//! `/routez`, `/gatewayz` and `/leafz`: server-to-server connections.
//!
//! Contract: Tern has no routes, gateways or leaf nodes yet, so each answer is nats-server's
//! shape with the feature off: no peers, empty lists and maps. Parameters are still decoded and
//! a malformed one is HTTP 400, so clients see the same errors they will once peers exist.
//! (nats-server 2.9 prints `"leafs": null` with no leaf nodes; we print `[]`.)

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::query::Query;
use super::time_format::rfc3339;
use super::MonitoringError;
use crate::server::Server;

/// Stands for a peer entry until peers exist; never constructed.
#[derive(Debug, Serialize)]
pub enum NoPeer {}

#[derive(Debug, Serialize)]
pub struct Routez {
    server_id: String,
    now: String,
    num_routes: usize,
    routes: Vec<NoPeer>,
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
    query.subscription_listing()?;
    Ok(Routez {
        server_id: server.server_id.clone(),
        now: rfc3339(SystemTime::now()),
        num_routes: 0,
        routes: Vec::new(),
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
