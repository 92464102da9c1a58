//! `polyrouter topology`: draw a configuration.

use std::path::PathBuf;

use clap::Args;
use polyrouter::config::Config;
use polyrouter::topology::{Format, Topology};

/// `polyrouter topology` arguments.
#[derive(Debug, Args)]
pub struct TopologyArgs {
    /// The TOML configuration file.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// `text` (default), `mermaid` or `dot` (Graphviz).
    #[arg(long, default_value = "text", value_parser = ["text", "mermaid", "dot"])]
    format: String,
}

/// Prints the topology; opens no store.
pub fn run(args: TopologyArgs) -> polyrouter::Result<()> {
    let config = Config::from_file(&args.config)?;
    let format = Format::parse(&args.format).unwrap_or(Format::Text);
    print!("{}", Topology::from_config(&config).render(format));
    Ok(())
}
