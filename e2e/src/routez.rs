//! `/routez?subs=1`, parsed: which servers a server has routes to and what went over them.
//!
//! nats-server 2.10+ opens several connections to one peer (a pool, plus one for `$SYS`), so
//! `num_routes` counts connections, not peers; [`Routez::peers`] and [`Routez::towards`] group
//! the connections by the peer's `remote_id`. The fields read are nats-server's: a server whose
//! `/routez` lacks one of them fails the parse, naming the field.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::error::{preview, HarnessError};

/// One server's `/routez`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routez {
    /// The answering server's id.
    pub server_id: String,
    /// Route connections, as the server counts them.
    pub num_routes: u64,
    pub routes: Vec<RouteConnection>,
}

/// One route connection of `/routez`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConnection {
    pub remote_id: String,
    pub remote_name: String,
    /// The account a dedicated (pinned) connection carries (2.10+, `$SYS` at least).
    pub account: Option<String>,
    /// The compression mode the connection settled on (2.10+; absent on 2.9).
    pub compression: Option<String>,
    /// Messages received from the peer on this connection.
    pub in_msgs: u64,
    /// Messages sent to the peer on this connection.
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// How many subscriptions the peer registered on this connection (RS+).
    pub subscriptions: u64,
    /// Their subjects (`subject` or `subject queue`), when asked for with `subs=1`.
    pub subscriptions_list: Vec<String>,
}

/// Every connection towards one peer, added up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTotals {
    pub connections: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub subscriptions: u64,
    pub subjects: BTreeSet<String>,
}

impl Routez {
    /// Parses the JSON of `/routez` (with or without `subs=1`).
    pub fn parse(json: &Value) -> Result<Self, HarnessError> {
        let invalid = |reason: String| HarnessError::InvalidHttpResponse {
            reason: format!("/routez: {reason}"),
            received: preview(json.to_string().as_bytes()),
        };
        let routes = json
            .get("routes")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("no \"routes\" array".to_string()))?;
        let routes = routes
            .iter()
            .map(|route| RouteConnection::parse(route).map_err(&invalid))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            server_id: string_field(json, "server_id").map_err(&invalid)?,
            num_routes: number_field(json, "num_routes").map_err(&invalid)?,
            routes,
        })
    }

    /// The ids of the servers this one has at least one route connection to.
    pub fn peers(&self) -> BTreeSet<String> {
        self.routes
            .iter()
            .map(|route| route.remote_id.clone())
            .collect()
    }

    /// Every connection to the server `remote_id`, added up (zeros when there is none).
    pub fn towards(&self, remote_id: &str) -> RouteTotals {
        self.routes
            .iter()
            .filter(|route| route.remote_id == remote_id)
            .fold(RouteTotals::default(), |mut totals, route| {
                totals.connections += 1;
                totals.in_msgs += route.in_msgs;
                totals.out_msgs += route.out_msgs;
                totals.subscriptions += route.subscriptions;
                totals
                    .subjects
                    .extend(route.subscriptions_list.iter().cloned());
                totals
            })
    }
}

impl RouteConnection {
    fn parse(json: &Value) -> Result<Self, String> {
        let subscriptions_list = match json.get("subscriptions_list") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(subjects)) => subjects
                .iter()
                .map(|subject| {
                    subject
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("a subscriptions_list entry is {subject}"))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("subscriptions_list is {other}")),
        };
        Ok(Self {
            remote_id: string_field(json, "remote_id")?,
            remote_name: json
                .get("remote_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            account: json
                .get("account")
                .and_then(Value::as_str)
                .map(str::to_string),
            compression: json
                .get("compression")
                .and_then(Value::as_str)
                .map(str::to_string),
            in_msgs: number_field(json, "in_msgs")?,
            out_msgs: number_field(json, "out_msgs")?,
            in_bytes: number_field(json, "in_bytes")?,
            out_bytes: number_field(json, "out_bytes")?,
            subscriptions: number_field(json, "subscriptions")?,
            subscriptions_list,
        })
    }
}

fn string_field(json: &Value, name: &str) -> Result<String, String> {
    json.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("no string \"{name}\""))
}

fn number_field(json: &Value, name: &str) -> Result<u64, String> {
    json.get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("no number \"{name}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(remote_id: &str, out_msgs: u64, subjects: &[&str]) -> Value {
        serde_json::json!({
            "rid": 1, "remote_id": remote_id, "remote_name": remote_id,
            "in_msgs": 1, "out_msgs": out_msgs, "in_bytes": 10, "out_bytes": 20,
            "subscriptions": subjects.len(), "subscriptions_list": subjects,
        })
    }

    #[test]
    fn pooled_connections_are_grouped_by_peer() {
        let json = serde_json::json!({
            "server_id": "A",
            "num_routes": 3,
            "routes": [route("B", 5, &["orders"]), route("B", 2, &[]), route("C", 7, &["x q"])],
        });
        let routez = Routez::parse(&json).expect("valid");
        assert_eq!(routez.num_routes, 3);
        assert_eq!(
            routez.peers().into_iter().collect::<Vec<_>>(),
            ["B".to_string(), "C".to_string()]
        );
        let towards_b = routez.towards("B");
        assert_eq!(towards_b.connections, 2);
        assert_eq!(towards_b.out_msgs, 7);
        assert_eq!(towards_b.in_msgs, 2);
        assert!(towards_b.subjects.contains("orders"));
        assert_eq!(routez.towards("D"), RouteTotals::default());
    }

    #[test]
    fn a_missing_counter_is_named() {
        let json = serde_json::json!({
            "server_id": "A", "num_routes": 1,
            "routes": [{"remote_id": "B", "in_msgs": 0}],
        });
        let error = Routez::parse(&json).expect_err("out_msgs is missing");
        assert!(error.to_string().contains("out_msgs"), "{error}");
    }
}
