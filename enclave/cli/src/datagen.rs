//! `enclave datagen`: deterministic, realistic sample tables as Parquet (with a progress bar
//! on a terminal for large tables).
//!
//! Owns turning the command's arguments into an `enclave-datagen` call. It must never produce
//! anything but generated data: no domain data is read.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub(crate) struct DatagenArgs {
    /// Table: residents, hospital_visits or traffic_records.
    table: String,
    /// Number of rows (1 to 1,000,000,000).
    #[arg(long)]
    rows: u64,
    /// Seed: the same table, rows and seed always give the same data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output Parquet file.
    #[arg(long)]
    out: PathBuf,
    /// For hospital_visits: how many residents (same seed) are patients.
    #[arg(long, default_value_t = 100_000)]
    population: u64,
}

/// `enclave datagen`.
pub(crate) fn datagen(args: DatagenArgs) -> anyhow::Result<u8> {
    let bar = if std::io::stderr().is_terminal() && args.rows >= 1_000_000 {
        let b = indicatif::ProgressBar::new(args.rows);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {human_pos}/{human_len} rows [{bar:40}] {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let started = std::time::Instant::now();
    let n = enclave_datagen::generate(
        &args.table,
        args.rows,
        args.seed,
        args.population,
        &args.out,
        |done| {
            if let Some(b) = &bar {
                b.set_position(done);
            }
        },
    )
    .with_context(|| format!("generating {}", args.table))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "wrote {n} rows of {} (seed {}) to {} in {:.1} s",
        args.table,
        args.seed,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}
