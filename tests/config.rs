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
