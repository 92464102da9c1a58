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
