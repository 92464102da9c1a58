//! `[buses.NAME]`: located errors, secrets never printed, a bus that is
//! down does not stop the router, `polyrouter check` pings every bus.

use std::sync::Arc;

use polyrouter::sync::MemoryBus;
use polyrouter::{Error, Router};

fn place(e: &Error) -> (usize, String) {
    match e {
        Error::Config { line, path, .. } => (*line, path.clone()),
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// A port nothing listens on (just now).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

#[tokio::test]
async fn unknown_kinds_and_options_are_located() {
    let e = Router::from_toml_str("[buses.ev]\nkind = \"kafka\"\n")
        .await
        .unwrap_err();
    assert_eq!(place(&e), (2, "buses.ev.kind".into()), "{e}");
    assert!(
        e.to_string()
            .contains("known kinds: memory, nats, redis-streams"),
        "{e}"
    );
    let e = Router::from_toml_str("[buses.ev]\nkind = \"memory\"\nsize = 3\n")
        .await
        .unwrap_err();
    assert_eq!(place(&e), (3, "buses.ev.size".into()), "{e}");
    let e = Router::from_toml_str("[buses.ev]\nurl = \"nats://h\"\n")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("kind"), "{e}");
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn nats_options_are_checked_and_the_password_never_prints() {
    let text = "[buses.ev]\nkind = \"nats\"\nurl = \"nats://app:s3cret@127.0.0.1:4222\"\nstream = \"a.b\"\n";
    let e = Router::from_toml_str(text).await.unwrap_err();
    assert_eq!(place(&e), (4, "buses.ev.stream".into()), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let cfg = polyrouter::config::Config::parse(text, "<string>").unwrap();
    let debug = format!("{cfg:?}");
    assert!(
        !debug.contains("s3cret") && debug.contains("***"),
        "{debug}"
    );
    let text = "[buses.ev]\nkind = \"nats\"\nurl = \"http://tok3n@h\"\n";
    let e = Router::from_toml_str(text).await.unwrap_err();
    assert_eq!(place(&e), (3, "buses.ev.url".into()), "{e}");
    assert!(!e.to_string().contains("tok3n"), "{e}");
}

#[cfg(not(feature = "nats"))]
#[tokio::test]
async fn a_bus_kind_whose_feature_is_off_names_the_feature() {
    let e = Router::from_toml_str("[buses.ev]\nkind = \"nats\"\nurl = \"nats://h\"\n")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("enable the cargo feature `nats`"),
        "{e}"
    );
}

/// The router starts with a bus whose server is down; the bus says so.
#[tokio::test]
async fn a_bus_that_is_down_does_not_stop_the_router() {
    let port = closed_port();
    let mut text = String::from("[buses.mem]\nkind = \"memory\"\n");
    if cfg!(feature = "nats") {
        text += &format!(
            "[buses.nats]\nkind = \"nats\"\nurl = \"nats://u:s3cret@127.0.0.1:{port}\"\nconnect_timeout = \"300ms\"\n"
        );
    }
    if cfg!(feature = "redis") {
        text += &format!(
            "[buses.redis]\nkind = \"redis-streams\"\nurl = \"redis://:s3cret@127.0.0.1:{port}\"\nconnect_timeout = \"300ms\"\n"
        );
    }
    let router = Router::from_toml_str(&text).await.unwrap();
    router.bus("mem").unwrap().ping().await.unwrap();
    for name in router.bus_names() {
        if name == "mem" {
            continue;
        }
        let bus = router.bus(name).unwrap();
        assert!(!bus.location().contains("s3cret"), "{}", bus.location());
        let e = bus.ping().await.unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{name}: {e:?}");
        assert!(e.to_string().contains(&format!("store `{name}`")), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
    let e = router.bus("nope").unwrap_err();
    assert!(
        e.to_string().contains("bus `nope` is not configured"),
        "{e}"
    );
}

#[tokio::test]
async fn a_bus_name_in_code_and_in_the_file_is_refused() {
    let cfg =
        polyrouter::config::Config::parse("[buses.ev]\nkind = \"memory\"\n", "<string>").unwrap();
    let e = Router::builder()
        .config(cfg)
        .bus("ev", Arc::new(MemoryBus::new("ev")))
        .build()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("duplicate bus name `ev`"), "{e}");
}

#[cfg(feature = "cli")]
mod cli {
    use std::process::Command;

    fn check(text: &str) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.toml");
        std::fs::write(&path, text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_polyrouter"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .expect("run polyrouter")
    }

    #[test]
    fn check_pings_and_prints_every_bus() {
        let out = check("[buses.events]\nkind = \"memory\"\n");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("buses (1):"), "{stdout}");
        assert!(
            stdout.contains("events: kind memory, at in-process, ping ok"),
            "{stdout}"
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn check_fails_on_a_bus_that_does_not_answer() {
        let port = super::closed_port();
        let out = check(&format!(
            "[buses.events]\nkind = \"redis-streams\"\nurl = \"redis://:s3cret@127.0.0.1:{port}\"\n"
        ));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("store `events`"), "{stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
}
