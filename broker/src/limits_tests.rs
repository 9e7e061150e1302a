use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::*;

fn address(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

#[test]
fn effective_limits_take_the_smaller_of_account_and_server() {
    let limits = AccountLimits {
        max_subscriptions: Some(5),
        max_payload: Some(100),
        ..AccountLimits::default()
    };
    assert_eq!(limits.effective_max_subscriptions(0), Some(5));
    assert_eq!(limits.effective_max_subscriptions(3), Some(3));
    assert_eq!(limits.effective_max_payload(1024), 100);
    assert_eq!(limits.effective_max_payload(50), 50);
    let none = AccountLimits::default();
    assert_eq!(none.effective_max_subscriptions(0), None);
    assert_eq!(none.effective_max_subscriptions(7), Some(7));
    assert_eq!(none.effective_max_payload(1024), 1024);
}

#[test]
fn user_slots_count_up_to_the_limit_and_give_back_on_drop() {
    let users = UserConnections::default();
    let first = users.claim("alice", 2).expect("first");
    let second = users.claim("alice", 2).expect("second");
    assert!(users.claim("alice", 2).is_none());
    assert!(
        users.claim("bob", 2).is_some(),
        "other users are counted apart"
    );
    assert_eq!(users.count("alice"), 2);
    drop(first);
    assert_eq!(users.count("alice"), 1);
    let third = users.claim("alice", 2).expect("a freed place is reusable");
    drop((second, third));
    assert_eq!(users.count("alice"), 0);
    assert!(
        users.claim("carol", 0).is_none(),
        "a limit of 0 allows nothing"
    );
    assert_eq!(users.count("carol"), 0);
}

#[test]
fn rate_limiter_allows_a_burst_then_refills_over_time() {
    let mut limiter = ConnectionRateLimiter::default();
    let start = Instant::now();
    for _ in 0..3 {
        assert!(limiter.admit(address(1), 3, start));
    }
    assert!(!limiter.admit(address(1), 3, start), "burst exhausted");
    assert!(
        limiter.admit(address(2), 3, start),
        "other addresses unaffected"
    );
    let later = start + Duration::from_millis(340);
    assert!(
        limiter.admit(address(1), 3, later),
        "one token back after 1/3 s"
    );
    assert!(!limiter.admit(address(1), 3, later));
    assert!(limiter.admit(address(1), 0, later), "0 turns the limit off");
    assert_eq!(limiter.tracked(), 0);
}

#[test]
fn rate_limiter_table_stays_bounded() {
    let mut limiter = ConnectionRateLimiter::with_capacity(2);
    let start = Instant::now();
    assert!(limiter.admit(address(1), 1, start));
    assert!(limiter.admit(address(2), 1, start));
    // Full, and both buckets are empty: a third address is admitted untracked.
    assert!(limiter.admit(address(3), 1, start));
    assert!(limiter.admit(address(3), 1, start));
    assert_eq!(limiter.tracked(), 2);
    // Once the buckets refill, their addresses are forgotten to make room.
    let later = start + Duration::from_secs(2);
    assert!(limiter.admit(address(3), 1, later));
    assert!(!limiter.admit(address(3), 1, later));
    assert!(limiter.tracked() <= 2);
}
