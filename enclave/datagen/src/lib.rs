//! Deterministic, seeded generator of realistic public-data tables, written as Parquet.
//!
//! Owns `enclave datagen`: the `residents`, `hospital_visits` and `traffic_records` tables, from
//! 1k to 100M rows, streamed to Parquet in fixed-size batches (memory stays flat whatever the
//! size). The same table, rows and seed always give the same file contents. Every person is
//! fictional; it must never read real data.

pub mod fakes;
mod residents;
mod rng;
mod traffic;
mod visits;
mod yancheng;

use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

pub use residents::age_band;

/// Tables the generator knows.
pub const TABLES: &[&str] = &["residents", "hospital_visits", "traffic_records"];

/// Most rows one call generates.
pub const MAX_ROWS: u64 = 1_000_000_000;

/// Rows per generated batch.
const BATCH_ROWS: usize = 65_536;

/// 2026-01-01 as days since the Unix epoch: the fixed "today" of generated data.
pub const REFERENCE_DAY: i32 = 20_454;

/// A generated table: a schema and batches on demand.
pub trait Table {
    /// The table's schema.
    fn schema(&self) -> SchemaRef;
    /// The next `rows` rows.
    fn batch(&mut self, rows: usize) -> Result<RecordBatch, ArrowError>;
}

/// Datagen failures.
#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    /// No generator of that name.
    #[error("unknown table `{0}`; known tables: residents, hospital_visits, traffic_records")]
    UnknownTable(String),
    /// Rows out of range.
    #[error("--rows must be between 1 and {MAX_ROWS}")]
    Rows,
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The Parquet writer failed.
    #[error("Parquet writer: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow failed.
    #[error("Arrow: {0}")]
    Arrow(#[from] ArrowError),
}

/// The schema of a generated table.
pub fn schema_of(table: &str) -> Option<SchemaRef> {
    match table {
        "residents" => Some(residents::schema()),
        "hospital_visits" => Some(visits::schema()),
        "traffic_records" => Some(traffic::schema()),
        _ => None,
    }
}

/// Generates `rows` rows of `table` under `seed` into `out`. For `hospital_visits`,
/// `population` residents (same seed) are the patients. `progress` is called with rows written.
pub fn generate(
    table: &str,
    rows: u64,
    seed: u64,
    population: u64,
    out: &Path,
    mut progress: impl FnMut(u64),
) -> Result<u64, DatagenError> {
    if rows == 0 || rows > MAX_ROWS {
        return Err(DatagenError::Rows);
    }
    let mut generator: Box<dyn Table> = match table {
        "residents" => Box::new(residents::Residents::new(seed)),
        "hospital_visits" => Box::new(visits::Visits::new(seed, population)),
        "traffic_records" => Box::new(traffic::Traffic::new(seed)),
        other => return Err(DatagenError::UnknownTable(other.to_owned())),
    };
    let io = |source| DatagenError::Io {
        path: out.display().to_string(),
        source,
    };
    let tmp = out.with_extension("parquet.partial");
    let file = File::create(&tmp).map_err(io)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by("enclave datagen".to_owned())
        .build();
    let mut writer = ArrowWriter::try_new(file, generator.schema(), Some(props))?;
    let mut written = 0u64;
    while written < rows {
        let n = (rows - written).min(BATCH_ROWS as u64) as usize;
        writer.write(&generator.batch(n)?)?;
        written += n as u64;
        progress(written);
    }
    writer.close()?;
    std::fs::rename(&tmp, out).map_err(io)?;
    Ok(written)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = i64::from(z) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// Check character of an 18-digit resident ID (GB 11643-1999, ISO 7064 MOD 11-2) for its
/// first 17 digits, or `None` if they are not 17 ASCII digits.
pub fn resident_id_check_digit(first17: &str) -> Option<char> {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in first17.chars().zip(W) {
        sum += c.to_digit(10)? * w;
    }
    Some(C[(sum % 11) as usize])
}

/// True for an 18-character resident ID whose check character is right.
pub fn is_valid_resident_id(id: &str) -> bool {
    id.len() == 18
        && id.is_char_boundary(17)
        && resident_id_check_digit(&id[..17]) == id[17..].chars().next()
}

#[cfg(test)]
mod tests;
