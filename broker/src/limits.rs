//! Connection limits that are not a single server-wide number: the limits of an account
//! (`accounts { A { limits { ... } } }`), connections per user, and the rate of new
//! connections from one IP address.
//!
//! Contract:
//! - [`AccountLimits`] holds nats-server's account limits; `None` is no limit (nats-server's
//!   `-1`), and a limit of 0 allows nothing. A connection's effective subscription and
//!   payload limits are the smaller of the account's and the server's
//!   ([`AccountLimits::effective_max_subscriptions`], [`AccountLimits::effective_max_payload`]).
//! - [`UserConnections`] counts the open connections of each user; a [`UserConnectionSlot`]
//!   is one counted connection and gives its place back when dropped, so a count can never
//!   leak when a session ends by any path.
//! - [`ConnectionRateLimiter`] is a token bucket per IP address: `per_second` new connections
//!   a second, bursts of up to `per_second`. It tracks at most [`MAX_TRACKED_ADDRESSES`]
//!   addresses; when full it forgets the addresses whose buckets have refilled, and if that
//!   frees nothing it admits the connection untracked (the table never grows without bound,
//!   and the server-wide `max_connections` still holds). Time is passed in, so it is pure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

/// A limit that refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("maximum user active connections exceeded")]
    UserConnections,
}

/// `accounts { NAME { limits { ... } } }`, as nats-server reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountLimits {
    /// Client connections bound to the account on this server (`max_connections`).
    pub max_connections: Option<u32>,
    /// Subscriptions per connection (`max_subscriptions`).
    pub max_subscriptions: Option<u32>,
    /// Payload bytes per message (`max_payload`).
    pub max_payload: Option<u32>,
    /// Leaf node connections bound to the account (`max_leafnodes`).
    pub max_leafnodes: Option<u32>,
}

impl AccountLimits {
    /// The subscription limit of one connection; `server` is `max_subscriptions` (0: none).
    /// `None` means unlimited.
    pub fn effective_max_subscriptions(&self, server: usize) -> Option<usize> {
        let server = (server > 0).then_some(server);
        smaller(self.max_subscriptions.map(|limit| limit as usize), server)
    }

    /// The payload limit of one connection; `server` is `max_payload`.
    pub fn effective_max_payload(&self, server: usize) -> usize {
        smaller(self.max_payload.map(|limit| limit as usize), Some(server)).unwrap_or(server)
    }
}

fn smaller(left: Option<usize>, right: Option<usize>) -> Option<usize> {
    match (left, right) {
        (Some(left), Some(right)) => Some(left.min(right)),
        (one, None) | (None, one) => one,
    }
}

/// Open connections per user name (or NKEY).
#[derive(Debug, Clone, Default)]
pub struct UserConnections {
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

impl UserConnections {
    /// Counts one more connection of `user`, unless it already has `limit` open.
    pub fn claim(&self, user: &str, limit: u32) -> Option<UserConnectionSlot> {
        let mut counts = self.counts.lock();
        let count = counts.entry(user.to_string()).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                counts.remove(user);
            }
            return None;
        }
        *count += 1;
        Some(UserConnectionSlot {
            counts: Arc::clone(&self.counts),
            user: user.to_string(),
        })
    }

    /// The open connections of `user`.
    pub fn count(&self, user: &str) -> u32 {
        self.counts.lock().get(user).copied().unwrap_or(0)
    }
}

/// One counted connection of a user; dropping it gives the place back.
#[derive(Debug)]
pub struct UserConnectionSlot {
    counts: Arc<Mutex<HashMap<String, u32>>>,
    user: String,
}

impl UserConnectionSlot {
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl Drop for UserConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

/// Addresses the rate limiter remembers at most.
pub const MAX_TRACKED_ADDRESSES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// New connections per second from one IP address (see the module docs).
#[derive(Debug)]
pub struct ConnectionRateLimiter {
    buckets: HashMap<IpAddr, Bucket>,
    capacity: usize,
}

impl Default for ConnectionRateLimiter {
    fn default() -> Self {
        Self::with_capacity(MAX_TRACKED_ADDRESSES)
    }
}

impl ConnectionRateLimiter {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buckets: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Whether a new connection from `address` at `now` is within `per_second` (0: no limit).
    pub fn admit(&mut self, address: IpAddr, per_second: u32, now: Instant) -> bool {
        if per_second == 0 {
            self.buckets.clear();
            return true;
        }
        let rate = f64::from(per_second);
        if !self.buckets.contains_key(&address) && self.buckets.len() >= self.capacity {
            self.buckets
                .retain(|_, bucket| refilled(bucket, rate, now) < rate);
            if self.buckets.len() >= self.capacity {
                return true;
            }
        }
        let bucket = self.buckets.entry(address).or_insert(Bucket {
            tokens: rate,
            updated: now,
        });
        bucket.tokens = refilled(bucket, rate, now);
        bucket.updated = now;
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        true
    }

    /// Addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

fn refilled(bucket: &Bucket, rate: f64, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * rate).min(rate)
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
