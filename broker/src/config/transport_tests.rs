#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{apply_flags, load_str, parse_command_line, Command, MemorySources};
use crate::options::{HandshakeFirst, ServerOptions, TlsOptions, TlsVersion};

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

const CERTIFICATE: &str = "cert_file: \"server.pem\", key_file: \"server-key.pem\"";

#[test]
fn a_tls_block_becomes_tls_options() {
    let options = load(&format!(
        "tls {{\n  {CERTIFICATE}\n  ca_file: ca.pem\n  verify: true\n  timeout: 0.5\n  min_version: \"1.3\"\n  cipher_suites: [TLS_AES_256_GCM_SHA384, \"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305\"]\n}}\nallow_non_tls: true\n"
    ));
    let tls = options.tls.clone().unwrap();
    assert_eq!(tls.cert_file, Some(PathBuf::from("server.pem")));
    assert_eq!(tls.key_file, Some(PathBuf::from("server-key.pem")));
    assert_eq!(tls.ca_file, Some(PathBuf::from("ca.pem")));
    assert!(tls.verify && !tls.verify_and_map);
    assert_eq!(tls.timeout, Duration::from_millis(500));
    assert_eq!(tls.min_version, TlsVersion::Tls13);
    assert_eq!(tls.cipher_suites.len(), 2);
    assert!(options.allow_non_tls);
    assert_eq!(options.auth_timeout(), Duration::from_millis(1500));
}

#[test]
fn tls_defaults_are_nats_servers() {
    let tls = load(&format!("tls {{ {CERTIFICATE} }}\n")).tls.unwrap();
    assert_eq!(tls.timeout, Duration::from_secs(2));
    assert_eq!(tls.handshake_first, HandshakeFirst::Off);
    assert_eq!(tls.min_version, TlsVersion::Tls12);
    assert!(tls.cipher_suites.is_empty());
    assert_eq!(
        load(&format!("tls {{ {CERTIFICATE}, timeout: \"3s\" }}\n"))
            .tls
            .unwrap()
            .timeout,
        Duration::from_secs(3)
    );
    let mapped = load(&format!("tls {{ {CERTIFICATE}, verify_and_map: true }}\n"))
        .tls
        .unwrap();
    assert!(mapped.verify && mapped.verify_and_map);
}

#[test]
fn handshake_first_takes_a_boolean_auto_or_a_delay() {
    let mode = |value: &str| {
        load(&format!(
            "tls {{ {CERTIFICATE}, handshake_first: {value} }}\n"
        ))
        .tls
        .unwrap()
        .handshake_first
    };
    assert_eq!(mode("true"), HandshakeFirst::On);
    assert_eq!(mode("false"), HandshakeFirst::Off);
    assert_eq!(mode("\"on\""), HandshakeFirst::On);
    assert_eq!(
        mode("auto"),
        HandshakeFirst::Fallback(Duration::from_millis(50))
    );
    assert_eq!(
        mode("\"300ms\""),
        HandshakeFirst::Fallback(Duration::from_millis(300))
    );
    let first = load(&format!("tls {{ {CERTIFICATE}, first: true }}\n"));
    assert_eq!(first.tls.unwrap().handshake_first, HandshakeFirst::On);
}

#[test]
fn tls_errors_point_at_the_value() {
    let cases = [
        (
            "tls {\n  cert_file: a.pem\n}\n",
            "nats.conf:1:5: missing 'key_file' in TLS configuration",
        ),
        (
            "tls { verify: true }\n",
            "nats.conf:1:5: TLS for a server requires 'cert_file' and 'key_file'",
        ),
        (
            "tls {\n  cert_file: a, key_file: b\n  min_version: \"1.1\"\n}\n",
            "nats.conf:3:16: error parsing tls config: unsupported TLS version \"1.1\"",
        ),
        (
            "tls {\n  cert_file: a, key_file: b\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n}\n",
            "nats.conf:3:19: error parsing tls config: cipher suite \"TLS_RSA_WITH_RC4_128_SHA\" is not supported; supported: TLS13_",
        ),
        (
            "tls {\n  cert_file: a, key_file: b\n  handshake_first: sometimes\n}\n",
            "nats.conf:3:20: field \"handshake_first\" value \"sometimes\" is invalid",
        ),
        (
            "tls {\n  cert_file: a, key_file: b\n  timeout: -1\n}\n",
            "nats.conf:3:12: error parsing tls config, 'timeout' can not be negative",
        ),
        (
            "tls {\n  cert_file: a, key_file: b\n  pinned_certs: [abc]\n}\n",
            "nats.conf:3:3: \"pinned_certs\" is not supported yet",
        ),
        ("tls: true\n", "nats.conf:1:6: \"tls\" must be a map, got a boolean"),
    ];
    for (text, expected) in cases {
        let error = load_error(text);
        assert!(error.starts_with(expected), "{text:?}: {error}");
    }
}

#[test]
fn a_websocket_block_becomes_websocket_options() {
    let options = load(&format!(
        "websocket {{\n  listen: \"127.0.0.1:8443\"\n  tls {{ {CERTIFICATE} }}\n  same_origin: true\n  allowed_origins: [\"https://app.example\"]\n  compression: true\n  handshake_timeout: \"5s\"\n  token_cookie: tok\n  headers {{ X-Served-By: tern }}\n  authorization {{ token: secret, timeout: 3 }}\n}}\n"
    ));
    let websocket = options.websocket.unwrap();
    assert_eq!(websocket.listen.host, "127.0.0.1");
    assert_eq!(websocket.listen.port, Some(8443));
    assert!(websocket.tls.is_some() && !websocket.no_tls);
    assert!(websocket.same_origin && websocket.compression);
    assert_eq!(websocket.allowed_origins, vec!["https://app.example"]);
    assert_eq!(websocket.handshake_timeout, Duration::from_secs(5));
    assert_eq!(websocket.token_cookie.as_deref(), Some("tok"));
    assert_eq!(
        websocket.headers,
        vec![("X-Served-By".to_string(), "tern".to_string())]
    );
    let authorization = websocket.authorization.unwrap();
    assert_eq!(authorization.token.as_deref(), Some("secret"));
    assert_eq!(authorization.timeout, Some(Duration::from_secs(3)));
}

#[test]
fn websocket_ports_follow_nats_server() {
    let options = load("ws { port: -1, no_tls: true }\n");
    assert_eq!(options.websocket.unwrap().listen.port, None);
    assert!(load("websocket { no_tls: true }\n").websocket.is_none());
    assert!(load("websocket { port: 0 }\n").websocket.is_none());
}

#[test]
fn websocket_errors_point_at_the_value() {
    let cases = [
        (
            "websocket {\n  port: 8080\n}\n",
            "nats.conf:1:11: websocket requires TLS configuration (a tls block, or no_tls: true)",
        ),
        (
            "websocket {\n  port: 8080, no_tls: true\n  allowed_origins: [\"app.example\"]\n}\n",
            "nats.conf:3:21: unable to parse allowed origin \"app.example\"",
        ),
        (
            "websocket {\n  port: 8080, no_tls: true\n  jwt_cookie: jwt\n}\n",
            "nats.conf:3:3: \"jwt_cookie\" is not supported yet",
        ),
        (
            "websocket {\n  port: 8080, no_tls: true\n  tls { verify: true }\n}\n",
            "nats.conf:3:7: TLS for a server requires 'cert_file' and 'key_file'",
        ),
        (
            "websocket {\n  port: 70000, no_tls: true\n}\n",
            "nats.conf:1:11: websocket port must be between 0 and 65535",
        ),
    ];
    for (text, expected) in cases {
        let error = load_error(text);
        assert!(error.starts_with(expected), "{text:?}: {error}");
    }
}

fn run(arguments: &[&str]) -> Result<ServerOptions, String> {
    let arguments: Vec<String> = arguments.iter().map(|text| text.to_string()).collect();
    match parse_command_line(&arguments).map_err(|error| error.to_string())? {
        Command::Run(flags) => {
            let mut options = ServerOptions {
                tls: Some(TlsOptions {
                    cert_file: Some("file.pem".into()),
                    key_file: Some("file-key.pem".into()),
                    timeout: Duration::from_secs(9),
                    ..TlsOptions::default()
                }),
                ..ServerOptions::default()
            };
            apply_flags(&mut options, &flags);
            Ok(options)
        }
        other => panic!("expected run, got {other:?}"),
    }
}

#[test]
fn tls_flags_replace_the_config_files_tls() {
    let options = run(&[
        "--tlscert",
        "cert.pem",
        "--tlskey",
        "key.pem",
        "--tlscacert",
        "ca.pem",
        "--tlsverify",
    ])
    .unwrap();
    let tls = options.tls.unwrap();
    assert_eq!(tls.cert_file, Some(PathBuf::from("cert.pem")));
    assert_eq!(tls.ca_file, Some(PathBuf::from("ca.pem")));
    assert!(tls.verify);
    assert_eq!(
        tls.timeout,
        Duration::from_secs(2),
        "the file's block is replaced"
    );
    assert!(run(&["--tls=false", "--tlscert", "c.pem"])
        .unwrap()
        .tls
        .is_none());
    assert!(
        run(&[]).unwrap().tls.is_some(),
        "no flag keeps the file's block"
    );
    assert_eq!(
        run(&["--tls"]).unwrap_err(),
        "TLS Server certificate must be present and valid"
    );
    assert_eq!(
        run(&["--tlscert", "c.pem"]).unwrap_err(),
        "TLS Server private key must be present and valid"
    );
}
