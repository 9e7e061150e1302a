#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use crate::config::value::DateTime;

fn parse(text: &str) -> Map {
    parse_with(text, &MemorySources::new())
}

fn parse_with(text: &str, sources: &MemorySources) -> Map {
    parse_str(text, Path::new("main.conf"), sources)
        .unwrap_or_else(|error| panic!("parse failed: {error}"))
}

fn parse_error(text: &str) -> String {
    parse_error_with(text, &MemorySources::new())
}

fn parse_error_with(text: &str, sources: &MemorySources) -> String {
    match parse_str(text, Path::new("main.conf"), sources) {
        Ok(map) => panic!("expected an error, parsed {map:?}"),
        Err(error) => error.to_string(),
    }
}

fn kind<'m>(map: &'m Map, key: &str) -> &'m ValueKind {
    &map.get(key)
        .unwrap_or_else(|| panic!("no key {key:?} in {map:?}"))
        .value
        .kind
}

fn string(map: &Map, key: &str) -> String {
    match kind(map, key) {
        ValueKind::String(text) => text.clone(),
        other => panic!("{key}: expected a string, got {other:?}"),
    }
}

fn integer(map: &Map, key: &str) -> i64 {
    match kind(map, key) {
        ValueKind::Integer(number) => *number,
        other => panic!("{key}: expected an integer, got {other:?}"),
    }
}

fn submap<'m>(map: &'m Map, key: &str) -> &'m Map {
    match kind(map, key) {
        ValueKind::Map(inner) => inner,
        other => panic!("{key}: expected a map, got {other:?}"),
    }
}

fn array<'m>(map: &'m Map, key: &str) -> &'m [Value] {
    match kind(map, key) {
        ValueKind::Array(items) => items,
        other => panic!("{key}: expected an array, got {other:?}"),
    }
}

#[test]
fn keys_and_values_may_be_separated_by_equals_colon_or_whitespace() {
    let map = parse("a = 1\nb: 2\nc 3\nd=4\ne:5\n");
    for (key, expected) in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)] {
        assert_eq!(integer(&map, key), expected);
    }
}

#[test]
fn entries_may_end_with_semicolons_or_commas() {
    let map = parse("a: 1; b: 2, c: 3;\nd: x;");
    assert_eq!(integer(&map, "a"), 1);
    assert_eq!(integer(&map, "b"), 2);
    assert_eq!(integer(&map, "c"), 3);
    assert_eq!(string(&map, "d"), "x");
}

#[test]
fn quoted_keys_keep_their_text() {
    let map = parse("\"my key\" = 1\n'other-1.2' : 2\n");
    assert_eq!(integer(&map, "my key"), 1);
    assert_eq!(integer(&map, "other-1.2"), 2);
}

#[test]
fn keys_keep_their_case() {
    let map = parse("Port: 1\nport: 2\n");
    assert_eq!(integer(&map, "Port"), 1);
    assert_eq!(integer(&map, "port"), 2);
}

#[test]
fn maps_nest_with_or_without_separator() {
    let map = parse(
        "authorization {\n  user: a\n  nested = { deep: true }\n}\nother: { x: 1 }\ncompact{y: 2}\n",
    );
    let authorization = submap(&map, "authorization");
    assert_eq!(string(authorization, "user"), "a");
    assert_eq!(
        kind(submap(authorization, "nested"), "deep"),
        &ValueKind::Bool(true)
    );
    assert_eq!(integer(submap(&map, "other"), "x"), 1);
    assert_eq!(integer(submap(&map, "compact"), "y"), 2);
}

#[test]
fn a_map_may_open_on_the_next_line() {
    let map = parse("authorization\n{\n  user: a\n}\n");
    assert_eq!(string(submap(&map, "authorization"), "user"), "a");
}

#[test]
fn map_entries_may_be_separated_by_commas_semicolons_or_new_lines() {
    let map = parse("m { a: 1, b: 2; c: 3\n d: 4, }\n");
    let inner = submap(&map, "m");
    assert_eq!(inner.len(), 4);
    assert_eq!(integer(inner, "d"), 4);
}

#[test]
fn arrays_take_commas_new_lines_comments_and_a_trailing_comma() {
    let map =
        parse("a: [1, 2, 3]\nb: [\n  \"x\" # first\n  'y', // second\n  z\n]\nc: [1, 2,]\nd: []\n");
    assert_eq!(array(&map, "a").len(), 3);
    let b: Vec<&ValueKind> = array(&map, "b").iter().map(|value| &value.kind).collect();
    assert_eq!(
        b,
        [
            &ValueKind::String("x".into()),
            &ValueKind::String("y".into()),
            &ValueKind::String("z".into())
        ]
    );
    assert_eq!(array(&map, "c").len(), 2);
    assert!(array(&map, "d").is_empty());
}

#[test]
fn arrays_hold_maps_and_arrays() {
    let map = parse("users: [ {user: a, password: b}, {user: c} ]\nnested: [[1], [2, 3]]\n");
    let users = array(&map, "users");
    let ValueKind::Map(first) = &users[0].kind else {
        panic!("expected a map")
    };
    assert_eq!(string(first, "password"), "b");
    assert_eq!(array(&map, "nested").len(), 2);
}

#[test]
fn comments_are_ignored_everywhere() {
    let map = parse(
        "# leading\n// slashes\na: 1 # after value\nb: 2 // after value\nm {\n  # inside\n  c: 3 # here\n}\n",
    );
    assert_eq!(integer(&map, "a"), 1);
    assert_eq!(integer(&map, "b"), 2);
    assert_eq!(integer(submap(&map, "m"), "c"), 3);
}

#[test]
fn all_scalar_forms_parse() {
    let map = parse(concat!(
        "bare: hello\n",
        "double: \"a\\tb\"\n",
        "single: 'a\\tb'\n",
        "block: (\nline one\nline two\n)\n",
        "yes_bool: YES\n",
        "off_bool: off\n",
        "size: 64MB\n",
        "float: 2.5\n",
        "when: 2024-05-06T07:08:09Z\n",
        "address: 127.0.0.1:4222\n",
    ));
    assert_eq!(string(&map, "bare"), "hello");
    assert_eq!(string(&map, "double"), "a\tb");
    assert_eq!(string(&map, "single"), "a\\tb");
    assert_eq!(string(&map, "block"), "\nline one\nline two\n");
    assert_eq!(kind(&map, "yes_bool"), &ValueKind::Bool(true));
    assert_eq!(kind(&map, "off_bool"), &ValueKind::Bool(false));
    assert_eq!(integer(&map, "size"), 64 << 20);
    assert_eq!(kind(&map, "float"), &ValueKind::Float(2.5));
    assert_eq!(
        kind(&map, "when"),
        &ValueKind::DateTime(DateTime::parse("2024-05-06T07:08:09Z").unwrap())
    );
    assert_eq!(string(&map, "address"), "127.0.0.1:4222");
}

#[test]
fn values_and_keys_carry_their_positions() {
    let map = parse("a: 1\n  m {\n    b:   \"x\"\n  }\n");
    let entry = map.get("a").unwrap();
    assert_eq!(entry.key_position.to_string(), "main.conf:1:1");
    assert_eq!(entry.value.position.to_string(), "main.conf:1:4");
    let inner = map.get("m").unwrap();
    assert_eq!(inner.key_position.to_string(), "main.conf:2:3");
    let b = submap(&map, "m").get("b").unwrap();
    assert_eq!(b.key_position.to_string(), "main.conf:3:5");
    assert_eq!(b.value.position.to_string(), "main.conf:3:10");
}

#[test]
fn a_repeated_key_keeps_the_last_value() {
    let map = parse("x: 1\nx: 2\n");
    assert_eq!(map.len(), 1);
    assert_eq!(integer(&map, "x"), 2);
}

#[test]
fn a_file_may_be_wrapped_in_braces() {
    let map = parse("{\n  port: 4222\n  debug: true\n}\n");
    assert_eq!(integer(&map, "port"), 4222);
}

#[test]
fn json_files_parse() {
    let map = parse(
        r#"{"port": 4222, "debug": true, "server_name": "a\u0062c",
            "authorization": {"users": [{"user": "a", "password": "b"}]},
            "ratio": 0.5, "list": [1, 2, 3]}"#,
    );
    assert_eq!(integer(&map, "port"), 4222);
    assert_eq!(string(&map, "server_name"), "abc");
    assert_eq!(array(submap(&map, "authorization"), "users").len(), 1);
    assert_eq!(array(&map, "list").len(), 3);
}

#[test]
fn variables_resolve_to_earlier_keys() {
    let map = parse("PORT = 4222\nport: $PORT\n");
    assert_eq!(integer(&map, "port"), 4222);
    assert!(map.get("PORT").unwrap().used_as_variable);
    assert!(!map.get("port").unwrap().used_as_variable);
}

#[test]
fn variables_take_the_position_of_the_reference() {
    let map = parse("PORT = 4222\n\nport:   $PORT\n");
    assert_eq!(
        map.get("port").unwrap().value.position.to_string(),
        "main.conf:3:9"
    );
}

#[test]
fn variables_resolve_innermost_scope_first() {
    let map = parse("x: outer\nm {\n  x: inner\n  a: $x\n  n { b: $x }\n}\nc: $x\n");
    let inner = submap(&map, "m");
    assert_eq!(string(inner, "a"), "inner");
    assert_eq!(string(submap(inner, "n"), "b"), "inner");
    assert_eq!(string(&map, "c"), "outer");
}

#[test]
fn variables_inside_arrays_see_enclosing_maps() {
    let map = parse("pw: secret\nusers: [ {user: a, password: $pw}, $pw ]\n");
    let users = array(&map, "users");
    let ValueKind::Map(first) = &users[0].kind else {
        panic!("expected a map")
    };
    assert_eq!(string(first, "password"), "secret");
    assert_eq!(users[1].kind, ValueKind::String("secret".into()));
}

#[test]
fn variables_can_hold_maps_and_arrays() {
    let map = parse("common { a: 1 }\nlist: [1, 2]\nx: $common\ny: $list\n");
    assert_eq!(integer(submap(&map, "x"), "a"), 1);
    assert_eq!(array(&map, "y").len(), 2);
}

#[test]
fn variables_fall_back_to_environment_values_parsed_as_config() {
    let sources = MemorySources::new()
        .with_environment_variable("PORT", "4333")
        .with_environment_variable("NAME", "\"quoted name\"")
        .with_environment_variable("USERS", "[{user: a}]")
        .with_environment_variable("EMPTY", "");
    let map = parse_with(
        "port: $PORT\nname: $NAME\nusers: $USERS\nempty: $EMPTY\n",
        &sources,
    );
    assert_eq!(integer(&map, "port"), 4333);
    assert_eq!(string(&map, "name"), "quoted name");
    let users = array(&map, "users");
    assert_eq!(users[0].position.to_string(), "main.conf:3:8");
    assert_eq!(string(&map, "empty"), "");
}

#[test]
fn config_keys_shadow_environment_variables() {
    let sources = MemorySources::new().with_environment_variable("PORT", "1");
    let map = parse_with("PORT: 2\nport: $PORT\n", &sources);
    assert_eq!(integer(&map, "port"), 2);
}

#[test]
fn environment_values_may_refer_to_other_environment_variables() {
    let sources = MemorySources::new()
        .with_environment_variable("A", "$B")
        .with_environment_variable("B", "42");
    assert_eq!(integer(&parse_with("x: $A\n", &sources), "x"), 42);
}

#[test]
fn environment_variable_cycles_are_errors() {
    let sources = MemorySources::new()
        .with_environment_variable("A", "$B")
        .with_environment_variable("B", "$A");
    assert_eq!(
        parse_error_with("x: $A\n", &sources),
        "$B:1:1: variable reference cycle: $A -> $B -> $A"
    );
    let sources = MemorySources::new().with_environment_variable("SELF", "$SELF");
    assert_eq!(
        parse_error_with("x: $SELF\n", &sources),
        "$SELF:1:1: variable reference cycle: $SELF -> $SELF"
    );
}

#[test]
fn long_environment_chains_hit_the_depth_limit() {
    let mut sources = MemorySources::new();
    for index in 0..=MAX_VARIABLE_DEPTH {
        sources =
            sources.with_environment_variable(format!("V{index}"), format!("$V{}", index + 1));
    }
    let error = parse_error_with("x: $V0\n", &sources);
    assert!(error.contains("more than 10 levels deep"), "{error}");
}

#[test]
fn unparsable_environment_values_name_the_reference() {
    let sources = MemorySources::new().with_environment_variable("BAD", "a b");
    assert_eq!(
        parse_error_with("\nx: $BAD\n", &sources),
        "main.conf:2:4: environment variable \"BAD\" could not be parsed as a config value: \
         $BAD:1:3: expected end of value but found 'b'"
    );
}

#[test]
fn undefined_variables_are_errors_at_the_reference() {
    assert_eq!(
        parse_error("a: 1\nport: $NOPE\n"),
        "main.conf:2:7: variable reference for \"NOPE\" can not be found: no earlier key and \
         no environment variable has that name"
    );
}

#[test]
fn later_keys_are_not_visible_to_earlier_references() {
    let error = parse_error("a: $b\nb: 1\n");
    assert!(
        error.starts_with("main.conf:1:4: variable reference for \"b\""),
        "{error}"
    );
}

#[test]
fn unquoted_bcrypt_hashes_are_not_variables() {
    let map = parse("password: $2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG\n");
    assert!(string(&map, "password").starts_with("$2a$11$"));
}

#[test]
fn include_merges_keys_at_that_point_relative_to_the_including_file() {
    let sources = MemorySources::new()
        .with_file("conf/auth.conf", "authorization { user: a }\nport: 5000\n")
        .with_file("conf/sub/more.conf", "include ../leaf.conf\n")
        .with_file("conf/leaf.conf", "leaf_value: 7\n");
    let text =
        "port: 4000\ninclude ./auth.conf\nmap {\n  include 'sub/more.conf'\n}\nafter: $port\n";
    let map = parse_str(text, Path::new("conf/main.conf"), &sources).unwrap();
    assert_eq!(integer(&map, "port"), 5000);
    assert_eq!(integer(&map, "after"), 5000);
    assert_eq!(string(submap(&map, "authorization"), "user"), "a");
    let nested = submap(&map, "map").get("leaf_value").unwrap();
    assert_eq!(nested.key_position.to_string(), "conf/leaf.conf:1:1");
}

#[test]
fn included_files_do_not_see_the_includers_keys() {
    let sources = MemorySources::new().with_file("inner.conf", "x: $outer\n");
    let error = parse_error_with("outer: 1\ninclude inner.conf\n", &sources);
    assert!(
        error.starts_with("inner.conf:1:4: variable reference for \"outer\""),
        "{error}"
    );
}

#[test]
fn include_keyword_is_case_insensitive_and_only_a_keyword_before_whitespace() {
    let sources = MemorySources::new().with_file("a.conf", "x: 1\n");
    let map = parse_with("INCLUDE a.conf\ninclude: 3\n", &sources);
    assert_eq!(integer(&map, "x"), 1);
    assert_eq!(integer(&map, "include"), 3);
}

#[test]
fn missing_include_names_the_include_position() {
    assert_eq!(
        parse_error("a: 1\ninclude ./missing.conf\n"),
        "main.conf:2:9: error reading include file missing.conf: no such file or directory"
    );
}

#[test]
fn include_cycles_are_errors() {
    let sources = MemorySources::new()
        .with_file("a.conf", "include b.conf\n")
        .with_file("b.conf", "include ./a.conf\n");
    assert_eq!(
        parse_error_with("include a.conf\n", &sources),
        "b.conf:1:9: include cycle: main.conf -> a.conf -> b.conf -> a.conf"
    );
}

#[test]
fn include_depth_is_bounded() {
    let mut sources = MemorySources::new();
    for index in 0..=MAX_INCLUDE_DEPTH + 1 {
        sources = sources.with_file(
            format!("f{index}.conf"),
            format!("include f{}.conf\n", index + 1),
        );
    }
    let error = parse_error_with("include f0.conf\n", &sources);
    assert!(
        error.contains("includes nest deeper than 10 files"),
        "{error}"
    );
}

#[test]
fn nesting_depth_is_bounded() {
    let text = format!(
        "a: {}{}\n",
        "[".repeat(MAX_NESTING_DEPTH + 1),
        "]".repeat(MAX_NESTING_DEPTH + 1)
    );
    let error = parse_error(&text);
    assert!(error.contains("nest deeper than 64 levels"), "{error}");
}

#[test]
fn variables_that_double_a_value_hit_the_expansion_limit() {
    let mut text = String::from("a0: [1, 2]\n");
    for index in 1..40 {
        text.push_str(&format!(
            "a{index}: [$a{previous}, $a{previous}]\n",
            previous = index - 1
        ));
    }
    let error = parse_error(&text);
    assert!(
        error.contains("copy more than 100000 values in all"),
        "{error}"
    );
}

#[test]
fn oversized_files_are_refused() {
    let sources = MemorySources::new().with_file("big.conf", "a".repeat(MAX_FILE_SIZE + 1));
    let error = parse_file(Path::new("big.conf"), &sources).unwrap_err();
    assert_eq!(
        error.to_string(),
        "big.conf: file is larger than 4194304 bytes"
    );
}

#[test]
fn a_missing_top_level_file_is_a_read_error() {
    let error = parse_file(Path::new("nope.conf"), &MemorySources::new()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "error reading config file nope.conf: no such file or directory"
    );
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let cases = [
        ("a: 1\nb: [1, 2\n", "main.conf:2:4: array is never closed: expected ']' before end of file"),
        ("a: [1,,2]\n", "main.conf:1:7: expected an array value but found ','"),
        ("a: [1 2]\n", "main.conf:1:7: expected ',' or ']' after an array value but found '2'"),
        ("m {\n  a: 1\n", "main.conf:1:3: map is never closed: expected '}' before end of file"),
        ("port: 4222 server_name: x\n", "main.conf:1:12: expected a new line, ',' or ';' after the value but found 's'"),
        ("a: \"x\" y\n", "main.conf:1:8: expected a new line, ',' or ';' after the value but found 'y'"),
        ("a:\nb: 1\n", "main.conf:1:3: expected a value but found a new line"),
        ("a\n", "main.conf:2:1: expected a value but found end of file"),
        ("  = 1\n", "main.conf:1:3: unexpected key separator '=' where a key was expected"),
        ("}\n", "main.conf:1:1: expected a key but found '}'"),
        ("{ a: 1 } b\n", "main.conf:1:10: expected end of file after the closing '}' but found 'b'"),
        ("log_file: ./nats.log\n", "main.conf:1:11: unexpected '.' at the start of a value: floats must start with a digit, and strings that start with '.' must be quoted"),
        ("a = foo\nb = \"abc\\q\"\n", "main.conf:2:10: invalid escape 'q' after '\\' (allowed: \\t \\n \\r \\\" \\\\ \\xHH \\uHHHH \\/)"),
        ("include\n", "main.conf:1:8: expected an include path but found a new line"),
        ("m { a: 1 ] }\n", "main.conf:1:10: expected a new line, ',' or ';' after the value but found ']'"),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_error(text), expected, "{text:?}");
    }
}

#[test]
fn lexer_errors_inside_includes_name_the_included_file() {
    let sources = MemorySources::new().with_file("dir/inc.conf", "\n\n  x: -y\n");
    let error = parse_str("include inc.conf\n", Path::new("dir/main.conf"), &sources)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "dir/inc.conf:3:6: expected a digit after '-' in '-y'"
    );
}

#[test]
fn crlf_line_endings_parse() {
    let map = parse("a: 1\r\nb: \"x\"\r\nm {\r\n  c: 2\r\n}\r\n");
    assert_eq!(integer(&map, "a"), 1);
    assert_eq!(integer(submap(&map, "m"), "c"), 2);
}

#[test]
fn empty_and_comment_only_files_are_empty_maps() {
    assert!(parse("").is_empty());
    assert!(parse("# nothing here\n\n").is_empty());
    assert!(parse("{}").is_empty());
}

#[test]
fn join_clean_removes_dot_components() {
    assert_eq!(
        join_clean(Path::new("a/b"), Path::new("./c.conf")),
        PathBuf::from("a/b/c.conf")
    );
    assert_eq!(
        join_clean(Path::new("a/b"), Path::new("../c.conf")),
        PathBuf::from("a/c.conf")
    );
    assert_eq!(
        join_clean(Path::new(""), Path::new("../c.conf")),
        PathBuf::from("../c.conf")
    );
    assert_eq!(
        join_clean(Path::new("a"), Path::new("/etc/c.conf")),
        PathBuf::from("/etc/c.conf")
    );
}
