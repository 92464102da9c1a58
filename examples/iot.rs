//! IoT telemetry with polyrouter: a device registry in SQL, telemetry in a
//! time series, device status in a key-value store with a TTL — no server.
//!
//! ```text
//! cargo run --example iot
//! ```
//!
//! `examples/iot.toml` puts the registry (`devices` table) and the
//! `telemetry` time series in an embedded SQLite file
//! (`target/iot/iot.db`, or `$IOT_DATABASE_URL`), and device status in the
//! in-process memory store with a two-minute TTL. The example registers
//! five devices, appends the last 24 hours of readings (one every five
//! minutes per device, one batch per device), prints the latest reading of
//! every device, an hourly downsample for one of them, and which devices
//! are online. Run it as often as you like: points with the same device
//! and instant replace each other.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use polyrouter::config::Config;
use polyrouter::prelude::*;
use polyrouter::store::timeseries::Point;
use serde::{Deserialize, Serialize};

/// A registered device: a row of the `devices` table in SQLite.
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "device", key = "id")]
struct Device {
    id: String,
    name: String,
    site: String,
    installed_at: DateTime<Utc>,
}

/// What a device last said about itself; expires with the route's TTL.
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "device_status", key = "id")]
struct DeviceStatus {
    id: String,
    state: String,
    firmware: String,
    seen_at: DateTime<Utc>,
}

const DEVICES: [(&str, &str, &str); 5] = [
    ("th-001", "Cold room", "Malmö"),
    ("th-002", "Server room", "Malmö"),
    ("th-003", "Greenhouse", "Lund"),
    ("th-004", "Office", "Lund"),
    ("th-005", "Loading dock", "Helsingborg"),
];

/// A reading that depends only on the device and the instant, so reruns
/// write the same values: a daily temperature cycle, humidity against it,
/// a slowly draining battery.
fn reading(device: usize, at: DateTime<Utc>) -> Point {
    let hours = at.timestamp() as f64 / 3600.0;
    let phase = (hours / 24.0) * std::f64::consts::TAU + device as f64;
    let base = [4.0, 19.0, 24.0, 21.0, 12.0][device];
    let temperature = base + 2.5 * phase.sin() + 0.3 * (hours * 7.0 + device as f64).sin();
    let humidity = 55.0 - 10.0 * phase.sin();
    let battery = 100.0 - (hours % 720.0) / 720.0 * 40.0 - device as f64;
    let round = |x: f64| (x * 100.0).round() / 100.0;
    Point::new(DEVICES[device].0, at)
        .field("temperature", round(temperature))
        .field("humidity", round(humidity))
        .field("battery", round(battery))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Configure: the file says where devices, status and telemetry live.
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/iot.toml");
    let router = Router::builder()
        .config(Config::from_file(&file)?)
        .entity::<Device>() // creates or checks the `devices` table now
        .entity::<DeviceStatus>()
        .build() // and the `telemetry` table
        .await?;
    println!("polyrouter IoT example");
    println!("======================");
    for name in router.store_names() {
        if let Some(store) = router.store(name) {
            println!("store {name:<5} {:<7} {}", store.kind(), store.location());
        }
    }

    // 2. The registry, in SQL.
    let devices = router.repo::<Device>().await?;
    let installed = DateTime::from_timestamp(1_735_689_600, 0).expect("2025-01-01");
    let registry: Vec<Device> = DEVICES
        .iter()
        .enumerate()
        .map(|(i, (id, name, site))| Device {
            id: id.to_string(),
            name: name.to_string(),
            site: site.to_string(),
            installed_at: installed + TimeDelta::days(30 * i as i64),
        })
        .collect();
    devices.put_many(&registry).await?;
    let in_lund = devices.count(field("site").eq("Lund")).await?;
    println!(
        "\nregistry: {} devices in `devices`, {in_lund} of them in Lund",
        devices.count(None).await?
    );

    // 3. Telemetry: the last 24 hours, one reading every 5 minutes, one
    //    batch (one transaction) per device.
    let telemetry = router.time_series("telemetry")?;
    let end = Utc::now().duration_trunc(TimeDelta::hours(1))?;
    let start = end - TimeDelta::hours(24);
    let mut written = 0;
    for (i, _) in DEVICES.iter().enumerate() {
        let batch: Vec<Point> = (0..24 * 12)
            .map(|k| reading(i, start + TimeDelta::minutes(5 * k)))
            .collect();
        written += telemetry.append(&batch).await?;
    }
    println!(
        "telemetry: appended {written} points to `{}` (fields: {}; retention {} days)",
        telemetry.info().table,
        telemetry.info().fields.join(", "),
        telemetry.retention().map_or(0, |r| r.as_secs() / 86_400)
    );

    // 4. The latest reading of every device, in one call.
    let ids: Vec<&str> = DEVICES.iter().map(|d| d.0).collect();
    println!("\nlatest readings");
    for (id, point) in ids.iter().zip(telemetry.latest(&ids).await?) {
        match point {
            Some(p) => println!(
                "  {id} {} {:>6.2} °C {:>6.2} %RH battery {:>6.2} %",
                p.at.format("%Y-%m-%d %H:%M"),
                p.get("temperature").unwrap_or(f64::NAN),
                p.get("humidity").unwrap_or(f64::NAN),
                p.get("battery").unwrap_or(f64::NAN)
            ),
            None => println!("  {id} no readings"),
        }
    }

    // 5. Hourly downsample for the greenhouse: min/avg/max/last per hour.
    let hourly = telemetry
        .downsample("th-003", start..end, Duration::from_secs(3600))
        .await?;
    println!("\nth-003 (Greenhouse), hourly temperature over the last 24 hours");
    println!("  hour (UTC)         n     min     avg     max    last");
    for b in &hourly {
        if let Some(t) = b.field("temperature") {
            println!(
                "  {}  {:>3}  {:>6.2}  {:>6.2}  {:>6.2}  {:>6.2}",
                b.start.format("%Y-%m-%d %H:00"),
                b.count,
                t.min,
                t.avg(),
                t.max,
                t.last
            );
        }
    }
    let first = telemetry.range("th-003", start..end, 3).await?;
    println!(
        "first page of raw points: {} (more: {})",
        first.points.len(),
        first.next.is_some()
    );

    // 6. Device status in the key-value store, expiring after 2 minutes;
    //    a heartbeat extends one device's status without rewriting it.
    let status = router.repo::<DeviceStatus>().await?;
    let now = Utc::now();
    for id in &ids[..4] {
        status
            .put(&DeviceStatus {
                id: id.to_string(),
                state: "online".into(),
                firmware: "2.4.1".into(),
                seen_at: now,
            })
            .await?;
    }
    let kv_store = router.store("kv").expect("the kv store");
    if let (Some(kv), Some(route)) = (kv_store.as_kv(), router.route("device_status")) {
        let info = polyrouter::store::EntityInfo {
            table: route.table.clone(),
            store: route.store.clone(),
            ..polyrouter::store::EntityInfo::new(DeviceStatus::schema())
        };
        kv.expire(&info, &Key::from("th-001"), Duration::from_secs(600))
            .await?;
    }
    println!("\ndevice status (memory store, TTL 2 min)");
    let statuses = status.get_many(ids.iter().copied()).await?;
    for (id, s) in ids.iter().zip(statuses) {
        match s {
            Some(s) => println!(
                "  {id} {} firmware {}, seen {}",
                s.state,
                s.firmware,
                s.seen_at.format("%H:%M:%S")
            ),
            None => println!("  {id} offline (no status)"),
        }
    }

    // 7. Retention: nothing here is older than 30 days, so nothing goes.
    println!(
        "\nretention purge deleted {} points",
        telemetry.purge().await?
    );
    println!("\ndone");
    Ok(())
}
