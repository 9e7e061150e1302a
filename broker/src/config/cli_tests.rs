#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;

fn parse(arguments: &[&str]) -> Result<Command, ConfigError> {
    let owned: Vec<String> = arguments
        .iter()
        .map(|argument| argument.to_string())
        .collect();
    parse_command_line(&owned)
}

fn run_flags(arguments: &[&str]) -> Flags {
    match parse(arguments) {
        Ok(Command::Run(flags)) => flags,
        other => panic!("{arguments:?}: expected Run, got {other:?}"),
    }
}

fn error(arguments: &[&str]) -> String {
    match parse(arguments) {
        Ok(command) => panic!("{arguments:?}: expected an error, got {command:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn no_arguments_runs_with_no_flags() {
    assert_eq!(parse(&[]).unwrap(), Command::Run(Flags::default()));
}

#[test]
fn single_and_double_dashes_are_equivalent() {
    assert_eq!(run_flags(&["-p", "5222"]), run_flags(&["--p", "5222"]));
    assert_eq!(
        run_flags(&["-port", "5222"]),
        run_flags(&["--port", "5222"])
    );
    assert_eq!(run_flags(&["--port", "5222"]).port, Some(5222));
}

#[test]
fn values_may_follow_an_equals_sign_or_come_next() {
    assert_eq!(run_flags(&["-p=5222"]).port, Some(5222));
    assert_eq!(run_flags(&["--port=5222"]).port, Some(5222));
    assert_eq!(
        run_flags(&["-n", "a=b"]).server_name.as_deref(),
        Some("a=b")
    );
    assert_eq!(run_flags(&["-n=a=b"]).server_name.as_deref(), Some("a=b"));
}

#[test]
fn the_next_argument_is_taken_as_a_value_even_if_it_looks_like_a_flag() {
    assert_eq!(run_flags(&["-p", "-1"]).port, Some(-1));
    assert_eq!(run_flags(&["-n", "-D"]).server_name.as_deref(), Some("-D"));
}

#[test]
fn every_value_flag_and_alias_sets_its_field() {
    let flags = run_flags(&[
        "-c",
        "a.conf",
        "-a",
        "127.0.0.1",
        "-p",
        "1",
        "-n",
        "n1",
        "--client_advertise",
        "adv:1",
        "-m",
        "8222",
        "--user",
        "u",
        "--pass",
        "pw",
        "--auth",
        "tok",
        "-l",
        "x.log",
        "-P",
        "x.pid",
        "--ports_file_dir",
        "/tmp",
    ]);
    assert_eq!(
        flags,
        Flags {
            config_file: Some("a.conf".into()),
            host: Some("127.0.0.1".into()),
            port: Some(1),
            server_name: Some("n1".into()),
            client_advertise: Some("adv:1".into()),
            http_port: Some(8222),
            user: Some("u".into()),
            password: Some("pw".into()),
            token: Some("tok".into()),
            log_file: Some("x.log".into()),
            pid_file: Some("x.pid".into()),
            ports_file_dir: Some("/tmp".into()),
            ..Flags::default()
        }
    );
    let aliases = run_flags(&[
        "--config",
        "a.conf",
        "--addr",
        "h1",
        "--name",
        "n2",
        "--http_port",
        "1",
        "--log",
        "y",
        "--pid",
        "z",
    ]);
    assert_eq!(aliases.config_file, Some("a.conf".into()));
    assert_eq!(aliases.host.as_deref(), Some("h1"));
    assert_eq!(aliases.server_name.as_deref(), Some("n2"));
    assert_eq!(aliases.http_port, Some(1));
    assert_eq!(aliases.log_file, Some("y".into()));
    assert_eq!(aliases.pid_file, Some("z".into()));
    assert_eq!(run_flags(&["--net", "h2"]).host.as_deref(), Some("h2"));
    assert_eq!(
        run_flags(&["--server_name", "n3"]).server_name.as_deref(),
        Some("n3")
    );
}

#[test]
fn boolean_flags_take_no_value_but_accept_an_explicit_one() {
    assert_eq!(run_flags(&["-D"]).debug, Some(true));
    assert_eq!(run_flags(&["--debug"]).debug, Some(true));
    assert_eq!(run_flags(&["-V"]).trace, Some(true));
    assert_eq!(run_flags(&["--trace"]).trace, Some(true));
    assert_eq!(run_flags(&["-T=false"]).logtime, Some(false));
    assert_eq!(run_flags(&["--logtime=0"]).logtime, Some(false));
    assert_eq!(run_flags(&["--logtime_utc"]).logtime_utc, Some(true));
    assert_eq!(run_flags(&["--watch_config"]).watch_config, Some(true));
    assert_eq!(run_flags(&["-D=true"]).debug, Some(true));
    assert_eq!(
        error(&["-D=maybe"]),
        "invalid value \"maybe\" for flag -D: expected true or false"
    );
}

#[test]
fn a_boolean_flag_does_not_consume_the_next_argument() {
    assert_eq!(
        error(&["-D", "false"]),
        "unrecognized command \"false\": only \"version\" or \"help\" may follow the flags"
    );
}

#[test]
fn combined_debug_and_trace_flags() {
    let flags = run_flags(&["-DV"]);
    assert_eq!((flags.debug, flags.trace), (Some(true), Some(true)));
    let flags = run_flags(&["-DVV"]);
    assert_eq!((flags.debug, flags.trace), (Some(true), Some(true)));
    let flags = run_flags(&["-VV"]);
    assert_eq!((flags.debug, flags.trace), (None, Some(true)));
    let flags = run_flags(&["-DV", "-DV=false"]);
    assert_eq!((flags.debug, flags.trace), (Some(false), Some(false)));
}

#[test]
fn a_repeated_flag_keeps_its_last_value() {
    assert_eq!(run_flags(&["-p", "1", "--port", "2"]).port, Some(2));
}

#[test]
fn version_and_help_win_over_other_flags() {
    assert_eq!(parse(&["-v"]).unwrap(), Command::Version);
    assert_eq!(parse(&["--version", "-p", "1"]).unwrap(), Command::Version);
    assert_eq!(parse(&["-h"]).unwrap(), Command::Help);
    assert_eq!(parse(&["--help"]).unwrap(), Command::Help);
    assert_eq!(parse(&["-h", "-v"]).unwrap(), Command::Version);
    assert_eq!(parse(&["-t", "-h"]).unwrap(), Command::Help);
}

#[test]
fn version_and_help_may_be_given_as_commands_after_the_flags() {
    assert_eq!(parse(&["version"]).unwrap(), Command::Version);
    assert_eq!(parse(&["-D", "HELP"]).unwrap(), Command::Help);
    assert_eq!(parse(&["--", "version"]).unwrap(), Command::Version);
    assert_eq!(
        error(&["serve"]),
        "unrecognized command \"serve\": only \"version\" or \"help\" may follow the flags"
    );
}

#[test]
fn arguments_after_the_first_command_are_not_flags() {
    assert_eq!(parse(&["version", "--bogus"]).unwrap(), Command::Version);
}

#[test]
fn check_config_needs_a_config_file() {
    let command = parse(&["-t", "-c", "nats.conf"]).unwrap();
    let Command::TestConfig(flags) = command else {
        panic!("expected TestConfig, got {command:?}")
    };
    assert_eq!(flags.config_file, Some("nats.conf".into()));
    assert_eq!(
        error(&["-t"]),
        "-t checks a config file: name it with -c or --config"
    );
    assert!(matches!(parse(&["-t=false"]).unwrap(), Command::Run(_)));
}

#[test]
fn signal_takes_a_command_and_an_optional_pid_or_pid_file() {
    assert_eq!(
        parse(&["-sl", "reload"]).unwrap(),
        Command::Signal {
            command: SignalCommand::Reload,
            pid_or_pid_file: None
        }
    );
    assert_eq!(
        parse(&["--signal", "ldm=123"]).unwrap(),
        Command::Signal {
            command: SignalCommand::LameDuckMode,
            pid_or_pid_file: Some("123".into())
        }
    );
    assert_eq!(
        parse(&["-sl=stop=/run/nats.pid"]).unwrap(),
        Command::Signal {
            command: SignalCommand::Stop,
            pid_or_pid_file: Some("/run/nats.pid".into())
        }
    );
    for word in ["ldm", "quit", "stop", "term", "reopen", "reload"] {
        let Command::Signal { command, .. } = parse(&["-sl", word]).unwrap() else {
            panic!("{word}: expected a signal")
        };
        assert_eq!(command.as_str(), word);
    }
}

#[test]
fn malformed_signals_are_errors() {
    assert_eq!(
        error(&["-sl", "kill"]),
        "invalid signal \"kill\": unknown command \"kill\", expected one of ldm, quit, stop, term, reopen, reload"
    );
    assert_eq!(
        error(&["-sl", "stop=1=2"]),
        "invalid signal \"stop=1=2\": expected <command>[=<pid or pid file>]"
    );
}

#[test]
fn ports_are_validated_when_parsed() {
    assert_eq!(
        error(&["-p", "abc"]),
        "invalid value \"abc\" for flag -p: expected an integer"
    );
    assert_eq!(
        error(&["--port=70000"]),
        "invalid value \"70000\" for flag --port: port must be between 0 and 65535, or -1 for a random port; got 70000"
    );
    assert_eq!(
        error(&["-m", "-2"]),
        "invalid value \"-2\" for flag -m: monitoring port must be between 0 (off) and 65535, or -1 for a random port; got -2"
    );
}

#[test]
fn unknown_and_malformed_flags_are_errors() {
    assert_eq!(error(&["--bogus"]), "unknown flag --bogus (see --help)");
    assert_eq!(error(&["-bogus=1"]), "unknown flag -bogus (see --help)");
    assert_eq!(error(&["---p"]), "bad flag syntax: ---p");
    assert_eq!(error(&["-=1"]), "bad flag syntax: -=1");
    assert_eq!(error(&["-p"]), "flag -p needs a value");
}

#[test]
fn flags_of_missing_features_are_refused_by_name() {
    let cases: &[&[&str]] = &[
        &["-js"],
        &["--jetstream"],
        &["-sd", "/data"],
        &["--store_dir", "/data"],
        &["-ms", "8443"],
        &["--https_port", "8443"],
        &["--syslog"],
        &["-s"],
        &["-r", "udp://x"],
        &["--remote_syslog", "udp://x"],
    ];
    for arguments in cases {
        assert_eq!(
            error(arguments),
            format!("flag {} is not supported yet", arguments[0]),
            "{arguments:?}"
        );
    }
}

#[test]
fn cluster_flags_configure_routes() {
    let flags = run_flags(&[
        "--cluster",
        "nats://route:secret@127.0.0.1:-1",
        "--routes",
        "nats-route://10.0.0.2:6222,nats-route://10.0.0.3:6222",
        "--cluster_name",
        "east",
        "--no_advertise",
        "--connect_retries",
        "4",
    ]);
    let mut options = ServerOptions::default();
    apply_flags(&mut options, &flags);
    let cluster = options.cluster.expect("cluster flags enable the cluster");
    assert_eq!(cluster.listen.host, "127.0.0.1");
    assert_eq!(cluster.listen.port, None);
    assert_eq!(cluster.user.as_deref(), Some("route"));
    assert_eq!(cluster.password.as_deref(), Some("secret"));
    assert_eq!(cluster.routes.len(), 2);
    assert_eq!(cluster.routes[1].address(), "10.0.0.3:6222");
    assert_eq!(cluster.name.as_deref(), Some("east"));
    assert!(cluster.no_advertise);
    assert_eq!(cluster.connect_retries, 4);
    assert!(error(&["--routes", "nats-route://nohost"]).contains("has no port"));
}

#[test]
fn switched_off_boolean_flags_of_missing_features_are_accepted() {
    assert_eq!(run_flags(&["-js=false"]), Flags::default());
}

#[test]
fn flags_override_the_config_file() {
    let mut options = ServerOptions {
        monitoring: Some(Listen {
            host: "0.0.0.0".into(),
            port: Some(8222),
        }),
        ..ServerOptions::default()
    };
    options.logging.debug = true;
    let flags = run_flags(&[
        "-a",
        "127.0.0.1",
        "-p",
        "-1",
        "-n",
        "flagged",
        "--user",
        "u",
        "--pass",
        "p",
        "-D=false",
        "-V",
        "-T=false",
        "--logtime_utc",
        "-l",
        "f.log",
        "-P",
        "f.pid",
        "--ports_file_dir",
        "d",
        "--client_advertise",
        "adv",
        "--watch_config",
        "-c",
        "x.conf",
    ]);
    apply_flags(&mut options, &flags);
    assert_eq!(
        options.listen,
        Listen {
            host: "127.0.0.1".into(),
            port: None
        }
    );
    assert_eq!(
        options.monitoring.as_ref().map(|m| m.host.as_str()),
        Some("127.0.0.1")
    );
    assert_eq!(options.server_name.as_deref(), Some("flagged"));
    assert_eq!(options.authorization.user.as_deref(), Some("u"));
    assert_eq!(options.authorization.password.as_deref(), Some("p"));
    assert!(!options.logging.debug);
    assert!(options.logging.trace);
    assert!(!options.logging.logtime);
    assert!(options.logging.logtime_utc);
    assert_eq!(options.logging.log_file, Some("f.log".into()));
    assert_eq!(options.pid_file, Some("f.pid".into()));
    assert_eq!(options.ports_file_dir, Some("d".into()));
    assert_eq!(options.client_advertise.as_deref(), Some("adv"));
    assert!(options.watch_config);
    assert_eq!(options.config_file, Some("x.conf".into()));
}

#[test]
fn absent_flags_leave_options_alone() {
    let mut options = ServerOptions::default();
    options.logging.debug = true;
    options.listen.port = Some(9999);
    let before = options.clone();
    apply_flags(&mut options, &Flags::default());
    assert_eq!(options, before);
}

#[test]
fn port_flag_zero_means_the_default_port() {
    let mut options = ServerOptions::default();
    options.listen.port = Some(9999);
    apply_flags(&mut options, &run_flags(&["-p", "0"]));
    assert_eq!(options.listen.port, Some(4222));
}

#[test]
fn http_port_flag_turns_monitoring_on_off_or_random() {
    let mut options = ServerOptions::default();
    options.listen.host = "10.0.0.1".into();
    apply_flags(&mut options, &run_flags(&["-m", "8222"]));
    assert_eq!(
        options.monitoring,
        Some(Listen {
            host: "10.0.0.1".into(),
            port: Some(8222)
        })
    );
    apply_flags(&mut options, &run_flags(&["-m", "-1"]));
    assert_eq!(
        options.monitoring,
        Some(Listen {
            host: "10.0.0.1".into(),
            port: None
        })
    );
    apply_flags(&mut options, &run_flags(&["-m", "0"]));
    assert_eq!(options.monitoring, None);
}

#[test]
fn http_port_flag_keeps_a_monitoring_host_from_the_config() {
    let mut options = ServerOptions {
        monitoring: Some(Listen {
            host: "192.168.1.1".into(),
            port: Some(8000),
        }),
        ..ServerOptions::default()
    };
    apply_flags(&mut options, &run_flags(&["-m", "8222", "-a", "127.0.0.1"]));
    assert_eq!(
        options.monitoring,
        Some(Listen {
            host: "192.168.1.1".into(),
            port: Some(8222)
        })
    );
}

#[test]
fn usage_lists_the_supported_flags() {
    let text = usage();
    for flag in [
        "--config",
        "--port",
        "--http_port",
        "--signal",
        "--watch_config",
        "-DV",
        "--auth",
    ] {
        assert!(text.contains(flag), "{flag}");
    }
}
