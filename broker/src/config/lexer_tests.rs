#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;

fn lexer(text: &str) -> Lexer<'_> {
    Lexer::new(text, Arc::from("test.conf"))
}

fn scalar(text: &str) -> Scalar {
    lexer(text).scan_scalar().unwrap()
}

fn scalar_error(text: &str) -> String {
    lexer(text).scan_scalar().unwrap_err().to_string()
}

#[test]
fn integers_apply_decimal_and_binary_size_suffixes() {
    let cases = [
        ("42", 42),
        ("-7", -7),
        ("1k", 1000),
        ("1K", 1000),
        ("2kb", 2048),
        ("2KiB", 2048),
        ("2ki", 2048),
        ("3m", 3_000_000),
        ("3MB", 3 << 20),
        ("3mi", 3 << 20),
        ("3mib", 3 << 20),
        ("1g", 1_000_000_000),
        ("1gb", 1 << 30),
        ("1t", 1_000_000_000_000),
        ("1tib", 1 << 40),
        ("1p", 1_000_000_000_000_000),
        ("1pb", 1 << 50),
        ("1e", 1_000_000_000_000_000_000),
        ("1eb", 1 << 60),
        ("-1k", -1000),
    ];
    for (text, expected) in cases {
        assert_eq!(scalar(text), Scalar::Integer(expected), "{text}");
    }
}

#[test]
fn integer_overflow_is_an_error() {
    assert_eq!(
        scalar_error("99999999999999999999"),
        "test.conf:1:1: integer '99999999999999999999' is out of range"
    );
    assert_eq!(
        scalar_error("9223372036854775807k"),
        "test.conf:1:1: integer '9223372036854775807k' is out of range"
    );
}

#[test]
fn floats_need_digits_on_both_sides_of_the_point() {
    assert_eq!(scalar("1.5"), Scalar::Float(1.5));
    assert_eq!(scalar("-0.25"), Scalar::Float(-0.25));
    assert_eq!(
        scalar_error("1."),
        "test.conf:1:1: floats must have a digit after the '.' in '1.'"
    );
    assert!(scalar_error(".5").contains("floats must start with a digit"));
}

#[test]
fn digit_led_runs_that_are_not_numbers_are_strings() {
    let cases = [
        "127.0.0.1:4222",
        "127.0.0.1",
        "10s",
        "1kx",
        "1.5s",
        "4222abc",
    ];
    for text in cases {
        assert_eq!(scalar(text), Scalar::String(text.to_string()), "{text}");
    }
}

#[test]
fn negative_runs_must_be_numbers() {
    assert_eq!(
        scalar_error("-x"),
        "test.conf:1:1: expected a digit after '-' in '-x'"
    );
    assert_eq!(scalar_error("-1x"), "test.conf:1:1: invalid number '-1x'");
}

#[test]
fn datetimes_must_be_full_zulu_form() {
    assert_eq!(
        scalar("2023-01-02T03:04:05Z"),
        Scalar::DateTime(DateTime {
            year: 2023,
            month: 1,
            day: 2,
            hour: 3,
            minute: 4,
            second: 5
        })
    );
    assert!(scalar_error("12-34").contains("expected full Zulu form"));
    assert!(scalar_error("2023-13-01T00:00:00Z").contains("invalid datetime"));
}

#[test]
fn booleans_are_case_insensitive_words() {
    for text in ["true", "TRUE", "yes", "Yes", "on", "ON"] {
        assert_eq!(scalar(text), Scalar::Bool(true), "{text}");
    }
    for text in ["false", "False", "no", "NO", "off", "Off"] {
        assert_eq!(scalar(text), Scalar::Bool(false), "{text}");
    }
    assert_eq!(scalar("\"true\""), Scalar::String("true".into()));
}

#[test]
fn bare_strings_end_at_value_terminators() {
    for text in ["abc def", "abc,", "abc;", "abc]", "abc}", "abc\n", "abc\t"] {
        assert_eq!(scalar(text), Scalar::String("abc".into()), "{text:?}");
    }
    assert_eq!(scalar("foo#bar"), Scalar::String("foo#bar".into()));
}

#[test]
fn double_quoted_strings_process_escapes() {
    assert_eq!(
        scalar(r#""a\tb\nc\rd\"e\\f\x41""#),
        Scalar::String("a\tb\nc\rd\"e\\fA".into())
    );
    assert_eq!(scalar(r#""\xc3\xa9""#), Scalar::String("é".into()));
    assert_eq!(scalar(r#""\u00e9\/""#), Scalar::String("é/".into()));
    assert_eq!(scalar(r#""\ud83d\ude00""#), Scalar::String("😀".into()));
    assert_eq!(scalar("\"a\nb\""), Scalar::String("a\nb".into()));
}

#[test]
fn bare_strings_process_escapes_too() {
    assert_eq!(scalar(r"x\ty"), Scalar::String("x\ty".into()));
    assert_eq!(scalar(r"tr\x75e"), Scalar::String("true".into()));
}

#[test]
fn invalid_escapes_name_their_position() {
    assert_eq!(
        scalar_error(r#""abc\q""#),
        r#"test.conf:1:6: invalid escape 'q' after '\' (allowed: \t \n \r \" \\ \xHH \uHHHH \/)"#
    );
    assert_eq!(
        scalar_error(r#""\xZZ""#),
        "test.conf:1:3: expected 2 hexadecimal digits in escape but found 'Z'"
    );
    assert_eq!(
        scalar_error(r#""\xff""#),
        "test.conf:1:1: string escapes do not form valid UTF-8"
    );
}

#[test]
fn single_quoted_strings_are_raw() {
    assert_eq!(
        scalar(r"'C:\path\to\$x'"),
        Scalar::String(r"C:\path\to\$x".into())
    );
    assert_eq!(scalar_error("'abc"), "test.conf:1:1: unterminated string");
    assert_eq!(scalar_error("\"abc"), "test.conf:1:1: unterminated string");
}

#[test]
fn block_strings_end_with_a_parenthesis_alone_on_a_line() {
    assert_eq!(
        scalar("(\n  12(34)56\n  (\n    7890\n  )\n)\nnext"),
        Scalar::String("\n  12(34)56\n  (\n    7890\n  )\n".into())
    );
    assert_eq!(scalar("(\nabc\n)"), Scalar::String("\nabc\n".into()));
    assert_eq!(
        scalar_error("(\nabc\n  )\n"),
        "test.conf:1:1: unterminated block string: a block ends with ')' alone on a line"
    );
}

#[test]
fn dollar_words_are_variables_except_bcrypt_hashes() {
    assert_eq!(scalar("$PORT"), Scalar::Variable("PORT".into()));
    let hash = "$2a$11$W2zko751KUvVy59mUTWmpOdWjpEm5qhcCZRd05GjI/sSOT.xtiHyG";
    assert_eq!(scalar(hash), Scalar::String(hash.into()));
    assert_eq!(scalar("'$PORT'"), Scalar::String("$PORT".into()));
    assert_eq!(
        scalar_error("$ "),
        "test.conf:1:1: '$' must be followed by a variable name"
    );
}

#[test]
fn missing_values_are_reported_at_their_position() {
    assert_eq!(
        scalar_error("\n"),
        "test.conf:1:1: expected a value but found a new line"
    );
    assert_eq!(
        scalar_error(""),
        "test.conf:1:1: expected a value but found end of file"
    );
    assert_eq!(
        scalar_error("}"),
        "test.conf:1:1: expected a value but found '}'"
    );
}

#[test]
fn keys_may_be_bare_or_quoted() {
    let key = lexer("port: 1").scan_key().unwrap();
    assert_eq!((key.text.as_str(), key.quoted), ("port", false));
    let key = lexer("\"my key\" = 1").scan_key().unwrap();
    assert_eq!((key.text.as_str(), key.quoted), ("my key", true));
    let key = lexer("'bar-1.2.3' = 1").scan_key().unwrap();
    assert_eq!(key.text, "bar-1.2.3");
    let key = lexer("authorization{").scan_key().unwrap();
    assert_eq!(key.text, "authorization");
    assert_eq!(
        lexer("= 1").scan_key().unwrap_err().to_string(),
        "test.conf:1:1: unexpected key separator '=' where a key was expected"
    );
}

#[test]
fn positions_count_lines_and_columns_from_one() {
    let mut lexer = lexer("a\n  bc");
    lexer.skip_trivia();
    lexer.bump();
    lexer.skip_trivia();
    assert_eq!((lexer.position().line, lexer.position().column), (2, 3));
}

#[test]
fn comments_run_to_the_end_of_the_line() {
    let mut lexer = lexer("# one\n// two\n  key");
    lexer.skip_trivia();
    assert_eq!(lexer.scan_key().unwrap().position.line, 3);
}

#[test]
fn include_paths_may_be_quoted_or_bare() {
    assert_eq!(
        lexer(" ./a.conf\n").scan_include_path().unwrap().0,
        "./a.conf"
    );
    assert_eq!(
        lexer(" 'my dir/a.conf'").scan_include_path().unwrap().0,
        "my dir/a.conf"
    );
    assert_eq!(
        lexer(" \"b.conf\"").scan_include_path().unwrap().0,
        "b.conf"
    );
    assert_eq!(
        lexer(" [a]").scan_include_path().unwrap_err().to_string(),
        "test.conf:1:2: expected an include path but found '['"
    );
}
