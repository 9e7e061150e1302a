//! Which route connections lead to which server, and which one carries an account.
//!
//! Contract (reference §2.8–2.9): a server that pools keeps `pool_size` connections to each
//! other server that pools too (the larger of the two sizes, so servers with different sizes
//! interoperate); the soliciting side picks the first free slot and tells the accepting side
//! its index. An account's interest travels on slot `FNV-1a(account) mod pool_size`, the same
//! index on every server. Pinned accounts have a dedicated connection per server instead,
//! whose operations carry no account token. A server that does not pool (nats-server 2.9, or
//! `pool_size: -1` on either side) gets one connection carrying every account. A connection
//! for a slot that is taken is a duplicate; a solicited one beyond a full pool is refused
//! for good. The registry is plain data: the route sessions call it and do the I/O.

use std::collections::HashMap;
use std::sync::Arc;

use super::RemoteServer;
use crate::connection::Connection;
use crate::options::RouteUrl;

/// The pool slot of `account` among `pool_size` connections (FNV-1a, 32 bits, as
/// nats-server computes it, so every server agrees).
pub fn pool_index(account: &[u8], pool_size: usize) -> usize {
    if pool_size <= 1 {
        return 0;
    }
    let mut hash: u32 = 0x811c_9dc5;
    for byte in account {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % pool_size as u32) as usize
}

/// What a registered route connection is to its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteRole {
    /// The only connection to a server that does not pool.
    Single,
    /// Slot `index` of the pool.
    Pooled { index: usize },
    /// The dedicated connection of one account.
    Pinned { account: String },
}

/// What a route asks to be registered as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Single,
    /// A pool connection; `index` is the slot the soliciting peer chose (accepted side), or
    /// `None` when this server solicited and picks the slot.
    Pooled {
        remote_pool_size: usize,
        index: Option<usize>,
    },
    Pinned {
        account: String,
    },
}

/// The outcome of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Added {
        role: RouteRole,
        /// The first connection to that server: merge its URLs and announce it.
        first: bool,
        /// Every slot of the pool is connected (always for single and pinned routes).
        pool_full: bool,
    },
    /// That slot or server is already connected: close this one. With `no_reconnect` the
    /// soliciting side must not dial it again (a full pool, a second single or pinned route).
    Duplicate { no_reconnect: bool },
}

/// The connections to one remote server (other than pinned ones).
#[derive(Debug)]
struct RemoteRoutes {
    remote: RemoteServer,
    pooled: bool,
    pool: Vec<Option<Arc<Connection>>>,
    /// The URL to dial again should the connections drop (this server solicited one, or a
    /// duplicate it solicited handed its URL over).
    retry_url: Option<(RouteUrl, bool)>,
}

#[derive(Debug)]
struct PinnedRoute {
    connection: Arc<Connection>,
    remote: RemoteServer,
}

/// One registered connection, for monitoring.
#[derive(Debug, Clone)]
pub struct RegisteredConnection {
    pub connection: Arc<Connection>,
    pub remote: RemoteServer,
    pub role: RouteRole,
}

/// Every registered route connection.
#[derive(Debug, Default)]
pub struct Registry {
    remotes: HashMap<String, RemoteRoutes>,
    /// Dedicated routes by account, then by remote server id.
    pinned: HashMap<String, HashMap<String, PinnedRoute>>,
}

impl Registry {
    /// Registers `connection` to `remote`; `local_pool_size` is this server's (`>= 1` when it
    /// pools).
    pub fn register(
        &mut self,
        connection: &Arc<Connection>,
        remote: RemoteServer,
        request: Request,
        local_pool_size: usize,
        retry_url: Option<(RouteUrl, bool)>,
    ) -> Registration {
        let (remote_pool_size, chosen_index) = match request {
            Request::Pinned { account } => {
                let routes = self.pinned.entry(account.clone()).or_default();
                if routes.contains_key(&remote.id) {
                    return Registration::Duplicate { no_reconnect: true };
                }
                routes.insert(
                    remote.id.clone(),
                    PinnedRoute {
                        connection: Arc::clone(connection),
                        remote,
                    },
                );
                return Registration::Added {
                    role: RouteRole::Pinned { account },
                    first: false,
                    pool_full: true,
                };
            }
            Request::Single => (None, None),
            Request::Pooled {
                remote_pool_size,
                index,
            } => (Some(remote_pool_size), index),
        };
        let pooled = remote_pool_size.is_some();
        let size = remote_pool_size.map_or(1, |remote| remote.max(local_pool_size).max(1));
        let Some(entry) = self.remotes.get_mut(&remote.id) else {
            let index = chosen_index.unwrap_or(0);
            let mut pool = vec![None; size.max(index + 1)];
            pool[index] = Some(Arc::clone(connection));
            self.remotes.insert(
                remote.id.clone(),
                RemoteRoutes {
                    remote,
                    pooled,
                    pool,
                    retry_url,
                },
            );
            return Registration::Added {
                role: if pooled {
                    RouteRole::Pooled { index }
                } else {
                    RouteRole::Single
                },
                first: true,
                pool_full: size == 1,
            };
        };
        if entry.retry_url.is_none() {
            entry.retry_url = retry_url;
        }
        if !pooled || !entry.pooled {
            return Registration::Duplicate {
                no_reconnect: !pooled,
            };
        }
        if entry.pool.len() < size {
            entry.pool.resize(size, None);
        }
        let index = match chosen_index {
            Some(index) => {
                if index >= entry.pool.len() {
                    entry.pool.resize(index + 1, None);
                }
                if entry.pool[index].is_some() {
                    return Registration::Duplicate {
                        no_reconnect: false,
                    };
                }
                index
            }
            None => match entry.pool.iter().position(Option::is_none) {
                Some(index) => index,
                None => return Registration::Duplicate { no_reconnect: true },
            },
        };
        entry.pool[index] = Some(Arc::clone(connection));
        Registration::Added {
            role: RouteRole::Pooled { index },
            first: false,
            pool_full: entry.pool.iter().all(Option::is_some),
        }
    }

    /// Forgets a closed connection if it is the registered one. Returns whether it was, the
    /// URL to dial again, and whether it was the last connection to that server.
    pub fn unregister(
        &mut self,
        connection: &Arc<Connection>,
        remote_id: &str,
        role: &RouteRole,
    ) -> Option<Unregistered> {
        if let RouteRole::Pinned { account } = role {
            let routes = self.pinned.get_mut(account)?;
            let registered = routes
                .get(remote_id)
                .is_some_and(|route| Arc::ptr_eq(&route.connection, connection));
            if !registered {
                return None;
            }
            routes.remove(remote_id);
            return Some(Unregistered {
                retry_url: None,
                last: false,
            });
        }
        let entry = self.remotes.get_mut(remote_id)?;
        let slot = entry.pool.iter().position(|slot| {
            slot.as_ref()
                .is_some_and(|registered| Arc::ptr_eq(registered, connection))
        })?;
        entry.pool[slot] = None;
        let retry_url = entry.retry_url.clone();
        let last = entry.pool.iter().all(Option::is_none);
        if last {
            self.remotes.remove(remote_id);
        }
        Some(Unregistered { retry_url, last })
    }

    pub fn is_connected_to(&self, remote_id: &str) -> bool {
        self.remotes.contains_key(remote_id)
    }

    pub fn has_pinned(&self, account: &str, remote_id: &str) -> bool {
        self.pinned
            .get(account)
            .is_some_and(|routes| routes.contains_key(remote_id))
    }

    /// The remote servers connected through a pool or a single route.
    pub fn remotes(&self) -> impl Iterator<Item = &RemoteServer> {
        self.remotes.values().map(|entry| &entry.remote)
    }

    pub fn remote_mut(&mut self, remote_id: &str) -> Option<&mut RemoteServer> {
        self.remotes
            .get_mut(remote_id)
            .map(|entry| &mut entry.remote)
    }

    /// One connection per remote server (for INFO gossip), optionally only servers that pool.
    pub fn one_per_remote(&self, pooled_only: bool) -> Vec<(String, Arc<Connection>)> {
        self.remotes
            .iter()
            .filter(|(_, entry)| entry.pooled || !pooled_only)
            .filter_map(|(id, entry)| {
                let first = entry.pool.iter().flatten().next()?;
                Some((id.clone(), Arc::clone(first)))
            })
            .collect()
    }

    /// The connections an account's interest goes to, and whether each omits the account
    /// token: its dedicated routes (when `pinned`) or its pool slot, plus every single route.
    pub fn interest_targets(
        &self,
        account: &str,
        pinned: bool,
        local_pool_size: usize,
    ) -> Vec<(Arc<Connection>, bool)> {
        let mut targets = Vec::with_capacity(self.remotes.len());
        if pinned {
            if let Some(routes) = self.pinned.get(account) {
                targets.extend(
                    routes
                        .values()
                        .map(|route| (Arc::clone(&route.connection), true)),
                );
            }
        }
        let index = pool_index(account.as_bytes(), local_pool_size);
        for entry in self.remotes.values() {
            let slot = match (entry.pooled, pinned) {
                (false, _) => entry.pool.first(),
                (true, false) => entry.pool.get(index),
                (true, true) => None,
            };
            if let Some(Some(connection)) = slot {
                targets.push((Arc::clone(connection), false));
            }
        }
        targets
    }

    /// Every registered connection.
    pub fn connections(&self) -> Vec<RegisteredConnection> {
        let mut connections = Vec::new();
        for entry in self.remotes.values() {
            for (index, slot) in entry.pool.iter().enumerate() {
                if let Some(connection) = slot {
                    connections.push(RegisteredConnection {
                        connection: Arc::clone(connection),
                        remote: entry.remote.clone(),
                        role: if entry.pooled {
                            RouteRole::Pooled { index }
                        } else {
                            RouteRole::Single
                        },
                    });
                }
            }
        }
        for (account, routes) in &self.pinned {
            for route in routes.values() {
                connections.push(RegisteredConnection {
                    connection: Arc::clone(&route.connection),
                    remote: route.remote.clone(),
                    role: RouteRole::Pinned {
                        account: account.clone(),
                    },
                });
            }
        }
        connections
    }
}

/// What `Registry::unregister` found.
#[derive(Debug, Clone)]
pub struct Unregistered {
    pub retry_url: Option<(RouteUrl, bool)>,
    /// No connection to that server is left (its client URLs go away).
    pub last: bool,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::connection::ConnectionKind;

    #[test]
    fn pool_index_is_fnv1a_as_nats_server_computes_it() {
        // FNV-1a-32("$G") = 0x7abc619c, ("$SYS") = 0x02d66af8, ("A") = 0xc40bf6cc.
        assert_eq!(pool_index(b"$G", 3), (0x7abc_619c_u32 % 3) as usize);
        assert_eq!(pool_index(b"$SYS", 3), (0x02d6_6af8_u32 % 3) as usize);
        assert_eq!(pool_index(b"A", 7), (0xc40b_f6cc_u32 % 7) as usize);
        assert_eq!(pool_index(b"anything", 1), 0);
    }

    fn connection(id: u64, shutdown: &CancellationToken) -> Arc<Connection> {
        let address: SocketAddr = "127.0.0.1:1".parse().unwrap();
        Arc::new(Connection::new(
            id,
            ConnectionKind::Route,
            address,
            1024,
            shutdown,
        ))
    }

    fn remote(id: &str) -> RemoteServer {
        RemoteServer {
            id: id.into(),
            name: id.into(),
            connect_urls: Vec::new(),
            ws_connect_urls: Vec::new(),
            url: String::new(),
            solicited: false,
            configured: false,
            started: SystemTime::now(),
            remote_address: "127.0.0.1:1".parse().unwrap(),
        }
    }

    fn pooled(index: Option<usize>) -> Request {
        Request::Pooled {
            remote_pool_size: 3,
            index,
        }
    }

    #[test]
    fn a_pool_fills_slot_by_slot_and_refuses_one_more() {
        let shutdown = CancellationToken::new();
        let mut registry = Registry::default();
        let connections: Vec<_> = (0..4).map(|id| connection(id, &shutdown)).collect();
        let first = registry.register(&connections[0], remote("B"), pooled(None), 3, None);
        assert_eq!(
            first,
            Registration::Added {
                role: RouteRole::Pooled { index: 0 },
                first: true,
                pool_full: false
            }
        );
        // The peer solicited slot 2 itself.
        let accepted = registry.register(&connections[1], remote("B"), pooled(Some(2)), 3, None);
        assert!(matches!(
            accepted,
            Registration::Added {
                role: RouteRole::Pooled { index: 2 },
                first: false,
                pool_full: false
            }
        ));
        let third = registry.register(&connections[2], remote("B"), pooled(None), 3, None);
        assert!(matches!(
            third,
            Registration::Added {
                role: RouteRole::Pooled { index: 1 },
                pool_full: true,
                ..
            }
        ));
        assert_eq!(
            registry.register(&connections[3], remote("B"), pooled(None), 3, None),
            Registration::Duplicate { no_reconnect: true }
        );
        assert_eq!(
            registry.register(&connections[3], remote("B"), pooled(Some(2)), 3, None),
            Registration::Duplicate {
                no_reconnect: false
            }
        );
        let gone = registry
            .unregister(&connections[0], "B", &RouteRole::Pooled { index: 0 })
            .unwrap();
        assert!(!gone.last);
        assert!(registry
            .unregister(&connections[3], "B", &RouteRole::Pooled { index: 0 })
            .is_none());
    }

    #[test]
    fn interest_goes_to_the_account_slot_the_pinned_route_or_a_single_route() {
        let shutdown = CancellationToken::new();
        let mut registry = Registry::default();
        let pool: Vec<_> = (0..3).map(|id| connection(id, &shutdown)).collect();
        for (index, member) in pool.iter().enumerate() {
            registry.register(member, remote("B"), pooled(Some(index)), 3, None);
        }
        let dedicated = connection(10, &shutdown);
        let pinned = Request::Pinned {
            account: "$SYS".into(),
        };
        registry.register(&dedicated, remote("B"), pinned.clone(), 3, None);
        assert_eq!(
            registry.register(&connection(11, &shutdown), remote("B"), pinned, 3, None),
            Registration::Duplicate { no_reconnect: true }
        );
        let old = connection(20, &shutdown);
        registry.register(&old, remote("C"), Request::Single, 3, None);

        let ids = |targets: Vec<(Arc<Connection>, bool)>| -> Vec<(u64, bool)> {
            let mut ids: Vec<_> = targets.iter().map(|(c, omit)| (c.id, *omit)).collect();
            ids.sort_unstable();
            ids
        };
        let slot = pool_index(b"$G", 3) as u64;
        assert_eq!(
            ids(registry.interest_targets("$G", false, 3)),
            [(slot, false), (20, false)]
        );
        assert_eq!(
            ids(registry.interest_targets("$SYS", true, 3)),
            [(10, true), (20, false)]
        );
        assert_eq!(registry.connections().len(), 5);
        assert_eq!(
            registry.register(
                &connection(21, &shutdown),
                remote("C"),
                Request::Single,
                3,
                None
            ),
            Registration::Duplicate { no_reconnect: true }
        );
        let last = registry.unregister(&old, "C", &RouteRole::Single).unwrap();
        assert!(last.last);
        assert!(!registry.is_connected_to("C"));
    }
}
