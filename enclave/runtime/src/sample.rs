//! Sampled, desensitized samples (抽样、脱敏样本) for developers.
//!
//! Owns `enclave sample`: a random sample of N rows of a dataset, each column treated by its rule
//! — open columns kept, comparable ones shuffled within the column (marginals kept, rows
//! unlinked), aggregate-only numbers noised, personal ones replaced by format-valid fakes. The
//! schema is kept so modules built on the sample run on the real data. The seed only selects the
//! rows (so a sample can be reproduced); shuffles, noise and fakes draw from a CSPRNG keyed by the
//! domain secret, the snapshot and the seed, so knowing the seed does not let anyone undo them.
//! Making a sample is logged. It must never write a source value of a restricted (L3/L4-style)
//! column: every generated value is checked against a Bloom filter of the whole source column and
//! regenerated if it matches. (A noised column whose domain is dense — every day of a century —
//! may hold no unseen value; it then gets a value that differs from its own row's, and the
//! summary says so.)

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt64Array,
};
use datafusion::arrow::compute::{concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use enclave_core::{Digest, TableName};
use enclave_datagen::fakes::{FakeFormat, Faker, Random, Rng};
use enclave_policy::{ColumnRule, Format, Policy, Use};

use crate::RuntimeError;
use crate::actions::Action;
use crate::domain::Domain;

/// A CSPRNG: blake3 in XOF mode under a 32-byte key.
pub struct KeyedRandom(blake3::OutputReader);

impl KeyedRandom {
    /// The stream of `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        KeyedRandom(blake3::Hasher::new_keyed(key).finalize_xof())
    }
}

impl Random for KeyedRandom {
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// The key of a sample's shuffles, noise and fakes: only the domain can compute it.
pub fn sample_key(domain_secret: &[u8; 32], snapshot: &Digest, seed: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("enclave v1 sample desensitization");
    h.update(domain_secret);
    h.update(snapshot.as_bytes());
    h.update(&seed.to_le_bytes());
    *h.finalize().as_bytes()
}

fn fake_format(f: Format) -> FakeFormat {
    match f {
        Format::ResidentId => FakeFormat::ResidentId,
        Format::Phone => FakeFormat::Phone,
        Format::Name => FakeFormat::Name,
        Format::Plate => FakeFormat::Plate,
    }
}

/// How a column is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Open column: kept as is.
    Keep,
    /// Comparable but not open: values shuffled within the column.
    Shuffle,
    /// Aggregate-only numbers and dates: noised.
    Noise,
    /// Personal or denied: replaced by format-valid fakes.
    Fake,
}

/// The treatment a rule calls for.
pub fn treatment(rule: Option<&ColumnRule>) -> Treatment {
    match rule {
        Some(r) if r.is_open() => Treatment::Keep,
        Some(r) if r.uses.contains(&Use::GroupBy) || r.uses.contains(&Use::Compare) => {
            Treatment::Shuffle
        }
        Some(r) if r.uses.contains(&Use::Aggregate) && r.format.is_none() => Treatment::Noise,
        _ => Treatment::Fake,
    }
}

/// Sampling failures.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The policy does not classify the dataset.
    #[error("dataset `{0}` is not classified by the policy")]
    Unclassified(String),
    /// The source could not be read.
    #[error("cannot read {path}: {why}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The sample could not be written.
    #[error("cannot write {path}: {why}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// No value outside the source's values could be generated.
    #[error(
        "column `{column}` ({kind}) cannot be desensitized: no value outside the source's values could be generated"
    )]
    Exhausted {
        /// The column.
        column: String,
        /// Its type.
        kind: String,
    },
    /// Zero rows asked for.
    #[error("--rows must be at least 1")]
    Rows,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct SampleSummary {
    /// Rows in the source.
    pub source_rows: u64,
    /// Rows written.
    pub rows: u64,
    /// Treatment per column.
    pub treatments: Vec<(String, Treatment)>,
    /// Noised columns whose domain is so dense that some noised values equal other source
    /// values (each still differs from its own row's value).
    pub dense: Vec<String>,
}

/// A Bloom filter of a column's values (1% false positives at the sized capacity).
struct Bloom {
    bits: Vec<u64>,
    k: u32,
}

impl Bloom {
    fn new(items: u64) -> Self {
        let m = (items.max(64) * 10).next_power_of_two();
        Bloom {
            bits: vec![0; (m / 64) as usize],
            k: 7,
        }
    }
    fn hashes(&self, bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
        let h = blake3::hash(bytes);
        let b = h.as_bytes();
        let h1 = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let h2 = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]) | 1;
        let m = self.bits.len() as u64 * 64;
        (0..u64::from(self.k)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }
    fn insert(&mut self, bytes: &[u8]) {
        let idx: Vec<usize> = self.hashes(bytes).collect();
        for i in idx {
            self.bits[i / 64] |= 1 << (i % 64);
        }
    }
    fn contains(&self, bytes: &[u8]) -> bool {
        self.hashes(bytes)
            .all(|i| self.bits[i / 64] & (1 << (i % 64)) != 0)
    }
}

/// Floyd's algorithm: `n` distinct indices from `[0, total)`, sorted.
fn choose(rng: &mut impl Random, total: u64, n: u64) -> Vec<u64> {
    let mut set = BTreeSet::new();
    for j in total - n..total {
        let t = rng.below(j + 1);
        if !set.insert(t) {
            set.insert(j);
        }
    }
    set.into_iter().collect()
}

fn read_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> SampleError + '_ {
    move |e| SampleError::Read {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// What to sample.
#[derive(Debug, Clone)]
pub struct SampleRequest<'a> {
    /// The dataset's name in the policy.
    pub dataset: TableName,
    /// Its file.
    pub input: &'a Path,
    /// Rows in the sample.
    pub rows: u64,
    /// Selects the rows (reproducibly); never the desensitization.
    pub seed: u64,
    /// Where the sample goes.
    pub out: &'a Path,
}

impl Domain {
    /// Writes a desensitized sample under `policy` and logs it (source snapshot, sample digest).
    pub fn sample(
        &self,
        policy: &Policy,
        req: &SampleRequest<'_>,
    ) -> Result<SampleSummary, RuntimeError> {
        let snapshot = self.home.snapshots()?.snapshot(req.input)?;
        let key = sample_key(self.secret(), &snapshot.digest, req.seed);
        let summary = sample(
            policy,
            req.dataset.as_str(),
            &snapshot.path,
            req.rows,
            req.seed,
            &key,
            req.out,
        )
        .map_err(RuntimeError::Sample)?;
        let written = enclave_store::file_blake3(req.out)?;
        let mut request = Vec::new();
        request.extend_from_slice(&req.rows.to_le_bytes());
        request.extend_from_slice(&req.seed.to_le_bytes());
        self.record(&[Action::SampleMade {
            dataset: &req.dataset,
            source: snapshot.digest,
            sample: written,
            request: self.keyed("sample request", &request),
        }])?;
        Ok(summary)
    }
}

/// Writes a sample of `rows` rows of dataset `name` (file `input`) to `out`: rows selected by
/// `seed`, desensitized with randomness keyed by `key`.
pub fn sample(
    policy: &Policy,
    name: &str,
    input: &Path,
    rows: u64,
    seed: u64,
    key: &[u8; 32],
    out: &Path,
) -> Result<SampleSummary, SampleError> {
    if rows == 0 {
        return Err(SampleError::Rows);
    }
    let rules = policy
        .dataset(name)
        .ok_or_else(|| SampleError::Unclassified(name.to_owned()))?;
    let rerr = read_err(input);
    let file = File::open(input).map_err(|e| rerr(&e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| rerr(&e))?;
    let total = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let schema: SchemaRef = Arc::clone(builder.schema());
    let reader = builder
        .with_batch_size(65_536)
        .build()
        .map_err(|e| rerr(&e))?;
    let n = rows.min(total);
    let picked = choose(&mut Rng::for_row(seed, 0x5a4d_504c, 0), total, n);

    let treatments: Vec<Treatment> = schema
        .fields()
        .iter()
        .map(|f| treatment(rules.columns.get(f.name())))
        .collect();
    let guarded: Vec<bool> = treatments
        .iter()
        .map(|t| matches!(t, Treatment::Noise | Treatment::Fake))
        .collect();
    let mut blooms: Vec<Option<Bloom>> = guarded
        .iter()
        .map(|g| g.then(|| Bloom::new(total)))
        .collect();
    let converters: Vec<RowConverter> = schema
        .fields()
        .iter()
        .map(|f| {
            RowConverter::new(vec![SortField::new(f.data_type().clone())]).map_err(|e| rerr(&e))
        })
        .collect::<Result<_, _>>()?;

    let mut parts = Vec::new();
    let (mut offset, mut next) = (0u64, 0usize);
    for batch in reader {
        let batch = batch.map_err(|e| rerr(&e))?;
        for (c, bloom) in blooms.iter_mut().enumerate() {
            if let Some(b) = bloom {
                let rows = converters[c]
                    .convert_columns(&[Arc::clone(batch.column(c))])
                    .map_err(|e| rerr(&e))?;
                for i in 0..batch.num_rows() {
                    if batch.column(c).is_valid(i) {
                        b.insert(rows.row(i).as_ref());
                    }
                }
            }
        }
        let end = offset + batch.num_rows() as u64;
        let mut idx = Vec::new();
        while next < picked.len() && picked[next] < end {
            idx.push(picked[next] - offset);
            next += 1;
        }
        if !idx.is_empty() {
            let idx = UInt64Array::from(idx);
            let cols = batch
                .columns()
                .iter()
                .map(|c| take(c, &idx, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| rerr(&e))?;
            parts.push(RecordBatch::try_new(Arc::clone(&schema), cols).map_err(|e| rerr(&e))?);
        }
        offset = end;
    }
    let sampled = concat_batches(&schema, &parts).map_err(|e| rerr(&e))?;

    let mut faker = Faker::new(KeyedRandom::new(key));
    let mut dense = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (c, field) in schema.fields().iter().enumerate() {
        let col = sampled.column(c);
        let format = rules
            .columns
            .get(field.name())
            .and_then(|r| r.format)
            .map(fake_format);
        let treated = match treatments[c] {
            Treatment::Keep => Arc::clone(col),
            Treatment::Shuffle => {
                let mut order: Vec<u64> = (0..col.len() as u64).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, faker.rng().below(i as u64 + 1) as usize);
                }
                take(col, &UInt64Array::from(order), None).map_err(|e| rerr(&e))?
            }
            Treatment::Noise | Treatment::Fake => {
                let bloom = blooms[c].as_ref();
                let seen = |a: &ArrayRef| -> Result<bool, SampleError> {
                    let r = converters[c]
                        .convert_columns(&[Arc::clone(a)])
                        .map_err(|e| rerr(&e))?;
                    Ok(bloom.is_some_and(|b| b.contains(r.row(0).as_ref())))
                };
                let mut is_dense = false;
                let out = desensitize(
                    col,
                    field,
                    treatments[c],
                    format,
                    &mut faker,
                    seen,
                    &mut is_dense,
                )?;
                if is_dense {
                    dense.push(field.name().clone());
                }
                out
            }
        };
        columns.push(treated);
    }
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| rerr(&e))?;
    let werr = |e: &dyn std::fmt::Display| SampleError::Write {
        path: out.display().to_string(),
        why: e.to_string(),
    };
    let tmp = out.with_extension("parquet.partial");
    let f = File::create(&tmp).map_err(|e| werr(&e))?;
    let mut w = ArrowWriter::try_new(f, Arc::clone(&schema), None).map_err(|e| werr(&e))?;
    w.write(&batch).map_err(|e| werr(&e))?;
    w.close().map_err(|e| werr(&e))?;
    std::fs::rename(&tmp, out).map_err(|e| werr(&e))?;
    Ok(SampleSummary {
        source_rows: total,
        rows: n,
        treatments: schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .zip(treatments)
            .collect(),
        dense,
    })
}

/// Replaces every value of `col` with a noised or fake one not present in the source column.
fn desensitize(
    col: &ArrayRef,
    field: &Field,
    how: Treatment,
    format: Option<FakeFormat>,
    faker: &mut Faker<KeyedRandom>,
    seen: impl Fn(&ArrayRef) -> Result<bool, SampleError>,
    dense: &mut bool,
) -> Result<ArrayRef, SampleError> {
    let (name, nullable) = (field.name(), field.is_nullable());
    let exhausted = || SampleError::Exhausted {
        column: name.to_owned(),
        kind: col.data_type().to_string(),
    };
    let mut out: Vec<Option<ArrayRef>> = Vec::with_capacity(col.len());
    for i in 0..col.len() {
        if col.is_null(i) {
            out.push(None);
            continue;
        }
        let original = col.slice(i, 1);
        let mut fresh = None;
        let mut fallback = None;
        for attempt in 0..64 {
            let candidate = match how {
                Treatment::Noise => faker.noise(&original, attempt),
                _ => faker.fake(col.data_type(), format, &original),
            };
            let Some(candidate) = candidate else { break };
            if !seen(&candidate)? {
                fresh = Some(candidate);
                break;
            }
            // A dense domain (every date of a century, small integers) may hold no unseen value:
            // noise and fakes then fall back to a value that at least differs from this row's
            // own (reported as dense).
            if fallback.is_none() && candidate.to_data() != original.to_data() {
                fallback = Some(candidate);
            }
        }
        if fresh.is_none() && fallback.is_some() {
            *dense = true;
            fresh = fallback;
        }
        match fresh {
            Some(v) => out.push(Some(v)),
            None if nullable => out.push(None),
            None => return Err(exhausted()),
        }
    }
    assemble(col.data_type(), out).ok_or_else(exhausted)
}

/// Builds one array from single-value arrays (`None` = null).
fn assemble(dt: &DataType, values: Vec<Option<ArrayRef>>) -> Option<ArrayRef> {
    macro_rules! collect {
        ($arr:ty) => {{
            let v: $arr = values
                .iter()
                .map(|a| {
                    a.as_ref()
                        .and_then(|a| a.as_any().downcast_ref::<$arr>().map(|x| x.value(0)))
                })
                .collect();
            Some(Arc::new(v) as ArrayRef)
        }};
    }
    match dt {
        DataType::Utf8 => {
            let v: StringArray = values
                .iter()
                .map(|a| {
                    a.as_ref().and_then(|a| {
                        a.as_any()
                            .downcast_ref::<StringArray>()
                            .map(|x| x.value(0).to_owned())
                    })
                })
                .collect();
            Some(Arc::new(v))
        }
        DataType::Int64 => collect!(Int64Array),
        DataType::Int32 => collect!(Int32Array),
        DataType::Float64 => collect!(Float64Array),
        DataType::Date32 => collect!(Date32Array),
        DataType::Boolean => {
            let v: BooleanArray = values
                .iter()
                .map(|a| {
                    a.as_ref().and_then(|a| {
                        a.as_any()
                            .downcast_ref::<BooleanArray>()
                            .map(|x| x.value(0))
                    })
                })
                .collect();
            Some(Arc::new(v))
        }
        _ => None,
    }
}
