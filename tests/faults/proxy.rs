//! A loopback TCP fault proxy: listens on a free 127.0.0.1 port, forwards
//! every connection to a real server, and injects faults on the way back
//! (server → client), switchable at any time:
//!
//! - `Latency(d)`: every chunk of the answer waits `d`;
//! - `Brownout(p)`: a share `p` of the connections (each decided once, when
//!   it first carries an answer during the brownout) is reset (RST) in the
//!   middle of one of its next four answer chunks — as a failing node or
//!   middlebox causes;
//! - `Resets(p)`: every answer chunk, with probability `p`, is cut in half
//!   and its connection reset — harsher, and it also reaches a client that
//!   keeps one connection for ever (Redis);
//! - `Blackhole`: connections are accepted, nothing is forwarded either way
//!   and nothing is answered (new connections too);
//! - `Drip(n, every)`: answers trickle, `n` bytes every `every`;
//! - `ResetAll`: every open connection is reset now, new ones at once.
//!
//! Only loopback addresses, and the proxy stops with the value (its tasks
//! are aborted on drop).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Pass,
    Latency(Duration),
    Brownout(f64),
    Resets(f64),
    Blackhole,
    Drip(usize, Duration),
    ResetAll,
}

struct Shared {
    mode: Mutex<Mode>,
    /// Bumped by `ResetAll`: connections of an older generation reset.
    generation: AtomicU64,
    resets: AtomicU64,
    bytes_back: AtomicU64,
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

impl FaultProxy {
    /// A proxy to `upstream` (a loopback address), passing everything.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        assert!(
            upstream.ip().is_loopback(),
            "the fault proxy forwards to loopback only"
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            generation: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            bytes_back: AtomicU64::new(0),
        });
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (shared, tasks) = (shared.clone(), tasks.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let t = tokio::spawn(serve(client, upstream, shared.clone()));
                    let mut all = tasks.lock();
                    all.retain(|t| !t.is_finished());
                    all.push(t);
                }
            })
        };
        FaultProxy {
            addr,
            shared,
            accept,
            tasks,
        }
    }

    /// `host:port` to give the client instead of the server's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, mode: Mode) {
        if mode == Mode::ResetAll {
            self.shared.generation.fetch_add(1, Ordering::SeqCst);
        }
        *self.shared.mode.lock() = mode;
    }

    /// Connections reset by the proxy so far.
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::Relaxed)
    }

    /// Bytes forwarded from servers to clients so far.
    pub fn bytes_back(&self) -> u64 {
        self.shared.bytes_back.load(Ordering::Relaxed)
    }
}

fn mode(shared: &Shared) -> Mode {
    *shared.mode.lock()
}

/// Closes with RST rather than FIN.
fn reset(s: TcpStream) {
    let _ = s.set_zero_linger();
    drop(s);
}

async fn serve(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let born = shared.generation.load(Ordering::SeqCst);
    if matches!(mode(&shared), Mode::ResetAll) {
        shared.resets.fetch_add(1, Ordering::Relaxed);
        return reset(client);
    }
    // A blackholed connection is held open and never answered.
    while mode(&shared) == Mode::Blackhole {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    // Every close is a reset: dropping the halves when a fault ends a
    // connection sends RST, as a crashed peer or a middlebox would.
    for s in [&client, &server] {
        let _ = s.set_nodelay(true);
        let _ = s.set_zero_linger();
    }
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = {
        let shared = shared.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                while mode(&shared) == Mode::Blackhole {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if sw.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let down = {
        let shared = shared.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut chunks = 0u32;
            // Under a brownout: whether, and at which chunk, this connection dies.
            let mut doom: Option<Option<u32>> = None;
            loop {
                let n = match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => n,
                };
                chunks += 1;
                if shared.generation.load(Ordering::SeqCst) != born {
                    return true;
                }
                match mode(&shared) {
                    Mode::Pass => {}
                    Mode::Latency(d) => tokio::time::sleep(d).await,
                    Mode::Brownout(p) => {
                        let at = *doom.get_or_insert_with(|| {
                            (fastrand::f64() < p).then(|| chunks + fastrand::u32(0..4))
                        });
                        if at == Some(chunks) {
                            // Part of the answer, then the reset.
                            let _ = cw.write_all(&buf[..n / 2]).await;
                            return true;
                        }
                    }
                    Mode::Resets(p) => {
                        if fastrand::f64() < p {
                            let _ = cw.write_all(&buf[..n / 2]).await;
                            return true;
                        }
                    }
                    Mode::Blackhole => loop {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        if mode(&shared) != Mode::Blackhole {
                            break;
                        }
                    },
                    Mode::Drip(chunk, every) => {
                        for part in buf[..n].chunks(chunk.max(1)) {
                            tokio::time::sleep(every).await;
                            if cw.write_all(part).await.is_err() {
                                return false;
                            }
                            shared
                                .bytes_back
                                .fetch_add(part.len() as u64, Ordering::Relaxed);
                        }
                        continue;
                    }
                    Mode::ResetAll => return true,
                }
                if cw.write_all(&buf[..n]).await.is_err() {
                    return false;
                }
                shared.bytes_back.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    };
    let reset_now = tokio::select! {
        () = up => false,
        r = down => r,
    };
    if reset_now {
        shared.resets.fetch_add(1, Ordering::Relaxed);
    }
}
