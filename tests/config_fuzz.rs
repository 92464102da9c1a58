//! Fuzzing of the configuration parser: whatever the text, `Config::parse`
//! returns (no panic, no stack overflow, no hang) and every error it gives
//! is an `Error::Config` with a line and column in the file.
//!
//! The inputs are built from TOML fragments that matter to polyrouter
//! (tables, dotted keys, strings of every kind, `${…}` expressions, deep
//! nesting, durations, unicode, stray bytes) and from mutations of a valid
//! configuration. A run is bounded: 2 000 cases per property by default
//! (a few seconds); `PROPTEST_CASES` raises it for a longer run.

use polyrouter::Error;
use polyrouter::config::Config;
use proptest::prelude::*;

/// A valid configuration to mutate.
const VALID: &str = r#"[router]
page_size = 50

[stores.main]
kind = "memory"

[stores.db]
kind = "sqlite"
url = "${DB_URL:-sqlite::memory:}"
busy_timeout = "250ms"

[entities.user]
store = "main"
ttl = "1h30m"
cache = { store = "db", ttl = "30s", negative_ttl = "1s" }
consistency = { bounded_staleness = "5s" }

[entities.order]
store = "db"
table = "orders"

[graphs.social]
store = "db"

[timeseries.metrics]
store = "db"
fields = ["temperature"]
retention = "7d"
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "SET" => Some("memory".into()),
        "QUOTE" => Some("a\"b\\c\n}${SET}".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Parses and checks the outcome: `Ok`, or a located config error.
fn parse_is_located(text: &str) -> Result<(), TestCaseError> {
    match Config::parse_with_env(text, "fuzz.toml", &env) {
        Ok(_) => Ok(()),
        Err(Error::Config {
            line, column, file, ..
        }) => {
            prop_assert_eq!(file.as_str(), "fuzz.toml");
            prop_assert!(
                line >= 1 && column >= 1,
                "an unlocated error ({}:{}) for:\n{}",
                line,
                column,
                text
            );
            let lines = text.split('\n').count();
            prop_assert!(
                line <= lines,
                "line {} of a {}-line text:\n{}",
                line,
                lines,
                text
            );
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "not a config error: {other:?} for:\n{text}"
        ))),
    }
}

/// One fragment of TOML text.
fn fragment() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("stores".to_string()),
        Just("entities".to_string()),
        Just("router".to_string()),
        Just("views".to_string()),
        Just("graphs".to_string()),
        Just("timeseries".to_string()),
        Just("kind".to_string()),
        Just("store".to_string()),
        Just("ttl".to_string()),
        Just("cache".to_string()),
        Just("url".to_string()),
        Just("\"quoted.key\"".to_string()),
        Just("'lit'".to_string()),
        "[a-z_]{1,6}",
    ];
    let value = prop_oneof![
        Just("\"memory\"".to_string()),
        Just("\"sqlite\"".to_string()),
        Just("\"${SET}\"".to_string()),
        Just("\"${NOPE}\"".to_string()),
        Just("\"${NOPE:-memory}\"".to_string()),
        Just("\"${QUOTE}\"".to_string()),
        Just("\"${X".to_string()),
        Just("\"$${X}\"".to_string()),
        Just("\"\"\"\n${SET:-a\n}\"\"\"".to_string()),
        Just("'''${SET}'''".to_string()),
        Just("\"18446744073709551615s\"".to_string()),
        Just("\"36501d\"".to_string()),
        Just("\"1h30m\"".to_string()),
        Just("\"0s\"".to_string()),
        Just("{ store = \"main\", ttl = \"1h\" }".to_string()),
        Just("[1, [2, [3]]]".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("-0x7f".to_string()),
        Just("inf".to_string()),
        "-?[0-9]{1,25}",
        "\"[^\"\\\\\n]{0,12}\"",
        (1usize..200).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        (1usize..200).prop_map(|n| format!("{}1{}", "{a = ".repeat(n), "}".repeat(n))),
    ];
    prop_oneof![
        (prop::collection::vec(key.clone(), 1..6)).prop_map(|k| format!("\n[{}]\n", k.join("."))),
        (prop::collection::vec(key.clone(), 1..4)).prop_map(|k| format!("\n[[{}]]\n", k.join("."))),
        (prop::collection::vec(key.clone(), 1..4), value.clone())
            .prop_map(|(k, v)| format!("\n{} = {v}\n", k.join("."))),
        (1usize..2000).prop_map(|n| format!("\n[{}]\n", vec!["a"; n].join("."))),
        (1usize..2000).prop_map(|n| format!("\n{} = 1\n", vec!["a"; n].join("."))),
        Just("\n# ${NOPE} comment\n".to_string()),
        Just("\n[stores.m]\nkind = \"memory\"\n".to_string()),
        Just("\n[entities.e]\nstore = \"m\"\n".to_string()),
        "[\\PC\n\"'\\[\\]{}=.,#$\\\\]{0,20}",
        prop::collection::vec(any::<char>(), 0..8).prop_map(|c| c.into_iter().collect()),
        value,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_sequence_of_fragments_parses_or_is_located(parts in prop::collection::vec(fragment(), 0..24)) {
        parse_is_located(&parts.concat())?;
    }

    #[test]
    fn any_mutation_of_a_valid_file_parses_or_is_located(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, fragment()), 1..6)
    ) {
        let mut text = VALID.to_string();
        for (at, op, insert) in edits {
            let mut cut = at.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            match op {
                0 => text.insert_str(cut, &insert),
                1 => {
                    let mut end = (cut + insert.len()).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(cut..end, "");
                }
                2 => text.truncate(cut),
                _ => text.replace_range(cut..cut, &insert.replace('\n', " ")),
            }
        }
        parse_is_located(&text)?;
    }

    #[test]
    fn any_bytes_parse_or_are_located(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        parse_is_located(&String::from_utf8_lossy(&bytes))?;
    }
}

#[test]
fn the_valid_file_is_valid() {
    Config::parse_with_env(VALID, "fuzz.toml", &env).unwrap();
}
