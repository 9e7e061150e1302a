//! Helpers for the tests where a server must get no route (wrong credentials, an untrusted
//! certificate, another cluster's name): what an outsider's monitoring says, the one bounded
//! "nothing happens" window, and a route handshake made by hand to read the refusal.

use std::time::{Duration, Instant};

use tern_e2e::{http_get, Cluster, Frame, RawClient, Routez, ServerProcess};

use crate::support::POLL_INTERVAL;

/// How long an outsider is watched not getting a route. It dials when it starts, before the
/// last member joins and so before the cluster has meshed; servers dial a configured route
/// again about a second after a failure (nats-server adds up to 100ms of jitter), so the window
/// also covers its first retry.
pub const REFUSAL_WINDOW: Duration = Duration::from_millis(1500);
/// Frames read while waiting for a route's refusal, at most.
const MAX_FRAMES: usize = 100;

/// `/routez` of a server that is not a cluster member.
pub fn routez_of(server: &ServerProcess) -> anyhow::Result<Routez> {
    let address = server
        .monitoring_address()
        .ok_or_else(|| anyhow::anyhow!("the {} server has no monitoring", server.kind()))?;
    let response = http_get(address, "/routez")?;
    anyhow::ensure!(
        response.status == 200,
        "GET /routez answered {}: {}",
        response.status,
        response.body
    );
    Ok(Routez::parse(&response.json()?)?)
}

/// `/varz` of `server`, as JSON.
pub fn varz_of(server: &ServerProcess) -> anyhow::Result<serde_json::Value> {
    let address = server
        .monitoring_address()
        .ok_or_else(|| anyhow::anyhow!("the {} server has no monitoring", server.kind()))?;
    let response = http_get(address, "/varz")?;
    anyhow::ensure!(
        response.status == 200,
        "GET /varz answered {}: {}",
        response.status,
        response.body
    );
    Ok(response.json()?)
}

/// For [`REFUSAL_WINDOW`], no member of `cluster` lists `outsider` in its `/routez`.
///
/// Only the accepting side is checked: nats-server 2.12 registers a route as soon as it has the
/// acceptor's INFO, so while it is being turned away by a peer without route pooling (2.9,
/// Tern) its own `/routez` lists that peer between attempts.
pub fn assert_no_route_for(cluster: &Cluster, outsider: &ServerProcess) -> anyhow::Result<()> {
    let outsider_id = routez_of(outsider)?.server_id;
    let deadline = Instant::now() + REFUSAL_WINDOW;
    while Instant::now() < deadline {
        for index in 0..cluster.len() {
            let routez = cluster.routez(index)?;
            anyhow::ensure!(
                !routez.peers().contains(&outsider_id),
                "node-{index} ({}) has a route to the {} outsider {outsider_id}: {:?}",
                cluster.server(index).kind(),
                outsider.kind(),
                routez.routes
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    Ok(())
}

/// A route CONNECT (as nats-server sends one) claiming the server id `NTERNE2EHANDMADEROUTE`,
/// for the cluster `cluster`, with `user`/`pass` when given.
pub fn route_connect(cluster: &str, credentials: Option<(&str, &str)>) -> String {
    let mut connect = serde_json::json!({
        "echo": true,
        "verbose": false,
        "pedantic": false,
        "tls_required": false,
        "headers": true,
        "name": "NTERNE2EHANDMADEROUTE",
        "cluster": cluster,
        "lnoc": true,
    });
    if let Some((user, password)) = credentials {
        connect["user"] = user.into();
        connect["pass"] = password.into();
    }
    format!("CONNECT {connect}\r\n")
}

/// Dials `server`'s route listener by hand, reads its INFO, sends `connect` (a
/// [`route_connect`] line) and returns the INFO and the text of the `-ERR` that answers it,
/// after checking that the server then closes the connection.
pub fn route_refusal(
    server: &ServerProcess,
    connect: &str,
) -> anyhow::Result<(serde_json::Value, String)> {
    let address = server
        .cluster_address()
        .ok_or_else(|| anyhow::anyhow!("the {} server has no route listener", server.kind()))?;
    let mut route = RawClient::connect(address)?;
    let info = route.read_info()?;
    route.send(connect)?;
    for _ in 0..MAX_FRAMES {
        match route.read_frame()? {
            Frame::Error(text) => {
                route.expect_closed()?;
                return Ok((info, text));
            }
            Frame::Ping => route.send("PONG\r\n")?,
            Frame::Info(_) | Frame::Pong => {}
            other => anyhow::bail!("a refused route was sent {other:?}"),
        }
    }
    anyhow::bail!("no -ERR within {MAX_FRAMES} frames")
}
