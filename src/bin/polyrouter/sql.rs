//! `polyrouter sql`: analytical SQL over a configuration's entities
//! (cargo feature `analytics`).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use futures::TryStreamExt;
use polyrouter::analytics::datafusion::arrow::csv::WriterBuilder as CsvWriter;
use polyrouter::analytics::datafusion::arrow::json::LineDelimitedWriter;
use polyrouter::analytics::datafusion::arrow::util::pretty::pretty_format_batches;
use polyrouter::{Error, Router};

/// `polyrouter sql` arguments.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The statement, e.g. `SELECT status, count(*) FROM "order" GROUP BY status`.
    statement: String,
    /// The TOML configuration file; entities with `sql = { columns = ... }` are tables.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// `table` (default), `csv` (with a header) or `json` (one object per line).
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    format: String,
}

fn output(e: impl std::fmt::Display) -> Error {
    Error::invalid_input("sql", "", format!("writing the rows: {e}"))
}

/// Runs the statement and prints its rows; csv and json stream batch by batch.
pub async fn run(args: SqlArgs) -> polyrouter::Result<()> {
    let router = Router::from_file(&args.config).await?;
    let mut stream = router.sql(&args.statement).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let next = |e| Error::invalid_input("sql", "", e);
    match args.format.as_str() {
        "csv" => {
            let mut w = CsvWriter::new().with_header(true).build(&mut out);
            while let Some(batch) = stream.try_next().await.map_err(next)? {
                w.write(&batch).map_err(output)?;
            }
        }
        "json" => {
            let mut w = LineDelimitedWriter::new(&mut out);
            while let Some(batch) = stream.try_next().await.map_err(next)? {
                w.write(&batch).map_err(output)?;
            }
            w.finish().map_err(output)?;
        }
        _ => {
            let batches: Vec<_> = stream.try_collect().await.map_err(next)?;
            writeln!(out, "{}", pretty_format_batches(&batches).map_err(output)?)
                .map_err(output)?;
        }
    }
    out.flush().map_err(output)
}
