//! `polyrouter sagas list|show|retry|abort`: the saga log, without the
//! sagas' Rust definitions.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use polyrouter::saga::{SagaLog, SagaRecord, SagaState};

/// `polyrouter sagas` arguments.
#[derive(Debug, Args)]
pub struct SagasArgs {
    #[command(subcommand)]
    command: SagasCommand,
}

#[derive(Debug, Subcommand)]
enum SagasCommand {
    /// List the sagas of the `[sagas]` log, oldest first; parked ones need attention.
    List {
        /// Only sagas in this state (running, compensating, completed, compensated, parked, aborted).
        #[arg(long, value_parser = parse_state)]
        state: Option<SagaState>,
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Show one saga: its state, error, lease and every step.
    Show {
        /// The saga id.
        id: String,
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Send a parked saga back to compensation (after fixing the cause).
    Retry {
        /// The saga id.
        id: String,
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Compensate a running saga; mark a parked one aborted (undone by hand).
    Abort {
        /// The saga id.
        id: String,
        /// The TOML configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn parse_state(s: &str) -> Result<SagaState, String> {
    s.parse()
}

async fn open(config: &PathBuf) -> polyrouter::Result<SagaLog> {
    let router = polyrouter::Router::from_file(config).await?;
    SagaLog::open(&router).await
}

/// Runs the subcommand.
pub async fn run(args: SagasArgs) -> polyrouter::Result<()> {
    match args.command {
        SagasCommand::List { state, config } => {
            let log = open(&config).await?;
            let sagas = log.list(state).await?;
            println!(
                "{:<36}  {:<16}  {:<12}  {:<16}  {:<24}  ERROR",
                "ID", "SAGA", "STATE", "STEP", "UPDATED"
            );
            for s in &sagas {
                let at = s
                    .steps
                    .iter()
                    .position(|st| st.status != polyrouter::saga::StepStatus::Done)
                    .map(|i| s.steps[i].name.as_str())
                    .unwrap_or("-");
                println!(
                    "{:<36}  {:<16}  {:<12}  {:<16}  {:<24}  {}",
                    s.id,
                    s.saga,
                    s.state,
                    at,
                    time(s.updated_ms),
                    s.error.as_deref().unwrap_or("")
                );
            }
            let parked = sagas.iter().filter(|s| s.state == "parked").count();
            println!(
                "{} saga(s); parked (needs attention): {parked}",
                sagas.len()
            );
            if parked > 0 {
                println!(
                    "fix the cause, then `polyrouter sagas retry ID`; or undo by hand and `polyrouter sagas abort ID`"
                );
            }
            Ok(())
        }
        SagasCommand::Show { id, config } => {
            let log = open(&config).await?;
            match log.show(&id).await? {
                Some(s) => {
                    print_saga(&s);
                    Ok(())
                }
                None => Err(polyrouter::Error::invalid_input(
                    &log_store(&config),
                    "polyrouter_saga",
                    format!("no saga `{id}` in the log; `polyrouter sagas list` shows them"),
                )),
            }
        }
        SagasCommand::Retry { id, config } => {
            let log = open(&config).await?;
            let s = log.retry(&id).await?;
            println!(
                "saga `{}` is {} again; a worker resumes it at its next poll",
                s.id, s.state
            );
            Ok(())
        }
        SagasCommand::Abort { id, config } => {
            let log = open(&config).await?;
            let s = log.abort(&id).await?;
            match s.state().ok() {
                Some(SagaState::Compensating) => println!(
                    "saga `{}` is compensating; its worker (or another, once the lease expires) undoes its steps",
                    s.id
                ),
                _ => println!("saga `{}` is {}", s.id, s.state),
            }
            Ok(())
        }
    }
}

fn log_store(config: &PathBuf) -> String {
    polyrouter::config::Config::from_file(config)
        .ok()
        .and_then(|c| c.sagas.map(|s| s.store))
        .unwrap_or_default()
}

fn print_saga(s: &SagaRecord) {
    println!("id:       {}", s.id);
    println!("saga:     {}", s.saga);
    println!("state:    {}", s.state);
    if let Some(e) = &s.error {
        println!("error:    {e}");
    }
    println!("input:    {}", s.input);
    println!("created:  {}", time(s.created_ms));
    println!("updated:  {}", time(s.updated_ms));
    match &s.owner {
        Some(owner) => println!("lease:    {owner} until {}", time(s.lease_until)),
        None => println!("lease:    free"),
    }
    println!("steps:");
    for (i, st) in s.steps.iter().enumerate() {
        let status = serde_json::to_value(st.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!(
            "  {}. {:<16} {:<12} attempts {}, compensation attempts {}",
            i + 1,
            st.name,
            status,
            st.attempts,
            st.compensation_attempts
        );
        if let Some(o) = &st.output {
            println!("     output: {o}");
        }
        if let Some(e) = &st.error {
            println!("     error:  {e}");
        }
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}
