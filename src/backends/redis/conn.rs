//! The connection a `redis` store talks through: one server (a
//! reconnecting `ConnectionManager`) or a Redis Cluster (the driver's
//! cluster connection, which follows `MOVED` / `ASK` redirects and
//! refreshes its slot map after a failover).

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisFuture, RedisResult, ScriptInvocation,
    ServerErrorKind, Value,
};

/// A single-server or a cluster connection; cheap to clone.
#[derive(Clone)]
pub(super) enum Conn {
    /// One Redis server.
    Single(ConnectionManager),
    /// A Redis Cluster: each command goes to the master of its key's slot.
    Cluster(ClusterConnection),
}

impl Conn {
    /// `WAIT replicas timeout` on the connection that carried the write of
    /// `key` (on a cluster, to the master of the key's slot): how many
    /// replicas acknowledged every write sent on it before.
    pub(super) async fn wait(
        &mut self,
        key: &[u8],
        replicas: u32,
        timeout_ms: u64,
    ) -> RedisResult<i64> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms);
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(key, SlotAddr::Master),
                ));
                let v = c.route_command(cmd, route).await?;
                Ok(redis::from_redis_value(v)?)
            }
        }
    }

    /// Runs a script (`EVALSHA`, loading it on `NOSCRIPT`). On a cluster,
    /// a `NOSCRIPT` left after the driver's own load (which goes to the
    /// masters of its slot map, and right after a failover can miss the
    /// promoted one) loads `code` on the master of `key`'s slot and runs
    /// the script once more.
    pub(super) async fn invoke<T: FromRedisValue>(
        &mut self,
        invocation: &ScriptInvocation<'_>,
        code: &str,
        key: &[u8],
    ) -> RedisResult<T> {
        match invocation.invoke_async(self).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let Conn::Cluster(c) = self else {
                    return Err(e);
                };
                let mut load = redis::cmd("SCRIPT");
                load.arg("LOAD").arg(code);
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(key, SlotAddr::Master),
                ));
                c.route_command(load, route).await?;
                invocation.invoke_async(self).await
            }
            other => other,
        }
    }

    /// Sends `cmd` to the node at `host:port` (a cluster's; `None` on one
    /// server).
    pub(super) async fn on_node(
        &mut self,
        cmd: Cmd,
        host: &str,
        port: u16,
    ) -> Option<RedisResult<Value>> {
        match self {
            Conn::Single(_) => None,
            Conn::Cluster(c) => Some(
                c.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.to_string(),
                        port,
                    }),
                )
                .await,
            ),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
