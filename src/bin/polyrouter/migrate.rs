//! `polyrouter migrate start|status|verify|repair|cutover|rollback|finish NAME --config FILE`:
//! drives the `[migrations.NAME]` of a configuration (docs/migration.md).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use polyrouter::migrate::{Migration, MigrationState, MigrationStatus, Phase};

/// `polyrouter migrate` arguments.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    command: MigrateCommand,
}

/// The migration and the configuration naming it.
#[derive(Debug, Args)]
struct Target {
    /// The migration (`[migrations.NAME]`).
    name: String,
    /// The TOML configuration file.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Subcommand)]
enum MigrateCommand {
    /// Start the migration, or resume it where it stopped: backfill every row into the target.
    Start(Target),
    /// Show the phase, progress (rows, rate, ETA), differences and who drives it.
    Status(Target),
    /// Compare source and target chunk by chunk (resumes an unfinished verify); lists mismatching keys.
    Verify(Target),
    /// Copy the keys the last verify listed again from the source; then verify again.
    Repair(Target),
    /// Make the target the primary: fence writes, drain the dual-write, flip every router.
    Cutover(Target),
    /// Make the source the primary again after a cutover; no write is lost.
    Rollback(Target),
    /// Keep the target as the primary for good (then point the route at it).
    Finish(Target),
}

/// Runs the subcommand.
pub async fn run(args: MigrateArgs) -> polyrouter::Result<()> {
    match args.command {
        MigrateCommand::Start(t) => {
            let m = open(&t).await?;
            let bar = Bar::new(&format!("backfill {}", t.name));
            let s = m.start(&mut |s| bar.backfill(s)).await;
            bar.done();
            print(&m, &current(&m, s?).await?);
            Ok(())
        }
        MigrateCommand::Status(t) => {
            let m = open(&t).await?;
            match m.status().await? {
                Some(s) => print(&m, &s),
                None => println!("migration {}: not started", t.name),
            }
            Ok(())
        }
        MigrateCommand::Verify(t) => {
            let m = open(&t).await?;
            let bar = Bar::new(&format!("verify {}", t.name));
            let s = m.verify(&mut |s| bar.verify(s)).await;
            bar.done();
            let s = s?;
            let differences = s.verify.as_ref().map_or(0, |v| v.differences());
            print(&m, &current(&m, s).await?);
            if differences > 0 {
                return Err(polyrouter::Error::invalid_input(
                    m.state_store(),
                    &m.config().entity,
                    format!(
                        "verify found {differences} difference(s); `polyrouter migrate repair {} --config FILE`, then verify again",
                        t.name
                    ),
                ));
            }
            Ok(())
        }
        MigrateCommand::Cutover(t) => {
            let m = open(&t).await?;
            eprintln!(
                "cutover {}: fencing writes for {} ms, then draining the dual-write",
                t.name,
                m.config().poll.0.as_millis() * 2
            );
            let s = m.cutover().await?;
            print(&m, &current(&m, s).await?);
            Ok(())
        }
        MigrateCommand::Rollback(t) => {
            let m = open(&t).await?;
            let s = m.rollback().await?;
            print(&m, &current(&m, s).await?);
            Ok(())
        }
        MigrateCommand::Finish(t) => {
            let m = open(&t).await?;
            let s = m.finish().await?;
            let hint = format!(
                "  now set `store = \"{}\"` in [entities.{}] and remove [migrations.{}]",
                s.to, s.entity, t.name
            );
            print(&m, &current(&m, s).await?);
            println!("{hint}");
            Ok(())
        }
        MigrateCommand::Repair(t) => {
            let m = open(&t).await?;
            let r = m.repair().await?;
            println!(
                "repaired {} key(s); {} already equal; {} left as they are (the target holds a newer version than the source)",
                r.repaired,
                r.already_equal,
                r.unrepairable.len()
            );
            for x in r.unrepairable.iter().take(20) {
                println!("  {} {}", x.difference, x.key.key());
            }
            Ok(())
        }
    }
}

async fn open(t: &Target) -> polyrouter::Result<Migration> {
    let router = polyrouter::Router::from_file(&t.config).await?;
    router.migration(&t.name).await
}

async fn current(m: &Migration, s: MigrationState) -> polyrouter::Result<MigrationStatus> {
    Ok(m.status().await?.unwrap_or(MigrationStatus {
        state: s,
        owner: None,
        lease_until_ms: 0,
        shadow: None,
    }))
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(what: &str) -> Bar {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(what.to_string());
        Bar(bar)
    }

    fn backfill(&self, s: &MigrationState) {
        let b = &s.backfill;
        self.0.set_length(b.total.unwrap_or(0).max(b.rows));
        self.0.set_position(b.rows);
    }

    fn verify(&self, s: &MigrationState) {
        if let Some(v) = &s.verify {
            let done = v.source_rows + v.target_rows;
            self.0.set_length((s.backfill.rows * 2).max(done));
            self.0.set_position(done);
        }
    }

    fn done(&self) {
        self.0.finish_and_clear();
    }
}

fn rate(rows: u64, ms: u64) -> f64 {
    if ms == 0 {
        0.0
    } else {
        rows as f64 * 1000.0 / ms as f64
    }
}

fn print(m: &Migration, st: &MigrationStatus) {
    let s = &st.state;
    println!(
        "migration {}: entity {} from {} to {}, phase {}",
        m.name(),
        s.entity,
        s.from,
        s.to,
        s.phase
    );
    let b = &s.backfill;
    let r = rate(b.rows, b.busy_ms);
    let total = b.total.map_or_else(String::new, |t| format!(" of ~{t}"));
    let eta = match b.total {
        Some(t) if !b.done && r > 0.0 && t > b.rows => {
            format!(", eta {:.0} s", (t - b.rows) as f64 / r)
        }
        _ => String::new(),
    };
    println!(
        "  backfill: {} row(s){total} copied, {} already newer in the target, {:.0} rows/s{eta}{}",
        b.rows,
        b.skipped,
        r,
        if b.done { ", done" } else { "" }
    );
    if let Some(v) = &s.verify {
        println!(
            "  verify: {} source row(s), {} target row(s), {:.0} rows/s; missing {}, changed {}, extra {}{}",
            v.source_rows,
            v.target_rows,
            rate(v.source_rows + v.target_rows, v.busy_ms),
            v.missing,
            v.changed,
            v.extra,
            if v.done { ", done" } else { ", under way" }
        );
        for x in v.mismatches.iter().take(20) {
            println!("    {} {}", x.difference, x.key.key());
        }
        if v.mismatches.len() > 20 {
            println!("    … {} more listed", v.mismatches.len() - 20);
        }
    }
    if let Some(sh) = &st.shadow {
        println!(
            "  shadow reads: {} compared, {} different, {} skipped (too many in flight)",
            sh.compared, sh.differences, sh.skipped
        );
        for x in &sh.recent {
            println!("    {} {}", x.difference, x.key.key());
        }
    }
    if let Some(o) = &st.owner {
        println!("  driven by {o}");
    }
    if let Some(e) = &s.error {
        println!("  last error: {e}");
    }
    if s.phase == Phase::Verified {
        println!("  source and target are equal");
    }
}
