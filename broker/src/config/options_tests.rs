#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use super::*;
use crate::config::{load_str, MemorySources};

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

fn warnings(options: &ServerOptions) -> Vec<&str> {
    options
        .warnings
        .iter()
        .map(|warning| warning.message.as_str())
        .collect()
}

#[test]
fn an_empty_file_gives_nats_server_defaults() {
    let options = load("");
    let expected = ServerOptions {
        config_file: Some(PathBuf::from("nats.conf")),
        ..ServerOptions::default()
    };
    assert_eq!(options, expected);
}

#[test]
fn listen_takes_host_and_port_or_a_port() {
    let options = load("listen: 127.0.0.1:4333\n");
    assert_eq!(
        options.listen,
        Listen {
            host: "127.0.0.1".into(),
            port: Some(4333)
        }
    );
    assert_eq!(load("listen: 4333\n").listen.port, Some(4333));
    assert_eq!(load("listen: \"[::1]:4333\"\n").listen.host, "::1");
    assert_eq!(load("listen: \":4333\"\n").listen.host, "0.0.0.0");
}

#[test]
fn host_net_and_port_set_the_client_listener() {
    assert_eq!(load("host: 10.0.0.1\n").listen.host, "10.0.0.1");
    assert_eq!(load("net: 10.0.0.2\n").listen.host, "10.0.0.2");
    assert_eq!(load("port: 5222\n").listen.port, Some(5222));
}

#[test]
fn port_minus_one_is_random_and_zero_is_the_default() {
    assert_eq!(load("port: -1\n").listen.port, None);
    assert_eq!(load("port: 0\n").listen.port, Some(4222));
}

#[test]
fn option_names_are_case_insensitive() {
    let options = load("PORT: 5222\nDebug: true\nMax_Payload: 2MB\n");
    assert_eq!(options.listen.port, Some(5222));
    assert!(options.logging.debug);
    assert_eq!(options.max_payload, 2 << 20);
}

#[test]
fn later_options_override_earlier_ones_in_file_order() {
    let options = load("port: 1111\nlisten: 0.0.0.0:2222\n");
    assert_eq!(options.listen.port, Some(2222));
    let options = load("listen: 0.0.0.0:2222\nport: 1111\n");
    assert_eq!(options.listen.port, Some(1111));
}

#[test]
fn monitoring_accepts_http_http_port_and_monitor_port() {
    let expected = |host: &str, port| {
        Some(Listen {
            host: host.into(),
            port,
        })
    };
    assert_eq!(
        load("http: 8222\n").monitoring,
        expected("0.0.0.0", Some(8222))
    );
    assert_eq!(
        load("http: 127.0.0.1:8333\n").monitoring,
        expected("127.0.0.1", Some(8333))
    );
    assert_eq!(
        load("http_port: 8444\n").monitoring,
        expected("0.0.0.0", Some(8444))
    );
    assert_eq!(
        load("monitor_port: 8555\n").monitoring,
        expected("0.0.0.0", Some(8555))
    );
    assert_eq!(
        load("http_port: -1\n").monitoring,
        expected("0.0.0.0", None)
    );
    assert_eq!(load("http_port: 0\n").monitoring, None);
}

#[test]
fn monitoring_binds_to_the_client_host_unless_http_names_one() {
    let options = load("http_port: 8222\nhost: 127.0.0.1\n");
    assert_eq!(options.monitoring.unwrap().host, "127.0.0.1");
    let options = load("host: 127.0.0.1\nhttp: 10.0.0.1:8222\n");
    assert_eq!(options.monitoring.unwrap().host, "10.0.0.1");
}

#[test]
fn names_and_paths_are_strings() {
    let options = load(concat!(
        "server_name: n1\nclient_advertise: \"nats.example.com:4222\"\n",
        "log_file: \"/var/log/nats.log\"\npid_file: /run/nats.pid\nports_file_dir: /tmp\n",
        "system_account: SYS\n",
    ));
    assert_eq!(options.server_name.as_deref(), Some("n1"));
    assert_eq!(
        options.client_advertise.as_deref(),
        Some("nats.example.com:4222")
    );
    assert_eq!(
        options.logging.log_file,
        Some(PathBuf::from("/var/log/nats.log"))
    );
    assert_eq!(options.pid_file, Some(PathBuf::from("/run/nats.pid")));
    assert_eq!(options.ports_file_dir, Some(PathBuf::from("/tmp")));
    assert_eq!(options.system_account.as_deref(), Some("SYS"));
    assert_eq!(load("system: S2\n").system_account.as_deref(), Some("S2"));
    assert_eq!(
        load("logfile: a.log\n").logging.log_file,
        Some(PathBuf::from("a.log"))
    );
    assert_eq!(
        load("pidfile: a.pid\n").pid_file,
        Some(PathBuf::from("a.pid"))
    );
}

#[test]
fn logging_switches_are_booleans() {
    let options = load("debug: true\ntrace: yes\nlogtime: off\nlogtime_utc: on\n");
    assert!(options.logging.debug);
    assert!(options.logging.trace);
    assert!(!options.logging.logtime);
    assert!(options.logging.logtime_utc);
    assert!(load("no_header_support: true\n").no_header_support);
}

#[test]
fn limits_accept_size_suffixes_and_zero_means_default() {
    let options = load(concat!(
        "max_control_line: 2KB\nmax_payload: 4MB\nmax_pending: 128MB\n",
        "max_connections: 100\nmax_subscriptions: 1k\nping_max: 5\nmax_closed_clients: 50\n",
    ));
    assert_eq!(options.max_control_line, 2048);
    assert_eq!(options.max_payload, 4 << 20);
    assert_eq!(options.max_pending, 128 << 20);
    assert_eq!(options.max_connections, 100);
    assert_eq!(options.max_subscriptions, 1000);
    assert_eq!(options.ping_max, 5);
    assert_eq!(options.max_closed_clients, 50);
    let zeros = load(concat!(
        "max_control_line: 0\nmax_payload: 0\nmax_pending: 0\nmax_conn: 0\n",
        "max_subs: 0\nping_max: 0\nmax_closed_clients: 0\n",
    ));
    let expected = ServerOptions {
        config_file: zeros.config_file.clone(),
        ..ServerOptions::default()
    };
    assert_eq!(zeros, expected);
}

#[test]
fn negative_connection_and_subscription_limits_mean_unlimited() {
    assert_eq!(load("max_connections: -1\n").max_connections, usize::MAX);
    assert_eq!(load("max_subs: -1\n").max_subscriptions, 0);
}

#[test]
fn durations_take_go_duration_strings() {
    let options = load(concat!(
        "ping_interval: \"30s\"\nwrite_deadline: 500ms\n",
        "lame_duck_duration: \"1h30m\"\nlame_duck_grace_period: 20s\n",
    ));
    assert_eq!(options.ping_interval, Duration::from_secs(30));
    assert_eq!(options.write_deadline, Duration::from_millis(500));
    assert_eq!(options.lame_duck_duration, Duration::from_secs(5400));
    assert_eq!(options.lame_duck_grace_period, Duration::from_secs(20));
    assert!(options.warnings.is_empty());
}

#[test]
fn integer_durations_are_seconds_with_a_warning() {
    let options = load("port: 4222\nping_interval: 30\n");
    assert_eq!(options.ping_interval, Duration::from_secs(30));
    assert_eq!(
        warnings(&options),
        ["nats.conf:2:1: invalid use of field \"ping_interval\": the number 30 is read as seconds; \
          write a quoted duration such as \"30s\" (unquoted, 2m is the number 2000000)"]
    );
}

#[test]
fn unquoted_minutes_are_a_size_not_a_duration() {
    // As in nats-server: `2m` unquoted is the integer 2,000,000, so it means that many seconds.
    let options = load("ping_interval: 2m\n");
    assert_eq!(options.ping_interval, Duration::from_secs(2_000_000));
    assert_eq!(options.warnings.len(), 1);
}

#[test]
fn authorization_with_user_and_password() {
    let options = load("authorization {\n  user: alice\n  password: secret\n  timeout: 3\n}\n");
    let authorization = &options.authorization;
    assert_eq!(authorization.user.as_deref(), Some("alice"));
    assert_eq!(authorization.password.as_deref(), Some("secret"));
    assert_eq!(authorization.timeout, Some(Duration::from_secs(3)));
    assert!(authorization.is_required());
    let options = load("authorization { username: bob, pass: pw }\n");
    assert_eq!(options.authorization.user.as_deref(), Some("bob"));
    assert_eq!(options.authorization.password.as_deref(), Some("pw"));
}

#[test]
fn authorization_timeout_takes_seconds_fractions_or_a_duration() {
    let timeout = |text: &str| {
        load(&format!("authorization {{ token: t, timeout: {text} }}\n"))
            .authorization
            .timeout
    };
    assert_eq!(timeout("1.5"), Some(Duration::from_millis(1500)));
    assert_eq!(timeout("\"250ms\""), Some(Duration::from_millis(250)));
    assert_eq!(timeout("0"), None);
}

#[test]
fn authorization_with_token() {
    let options = load("authorization { token: s3cr3t }\n");
    assert_eq!(options.authorization.token.as_deref(), Some("s3cr3t"));
}

#[test]
fn authorization_with_users_and_no_auth_user() {
    let options = load(concat!(
        "authorization {\n  users: [\n    {user: a, password: pa}\n    {username: b, pass: pb}\n",
        "    {user: c}\n  ]\n}\nno_auth_user: b\n",
    ));
    let users = &options.authorization.users;
    assert_eq!(users.len(), 3);
    assert_eq!(
        users[1],
        User {
            user: "b".into(),
            password: "pb".into(),
            permissions: None,
            account: None,
            max_connections: None,
        }
    );
    assert_eq!(users[2].password, "");
    assert_eq!(options.no_auth_user.as_deref(), Some("b"));
}

#[test]
fn bcrypt_passwords_need_no_quotes() {
    let options = load("authorization { user: a, password: $2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG }\n");
    assert!(options
        .authorization
        .password
        .unwrap()
        .starts_with("$2a$11$"));
}

#[test]
fn unknown_options_are_warnings_worded_like_nats_server() {
    let options = load("foo_bar: 1\n  baz: 2\nauthorization { user: a, pass: b, zz: 1 }\n");
    assert_eq!(
        warnings(&options),
        [
            "nats.conf:1:1: unknown field \"foo_bar\"",
            "nats.conf:2:3: unknown field \"baz\"",
            "nats.conf:3:35: unknown field \"zz\"",
        ]
    );
}

#[test]
fn keys_used_as_variables_are_not_unknown_fields() {
    let options = load("SECRET: abc\nUNUSED: 1\nauthorization { token: $SECRET }\n");
    assert_eq!(
        warnings(&options),
        ["nats.conf:2:1: unknown field \"UNUSED\""]
    );
}

#[test]
fn unknown_fields_inside_users_are_warnings() {
    let options = load("authorization { users: [ {user: a, colour: blue} ] }\n");
    assert_eq!(
        warnings(&options),
        ["nats.conf:1:36: unknown field \"colour\""]
    );
}

#[test]
fn options_of_missing_features_are_refused_by_name() {
    let cases = [
        (
            "gateway { listen: 7222 }\n",
            "nats.conf:1:1: \"gateway\" is not supported yet",
        ),
        (
            "port: 4222\njetstream: enabled\n",
            "nats.conf:2:1: \"jetstream\" is not supported yet",
        ),
        (
            "  leafnodes { port: 7422 }\n",
            "nats.conf:1:3: \"leafnodes\" is not supported yet",
        ),
        (
            "Gateway {}\n",
            "nats.conf:1:1: \"Gateway\" is not supported yet",
        ),
        (
            "mappings {}\n",
            "nats.conf:1:1: \"mappings\" is not supported yet",
        ),
        (
            "mappings {}\n",
            "nats.conf:1:1: \"mappings\" is not supported yet",
        ),
        (
            "authorization {\n  auth_callout { issuer: X }\n}\n",
            "nats.conf:2:3: \"auth_callout\" is not supported yet",
        ),
        (
            "authorization { users: [ {user: a, allowed_connection_types: [STANDARD]} ] }\n",
            "nats.conf:1:36: \"allowed_connection_types\" is not supported yet",
        ),
    ];
    for (text, expected) in cases {
        let error = load_error(text);
        assert!(error.starts_with(expected), "{text:?}: {error}");
    }
}

#[test]
fn switched_off_missing_features_are_accepted() {
    let options = load("jetstream: disabled\nsyslog: false\nallow_non_tls: false\n");
    assert!(options.warnings.is_empty());
}

#[test]
fn invalid_values_are_errors_at_the_value() {
    let cases = [
        ("port: \"abc\"\n", "nats.conf:1:7: \"port\" must be an integer, got a string"),
        ("port: 99999\n", "nats.conf:1:7: port must be between 0 and 65535, or -1 for a random port; got 99999"),
        ("port: -5\n", "nats.conf:1:7: port must be between 0 and 65535, or -1 for a random port; got -5"),
        ("listen: \"1.2.3.4:99999\"\n", "nats.conf:1:9: port must be between 0 and 65535, or -1 for a random port; got 99999"),
        ("listen: \"1.2.3.4\"\n", "nats.conf:1:9: could not parse address \"1.2.3.4\": expected host:port"),
        ("listen: \"h:p\"\n", "nats.conf:1:9: could not parse port \"p\" in \"h:p\""),
        ("listen: \"::1:4222\"\n", "nats.conf:1:9: could not parse address \"::1:4222\": expected host:port"),
        ("http: 70000\n", "nats.conf:1:7: monitoring port must be between 0 (off) and 65535, or -1 for a random port; got 70000"),
        ("max_payload: -5\n", "nats.conf:1:14: \"max_payload\" can not be negative"),
        ("max_payload: 10GB\n", "nats.conf:1:14: \"max_payload\" value 10737418240 is too big (the maximum is 2147483647)"),
        ("max_control_line: 3GB\n", "nats.conf:1:19: \"max_control_line\" value 3221225472 is too big (the maximum is 2147483647)"),
        ("max_pending: -1\n", "nats.conf:1:14: \"max_pending\" can not be negative"),
        ("ping_max: -1\n", "nats.conf:1:11: \"ping_max\" must be between 0 and 4294967295, got -1"),
        ("debug: 1\n", "nats.conf:1:8: \"debug\" must be a boolean, got an integer"),
        ("server_name: [a]\n", "nats.conf:1:14: \"server_name\" must be a string, got an array"),
        ("ping_interval: \"2x\"\n", "nats.conf:1:16: error parsing \"ping_interval\": unknown unit \"x\" in duration \"2x\""),
        ("write_deadline: \"-1s\"\n", "nats.conf:1:17: \"write_deadline\" can not be negative"),
        ("ping_interval: true\n", "nats.conf:1:16: \"ping_interval\" must be a duration such as \"30s\" or a number of seconds, got a boolean"),
        ("lame_duck_duration: \"10s\"\n", "nats.conf:1:21: invalid lame_duck_duration of 10s: the minimum is 30s"),
        ("lame_duck_grace_period: \"-1s\"\n", "nats.conf:1:25: \"lame_duck_grace_period\" can not be negative"),
        ("authorization: 1\n", "nats.conf:1:16: \"authorization\" must be a map, got an integer"),
        ("authorization { timeout: -1 }\n", "nats.conf:1:26: authorization timeout can not be negative"),
        ("authorization { users: {} }\n", "nats.conf:1:24: \"users\" must be an array of users, got a map"),
    ];
    for (text, expected) in cases {
        assert_eq!(load_error(text), expected, "{text:?}");
    }
}

#[test]
fn conflicting_authorization_is_an_error_at_the_block() {
    let cases = [
        (
            "authorization { user: a, token: b }\n",
            "nats.conf:1:15: can not have both a user/password and a token",
        ),
        (
            "authorization { user: a, users: [] }\n",
            "nats.conf:1:15: can not have both a single user/password and a users array",
        ),
        (
            "authorization { token: t, users: [{user: a}] }\n",
            "nats.conf:1:15: can not have both a token and a users array",
        ),
        (
            "authorization { users: [ {password: x} ] }\n",
            "nats.conf:1:26: a user entry requires a user",
        ),
        (
            "authorization { users: [ {user: a}, {user: a} ] }\n",
            "nats.conf:1:37: duplicate user \"a\"",
        ),
        (
            "authorization { users: [ 1 ] }\n",
            "nats.conf:1:26: a user entry must be a map, got an integer",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(load_error(text), expected, "{text:?}");
    }
}

#[test]
fn every_error_in_a_file_is_reported_together() {
    let error = load_error("port: x\ndebug: 3\ngateway {}\n");
    assert_eq!(
        error,
        "nats.conf:1:7: \"port\" must be an integer, got a string\n\
         nats.conf:2:8: \"debug\" must be a boolean, got an integer\n\
         nats.conf:3:1: \"gateway\" is not supported yet"
    );
}

#[test]
fn cross_field_rules_are_checked() {
    assert_eq!(
        load_error("max_payload: 2MB\nmax_pending: 1MB\n"),
        "max_payload (2097152) can not be higher than max_pending (1048576)"
    );
    assert_eq!(
        load_error("lame_duck_duration: 30s\nlame_duck_grace_period: \"1m\"\n"),
        "lame_duck_grace_period (60s) must be shorter than lame_duck_duration (30s)"
    );
    assert_eq!(
        load_error("no_auth_user: a\n"),
        "no_auth_user \"a\" is set, but no users are defined"
    );
    assert_eq!(
        load_error("authorization { users: [{user: b}] }\nno_auth_user: a\n"),
        "no_auth_user \"a\" is not one of the authorization users"
    );
    assert_eq!(
        load_error("authorization { password: x }\n"),
        "a password is set without a user"
    );
}

#[test]
fn port_helpers_follow_nats_server_semantics() {
    assert_eq!(client_port(-1), Ok(None));
    assert_eq!(client_port(0), Ok(Some(4222)));
    assert_eq!(client_port(65535), Ok(Some(65535)));
    assert!(client_port(65536).is_err());
    assert_eq!(monitoring_port(0), Ok(None));
    assert_eq!(monitoring_port(-1), Ok(Some(None)));
    assert_eq!(monitoring_port(8222), Ok(Some(Some(8222))));
    assert!(monitoring_port(-2).is_err());
}

#[test]
fn websocket_authentication_is_checked_as_nats_server_checks_it() {
    let users = "authorization { users: [{user: a, password: b}] }\n";
    assert_eq!(
        load_error(&format!(
            "{users}websocket {{ port: 8080, no_tls: true, authorization {{ username: w, password: x }} }}\n"
        )),
        "websocket authentication username not compatible with presence of users/nkeys"
    );
    assert_eq!(
        load_error(&format!(
            "{users}websocket {{ port: 8080, no_tls: true, authorization {{ token: t }} }}\n"
        )),
        "websocket authentication token not compatible with presence of users/nkeys"
    );
    assert_eq!(
        load_error(&format!(
            "{users}websocket {{ port: 8080, no_tls: true, no_auth_user: nobody }}\n"
        )),
        "websocket no_auth_user \"nobody\" is not one of the authorization users"
    );
}
