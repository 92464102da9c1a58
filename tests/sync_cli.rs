//! `polyrouter sync` as a worker process and `polyrouter sync status`:
//! writes recorded in a SQLite outbox by this process are relayed by the
//! worker child, whose figures `sync status` shows from a third process;
//! SIGTERM stops the worker gracefully (status row removed, exit 0).

use std::process::{Command, Stdio};
use std::time::Duration;

use polyrouter::{Entity, Router};
use serde::{Deserialize, Serialize};

#[derive(Entity, Debug, Clone, Serialize, Deserialize)]
#[entity(name = "order", key = "id")]
struct Order {
    id: String,
    total: i64,
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_polyrouter"))
}

fn status(config: &std::path::Path) -> String {
    let out = bin()
        .args(["sync", "status", "--config"])
        .arg(config)
        .output()
        .expect("run polyrouter sync status");
    assert!(
        out.status.success(),
        "sync status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_relays_and_status_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sync.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[stores.main]
kind = "sqlite"
url = "sqlite://{}/main.db"

[buses.events]
kind = "memory"

[sync]
store = "main"
status_interval = "50ms"
relay_interval = "5ms"

[entities.order]
store = "main"
outbox = {{ bus = "events" }}
"#,
            dir.path().display()
        ),
    )
    .unwrap();
    let router = Router::from_file(&config).await.unwrap();
    let orders = router.repo::<Order>().await.unwrap();
    for i in 0..25 {
        orders
            .put(&Order {
                id: format!("o-{i}"),
                total: i,
            })
            .await
            .unwrap();
    }
    let before = status(&config);
    assert!(before.contains("order"), "{before}");
    assert!(before.contains("no worker reports it"), "{before}");

    let mut worker = bin()
        .args(["sync", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start polyrouter sync");
    let mut relayed = false;
    for _ in 0..400 {
        let s = status(&config);
        // The order row: entity, store, bus, backlog 0, lag, relayed 25.
        if s.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.first() == Some(&"order")
                && cols.get(3) == Some(&"0")
                && cols.get(5) == Some(&"25")
        }) {
            relayed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let last = status(&config);
    assert!(relayed, "the worker never reported 25 relayed:\n{last}");
    assert!(last.contains("1 worker(s) reporting"), "{last}");

    // SIGTERM: a graceful stop, which removes the worker's status row.
    let pid = worker.id().to_string();
    let ok = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {pid}");
    let exit = worker.wait().unwrap();
    let mut err = String::new();
    use std::io::Read;
    worker
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(exit.success(), "worker exit {exit:?}: {err}");
    assert!(err.contains("stopping"), "{err}");
    let after = status(&config);
    assert!(after.contains("0 worker(s) reporting"), "{after}");
}
