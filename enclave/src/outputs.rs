//! Outputs a job emits, as the host receives them.
//!
//! Owns the validation of what a guest hands over (name, kind, Arrow IPC stream) and its
//! canonical form: outputs are decoded and re-encoded by the host, so their digest does not
//! depend on how the guest chose to encode them and hidden bytes (padding, trailing data,
//! compression) cannot ride along. It must never trust the guest's bytes beyond decoding them,
//! and never release anything: egress and review decide that.

use std::sync::Arc;

use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamDecoder;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::ipc::{MessageHeader, root_as_message};
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;

/// Declared kind of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Aggregate statistics.
    Aggregate,
    /// Model parameters.
    Model,
    /// A report of aggregate figures.
    Report,
}

impl OutputKind {
    /// From the ABI's integer code.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(OutputKind::Aggregate),
            1 => Some(OutputKind::Model),
            2 => Some(OutputKind::Report),
            _ => None,
        }
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
    /// The data.
    pub batches: Vec<RecordBatch>,
    /// Total rows.
    pub rows: u64,
    /// Canonical Arrow IPC stream encoding (re-encoded by the host).
    pub canonical: Arc<Vec<u8>>,
    /// blake3 of `canonical`, hex.
    pub blake3: String,
}

/// Checks an output name: 1–64 bytes of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(
            "output names are 1-64 characters of [A-Za-z0-9_.-], not starting with `.` or `-`"
                .into(),
        )
    }
}

/// Walks the IPC stream framing and refuses compressed bodies and unexpected message types
/// before any decoding (compressed bodies could expand far beyond the output cap).
fn check_messages(bytes: &[u8]) -> Result<(), String> {
    let mut pos = 0usize;
    let read_u32 = |at: usize| -> Result<u32, String> {
        bytes
            .get(at..at.checked_add(4).ok_or("overflow")?)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "truncated IPC stream".to_string())
    };
    loop {
        if pos == bytes.len() {
            return Ok(()); // a stream may omit the end-of-stream marker
        }
        let mut len = read_u32(pos)?;
        pos += 4;
        if len == 0xFFFF_FFFF {
            len = read_u32(pos)?;
            pos += 4;
        }
        if len == 0 {
            return if pos == bytes.len() {
                Ok(())
            } else {
                Err("bytes after the end-of-stream marker".into())
            };
        }
        let end = pos
            .checked_add(len as usize)
            .filter(|e| *e <= bytes.len())
            .ok_or("truncated IPC message")?;
        let message = root_as_message(&bytes[pos..end])
            .map_err(|_| "malformed IPC message header".to_string())?;
        let body = usize::try_from(message.bodyLength()).map_err(|_| "negative IPC body length")?;
        let compressed = match message.header_type() {
            MessageHeader::Schema => false,
            MessageHeader::RecordBatch => message
                .header_as_record_batch()
                .is_some_and(|b| b.compression().is_some()),
            MessageHeader::DictionaryBatch => message
                .header_as_dictionary_batch()
                .and_then(|d| d.data())
                .is_some_and(|b| b.compression().is_some()),
            other => return Err(format!("unexpected IPC message type {other:?}")),
        };
        if compressed {
            return Err("compressed IPC bodies are not accepted".into());
        }
        pos = end
            .checked_add(body)
            .filter(|e| *e <= bytes.len())
            .ok_or("truncated IPC body")?;
    }
}

fn decode(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    check_messages(bytes)?;
    let mut decoder = StreamDecoder::new().with_require_alignment(false);
    let mut buffer = Buffer::from(bytes.to_vec());
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        if let Some(b) = decoder
            .decode(&mut buffer)
            .map_err(|e| format!("invalid Arrow IPC stream: {e}"))?
        {
            batches.push(b);
        }
    }
    decoder
        .finish()
        .map_err(|e| format!("invalid Arrow IPC stream: {e}"))?;
    let schema = decoder.schema().ok_or("the IPC stream has no schema")?;
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

impl Output {
    /// Validates and canonicalizes an output handed over by a guest. Errors name what is wrong
    /// with the encoding, never the data.
    pub fn from_guest(name: &str, kind: i32, bytes: &[u8]) -> Result<Output, String> {
        check_name(name)?;
        let kind = OutputKind::from_code(kind)
            .ok_or_else(|| format!("unknown output kind code {kind}"))?;
        // Decoding untrusted flatbuffers must not take the host down, whatever the bytes.
        let decoded = std::panic::catch_unwind(|| decode(bytes))
            .map_err(|_| "the Arrow IPC stream could not be decoded".to_string())??;
        let (schema, batches) = decoded;
        Output::new(name, kind, schema, batches)
    }

    /// An output from decoded batches.
    pub fn new(
        name: &str,
        kind: OutputKind,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<Output, String> {
        let canonical = canonical_ipc(&schema, &batches)?;
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let blake3 = blake3::hash(&canonical).to_hex().to_string();
        Ok(Output {
            name: name.to_owned(),
            kind,
            schema,
            batches,
            rows,
            canonical: Arc::new(canonical),
            blake3,
        })
    }

    /// The rows as JSON objects (column name → value).
    pub fn rows_json(&self) -> Result<Vec<serde_json::Value>, String> {
        let mut w = datafusion::arrow::json::ArrayWriter::new(Vec::new());
        let refs: Vec<&RecordBatch> = self.batches.iter().collect();
        w.write_batches(&refs).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
        let bytes = w.into_inner();
        if bytes.is_empty() {
            return Ok(vec![]);
        }
        match serde_json::from_slice(&bytes).map_err(|e| e.to_string())? {
            serde_json::Value::Array(rows) => Ok(rows),
            _ => Err("JSON writer produced no array".into()),
        }
    }

    /// The schema as a list of `{name, type, nullable}` objects.
    pub fn schema_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.schema
                .fields()
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "name": f.name(),
                        "type": f.data_type().to_string(),
                        "nullable": f.is_nullable(),
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::ipc::CompressionType;
    use datafusion::arrow::ipc::writer::IpcWriteOptions;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("district", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["亭湖区", "盐都区"])),
                Arc::new(Int64Array::from(vec![12, 30])),
            ],
        )
        .unwrap()
    }

    fn encode(b: &RecordBatch) -> Vec<u8> {
        canonical_ipc(&b.schema(), std::slice::from_ref(b)).unwrap()
    }

    #[test]
    fn roundtrip_and_canonical_digest() {
        let b = batch();
        let bytes = encode(&b);
        let out = Output::from_guest("result", 0, &bytes).unwrap();
        assert_eq!(out.rows, 2);
        assert_eq!(out.kind, OutputKind::Aggregate);
        assert_eq!(*out.canonical, bytes);
        let rows = out.rows_json().unwrap();
        assert_eq!(rows[1]["n"], 30);
        assert_eq!(rows[0]["district"], "亭湖区");
        // Same data, different encoding (no EOS marker): same canonical digest.
        let no_eos = &bytes[..bytes.len() - 8];
        assert_eq!(
            Output::from_guest("result", 0, no_eos).unwrap().blake3,
            out.blake3
        );
    }

    #[test]
    fn refuses_bad_names_kinds_and_streams() {
        let bytes = encode(&batch());
        assert!(Output::from_guest("", 0, &bytes).is_err());
        assert!(Output::from_guest("../x", 0, &bytes).is_err());
        assert!(Output::from_guest(&"a".repeat(65), 0, &bytes).is_err());
        assert!(
            Output::from_guest("ok", 7, &bytes)
                .unwrap_err()
                .contains("kind")
        );
        assert!(Output::from_guest("ok", 0, b"garbage!").is_err());
        assert!(Output::from_guest("ok", 0, &[]).is_err());
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"hidden");
        assert!(Output::from_guest("ok", 0, &trailing).is_err());
        let truncated = &bytes[..bytes.len() / 2];
        assert!(Output::from_guest("ok", 0, truncated).is_err());
    }

    #[test]
    fn refuses_compressed_bodies() {
        let b = batch();
        let opts = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::LZ4_FRAME))
            .unwrap();
        let mut w = StreamWriter::try_new_with_options(Vec::new(), &b.schema(), opts).unwrap();
        w.write(&b).unwrap();
        w.finish().unwrap();
        let bytes = w.into_inner().unwrap();
        let e = Output::from_guest("ok", 0, &bytes).unwrap_err();
        assert!(e.contains("compressed"), "{e}");
    }
}
