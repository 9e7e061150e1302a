#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use crate::auth::{Authenticator, PermissionEntry, Permissions, ResponsePermission};
use crate::config::{load_str, MemorySources};
use crate::options::ServerOptions;

fn load(text: &str) -> ServerOptions {
    load_str(text, Path::new("nats.conf"), &MemorySources::new())
        .unwrap_or_else(|error| panic!("load failed: {error}"))
}

fn load_error(text: &str) -> String {
    match load_str(text, Path::new("nats.conf"), &MemorySources::new()) {
        Ok(options) => panic!("expected an error, got {options:?}"),
        Err(error) => error.to_string(),
    }
}

fn subjects(entries: &[PermissionEntry]) -> Vec<String> {
    entries.iter().map(ToString::to_string).collect()
}

fn user_permissions(options: &ServerOptions, index: usize) -> &Permissions {
    options.authorization.users[index]
        .permissions
        .as_ref()
        .expect("the user has permissions")
}

/// A user public NKEY (random, made for these tests).
const NKEY: &str = "UBZRTP7JM54GKKFWALV65TO2CSV7HVRQUSV3XT6T6DTERDHVCAX7QAP2";

/// Roles as variables, users referring to them, a bcrypt password shared through a variable:
/// the shapes production files use.
fn roles_config(password_hash: &str) -> String {
    format!(
        r#"
ADMINISTRATOR = {{ publish = ">", subscribe = ">" }}
CALLER = {{ publish = ["orders.create", "orders.cancel"], subscribe = "_INBOX.*" }}
DEFAULTS = {{ publish = "sandbox.*", subscribe = ["public.>", "_INBOX.>"] }}
RESTRICTED = {{
  publish = {{ allow = "*.*", deny = ["internal.*", "billing.refund", "audit.*"] }}
  subscribe = {{ allow = ["audit.*", "internal.metrics.>"], deny = ["audit.raw", "internal.*"] }}
}}
RESPONDER = {{ subscribe = "pricing.quote", publish_allow_responses: true }}
STREAMING_RESPONDER = {{ subscribe = "pricing.quote", allow_responses = {{max: 10, ttl: "50ms"}} }}
SHARED_PASSWORD: "{password_hash}"
authorization {{
  default_permissions = $DEFAULTS
  users = [
    {{user: ops,     password: $SHARED_PASSWORD, permissions: $ADMINISTRATOR}}
    {{user: shop,    password: $SHARED_PASSWORD, permissions: $CALLER}}
    {{user: guest,   password: $SHARED_PASSWORD}}
    {{user: auditor, password: $SHARED_PASSWORD, permissions: $RESTRICTED}}
    {{user: pricer,  password: $SHARED_PASSWORD, permissions: $RESPONDER}}
    {{user: feeder,  password: $SHARED_PASSWORD, permissions: $STREAMING_RESPONDER}}
  ]
}}
"#
    )
}

#[test]
fn role_variables_load_and_authenticate() {
    let hash = bcrypt::hash("open sesame", 4).unwrap();
    let options = load(&roles_config(&hash));
    assert!(options.warnings.is_empty(), "{:?}", options.warnings);
    let operator = user_permissions(&options, 0);
    assert_eq!(subjects(operator.publish.allow.as_ref().unwrap()), [">"]);
    assert_eq!(subjects(operator.subscribe.allow.as_ref().unwrap()), [">"]);
    let caller = user_permissions(&options, 1);
    assert_eq!(
        subjects(caller.publish.allow.as_ref().unwrap()),
        ["orders.create", "orders.cancel"]
    );
    assert_eq!(options.authorization.users[2].permissions, None);
    let defaults = options.authorization.default_permissions.as_ref().unwrap();
    assert_eq!(
        subjects(defaults.subscribe.allow.as_ref().unwrap()),
        ["public.>", "_INBOX.>"]
    );
    let restricted = user_permissions(&options, 3);
    assert_eq!(
        subjects(restricted.publish.allow.as_ref().unwrap()),
        ["*.*"]
    );
    assert_eq!(
        subjects(&restricted.publish.deny),
        ["internal.*", "billing.refund", "audit.*"]
    );
    assert_eq!(
        subjects(&restricted.subscribe.deny),
        ["audit.raw", "internal.*"]
    );
    let responder = user_permissions(&options, 4);
    assert_eq!(responder.responses, Some(ResponsePermission::default()));
    assert_eq!(
        responder.publish.allow, None,
        "the check itself turns the blanket allow off"
    );
    assert!(!responder.publish_allowed(b"anything"));
    let streaming = user_permissions(&options, 5);
    assert_eq!(
        streaming.responses,
        Some(ResponsePermission {
            max: 10,
            expires: Duration::from_millis(50)
        })
    );

    // A user without permissions of its own gets the defaults once authenticated.
    let authenticator = Authenticator::from_options(&options);
    let credentials = crate::auth::Credentials {
        user: "guest".into(),
        password: "open sesame".into(),
        ..Default::default()
    };
    let guest = authenticator.authenticate(&credentials, None).unwrap();
    let guest = guest.permissions.unwrap();
    assert!(guest.publish_allowed(b"sandbox.foo"));
    assert!(!guest.publish_allowed(b"sandbox.foo.bar"));
    assert!(guest.subscribe_allowed(b"public.abcd", None));
    assert!(!guest.subscribe_allowed(b"foo.bar.*", None));
}

#[test]
fn aliases_and_queue_entries_are_read() {
    let options = load(
        r#"authorization { users: [
            {user: a, password: a, permission: { pub: "x", sub: ["y", "y v1", "z g.*"] }}
            {user: b, password: b, authorization: { import: "i", export: "e" }}
        ] }"#,
    );
    let a = user_permissions(&options, 0);
    assert_eq!(subjects(a.publish.allow.as_ref().unwrap()), ["x"]);
    let subscribe = a.subscribe.allow.as_ref().unwrap();
    assert_eq!(subjects(subscribe), ["y", "y v1", "z g.*"]);
    assert_eq!(subscribe[1].queue_group(), Some("v1"));
    let b = user_permissions(&options, 1);
    assert_eq!(subjects(b.publish.allow.as_ref().unwrap()), ["i"]);
    assert_eq!(subjects(b.subscribe.allow.as_ref().unwrap()), ["e"]);
}

#[test]
fn authorization_permissions_are_the_default_permissions() {
    for key in ["permissions", "default_permissions", "default_permission"] {
        let options = load(&format!(
            "authorization {{ {key}: {{ publish: \"p\" }}, users: [{{user: a, password: a}}] }}"
        ));
        let defaults = options.authorization.default_permissions.as_ref().unwrap();
        assert_eq!(
            subjects(defaults.publish.allow.as_ref().unwrap()),
            ["p"],
            "{key}"
        );
        assert_eq!(options.authorization.users[0].permissions, None);
    }
}

#[test]
fn permissions_beside_a_single_user_warn_that_they_do_nothing() {
    let options = load("authorization { user: a, password: b, permissions: { publish: x } }");
    assert_eq!(options.warnings.len(), 1, "{:?}", options.warnings);
    assert!(options.warnings[0]
        .message
        .contains("default permissions apply only to the users of a users array"));
}

#[test]
fn empty_lists_mean_no_restriction() {
    let options = load(
        r#"authorization { users: [
            {user: a, password: a, permissions: { publish: [], subscribe: { allow: [], deny: [] } }}
            {user: b, password: b, permissions: { publish: {} }}
        ] }"#,
    );
    for index in 0..2 {
        let permissions = user_permissions(&options, index);
        assert_eq!(permissions.publish.allow, None);
        assert!(permissions.publishes_freely());
        assert!(permissions.subscribe_allowed(b">", None));
    }
}

#[test]
fn allow_responses_limits_follow_nats_server() {
    let options = load(
        r#"authorization { users: [
            {user: a, password: a, permissions: { allow_responses: false }}
            {user: b, password: b, permissions: { allow_responses: { max: 0, expires: "0s" } }}
            {user: c, password: c, permissions: { allow_responses: { max: -1, expires: "-1s" } }}
            {user: d, password: d, permissions: { allow_responses: { max_msgs: 5, expiration: "1m" } }}
        ] }"#,
    );
    assert_eq!(user_permissions(&options, 0).responses, None);
    assert_eq!(
        user_permissions(&options, 1).responses,
        Some(ResponsePermission::default())
    );
    assert_eq!(
        user_permissions(&options, 2).responses,
        Some(ResponsePermission {
            max: usize::MAX,
            expires: Duration::MAX
        })
    );
    assert_eq!(
        user_permissions(&options, 3).responses,
        Some(ResponsePermission {
            max: 5,
            expires: Duration::from_secs(60)
        })
    );
}

#[test]
fn nkey_users_are_read_with_their_permissions() {
    let options = load(&format!(
        "authorization {{ users: [ {{nkey: {NKEY}, permissions: {{ subscribe: \"s\" }} }}, {{user: a, password: b}} ] }}"
    ));
    let authorization = &options.authorization;
    assert!(authorization.is_required());
    assert_eq!(authorization.users.len(), 1);
    assert_eq!(authorization.nkey_users.len(), 1);
    assert_eq!(authorization.nkey_users[0].nkey, NKEY);
    let permissions = authorization.nkey_users[0].permissions.as_ref().unwrap();
    assert_eq!(
        subjects(permissions.subscribe.allow.as_ref().unwrap()),
        ["s"]
    );
    assert!(crate::auth::needs_nonce(authorization));
}

#[test]
fn publish_queue_groups_are_dropped_with_a_warning() {
    let options = load(
        r#"authorization { users: [ {user: a, password: a, permissions: { publish: { allow: ["foo v1"], deny: ["bar v1", "baz"] } }} ] }"#,
    );
    assert_eq!(options.warnings.len(), 2, "{:?}", options.warnings);
    let permissions = user_permissions(&options, 0);
    assert_eq!(
        permissions.publish.allow,
        Some(Vec::new()),
        "still allows nothing"
    );
    assert_eq!(subjects(&permissions.publish.deny), ["baz"]);
    assert!(!permissions.publish_allowed(b"foo"));
}

#[test]
fn invalid_permissions_are_errors_at_their_position() {
    let cases = [
        (
            "authorization { users: [ {user: a, permissions: { publsh: x }} ] }",
            "nats.conf:1:51: unknown field \"publsh\" in permissions",
        ),
        (
            "authorization { users: [ {user: a, permissions: { publish: { allow: x, permit: y } }} ] }",
            "nats.conf:1:72: unknown field \"permit\" in subject permissions",
        ),
        (
            "authorization { users: [ {user: a, permissions: { publish: \"foo..bar\" }} ] }",
            "nats.conf:1:60: subject \"foo..bar\" is not a valid subject",
        ),
        (
            "authorization { users: [ {user: a, permissions: { subscribe: [\"a b c\"] }} ] }",
            "nats.conf:1:63: \"a b c\" is not a subject, nor a subject and a queue group",
        ),
        (
            "authorization { users: [ {user: a, permissions: { subscribe: [1] }} ] }",
            "nats.conf:1:63: a subject in a permissions list must be a string, got an integer",
        ),
        (
            "authorization { users: [ {user: a, permissions: { publish: 5 }} ] }",
            "nats.conf:1:60: \"publish\" must be a subject or an array of subjects, got an integer",
        ),
        (
            "authorization { users: [ {user: a, permissions: { allow_responses: \"yes\" }} ] }",
            "nats.conf:1:68: \"allow_responses\" must be a boolean or a map, got a string",
        ),
        (
            "authorization { users: [ {user: a, permissions: { allow_responses: { expires: 5 } }} ] }",
            "nats.conf:1:79: \"expires\" must be a duration string such as \"1m\", got an integer",
        ),
        (
            "authorization { users: [ {user: a, permissions: { allow_responses: { expires: \"soon\" } }} ] }",
            "nats.conf:1:79: error parsing \"expires\": invalid duration \"soon\"",
        ),
        (
            "authorization { users: [ {user: a, permissions: [x]} ] }",
            "nats.conf:1:49: \"permissions\" must be a map, got an array",
        ),
        (
            "authorization { users: [ {nkey: UABC} ] }",
            "nats.conf:1:26: \"UABC\" is not a valid public nkey for a user",
        ),
        (
            "authorization { users: [ {nkey: SCQE4RLSN3ZVA54BEBZJPZQ5PBVB57FKHFYIDASGRDWI6VL3YPC2GO27HI} ] }",
            "is not a valid public nkey for a user",
        ),
        (
            &format!("authorization {{ users: [ {{nkey: {NKEY}, user: x}} ] }}"),
            "nats.conf:1:26: nkey users do not take user names or passwords",
        ),
        (
            &format!("authorization {{ users: [ {{nkey: {NKEY}}}, {{nkey: {NKEY}}} ] }}"),
            "duplicate nkey",
        ),
        (
            &format!("authorization {{ token: t, users: [ {{nkey: {NKEY}}} ] }}"),
            "can not have both a token and a users array",
        ),
    ];
    for (text, expected) in cases {
        let error = load_error(text);
        assert!(error.contains(expected), "{text:?}: {error}");
    }
}
