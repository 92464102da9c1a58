//! A PRIVATE MariaDB server started by a test (its own data directory made
//! with `mariadb-install-db`, its own port, the binlog settings the test
//! asks for), killed by the pid the test started when dropped — never the
//! machine's shared server on 3306 nor `scripts/services mariadb-binlog`
//! (`#[path = "support/mariadb.rs"] mod mariadb;`).
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running private server.
pub struct PrivateMariaDb {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateMariaDb {
    /// Installs a data directory and starts `mariadbd` on a free port with
    /// `args` added (e.g. `--log-bin`, `--binlog-format=STATEMENT`); waits
    /// until it answers. Fails loudly when MariaDB is not installed.
    pub fn start(args: &[&str]) -> PrivateMariaDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        let root = is_root();
        if root {
            // The server refuses to run as root: the files belong to `mysql`.
            run(Command::new("chown").arg("mysql:").arg(dir.path()));
        }
        let mut install = Command::new("mariadb-install-db");
        install
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if root {
            install.arg("--user=mysql");
        }
        run(&mut install);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Command::new("/usr/sbin/mariadbd");
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}/mariadbd.sock", data.display()))
            .arg(format!("--pid-file={}/mariadbd.pid", data.display()))
            .arg(format!("--log-error={}/mariadbd.err", data.display()))
            .args(["--innodb-buffer-pool-size=32M", "--skip-name-resolve"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if root {
            server.arg("--user=mysql");
        }
        let child = server
            .spawn()
            .expect("start mariadbd (is MariaDB installed? /usr/sbin/mariadbd)");
        let mut s = PrivateMariaDb {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..300 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let ok = Command::new("mariadb-admin")
                    .args(["--protocol=tcp", "-h", "127.0.0.1", "-u", "root"])
                    .arg(format!("-P{port}"))
                    .arg("ping")
                    .output()
                    .is_ok_and(|o| o.status.success());
                if ok {
                    s.sql("CREATE DATABASE IF NOT EXISTS test");
                    return s;
                }
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!(
                    "the private mariadbd exited ({status}); see {}/mariadbd.err",
                    data.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the private mariadbd on port {port} did not answer within 30 s");
    }

    /// `mysql://root@127.0.0.1:{port}/test`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/test", self.port)
    }

    /// Runs statements with the `mariadb` client; panics on failure.
    pub fn sql(&self, statements: &str) -> String {
        let out = Command::new("mariadb")
            .args([
                "--protocol=tcp",
                "-h",
                "127.0.0.1",
                "-u",
                "root",
                "-N",
                "-B",
            ])
            .arg(format!("-P{}", self.port))
            .arg("-e")
            .arg(statements)
            .output()
            .expect("run the mariadb client");
        assert!(
            out.status.success(),
            "{statements}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        // SIGKILL by the pid this test started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
