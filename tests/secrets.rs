//! No secret of any store kind is ever shown: not by `Display`, `Debug` or
//! the source chain of an error, not by `Debug` of the configuration, a
//! store spec or a store, not by `location()`, not by `polyrouter check`
//! (run as a subprocess), and not in the TRACE logs of polyrouter or any
//! driver (`tracing` events and spans, and the `log` crate's records).
//!
//! Every secret-bearing option of every store kind is tried with passwords
//! holding each URL-special character, written as is (often an invalid URL)
//! and percent-encoded. Real operations run on the stores this machine has
//! (PostgreSQL, MariaDB, Redis, the Cosmos DB emulator, Azurite); SQL
//! Server and Gremlin get connection attempts that fail (no server here).
//! A store that is not running fails the test.
#![cfg(all(
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "sqlserver",
    feature = "gremlin",
    feature = "cosmos",
    feature = "azblob",
    feature = "cli"
))]

use std::io::Write as _;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use polyrouter::config::Config;
use polyrouter::store::blob::PutOptions;
use polyrouter::{Entity, Error, Router};
use serde::{Deserialize, Serialize};

/// Every password starts with `Zq7` and ends with `Xw9`, around a tag of
/// its store kind: neither end may ever be shown, whole, encoded or cut
/// short. (The tag keeps one kind's leak from failing another's test: the
/// logs are captured for the whole test binary.)
fn markers(tag: &str) -> [String; 2] {
    [format!("Zq7{tag}"), format!("{tag}Xw9")]
}

/// The characters that mean something in a URL, one at a time and all
/// together.
const SHAPES: &[&str] = &[
    "/",
    "#",
    "?",
    "@",
    ":",
    "%",
    " ",
    "&=+;",
    "☃ä",
    "\"'\\",
    "/#?@:% &=+☃",
];

/// The Cosmos DB emulator's well-known account key.
const COSMOS_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";
/// Azurite's well-known development account key.
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// A SAS signature that must stay hidden (Azurite refuses it).
const SAS_SIG: &str = "SasSignatureN0tShown42";

fn passwords(tag: &str) -> Vec<String> {
    SHAPES
        .iter()
        .map(|s| format!("Zq7{tag}{s}{tag}Xw9"))
        .collect()
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// A TOML basic string holding `s`.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "secret_probe", key = "id")]
struct Probe {
    id: String,
    n: i64,
}

/// The global TRACE capture: every `tracing` event and span (with fields),
/// and every `log` record, of every thread.
mod capture {
    use super::*;

    static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    struct Sink;

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LOGS.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    pub fn init() {
        static ONCE: OnceLock<()> = OnceLock::new();
        ONCE.get_or_init(|| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
                .with_ansi(false)
                .with_writer(|| Sink)
                .try_init()
                .expect("install the capturing subscriber (and the log bridge)");
        });
    }

    pub fn text() -> String {
        String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
    }
}

/// Everything shown while trying one configuration.
#[derive(Default)]
struct Shown(Vec<(String, String)>);

impl Shown {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    fn error(&mut self, what: &str, e: &Error) {
        let mut text = format!("{e}\n{e:?}");
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(&format!("\n{s}\n{s:?}"));
            source = s.source();
        }
        self.add(what, text);
    }

    /// Fails naming every place a secret was shown, with the lines that
    /// show it.
    fn assert_hidden(&self, tag: &str, secrets: &[&str]) {
        let markers = markers(tag);
        let mut leaks = Vec::new();
        for (what, text) in &self.0 {
            let all = secrets
                .iter()
                .copied()
                .chain(markers.iter().map(String::as_str));
            for secret in all {
                let lines: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains(secret))
                    .take(3)
                    .collect();
                if !lines.is_empty() {
                    leaks.push(format!(
                        "`{secret}` shown by {what}:\n  {}",
                        lines.join("\n  ")
                    ));
                }
            }
        }
        assert!(
            leaks.is_empty(),
            "{} leak(s):\n{}",
            leaks.len(),
            leaks.join("\n")
        );
    }
}

/// `polyrouter check` on a file: its stdout and stderr.
fn check(dir: &std::path::Path, name: &str, toml_text: &str) -> String {
    let path = dir.join(format!("{name}.toml"));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(toml_text.as_bytes()))
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_polyrouter"))
        .args(["check", "--config"])
        .arg(&path)
        .env("RUST_LOG", "trace")
        .output()
        .expect("run polyrouter check");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Parses, opens and (if it opens) uses one store configuration; records
/// everything shown. `ops` says which operations the store runs.
async fn attempt(shown: &mut Shown, dir: &std::path::Path, label: &str, toml_text: &str, ops: Ops) {
    match Config::parse(toml_text, "secrets.toml") {
        Ok(cfg) => {
            shown.add(format!("{label}: Debug of the config"), format!("{cfg:?}"));
            for spec in cfg.stores.values() {
                shown.add(format!("{label}: Debug of the spec"), format!("{spec:?}"));
            }
        }
        Err(e) => shown.error(&format!("{label}: Config::parse"), &e),
    }
    match Router::from_toml_str(toml_text).await {
        Ok(router) => {
            let store = router.store("s").expect("store `s`");
            shown.add(format!("{label}: Debug of the store"), format!("{store:?}"));
            shown.add(format!("{label}: location()"), store.location());
            if let Err(e) = store.ping().await {
                shown.error(&format!("{label}: ping"), &e);
            }
            // The change capture a store hands out (PostgreSQL, MariaDB),
            // and what its preparation says (a missing setting, a refused
            // login).
            let probe = polyrouter::store::EntityInfo::new(Probe::schema());
            match store.change_source(&probe, "secret_probe_slot") {
                Ok(source) => {
                    shown.add(
                        format!("{label}: Debug of the change source"),
                        format!("{source:?}"),
                    );
                    shown.add(format!("{label}: describe()"), source.describe());
                    if let Err(e) = source.retention().await {
                        shown.error(&format!("{label}: change source retention"), &e);
                    }
                }
                Err(e) => shown.error(&format!("{label}: change_source"), &e),
            }
            match ops {
                Ops::Records => {
                    let result = async {
                        let repo = router.repo::<Probe>().await?;
                        let p = Probe {
                            id: "p1".into(),
                            n: 7,
                        };
                        repo.put(&p).await?;
                        let back = repo.get("p1").await?;
                        repo.delete("p1").await?;
                        Ok::<_, Error>(back)
                    }
                    .await;
                    match result {
                        Ok(back) => assert_eq!(back.map(|p| p.n), Some(7), "{label}"),
                        Err(e) => shown.error(&format!("{label}: put/get/delete"), &e),
                    }
                }
                Ops::Blobs => {
                    let result = async {
                        let blobs = router.blobs("s")?;
                        blobs
                            .put_bytes("secret-probe", b"x".to_vec(), PutOptions::default())
                            .await?;
                        let back = blobs.get_bytes("secret-probe").await?;
                        blobs.delete("secret-probe").await?;
                        Ok::<_, Error>(back)
                    }
                    .await;
                    match result {
                        Ok(back) => assert_eq!(back, Some(b"x".to_vec()), "{label}"),
                        Err(e) => shown.error(&format!("{label}: blob put/get/delete"), &e),
                    }
                }
                Ops::None => {}
            }
        }
        Err(e) => shown.error(&format!("{label}: Router::from_toml_str"), &e),
    }
    shown.add(
        format!("{label}: polyrouter check"),
        check(dir, label, toml_text),
    );
}

#[derive(Clone, Copy)]
enum Ops {
    Records,
    Blobs,
    None,
}

/// Runs `configs` (label, TOML, operations), then checks every output and
/// the logs captured so far for `secrets` and the password markers.
async fn run_all(tag: &str, configs: Vec<(String, String, Ops)>, secrets: &[&str]) {
    capture::init();
    let dir = tempfile::tempdir().unwrap();
    let mut shown = Shown::default();
    for (label, text, ops) in &configs {
        attempt(&mut shown, dir.path(), label, text, *ops).await;
    }
    shown.add("the TRACE logs", capture::text());
    shown.assert_hidden(tag, secrets);
}

fn store(kind_and_options: &str) -> String {
    format!("[stores.s]\n{kind_and_options}\n\n[entities.secret_probe]\nstore = \"s\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passwords_never_show() {
    let mut configs = Vec::new();
    for (i, pw) in passwords("Pg").iter().enumerate() {
        // The server trusts local connections: the encoded URLs connect
        // and run real operations; the raw ones are invalid URLs.
        for (form, url, ops) in [
            (
                "raw",
                format!("postgres://postgres:{pw}@127.0.0.1:5432/test"),
                Ops::None,
            ),
            (
                "encoded",
                format!("postgres://postgres:{}@127.0.0.1:5432/test", enc(pw)),
                Ops::Records,
            ),
            (
                "query",
                format!(
                    "postgres://postgres@127.0.0.1:5432/test?password={}",
                    enc(pw)
                ),
                Ops::Records,
            ),
            (
                "closed port",
                format!("postgres://postgres:{}@127.0.0.1:1/test", enc(pw)),
                Ops::None,
            ),
            // Without a host, a password holding `@` reads as
            // `password@host`: only the other shapes can be told apart.
            (
                "no host",
                format!("postgres://postgres:{}", pw.replace('@', "")),
                Ops::None,
            ),
        ] {
            configs.push((
                format!("postgres-{i}-{form}"),
                store(&format!(
                    "kind = \"postgres\"\nurl = {}\nmax_connections = 1\nconnect_timeout = \"2s\"",
                    quoted(&url)
                )),
                ops,
            ));
        }
    }
    run_all("Pg", configs, &[]).await;
}

/// Runs SQL as MariaDB's root with statement logging off (the statements
/// hold the test passwords).
async fn mariadb_admin(statements: &[String]) {
    use sqlx::{ConnectOptions, Connection, Executor};
    let opts: sqlx::mysql::MySqlConnectOptions =
        "mysql://root@127.0.0.1:3306/test".parse().unwrap();
    let mut conn = opts
        .disable_statement_logging()
        .connect()
        .await
        .expect("MariaDB at 127.0.0.1:3306 (root, no password)");
    for s in statements {
        conn.execute(s.as_str())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_passwords_never_show() {
    capture::init();
    let user = format!("pr_secrets_{}", std::process::id());
    let hosts = ["%", "localhost", "127.0.0.1"];
    let dir = tempfile::tempdir().unwrap();
    let mut shown = Shown::default();
    for (i, pw) in passwords("My").iter().enumerate() {
        // The user gets each password in turn: the encoded URL logs in and
        // runs real operations, the raw one is an invalid URL.
        let literal = pw.replace('\\', "\\\\").replace('\'', "\\'");
        let mut sql = Vec::new();
        for host in hosts {
            sql.push(format!(
                "CREATE OR REPLACE USER '{user}'@'{host}' IDENTIFIED BY '{literal}'"
            ));
            sql.push(format!("GRANT ALL ON test.* TO '{user}'@'{host}'"));
        }
        mariadb_admin(&sql).await;
        for (form, url, ops) in [
            (
                "raw",
                format!("mysql://{user}:{pw}@127.0.0.1:3306/test"),
                Ops::None,
            ),
            (
                "encoded",
                format!("mysql://{user}:{}@127.0.0.1:3306/test", enc(pw)),
                Ops::Records,
            ),
            (
                "wrong",
                format!("mysql://{user}:{}x@127.0.0.1:3306/test", enc(pw)),
                Ops::None,
            ),
            (
                "closed port",
                format!("mariadb://{user}:{}@127.0.0.1:1/test", enc(pw)),
                Ops::None,
            ),
        ] {
            let label = format!("mysql-{i}-{form}");
            let text = store(&format!(
                "kind = \"mysql\"\nurl = {}\nmax_connections = 1\nconnect_timeout = \"2s\"",
                quoted(&url)
            ));
            attempt(&mut shown, dir.path(), &label, &text, ops).await;
        }
    }
    let drop: Vec<String> = hosts
        .iter()
        .map(|h| format!("DROP USER IF EXISTS '{user}'@'{h}'"))
        .collect();
    mariadb_admin(&drop).await;
    shown.add("the TRACE logs", capture::text());
    shown.assert_hidden("My", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_passwords_never_show() {
    let user = format!("pr_secrets_{}", std::process::id());
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at 127.0.0.1:6379");
    let mut shown = Shown::default();
    capture::init();
    let dir = tempfile::tempdir().unwrap();
    for (i, pw) in passwords("Rd").iter().enumerate() {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user)
            .arg("reset")
            .arg("on")
            .arg(format!(">{pw}"))
            .arg("~pr-secrets*")
            .arg("+@all")
            .query_async(&mut admin)
            .await
            .unwrap();
        for (form, url, ops) in [
            (
                "raw",
                format!("redis://{user}:{pw}@127.0.0.1:6379/0"),
                Ops::None,
            ),
            (
                "encoded",
                format!("redis://{user}:{}@127.0.0.1:6379/0", enc(pw)),
                Ops::Records,
            ),
            (
                "wrong",
                format!("redis://{user}:{}x@127.0.0.1:6379/0", enc(pw)),
                Ops::None,
            ),
            (
                "closed port",
                format!("redis://:{}@127.0.0.1:1", enc(pw)),
                Ops::None,
            ),
        ] {
            let label = format!("redis-{i}-{form}");
            let text = store(&format!(
                "kind = \"redis\"\nurl = {}\nkey_prefix = \"pr-secrets\"\nconnect_timeout = \"2s\"",
                quoted(&url)
            ));
            attempt(&mut shown, dir.path(), &label, &text, ops).await;
        }
    }
    let _: () = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .unwrap();
    shown.add("the TRACE logs", capture::text());
    shown.assert_hidden("Rd", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlserver_passwords_never_show() {
    let mut configs = Vec::new();
    for (i, pw) in passwords("Ms").iter().enumerate() {
        // No SQL Server can run here: every attempt fails to connect.
        for (form, url) in [
            ("raw", format!("sqlserver://sa:{pw}@127.0.0.1:1/app")),
            (
                "encoded",
                format!("sqlserver://sa:{}@127.0.0.1:1/app", enc(pw)),
            ),
            (
                "bad port",
                format!("sqlserver://sa:{pw}@127.0.0.1:port/app"),
            ),
        ] {
            configs.push((
                format!("sqlserver-{i}-{form}"),
                store(&format!(
                    "kind = \"sqlserver\"\nurl = {}\nmax_connections = 1\nconnect_timeout = \"2s\"",
                    quoted(&url)
                )),
                Ops::None,
            ));
        }
    }
    run_all("Ms", configs, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gremlin_passwords_never_show() {
    let mut configs = Vec::new();
    for (i, pw) in passwords("Gr").iter().enumerate() {
        // No Gremlin server can run here: every attempt fails to connect.
        configs.push((
            format!("gremlin-{i}-options"),
            format!(
                "[stores.s]\nkind = \"gremlin\"\nurl = \"ws://127.0.0.1:1/gremlin\"\nusername = \"/dbs/d/colls/g\"\npassword = {}\nconnect_timeout = \"2s\"\n",
                quoted(pw)
            ),
            Ops::None,
        ));
        for (form, url) in [
            ("raw url", format!("ws://u:{pw}@127.0.0.1:1/gremlin")),
            ("encoded url", format!("wss://u:{}@127.0.0.1:1/", enc(pw))),
        ] {
            configs.push((
                format!("gremlin-{i}-{form}"),
                format!("[stores.s]\nkind = \"gremlin\"\nurl = {}\n", quoted(&url)),
                Ops::None,
            ));
        }
    }
    run_all("Gr", configs, &[]).await;
}

fn cosmos_endpoint() -> String {
    std::env::var("POLYROUTER_COSMOS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8081/".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosmos_keys_never_show() {
    let endpoint = cosmos_endpoint();
    let database = format!("pr_secrets_{}", std::process::id());
    let mut configs = vec![
        (
            "cosmos-key".to_string(),
            store(&format!(
                "kind = \"cosmos\"\nendpoint = \"{endpoint}\"\nkey = \"{COSMOS_KEY}\"\ndatabase = \"{database}\"\ncreate_if_missing = true"
            )),
            Ops::Records,
        ),
        (
            "cosmos-connection-string".to_string(),
            store(&format!(
                "kind = \"cosmos\"\nconnection_string = \"AccountEndpoint={endpoint};AccountKey={COSMOS_KEY};\"\ndatabase = \"{database}\"\ncreate_if_missing = true"
            )),
            Ops::Records,
        ),
    ];
    let host = endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    for (i, pw) in passwords("Co").iter().enumerate() {
        for (form, url) in [
            ("raw", format!("http://u:{pw}@{host}")),
            ("encoded", format!("http://u:{}@{host}", enc(pw))),
        ] {
            configs.push((
                format!("cosmos-{i}-{form}-endpoint"),
                store(&format!(
                    "kind = \"cosmos\"\nendpoint = {}\nkey = \"{COSMOS_KEY}\"\ndatabase = \"{database}\"",
                    quoted(&url)
                )),
                Ops::None,
            ));
            configs.push((
                format!("cosmos-{i}-{form}-connection-string"),
                store(&format!(
                    "kind = \"cosmos\"\nconnection_string = {}\ndatabase = \"{database}\"",
                    quoted(&format!("AccountEndpoint={url};AccountKey={COSMOS_KEY};"))
                )),
                Ops::None,
            ));
        }
    }
    configs.push((
        "cosmos-closed-port".to_string(),
        store(&format!(
            "kind = \"cosmos\"\nendpoint = \"http://127.0.0.1:1/\"\nkey = \"{COSMOS_KEY}\"\ndatabase = \"{database}\"\nconnect_timeout = \"2s\""
        )),
        Ops::None,
    ));
    // The key, and the request signatures made with it
    // (`type=master&ver=1.0&sig=…`, URL-encoded in the header).
    let secrets = [
        COSMOS_KEY,
        &COSMOS_KEY[..16],
        "type=master",
        "type%3Dmaster",
        "sig%3D",
    ];
    run_all("Co", configs, &secrets).await;
    let cfg = polyrouter::backends::cosmos::CosmosConfig::new(endpoint, COSMOS_KEY, &database);
    polyrouter::backends::cosmos::CosmosStore::connect("cleanup", cfg)
        .await
        .unwrap()
        .delete_database()
        .await
        .unwrap();
}

fn azurite_endpoint() -> String {
    std::env::var("POLYROUTER_TEST_AZBLOB_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:10000/devstoreaccount1".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azblob_keys_and_tokens_never_show() {
    let endpoint = azurite_endpoint();
    let container = format!("pr-secrets-{}", std::process::id());
    let sas = format!(
        "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&st=2020-01-01T00:00:00Z&spr=http,https&sig={SAS_SIG}"
    );
    let blob = |options: &str| {
        format!(
            "[stores.s]\nkind = \"azblob\"\ncontainer = \"{container}\"\ncreate_if_missing = true\nmax_retries = 0\n{options}\n"
        )
    };
    let mut configs = vec![
        (
            "azblob-key".to_string(),
            blob(&format!(
                "account = \"devstoreaccount1\"\nkey = \"{AZURITE_KEY}\"\nendpoint = \"{endpoint}\""
            )),
            Ops::Blobs,
        ),
        (
            "azblob-connection-string".to_string(),
            blob(&format!(
                "connection_string = \"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};\""
            )),
            Ops::Blobs,
        ),
        (
            "azblob-sas".to_string(),
            blob(&format!(
                "account = \"devstoreaccount1\"\nsas_token = \"{sas}\"\nendpoint = \"{endpoint}\""
            )),
            Ops::Blobs,
        ),
        (
            "azblob-sas-connection-string".to_string(),
            blob(&format!(
                "connection_string = \"AccountName=devstoreaccount1;SharedAccessSignature={sas};BlobEndpoint={endpoint};\""
            )),
            Ops::Blobs,
        ),
    ];
    let rest = endpoint.trim_start_matches("http://");
    for (i, pw) in passwords("Az").iter().enumerate() {
        configs.push((
            format!("azblob-{i}-endpoint-credentials"),
            blob(&format!(
                "account = \"devstoreaccount1\"\nkey = \"{AZURITE_KEY}\"\nendpoint = {}",
                quoted(&format!("http://u:{}@{rest}", enc(pw)))
            )),
            Ops::None,
        ));
    }
    run_all("Az", configs, &[AZURITE_KEY, &AZURITE_KEY[..16], SAS_SIG]).await;
}
