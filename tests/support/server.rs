//! A PRIVATE server process (nats-server with JetStream, or redis-server
//! with an append-only file synced on every write) started by a test on a
//! free port with its own data directory, killed with SIGKILL by the pid the
//! test started — never the machine's shared servers. Used by the bus
//! suite's outage behaviours and the sync end-to-end outage tests
//! (`#[path = "../support/server.rs"] mod server;`).
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A port nothing listens on (just now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A server process this test started; killed (SIGKILL) when dropped.
pub struct Server {
    kind: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    /// Starts `kind` (`nats` or anything else for redis-server) on a free
    /// port and a fresh data directory.
    pub fn start(kind: &str) -> Result<Server, String> {
        let mut s = Server {
            kind: kind.into(),
            port: free_port(),
            dir: tempfile::tempdir().map_err(|e| e.to_string())?,
            child: None,
        };
        s.spawn()?;
        Ok(s)
    }

    /// The client URL of this server.
    pub fn url(&self) -> String {
        match self.kind.as_str() {
            "nats" => format!("nats://127.0.0.1:{}", self.port),
            _ => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Starts the server on its port and data directory; waits until it
    /// accepts connections.
    pub fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.path();
        let mut cmd = match self.kind.as_str() {
            "nats" => {
                let mut c = Command::new(binary("nats-server"));
                c.args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"])
                    .arg(dir);
                c
            }
            _ => {
                let mut c = Command::new(binary("redis-server"));
                c.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
                    .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                    .arg(dir);
                c
            }
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start a private {} server: {e}", self.kind))?;
        self.child = Some(child);
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "the private {} server did not listen on port {port}",
            self.kind
        ))
    }

    /// SIGKILL, by the pid this test started.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server binary: on PATH, else where Debian installs it.
fn binary(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.display().to_string();
        }
    }
    name.into()
}
