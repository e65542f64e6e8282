//! Egress: the outputs a job hands over, as the host receives and keeps them.
//!
//! Owns the validation of what a guest hands over (an Arrow IPC stream) and its canonical form.
//! Before anything is decoded the stream's framing, schema and batch headers are read and
//! bounded: only plain column types (no dictionaries, run-end encodings, view or list-view types,
//! unions or maps, which can declare far more data than they carry), no compression, buffers
//! inside their message, and at most the job's `output_cells` limit of rows × columns. Outputs are
//! then decoded, put in wire form (exactly their rows) and re-encoded by the host, so their
//! digest does not depend on how the guest encoded them and hidden bytes (padding, trailing data,
//! slack in buffers) cannot ride along. [`Collector`] is the sandbox's output sink. It must never
//! trust the guest's bytes beyond decoding them within these bounds, and never release anything:
//! review and release decide that (later in the data path).

pub mod difference;
pub mod evidence;
pub mod wire;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_ipc::{MessageHeader, root_as_message};
use arrow_schema::{DataType, SchemaRef};
use enclave_abi::{ErrorCode, OutputKind};
use enclave_core::{Digest, ErrorKind, HostError, JobError, Limit, OutputSink};

/// Why an output was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// The bytes are not an acceptable Arrow IPC stream; says what is wrong with the encoding,
    /// never the data.
    #[error("{0}")]
    Invalid(String),
    /// The stream declares more cells (rows × columns) than the limit.
    #[error("output cells limit reached: used {used} cells of {limit} cells allowed")]
    TooLarge {
        /// Cells declared so far.
        used: u64,
        /// The limit.
        limit: u64,
    },
}

impl OutputError {
    fn invalid(s: impl Into<String>) -> Self {
        OutputError::Invalid(s.into())
    }
}

/// One output, decoded and canonicalized.
#[derive(Debug, Clone)]
pub struct Output {
    /// Name given by the job.
    pub name: String,
    /// Declared kind.
    pub kind: OutputKind,
    /// Arrow schema.
    pub schema: SchemaRef,
    /// The data (in wire form).
    pub batches: Vec<RecordBatch>,
    /// Total rows.
    pub rows: u64,
    /// Canonical Arrow IPC stream encoding (re-encoded by the host).
    pub canonical: Arc<Vec<u8>>,
    /// blake3 of `canonical`.
    pub digest: Digest,
}

/// Whether a column of type `dt` may appear in an output: plain types only, recursively.
pub fn allowed_type(dt: &DataType) -> bool {
    use DataType::*;
    match dt {
        Null | Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64
        | Float16 | Float32 | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..)
        | Decimal256(..) | Utf8 | LargeUtf8 | Binary | LargeBinary | FixedSizeBinary(_)
        | Date32 | Date64 | Time32(_) | Time64(_) | Timestamp(..) | Duration(_) | Interval(_) => {
            true
        }
        List(f) | LargeList(f) | FixedSizeList(f, _) => allowed_type(f.data_type()),
        Struct(fs) => fs.iter().all(|f| allowed_type(f.data_type())),
        _ => false,
    }
}

/// Reads 4 little-endian bytes at `at`.
fn read_u32(bytes: &[u8], at: usize) -> Result<u32, OutputError> {
    at.checked_add(4)
        .and_then(|end| bytes.get(at..end))
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| OutputError::invalid("truncated IPC stream"))
}

/// Walks the IPC stream framing and every message header before any decoding: message types,
/// column types, compression, buffer ranges and declared sizes. Returns the cells declared.
fn scan(bytes: &[u8], max_cells: u64) -> Result<u64, OutputError> {
    let mut pos = 0usize;
    let mut columns: Option<u64> = None;
    let mut cells = 0u64;
    let mut nested_total = 0u64;
    loop {
        if pos == bytes.len() {
            break; // a stream may omit the end-of-stream marker
        }
        let mut len = read_u32(bytes, pos)?;
        pos += 4;
        if len == 0xFFFF_FFFF {
            len = read_u32(bytes, pos)?;
            pos += 4;
        }
        if len == 0 {
            if pos != bytes.len() {
                return Err(OutputError::invalid("bytes after the end-of-stream marker"));
            }
            break;
        }
        let end = pos
            .checked_add(len as usize)
            .filter(|e| *e <= bytes.len())
            .ok_or_else(|| OutputError::invalid("truncated IPC message"))?;
        let message = root_as_message(&bytes[pos..end])
            .map_err(|_| OutputError::invalid("malformed IPC message header"))?;
        let body = usize::try_from(message.bodyLength())
            .map_err(|_| OutputError::invalid("negative IPC body length"))?;
        match message.header_type() {
            MessageHeader::Schema => {
                if columns.is_some() {
                    return Err(OutputError::invalid("a second schema message"));
                }
                let fb = message
                    .header_as_schema()
                    .ok_or_else(|| OutputError::invalid("malformed schema message"))?;
                let schema = enclave_core::contain(|| arrow_ipc::convert::fb_to_schema(fb))
                    .map_err(|_| OutputError::invalid("malformed schema message"))?;
                for f in schema.fields() {
                    if !allowed_type(f.data_type()) {
                        return Err(OutputError::invalid(format!(
                            "column type {} is not accepted in outputs (plain types only: no \
                             dictionary, run-end, view, list-view, union or map types)",
                            f.data_type()
                        )));
                    }
                }
                columns = Some(schema.fields().len() as u64);
            }
            MessageHeader::RecordBatch => {
                let Some(ncols) = columns else {
                    return Err(OutputError::invalid("a record batch before the schema"));
                };
                let b = message
                    .header_as_record_batch()
                    .ok_or_else(|| OutputError::invalid("malformed record batch message"))?;
                if b.compression().is_some() {
                    return Err(OutputError::invalid(
                        "compressed IPC bodies are not accepted",
                    ));
                }
                let rows = u64::try_from(b.length())
                    .map_err(|_| OutputError::invalid("negative row count"))?;
                cells = cells.saturating_add(rows.saturating_mul(ncols.max(1)));
                let mut nested = 0u64;
                for node in b.nodes().into_iter().flatten() {
                    let n = u64::try_from(node.length())
                        .map_err(|_| OutputError::invalid("negative array length"))?;
                    nested = nested.saturating_add(n);
                }
                // Children of nested columns have lengths of their own; they are bounded too.
                nested_total = nested_total.saturating_add(nested);
                if cells > max_cells {
                    return Err(OutputError::TooLarge {
                        used: cells,
                        limit: max_cells,
                    });
                }
                if nested_total > max_cells.saturating_mul(4) {
                    return Err(OutputError::TooLarge {
                        used: nested_total / 4,
                        limit: max_cells,
                    });
                }
                for buf in b.buffers().into_iter().flatten() {
                    let fits = u64::try_from(buf.offset())
                        .ok()
                        .zip(u64::try_from(buf.length()).ok())
                        .and_then(|(o, l)| o.checked_add(l))
                        .is_some_and(|e| e <= body as u64);
                    if !fits {
                        return Err(OutputError::invalid("a buffer outside its message body"));
                    }
                }
            }
            MessageHeader::DictionaryBatch => {
                return Err(OutputError::invalid(
                    "dictionary batches are not accepted in outputs",
                ));
            }
            other => {
                return Err(OutputError::invalid(format!(
                    "unexpected IPC message type {other:?}"
                )));
            }
        }
        pos = end
            .checked_add(body)
            .filter(|e| *e <= bytes.len())
            .ok_or_else(|| OutputError::invalid("truncated IPC body"))?;
    }
    if columns.is_none() {
        return Err(OutputError::invalid("the IPC stream has no schema"));
    }
    Ok(cells)
}

/// Decodes a stream that [`scan`] accepted.
fn decode(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), OutputError> {
    let mut decoder = StreamDecoder::new().with_require_alignment(false);
    let mut buffer = Buffer::from(bytes.to_vec());
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        if let Some(b) = decoder
            .decode(&mut buffer)
            .map_err(|e| OutputError::invalid(format!("invalid Arrow IPC stream: {e}")))?
        {
            batches.push(b);
        }
    }
    decoder
        .finish()
        .map_err(|e| OutputError::invalid(format!("invalid Arrow IPC stream: {e}")))?;
    let schema = decoder
        .schema()
        .ok_or_else(|| OutputError::invalid("the IPC stream has no schema"))?;
    Ok((schema, batches))
}

/// Re-encodes batches as a canonical Arrow IPC stream.
pub fn canonical_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, String> {
    let mut w = StreamWriter::try_new(Vec::new(), schema).map_err(|e| e.to_string())?;
    for b in batches {
        w.write(b).map_err(|e| e.to_string())?;
    }
    w.finish().map_err(|e| e.to_string())?;
    w.into_inner().map_err(|e| e.to_string())
}

/// The digest of a table's content whatever its batch boundaries: its batches in wire form,
/// concatenated into one and canonically encoded. Tables with the same columns (names, types,
/// nullability) and the same rows in the same order have the same digest: an output equal to a
/// query's result has that result's digest however the job re-batched it.
pub fn table_digest(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Digest, String> {
    let wire = wire::wire_schema(schema);
    let compact = batches
        .iter()
        .map(|b| wire::compact_batch(b, &wire))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let one = arrow_select::concat::concat_batches(&wire, &compact).map_err(|e| e.to_string())?;
    Ok(Digest::of(&canonical_ipc(&wire, &[one])?))
}

impl Output {
    /// The [`table_digest`] of this output.
    pub fn table_digest(&self) -> Result<Digest, String> {
        table_digest(&self.schema, &self.batches)
    }

    /// Validates, bounds and canonicalizes an output handed over by a guest.
    pub fn from_guest(
        name: &str,
        kind: OutputKind,
        bytes: &[u8],
        max_cells: u64,
    ) -> Result<Output, OutputError> {
        scan(bytes, max_cells)?;
        // Decoding untrusted bytes must not take the host down, whatever they hold.
        let (schema, batches) = enclave_core::contain(|| decode(bytes))
            .map_err(|_| OutputError::invalid("the Arrow IPC stream could not be decoded"))??;
        Output::new(name, kind, schema, batches).map_err(OutputError::Invalid)
    }

    /// An output from decoded batches (put in wire form, then canonically encoded).
    pub fn new(
        name: &str,
        kind: OutputKind,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<Output, String> {
        let wire_schema = wire::wire_schema(&schema);
        let batches = batches
            .iter()
            .map(|b| wire::compact_batch(b, &wire_schema))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("output cannot be put in canonical form: {e}"))?;
        let canonical = canonical_ipc(&wire_schema, &batches)?;
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let digest = Digest::of(&canonical);
        Ok(Output {
            name: name.to_owned(),
            kind,
            schema: wire_schema,
            batches,
            rows,
            canonical: Arc::new(canonical),
            digest,
        })
    }
}

/// The sandbox's output sink: validates and keeps every output of one job.
#[derive(Debug)]
pub struct Collector {
    max_cells: u64,
    /// The outputs taken, in emission order.
    pub outputs: Vec<Output>,
}

impl Collector {
    /// A collector refusing outputs of more than `max_cells` cells.
    pub fn new(max_cells: u64) -> Collector {
        Collector {
            max_cells,
            outputs: Vec::new(),
        }
    }
}

impl OutputSink for Collector {
    fn output(&mut self, name: &str, kind: OutputKind, bytes: &[u8]) -> Result<(), HostError> {
        match Output::from_guest(name, kind, bytes, self.max_cells) {
            Ok(out) => {
                self.outputs.push(out);
                Ok(())
            }
            Err(OutputError::TooLarge { used, limit }) => Err(HostError::Fatal(JobError::limit(
                Limit::OutputCells,
                used,
                limit,
            ))),
            Err(OutputError::Invalid(why)) => Err(HostError::refused(
                ErrorCode::BadArgument,
                JobError::new(ErrorKind::InvalidOutput, format!("output `{name}`: {why}")),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
