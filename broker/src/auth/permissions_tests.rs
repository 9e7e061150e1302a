#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use super::*;

fn entries(subjects: &[&str]) -> Vec<PermissionEntry> {
    subjects
        .iter()
        .map(|subject| PermissionEntry::parse(subject).unwrap())
        .collect()
}

fn rules(allow: Option<&[&str]>, deny: &[&str]) -> SubjectPermission {
    SubjectPermission {
        allow: allow.map(entries),
        deny: entries(deny),
    }
}

fn publish_only(allow: Option<&[&str]>, deny: &[&str]) -> Permissions {
    Permissions {
        publish: rules(allow, deny),
        ..Permissions::default()
    }
}

fn subscribe_only(allow: Option<&[&str]>, deny: &[&str]) -> Permissions {
    Permissions {
        subscribe: rules(allow, deny),
        ..Permissions::default()
    }
}

/// A role with both allow and deny lists on both sides, wildcards in each.
fn allow_and_deny_role() -> Permissions {
    Permissions {
        publish: rules(Some(&["*.*"]), &["SYS.*", "bar.baz", "foo.*"]),
        subscribe: rules(Some(&["foo.*", "SYS.TEST.>"]), &["foo.baz", "SYS.*"]),
        responses: None,
    }
}

#[test]
fn entries_are_subjects_optionally_followed_by_a_queue_group() {
    let plain = PermissionEntry::parse("foo.>").unwrap();
    assert_eq!(plain.subject(), "foo.>");
    assert_eq!(plain.queue_group(), None);
    let queued = PermissionEntry::parse("  foo.bar   v1.* ").unwrap();
    assert_eq!(queued.subject(), "foo.bar");
    assert_eq!(queued.queue_group(), Some("v1.*"));
    assert_eq!(queued.to_string(), "foo.bar v1.*");
    assert_eq!(format!("{queued:?}"), "\"foo.bar v1.*\"");
    for invalid in ["", "   ", "a b c", "foo..bar", "foo.>.bar", ".foo v1"] {
        assert!(PermissionEntry::parse(invalid).is_err(), "{invalid:?}");
    }
    assert_eq!(
        PermissionEntry::parse("foo..bar"),
        Err(PermissionError::InvalidSubject {
            subject: "foo..bar".into()
        })
    );
}

#[test]
fn no_lists_allow_everything() {
    let permissions = Permissions::default();
    assert!(permissions.publishes_freely());
    assert!(permissions.publish_allowed(b"anything.at.all"));
    assert!(permissions.subscribe_allowed(b">", None));
    assert!(permissions.subscribe_allowed(b">", Some(b"workers")));
    assert!(!permissions.filters_delivery());
    assert!(permissions.deliver_allowed(b"foo", None));
}

#[test]
fn requestor_role_publishes_to_its_requests_and_subscribes_to_inboxes() {
    // nats-server's REQUESTOR role: publish ["req.foo", "req.bar"], subscribe "_INBOX.*".
    let permissions = Permissions {
        publish: rules(Some(&["req.foo", "req.bar"]), &[]),
        subscribe: rules(Some(&["_INBOX.*"]), &[]),
        responses: None,
    };
    assert!(!permissions.subscribe_allowed(b"foo", None));
    assert!(!permissions.publish_allowed(b"foo"));
    assert!(permissions.subscribe_allowed(b"_INBOX.abcd", None));
    assert!(permissions.publish_allowed(b"req.foo"));
    assert!(permissions.publish_allowed(b"req.bar"));
}

#[test]
fn default_role_single_wildcard_does_not_allow_more_tokens() {
    // nats-server's DEFAULT_PERMISSIONS: publish "SANDBOX.*", subscribe PUBLIC.> and _INBOX.>.
    let permissions = Permissions {
        publish: rules(Some(&["SANDBOX.*"]), &[]),
        subscribe: rules(Some(&["PUBLIC.>", "_INBOX.>"]), &[]),
        responses: None,
    };
    assert!(!permissions.subscribe_allowed(b"foo.bar.*", None));
    assert!(!permissions.publish_allowed(b"foo.bar.baz"));
    assert!(permissions.subscribe_allowed(b"_INBOX.abcd", None));
    assert!(permissions.subscribe_allowed(b"PUBLIC.abcd", None));
    assert!(permissions.publish_allowed(b"SANDBOX.foo"));
    assert!(permissions.publish_allowed(b"SANDBOX.bar"));
    assert!(!permissions.publish_allowed(b"SANDBOX.foo.bar"));
}

#[test]
fn allow_and_deny_lists_combine_as_in_nats_server() {
    let permissions = allow_and_deny_role();
    for allowed in ["SANDBOX.foo", "baz.bar", "baz.foo"] {
        assert!(permissions.publish_allowed(allowed.as_bytes()), "{allowed}");
    }
    for denied in ["foo", "bar", "foo.bar", "foo.bar.baz", "SYS.1", "bar.baz"] {
        assert!(!permissions.publish_allowed(denied.as_bytes()), "{denied}");
    }
    for allowed in ["foo.bar", "foo.foo", "foo.*", "SYS.TEST.x", "SYS.TEST.>"] {
        assert!(
            permissions.subscribe_allowed(allowed.as_bytes(), None),
            "{allowed}"
        );
    }
    for denied in ["foo", "foo.baz", "SYS.TEST", "SYS.x", "bar.foo"] {
        assert!(
            !permissions.subscribe_allowed(denied.as_bytes(), None),
            "{denied}"
        );
    }
}

#[test]
fn a_wildcard_deny_blocks_the_literal_subjects_it_matches() {
    let permissions = publish_only(None, &["foo.*", "secret.>"]);
    assert!(!permissions.publish_allowed(b"foo.bar"));
    assert!(!permissions.publish_allowed(b"secret.a.b"));
    assert!(permissions.publish_allowed(b"foo"));
    assert!(permissions.publish_allowed(b"foo.bar.baz"));
    assert!(permissions.publish_allowed(b"secret"));
    // A literal deny does not block a published subject whose token happens to be `*`.
    let permissions = publish_only(None, &["foo.bar"]);
    assert!(permissions.publish_allowed(b"foo.*"));
    assert!(!permissions.publish_allowed(b"foo.bar"));
}

#[test]
fn a_wildcard_subscription_must_lie_within_an_allow_entry() {
    let permissions = subscribe_only(Some(&["foo.>", "bar.*", "baz.qux"]), &[]);
    for allowed in [
        "foo.*", "foo.>", "foo.a.b", "foo.*.x", "bar.*", "bar.x", "baz.qux",
    ] {
        assert!(
            permissions.subscribe_allowed(allowed.as_bytes(), None),
            "{allowed}"
        );
    }
    for denied in ["baz.*", "*.bar", ">", "foo", "bar.>", "*.*", "bar.x.y"] {
        assert!(
            !permissions.subscribe_allowed(denied.as_bytes(), None),
            "{denied}"
        );
    }
}

#[test]
fn a_literal_subscribe_deny_allows_wider_subscriptions_but_filters_delivery() {
    // A deny inside a wider allowed subscription: subscribing foo.* is fine, foo.baz is not.
    let permissions = subscribe_only(None, &["foo.baz", "SYS.*"]);
    assert!(permissions.subscribe_allowed(b"foo.*", None));
    assert!(permissions.subscribe_allowed(b"foo.*", Some(b"bar")));
    assert!(permissions.subscribe_allowed(b">", None));
    assert!(!permissions.subscribe_allowed(b"foo.baz", None));
    // A wildcard deny covers the subscriptions it matches with wildcards read literally.
    assert!(!permissions.subscribe_allowed(b"SYS.*", None));
    assert!(!permissions.subscribe_allowed(b"SYS.>", None));
    assert!(permissions.filters_delivery());
    assert!(!permissions.deliver_allowed(b"foo.baz", None));
    assert!(!permissions.deliver_allowed(b"foo.baz", Some(b"bar")));
    assert!(!permissions.deliver_allowed(b"SYS.x", None));
    assert!(permissions.deliver_allowed(b"foo.bar", None));
    assert!(permissions.deliver_allowed(b"SYS.x.y", None));
}

#[test]
fn queue_permissions_name_the_groups_a_subject_may_be_shared_in() {
    // Allow `foo` only in queue v1 (and wildcard groups under `g.*`).
    let permissions = subscribe_only(Some(&["foo v1", "w.* g.*"]), &[]);
    assert!(permissions.subscribe_allowed(b"foo", Some(b"v1")));
    assert!(!permissions.subscribe_allowed(b"foo", Some(b"v2")));
    assert!(!permissions.subscribe_allowed(b"foo", None));
    assert!(permissions.subscribe_allowed(b"w.x", Some(b"g.y")));
    assert!(!permissions.subscribe_allowed(b"w.x", Some(b"g")));
    assert!(!permissions.subscribe_allowed(b"w.x", Some(b"g.y.z")));
    assert!(!permissions.subscribe_allowed(b"w.x", None));
    // An empty queue group is no queue group.
    assert!(!permissions.subscribe_allowed(b"foo", Some(b"")));
}

#[test]
fn queue_entries_decide_when_they_match_even_beside_a_plain_entry() {
    // nats-server: allow ["x", "x v1"] allows plain x and queue v1, but not queue v2.
    let permissions = subscribe_only(Some(&["x", "x v1"]), &[]);
    assert!(permissions.subscribe_allowed(b"x", None));
    assert!(permissions.subscribe_allowed(b"x", Some(b"v1")));
    assert!(!permissions.subscribe_allowed(b"x", Some(b"v2")));
    // A plain entry alone allows every queue group.
    let permissions = subscribe_only(Some(&["y"]), &[]);
    assert!(permissions.subscribe_allowed(b"y", Some(b"anything")));
}

#[test]
fn queue_deny_entries_refuse_only_their_groups() {
    let permissions = subscribe_only(None, &["d v1", "e.* blocked.*"]);
    assert!(permissions.subscribe_allowed(b"d", None));
    assert!(!permissions.subscribe_allowed(b"d", Some(b"v1")));
    assert!(permissions.subscribe_allowed(b"d", Some(b"v2")));
    assert!(!permissions.subscribe_allowed(b"e.x", Some(b"blocked.one")));
    assert!(permissions.subscribe_allowed(b"e.x", Some(b"open")));
    // Delivery to a queue member in a denied group is filtered too.
    assert!(!permissions.deliver_allowed(b"d", Some(b"v1")));
    assert!(permissions.deliver_allowed(b"d", Some(b"v2")));
    assert!(permissions.deliver_allowed(b"d", None));
}

#[test]
fn a_plain_deny_is_not_undone_by_a_queue_deny() {
    // nats-server 2.9 let `SUB d v2` through with deny ["d", "d v1"]; later versions and
    // Tern refuse it.
    let permissions = subscribe_only(None, &["d", "d v1"]);
    assert!(!permissions.subscribe_allowed(b"d", None));
    assert!(!permissions.subscribe_allowed(b"d", Some(b"v1")));
    assert!(!permissions.subscribe_allowed(b"d", Some(b"v2")));
}

#[test]
fn allow_responses_without_a_publish_allow_list_allows_only_responses() {
    let permissions = Permissions {
        subscribe: rules(Some(&["my.service.req"]), &[]),
        responses: Some(ResponsePermission::default()),
        ..Permissions::default()
    };
    assert!(!permissions.publishes_freely());
    assert!(!permissions.publish_allowed(b"anything"));
    let mut checker = PermissionChecker::new(Arc::new(permissions));
    let now = Instant::now();
    assert!(!checker.publish_allowed_at(b"_INBOX.reply", now));
    checker.record_reply(b"_INBOX.reply", now);
    assert!(checker.publish_allowed_at(b"_INBOX.reply", now));
    assert!(
        !checker.publish_allowed_at(b"_INBOX.reply", now),
        "one response by default"
    );
}

#[test]
fn responses_are_allowed_through_deny_lists_within_their_limits() {
    // nats-server's MY_STREAM_SERVICE: allow_responses { max: 10, ttl: "50ms" }.
    let permissions = Permissions {
        publish: rules(Some(&["events.>"]), &["_INBOX.>"]),
        responses: Some(ResponsePermission {
            max: 10,
            expires: Duration::from_millis(50),
        }),
        ..Permissions::default()
    };
    let mut checker = PermissionChecker::new(Arc::new(permissions));
    let start = Instant::now();
    assert!(checker.publish_allowed_at(b"events.a", start));
    let tracker = Arc::clone(checker.response_tracker().unwrap());
    tracker.lock().record(b"_INBOX.x", start);
    for _ in 0..10 {
        assert!(checker.publish_allowed_at(b"_INBOX.x", start));
    }
    assert!(!checker.publish_allowed_at(b"_INBOX.x", start));
    tracker.lock().record(b"_INBOX.y", start);
    assert!(!checker.publish_allowed_at(b"_INBOX.y", start + Duration::from_millis(51)));
}

#[test]
fn the_checker_caches_verdicts_within_its_bound() {
    let permissions = Arc::new(publish_only(Some(&["allowed.>"]), &["allowed.secret"]));
    let mut checker = PermissionChecker::new(Arc::clone(&permissions));
    for round in 0..3 {
        for index in 0..1000 {
            let subject = format!("allowed.{index}");
            assert!(checker.publish_allowed(subject.as_bytes()), "{round}");
            assert!(checker.publish_cache.len() <= PUBLISH_CACHE_CAPACITY);
        }
        assert!(!checker.publish_allowed(b"allowed.secret"));
        assert!(!checker.publish_allowed(b"other"));
    }
    assert!(checker.response_tracker().is_none());
}

#[test]
fn the_checker_filters_delivery_like_the_permissions() {
    let permissions = Arc::new(subscribe_only(None, &["foo.bar", "q.x group"]));
    let mut checker = PermissionChecker::new(permissions);
    assert!(checker.subscribe_allowed(b"foo.*", None));
    for _ in 0..2 {
        assert!(!checker.deliver_allowed(b"foo.bar", None));
        assert!(checker.deliver_allowed(b"foo.baz", None));
        assert!(!checker.deliver_allowed(b"q.x", Some(b"group")));
        assert!(checker.deliver_allowed(b"q.x", Some(b"other")));
        assert!(checker.deliver_allowed(b"q.x", None));
    }
    for index in 0..1000 {
        let subject = format!("foo.{index}");
        assert!(checker.deliver_allowed(subject.as_bytes(), None));
        assert!(checker.delivery_cache.len() <= DELIVERY_CACHE_CAPACITY);
    }
}

#[test]
fn checkers_without_restrictions_take_the_fast_path() {
    let mut checker = PermissionChecker::new(Arc::new(Permissions::default()));
    assert!(checker.publish_allowed(b"x"));
    assert!(checker.deliver_allowed(b"x", None));
    assert_eq!(checker.publish_cache.len(), 0);
    assert_eq!(checker.delivery_cache.len(), 0);
}
