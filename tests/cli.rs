//! `polyrouter check`: routes and capabilities on a good file, the line on a bad one.

use std::process::Command;

fn check(config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_polyrouter"))
        .args(["check", "--config"])
        .arg(config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run polyrouter")
}

#[test]
fn check_prints_routes_and_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        format!(
            "[stores.main]\nkind = \"sqlite\"\nurl = \"sqlite://{}/app.db\"\n\n[stores.kv]\nkind = \"memory\"\n\n[entities.user]\nstore = \"main\"\n\n[entities.session]\nstore = \"kv\"\nttl = \"30m\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = check(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in ["main", "sqlite", "kv", "memory", "user", "session", "ttl"] {
        assert!(
            stdout.contains(needle),
            "`{needle}` missing from:\n{stdout}"
        );
    }
}

#[test]
fn check_on_the_example_config_succeeds() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/polyrouter.toml");
    let out = check(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("user"));
}

#[test]
fn check_names_the_line_of_a_malformed_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[stores.kv]\nkind = \"memory\"\n\n[entities.session]\nstore = \"kv\"\nttl = \"forever\"\n",
    )
    .unwrap();
    let out = check(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:6:"), "{stderr}");
    assert!(stderr.contains("entities.session.ttl"), "{stderr}");
}

#[test]
fn check_reports_an_unreachable_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("down.toml");
    // A directory where the database file should be: the store cannot open.
    std::fs::create_dir_all(dir.path().join("db.sqlite")).unwrap();
    std::fs::write(
        &path,
        format!(
            "[stores.main]\nkind = \"sqlite\"\nurl = \"sqlite://{}/db.sqlite\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = check(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("store `main`"), "{stderr}");
}

/// Every store this machine runs, in one file: `check` opens and pings each
/// and prints its capabilities, and lists the graph, time series and view.
/// Needs the machine's PostgreSQL, MariaDB and Redis and the emulators
/// (`scripts/emulators/start`); a SQL Server joins when
/// `POLYROUTER_TEST_SQLSERVER_URL` names one (none can run here).
#[cfg(all(
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "cosmos",
    feature = "azblob",
    feature = "tantivy"
))]
#[test]
fn check_reports_every_store_of_a_config_with_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.toml");
    let d = dir.path().display();
    let mut toml = format!(
        r#"
[stores.local]
kind = "sqlite"
url = "sqlite://{d}/app.db"

[stores.mem]
kind = "memory"

[stores.pg]
kind = "postgres"
url = "postgres://postgres:hunter2@127.0.0.1:5432/test"
max_connections = 1

[stores.maria]
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/test"
max_connections = 1

[stores.cache]
kind = "redis"
url = "redis://127.0.0.1:6379"
key_prefix = "pr-cli-check"

[stores.docs]
kind = "cosmos"
endpoint = "http://127.0.0.1:8081/"
key = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
database = "pr_cli_check"
create_if_missing = true

[stores.images]
kind = "azblob"
account = "devstoreaccount1"
key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
endpoint = "http://127.0.0.1:10000/devstoreaccount1"
container = "pr-cli-check"
create_if_missing = true

[stores.files]
kind = "fs"
root = "{d}/files"

[stores.index]
kind = "tantivy"
path = "{d}/index"

[entities.user]
store = "pg"
cache = {{ store = "cache", ttl = "1h" }}

[entities.order]
store = "maria"

[entities.product]
store = "docs"
search = {{ store = "index", fields = ["name"] }}

[entities.session]
store = "cache"
ttl = "30m"

[graphs.social]
store = "local"

[timeseries.telemetry]
store = "local"
fields = ["temperature"]
retention = "7d"

[views.dashboard]
params = ["user_id"]
[views.dashboard.branches.user]
entity = "user"
get = "$user_id"
"#
    );
    if let Ok(url) = std::env::var("POLYROUTER_TEST_SQLSERVER_URL") {
        toml.push_str(&format!(
            "\n[stores.azuresql]\nkind = \"sqlserver\"\nurl = \"{url}\"\nmax_connections = 1\n\n[entities.payment]\nstore = \"azuresql\"\n"
        ));
    }
    std::fs::write(&path, toml).unwrap();
    let out = check(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut kinds = vec![
        ("local", "sqlite"),
        ("mem", "memory"),
        ("pg", "postgres"),
        ("maria", "mysql"),
        ("cache", "redis"),
        ("docs", "cosmos"),
        ("images", "azblob"),
        ("files", "fs"),
        ("index", "tantivy"),
    ];
    if std::env::var("POLYROUTER_TEST_SQLSERVER_URL").is_ok() {
        kinds.push(("azuresql", "sqlserver"));
    }
    for (name, kind) in kinds {
        let line = stdout
            .lines()
            .position(|l| l.starts_with(&format!("  {name}: kind {kind}, ")))
            .unwrap_or_else(|| panic!("no line for store `{name}` ({kind}) in:\n{stdout}"));
        let next = stdout.lines().nth(line + 1).unwrap_or_default();
        assert!(
            next.trim_start().starts_with("capabilities: "),
            "store `{name}`: no capabilities after its line in:\n{stdout}"
        );
        assert!(
            stdout.lines().nth(line).unwrap().contains("ping ok"),
            "{stdout}"
        );
    }
    // The SQL stores can query and hold TTLs; Redis cannot query.
    let caps = |name: &str| -> String {
        let mut lines = stdout.lines();
        lines.find(|l| l.starts_with(&format!("  {name}: kind ")));
        lines.next().unwrap().to_string()
    };
    for name in ["pg", "maria", "local"] {
        assert!(caps(name).contains("query"), "{name}: {}", caps(name));
    }
    assert!(!caps("cache").contains("query"), "{}", caps("cache"));
    assert!(caps("cache").contains("ttl"), "{}", caps("cache"));
    for needle in [
        "user -> pg",
        "cache: cache, ttl 1h",
        "order -> maria",
        "product -> docs",
        "search: index, fields name",
        "session -> cache",
        "social -> local",
        "telemetry -> local: fields temperature, retention 7d",
        "dashboard: branches user",
    ] {
        assert!(
            stdout.contains(needle),
            "`{needle}` missing from:\n{stdout}"
        );
    }
    // The password in the PostgreSQL URL and the account keys never print.
    for secret in ["hunter2", "C2y6yDjf5", "Eby8vdM02"] {
        assert!(!stdout.contains(secret), "`{secret}` printed:\n{stdout}");
    }
}
