//! `[timeseries.NAME]`: strict parsing with located errors, start-up checks
//! (the store exists and supports time series), tables created at start-up.

use std::sync::Arc;

use async_trait::async_trait;
use polyrouter::backends::memory::MemoryStore;
use polyrouter::config::{Config, TimeSeriesConfig};
use polyrouter::query::Filter;
use polyrouter::store::timeseries::Point;
use polyrouter::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use polyrouter::{Capabilities, Error, Key, Record, Router, Store};

const HEAD: &str = "[stores.m]\nkind = \"memory\"\n\n";

fn config_error(body: &str) -> String {
    let text = format!("{HEAD}{body}");
    let err = Config::parse(&text, "iot.toml").unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    err.to_string()
}

#[test]
fn errors_name_the_file_line_and_key() {
    let cases = [
        (
            "[timeseries.t]\nstore = \"m\"\nfields = [\"v\"]\nretension = \"1d\"\n",
            "iot.toml:7:1: `timeseries.t.retension`",
            "unknown field",
        ),
        (
            "[timeseries.t]\nstore = \"nope\"\nfields = [\"v\"]\n",
            "iot.toml:5:1: `timeseries.t.store`",
            "store `nope` is not defined",
        ),
        (
            "[timeseries.t]\nstore = \"m\"\nfields = []\n",
            "iot.toml:6:1: `timeseries.t.fields`",
            "at least one numeric field",
        ),
        (
            "[timeseries.t]\nstore = \"m\"\nfields = [\"v\", \"bad name\"]\n",
            "iot.toml:6:1: `timeseries.t.fields`",
            "field 1",
        ),
        (
            "[timeseries.t]\nstore = \"m\"\nfields = [\"v\", \"v\"]\n",
            "`timeseries.t.fields`",
            "listed twice",
        ),
        (
            "[timeseries.t]\nstore = \"m\"\nfields = [\"ts\"]\n",
            "`timeseries.t.fields`",
            "reserved",
        ),
        (
            "[timeseries.t]\nstore = \"m\"\nfields = [\"v\"]\nretention = \"0s\"\n",
            "iot.toml:7:1: `timeseries.t.retention`",
            "greater than zero",
        ),
        (
            "[timeseries.t]\nstore = \"m\"\nfields = [\"v\"]\nretention = \"forever\"\n",
            "`timeseries.t.retention`",
            "not a duration",
        ),
        (
            "[timeseries.t]\nstore = \"m\"\nfields = [\"v\"]\npurge_interval = \"1m\"\n",
            "`timeseries.t.purge_interval`",
            "needs a `retention`",
        ),
        (
            "[timeseries.t]\nstore = \"m\"\nfields = [\"v\"]\ntable = \"x\\\"; DROP\"\n",
            "iot.toml:7:1: `timeseries.t.table`",
            "not a valid name",
        ),
        (
            "[entities.user]\nstore = \"m\"\n\n[timeseries.user]\nstore = \"m\"\nfields = [\"v\"]\n",
            "`timeseries.user`",
            "duplicate table `user`",
        ),
        (
            "[timeseries.t]\nstore = \"m\"\n",
            "`timeseries.t`",
            "missing field `fields`",
        ),
    ];
    for (body, at, what) in cases {
        let msg = config_error(body);
        assert!(
            msg.starts_with(at) || msg.contains(at),
            "{msg} should be at {at}"
        );
        assert!(msg.contains(what), "{msg} should say {what}");
    }
}

#[tokio::test]
async fn tables_are_created_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("iot.db");
    let text = format!(
        "[stores.main]\nkind = \"sqlite\"\nurl = \"sqlite://{}\"\n\n[timeseries.telemetry]\nstore = \"main\"\ntable = \"readings\"\nfields = [\"temperature\"]\nretention = \"7d\"\n",
        db.display()
    );
    let router = Router::from_toml_str(&text).await.unwrap();
    let ts = router.time_series("telemetry").unwrap();
    assert_eq!(ts.info().table, "readings");
    drop(router);
    // The table exists before any write: a second router sees it, and a
    // configuration naming a field the table lacks fails at start-up.
    let more = text.replace("[\"temperature\"]", "[\"temperature\", \"humidity\"]");
    let err = Router::from_toml_str(&more).await.unwrap_err().to_string();
    assert!(
        err.contains("timeseries.telemetry")
            && err.contains("no column `humidity`")
            && err.contains("ALTER TABLE"),
        "{err}"
    );
    let again = Router::from_toml_str(&text).await.unwrap();
    let n = again
        .time_series("telemetry")
        .unwrap()
        .append(&[Point::new("d", chrono::Utc::now()).field("temperature", 1.0)])
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// The memory store without its time series extras.
#[derive(Debug)]
struct NoSeries(MemoryStore, Capabilities);

#[async_trait]
impl Store for NoSeries {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn kind(&self) -> &'static str {
        "plain"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.1
    }
    fn location(&self) -> String {
        "test".into()
    }
    async fn ensure_entity(&self, e: &EntityInfo) -> polyrouter::Result<()> {
        self.0.ensure_entity(e).await
    }
    async fn get(&self, e: &EntityInfo, k: &Key) -> polyrouter::Result<Option<Record>> {
        self.0.get(e, k).await
    }
    async fn get_many(&self, e: &EntityInfo, k: &[Key]) -> polyrouter::Result<Vec<Option<Record>>> {
        self.0.get_many(e, k).await
    }
    async fn write(
        &self,
        e: &EntityInfo,
        ops: Vec<WriteOp>,
        atomic: bool,
    ) -> polyrouter::Result<Vec<WriteOutcome>> {
        self.0.write(e, ops, atomic).await
    }
    async fn query(&self, e: &EntityInfo, q: &StoreQuery) -> polyrouter::Result<Vec<Record>> {
        self.0.query(e, q).await
    }
    async fn count(&self, e: &EntityInfo, f: Option<&Filter>) -> polyrouter::Result<u64> {
        self.0.count(e, f).await
    }
    async fn ping(&self) -> polyrouter::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_store_without_time_series_is_refused_at_start_up() {
    let store = NoSeries(
        MemoryStore::new("plain"),
        Capabilities {
            time_series: false,
            ..Capabilities::all()
        },
    );
    let cfg = TimeSeriesConfig {
        store: "plain".into(),
        fields: vec!["v".into()],
        ..Default::default()
    };
    let err = Router::builder()
        .store("plain", Arc::new(store))
        .time_series("t", cfg.clone())
        .build()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{msg}");
    assert!(
        msg.contains("`timeseries.t.store`") && msg.contains("does not support time series"),
        "{msg}"
    );
    // Stores built in code get the same name checks as the file.
    let bad = TimeSeriesConfig {
        store: "m".into(),
        fields: vec!["no way".into()],
        ..Default::default()
    };
    let err = Router::builder()
        .store("m", Arc::new(MemoryStore::new("m")))
        .time_series("t", bad)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timeseries.t.fields"), "{err}");
}

#[tokio::test]
async fn an_unknown_time_series_is_a_config_error() {
    let router = Router::from_toml_str(HEAD).await.unwrap();
    let err = router.time_series("telemetry").unwrap_err().to_string();
    assert!(err.contains("add [timeseries.telemetry]"), "{err}");
}
