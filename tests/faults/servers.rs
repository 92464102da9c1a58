//! Private Redis and PostgreSQL servers that a test starts, kills with
//! SIGKILL and restarts by their own process ids — never the machine's
//! shared servers. Each lives in a temp dir on a free loopback port.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends SIGKILL to the process group led by `child` (the server and the
/// processes it forked), then reaps the child.
fn kill_group(child: &mut Child) {
    let pgid = child.id();
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{pgid}")])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `redis-server` with an append-only file synced on every write, so an
/// acknowledged write survives SIGKILL.
pub struct PrivateRedis {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let mut r = PrivateRedis {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c);
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster made by `initdb` in a temp dir, run as the
/// `postgres` OS user (initdb refuses root), fsync on.
pub struct PrivatePostgres {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

fn postgres_bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("PostgreSQL server binaries in /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn postgres_ids() -> (u32, u32) {
    let out = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .unwrap();
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let out = Command::new("id")
        .args(["-g", "postgres"])
        .output()
        .unwrap();
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (uid, gid)
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        let bin = postgres_bin();
        let status = Command::new(bin.join("initdb"))
            .args(["-D", &data.display().to_string()])
            .args(["-U", "postgres", "--auth=trust", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .uid(uid)
            .gid(gid)
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let mut pg = PrivatePostgres {
            _dir: dir,
            data,
            bin,
            port: free_port(),
            child: None,
        };
        pg.spawn();
        pg
    }

    fn spawn(&mut self) {
        let (uid, gid) = postgres_ids();
        let child = Command::new(self.bin.join("postgres"))
            .args(["-D", &self.data.display().to_string()])
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args([
                "-c",
                &format!("unix_socket_directories={}", self.data.display()),
            ])
            .args(["-c", "fsync=on", "-c", "max_connections=50"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .uid(uid)
            .gid(gid)
            .process_group(0)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for_port(self.port, "postgres");
        // The port opens before recovery ends; wait until it accepts queries.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "postgres did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(&mut c);
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The address behind a URL-ish `host:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A private copy of `scripts/emulators/cosmos-proxy.js` (the emulator's
/// correcting proxy) listening on a free port and forwarding to `target`:
/// the Cosmos DB client follows the account's advertised locations, which
/// this proxy points at itself, so a fault proxy can only sit behind it
/// (client → this proxy → fault proxy → emulator).
pub struct PrivateCosmosProxy {
    pub port: u16,
    child: Child,
}

impl PrivateCosmosProxy {
    pub fn start(target: u16) -> PrivateCosmosProxy {
        let port = free_port();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/emulators/cosmos-proxy.js"
        );
        let child = Command::new("node")
            .arg(script)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--target", &format!("127.0.0.1:{target}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node must be installed");
        wait_for_port(port, "cosmos-proxy.js");
        PrivateCosmosProxy { port, child }
    }
}

impl Drop for PrivateCosmosProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
