//! Configuration errors name file, line, column and key path; secrets never print.

use polyrouter::config::Config;
use polyrouter::{Error, Router};

fn parse_err(text: &str) -> Error {
    Config::parse_with_env(text, "app.toml", &|k| {
        (k == "SET").then(|| "value".to_string())
    })
    .expect_err("config should be rejected")
}

fn place(e: &Error) -> (usize, usize, String) {
    match e {
        Error::Config {
            line, column, path, ..
        } => (*line, *column, path.clone()),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn malformed_toml_names_the_line() {
    let e = parse_err("[stores.main]\nkind = \"memory\"\nurl = \n");
    let (line, _, _) = place(&e);
    assert_eq!(line, 3, "{e}");
    assert!(e.to_string().starts_with("app.toml:3:"), "{e}");
}

#[test]
fn unknown_keys_are_errors_with_their_path() {
    let e = parse_err(
        "[stores.m]\nkind = \"memory\"\n\n[entities.user]\nstore = \"m\"\ncolour = \"red\"\n",
    );
    assert_eq!(place(&e), (6, 1, "entities.user.colour".into()), "{e}");
    assert!(e.to_string().contains("unknown field `colour`"), "{e}");
    let e = parse_err("[stores.m]\nkind = \"memory\"\n[rooter]\npage_size = 1\n");
    assert_eq!(place(&e).2, "rooter", "{e}");
}

#[test]
fn unknown_kind_and_missing_store_are_located() {
    let e = parse_err("[stores.m]\nkind = \"mongo\"\n");
    assert_eq!(place(&e), (2, 1, "stores.m.kind".into()));
    assert!(e.to_string().contains("known kinds: memory, sqlite"), "{e}");
    let e = parse_err("[stores.m]\nkind = \"memory\"\n[entities.user]\nstore = \"main\"\n");
    assert_eq!(place(&e), (4, 1, "entities.user.store".into()));
    assert!(e.to_string().contains("store `main` is not defined"), "{e}");
    let e = parse_err("[stores.m]\n");
    assert!(e.to_string().contains("missing field `kind`"), "{e}");
    assert_eq!(place(&e).2, "stores.m");
}

#[test]
fn bad_durations_and_duplicates_are_located() {
    let e = parse_err(
        "[stores.m]\nkind = \"memory\"\n[entities.s]\nstore = \"m\"\nttl = \"30 minutes\"\n",
    );
    let (line, _, path) = place(&e);
    assert_eq!((line, path.as_str()), (5, "entities.s.ttl"), "{e}");
    assert!(e.to_string().contains("\"30m\""), "{e}");
    let e = parse_err("[stores.m]\nkind = \"memory\"\n[entities.s]\nstore = \"m\"\nttl = \"0s\"\n");
    assert!(e.to_string().contains("greater than zero"), "{e}");
    let e = parse_err("[stores.m]\nkind = \"memory\"\n[stores.m]\nkind = \"memory\"\n");
    assert_eq!(place(&e).0, 3, "{e}");
    let e = parse_err(
        "[stores.m]\nkind = \"memory\"\n[entities.a]\nstore = \"m\"\ntable = \"t\"\n[entities.b]\nstore = \"m\"\ntable = \"t\"\n",
    );
    assert!(e.to_string().contains("duplicate table `t`"), "{e}");
    assert_eq!(place(&e).0, 6, "{e}");
}

#[test]
fn environment_variables_interpolate_and_missing_ones_are_located() {
    let cfg = Config::parse_with_env(
        "[stores.m]\nkind = \"${KIND:-memory}\"\n[entities.x]\nstore = \"${STORE}\"\n",
        "app.toml",
        &|k| (k == "STORE").then(|| "m".to_string()),
    )
    .unwrap();
    assert_eq!(cfg.stores["m"].kind, "memory");
    assert_eq!(cfg.entities["x"].store, "m");
    let e = parse_err("[stores.m]\nkind = \"memory\"\n\n  x = \"${NOT_SET}\"\n");
    assert_eq!(place(&e).0, 4, "{e}");
    assert!(e.to_string().contains("`NOT_SET` is not set"), "{e}");
}

#[test]
fn secrets_never_print() {
    let cfg = Config::parse_with_env(
        "[stores.db]\nkind = \"memory\"\nurl = \"postgres://app:hunter2@db:5432/x\"\naccount_key = \"${KEY}\"\n",
        "app.toml",
        &|_| Some("s3cr3t-key".into()),
    )
    .unwrap();
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("s3cr3t"),
        "{shown}"
    );
    assert!(shown.contains("postgres://app:***@db:5432/x"), "{shown}");
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Opts {
        account_key: u32,
    }
    let e = cfg.stores["db"].parse::<Opts>().unwrap_err().to_string();
    assert!(!e.contains("s3cr3t"), "{e}");
    assert!(e.contains("stores.db.account_key"), "{e}");
}

#[tokio::test]
async fn store_options_are_checked_by_the_backend() {
    let e = Router::from_toml_str("[stores.m]\nkind = \"memory\"\nsize = 3\n")
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with("<string>:3:1: `stores.m.size`"),
        "{e}"
    );
    let e = Router::from_toml_str(
        "[stores.m]\nkind = \"sqlite\"\nurl = \"sqlite::memory:\"\npool = 3\n",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("stores.m.pool"), "{e}");
    assert_eq!(place(&e).0, 4, "{e}");
}

#[tokio::test]
async fn from_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[stores.m]\nkind = \"memory\"\n[entities.u]\nstore = 3\n",
    )
    .unwrap();
    let e = Router::from_file(&path).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("{}:4:", path.display())),
        "{text}"
    );
    assert!(text.contains("entities.u.store"), "{text}");
}

#[test]
fn an_interpolation_never_crosses_its_line_or_string() {
    // The invalid basic string `"${NOPE:-a⏎}"` is refused, not repaired.
    let e = parse_err("[stores.m]\nkind = \"memory\"\nx = \"${NOPE:-a\n}\"\n");
    assert_eq!(place(&e).0, 3, "{e}");
    assert!(e.to_string().contains("not closed"), "{e}");
    // A default spanning two lines of a multi-line string is refused at its line.
    let e = parse_err("[stores.m]\nkind = \"memory\"\nx = \"\"\"\n${NOPE:-a\nb}\"\"\"\n");
    assert_eq!(place(&e).0, 4, "{e}");
    // Values with newlines keep later lines where they were.
    let e = Config::parse_with_env(
        "[stores.m]\nkind = \"memory\"\n[entities.x]\nstore = \"\"\"${MANY}\"\"\"\nttl = \"soon\"\n",
        "app.toml",
        &|_| Some("a\nb\nc\nd".into()),
    )
    .unwrap_err();
    assert_eq!(place(&e), (5, 7, "entities.x.ttl".into()), "{e}");
}

#[test]
fn durations_longer_than_100_years_are_located_errors() {
    for (text, line, path) in [
        (
            "[stores.m]\nkind = \"memory\"\n[entities.s]\nstore = \"m\"\nttl = \"18446744073709551615s\"\n",
            5,
            "entities.s.ttl",
        ),
        (
            "[stores.m]\nkind = \"memory\"\n[stores.c]\nkind = \"memory\"\n[entities.s]\nstore = \"m\"\ncache = { store = \"c\", ttl = \"36501d\" }\n",
            7,
            "entities.s.cache.ttl",
        ),
        (
            "[stores.m]\nkind = \"memory\"\n[entities.s]\nstore = \"m\"\nconsistency = { bounded_staleness = \"99999999999999999999h\" }\n",
            5,
            "entities.s.consistency.bounded_staleness",
        ),
    ] {
        let e = parse_err(text);
        let (l, _, p) = place(&e);
        assert_eq!((l, p.as_str()), (line, path), "{e}");
        assert!(e.to_string().contains("36500d"), "{e}");
    }
    assert!(
        Config::parse(
            "[stores.m]\nkind = \"memory\"\n[entities.s]\nstore = \"m\"\nttl = \"36500d\"\n",
            "a.toml"
        )
        .is_ok()
    );
}

#[tokio::test]
async fn store_durations_past_their_limit_are_located_not_panics() {
    for (option, value) in [
        ("busy_timeout", "18446744073709551615s"),
        ("busy_timeout", "25d"),
        ("purge_interval", "36501d"),
    ] {
        let text = format!(
            "[stores.m]\nkind = \"sqlite\"\nurl = \"sqlite::memory:\"\n{option} = \"{value}\"\n"
        );
        let e = Router::from_toml_str(&text).await.unwrap_err();
        assert_eq!(place(&e), (4, 1, format!("stores.m.{option}")), "{e}");
    }
    // The longest allowed ones open the store.
    Router::from_toml_str(
        "[stores.m]\nkind = \"sqlite\"\nurl = \"sqlite::memory:\"\nbusy_timeout = \"24d\"\npurge_interval = \"36500d\"\n",
    )
    .await
    .unwrap();
}

#[test]
fn deep_nesting_is_a_located_error() {
    let key = vec!["a"; 1000].join(".");
    for (text, line) in [
        (
            format!("[stores.m]\nkind = \"memory\"\n\n[{key}]\nx = 1\n"),
            4,
        ),
        (format!("[stores.m]\nkind = \"memory\"\n{key} = 1\n"), 3),
        (
            format!(
                "[stores.m]\nkind = \"memory\"\nx = {}1{}\n",
                "{a = ".repeat(2000),
                "}".repeat(2000)
            ),
            3,
        ),
        (
            format!(
                "[stores.m]\nkind = \"memory\"\nx = {}1{}\n",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
            3,
        ),
    ] {
        let e = parse_err(&text);
        let (l, column, _) = place(&e);
        assert_eq!(l, line, "{e}");
        assert!(column > 0, "{e}");
        assert!(e.to_string().contains("nested more than 32"), "{e}");
    }
}

/// The longest durations every option allows open every store this machine
/// runs (and fail to connect, without a panic, where no server runs): no
/// driver's clock arithmetic overflows within the limit.
#[cfg(all(
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "cosmos",
    feature = "sqlserver",
    feature = "gremlin"
))]
#[tokio::test]
async fn the_longest_durations_open_every_store() {
    let max = "\"36500d\"";
    let cosmos = std::env::var("POLYROUTER_COSMOS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/".into());
    for (kind, options, reachable) in [
        (
            "postgres",
            format!(
                "url = \"postgres://postgres@127.0.0.1:5432/test\"\nconnect_timeout = {max}\nacquire_timeout = {max}\nidle_timeout = {max}\npurge_interval = {max}"
            ),
            true,
        ),
        (
            "mysql",
            format!(
                "url = \"mysql://root@127.0.0.1:3306/test\"\nconnect_timeout = {max}\nacquire_timeout = {max}\nidle_timeout = {max}\npurge_interval = {max}"
            ),
            true,
        ),
        (
            "redis",
            format!(
                "url = \"redis://127.0.0.1:6379\"\nconnect_timeout = {max}\nresponse_timeout = {max}"
            ),
            true,
        ),
        (
            "cosmos",
            format!(
                "endpoint = \"{cosmos}\"\nkey = \"C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==\"\ndatabase = \"pr_config_limits\"\ncreate_if_missing = true\nconnect_timeout = \"6s\"\nrequest_timeout = {max}"
            ),
            true,
        ),
        (
            "sqlserver",
            format!(
                "url = \"sqlserver://sa:pw@127.0.0.1:1/app\"\nconnect_timeout = {max}\nacquire_timeout = {max}\npurge_interval = {max}"
            ),
            false,
        ),
        (
            "gremlin",
            format!("url = \"ws://127.0.0.1:1/gremlin\"\nconnect_timeout = {max}"),
            false,
        ),
    ] {
        let text = format!("[stores.s]\nkind = \"{kind}\"\n{options}\n");
        match Router::from_toml_str(&text).await {
            Ok(router) => {
                assert!(reachable, "{kind}: opened a store that cannot run here");
                router.store("s").unwrap().ping().await.unwrap();
            }
            Err(e) => {
                assert!(!reachable, "{kind}: {e}");
                assert!(matches!(e, Error::Unavailable { .. }), "{kind}: {e}");
            }
        }
    }
}
