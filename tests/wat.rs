//! The hostile-module suite: every `wat/cases/*.wat` file is a job with its expected outcome in
//! its header, run through the whole runtime (a domain, the policy, the recorder, the sandbox),
//! after which the same process must run a normal job, within the job's wall-clock limit and
//! under 2 GiB of peak resident memory.
//!
//! Header directives (lines starting `;;!`):
//! `expect: ok | <error_kind> [<limit>]`, `message: <substring>` (repeatable),
//! `limits: key=value …` (fuel, memory_mib, wall_ms, transcript_bytes, query_memory_mib,
//! output_bytes, queries; unset ones are the tight test defaults), `table: <name> <rows>`,
//! `param: key=value` (repeatable), `policy: default`, `include: lib/<file>.wat` (the module is
//! that file), `bytes: <text>` / `hex: <hex>` (the module is these raw bytes),
//! `fuel-used: <n>`, `output: <name> rows=<n>`, `output-lacks: <text>`,
//! `evidence: <verdict> <check>` (an output's evidence has that verdict, by that check).
//! Generated cases (`output-*.wat`, crafted Arrow IPC outputs) are kept current by
//! `wat::generated_cases_are_current` (rewrite them with `ENCLAVE_BLESS=1`).

use std::path::{Path, PathBuf};

use enclave_core::{ErrorKind, Limit};
use enclave_tests::*;
use libtest_mimic::Trial;

/// 2 GiB.
const RSS_LIMIT: u64 = 2 << 30;

/// Slack over a job's wall-clock limit for the sandbox to stop it and report.
const WALL_SLACK_MS: u64 = 3_000;

#[derive(Debug, Default)]
struct Case {
    expect_kind: Option<ErrorKind>,
    expect_limit: Option<Limit>,
    expect_ok: bool,
    any_limit: bool,
    messages: Vec<String>,
    limits: Vec<(String, u64)>,
    tables: Vec<(String, u64)>,
    params: Vec<(String, String)>,
    default_policy: bool,
    include: Option<String>,
    raw: Option<Vec<u8>>,
    fuel_used: Option<u64>,
    output: Option<(String, u64)>,
    output_lacks: Vec<String>,
    evidence: Vec<(String, String)>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn parse(text: &str) -> Result<Case, String> {
    let mut c = Case::default();
    for line in text.lines() {
        let Some(d) = line.strip_prefix(";;!") else {
            continue;
        };
        let d = d.strip_prefix(' ').unwrap_or(d);
        let (key, value) = d.split_once(':').ok_or(format!("bad directive `{d}`"))?;
        let value = value.strip_prefix(' ').unwrap_or(value);
        match key {
            "expect" => {
                let mut it = value.split_whitespace();
                match it.next() {
                    Some("ok") => c.expect_ok = true,
                    Some(k) => {
                        c.expect_kind =
                            Some(ErrorKind::from_name(k).ok_or(format!("unknown kind `{k}`"))?);
                        match it.next() {
                            Some(l) => {
                                c.expect_limit =
                                    Some(Limit::from_key(l).ok_or(format!("unknown limit `{l}`"))?)
                            }
                            None => c.any_limit = k == "limit_exceeded",
                        }
                    }
                    None => return Err("empty expect".into()),
                }
            }
            "message" => c.messages.push(value.to_owned()),
            "limits" => {
                for kv in value.split_whitespace() {
                    let (k, v) = kv.split_once('=').ok_or(format!("bad limit `{kv}`"))?;
                    c.limits
                        .push((k.to_owned(), v.parse().map_err(|_| format!("bad `{kv}`"))?));
                }
            }
            "table" => {
                let (n, r) = value.split_once(' ').ok_or("table: <name> <rows>")?;
                c.tables
                    .push((n.to_owned(), r.trim().parse().map_err(|_| "rows")?));
            }
            "param" => {
                let (k, v) = value.split_once('=').ok_or("param: key=value")?;
                c.params.push((k.to_owned(), v.to_owned()));
            }
            "policy" if value.trim() == "default" => c.default_policy = true,
            "include" => c.include = Some(value.trim().to_owned()),
            "bytes" => c.raw = Some(value.as_bytes().to_vec()),
            "hex" => c.raw = Some(hex(value.trim())),
            "fuel-used" => c.fuel_used = Some(value.trim().parse().map_err(|_| "fuel-used")?),
            "output" => {
                let (name, rows) = value
                    .split_once(" rows=")
                    .ok_or("output: <name> rows=<n>")?;
                c.output = Some((name.to_owned(), rows.trim().parse().map_err(|_| "rows")?));
            }
            "output-lacks" => c.output_lacks.push(value.to_owned()),
            "evidence" => {
                let (v, check) = value
                    .trim()
                    .split_once(' ')
                    .ok_or("evidence: <verdict> <check>")?;
                c.evidence.push((v.to_owned(), check.to_owned()));
            }
            other => return Err(format!("unknown directive `{other}`")),
        }
    }
    if !c.expect_ok && c.expect_kind.is_none() {
        return Err("no `expect:` directive".into());
    }
    Ok(c)
}

fn limits(c: &Case) -> enclave_core::Limits {
    let mut l = tight_limits();
    for (k, v) in &c.limits {
        match k.as_str() {
            "fuel" => l.fuel = *v,
            "memory_mib" => l.memory_bytes = v << 20,
            "wall_ms" => l.wall_clock_ms = *v,
            "transcript_bytes" => l.transcript_bytes = *v,
            "query_memory_mib" => l.query_memory_bytes = v << 20,
            "output_bytes" => l.output_bytes = *v,
            "queries" => l.queries = *v,
            other => panic!("unknown limit `{other}`"),
        }
    }
    l
}

fn still_healthy() {
    let r = Job::new(wat_file("lib/ok.wat")).run();
    assert!(
        r.result.is_ok(),
        "the host is unhealthy after a hostile job: {:?}",
        r.result
    );
}

fn run_case(path: &Path) {
    let text = std::fs::read_to_string(path).expect("case file");
    let c = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let module = match (&c.raw, &c.include) {
        (Some(b), _) => b.clone(),
        (None, Some(inc)) => wat_file(inc),
        (None, None) => wat::parse_str(&text).expect("valid WAT"),
    };
    let mut job = Job::new(module);
    job.limits = limits(&c);
    for (name, rows) in &c.tables {
        let population = if name == "hospital_visits" { 2000 } else { 0 };
        job = job.table(name, table(name, *rows, 1, population));
    }
    for (k, v) in &c.params {
        job = job.param(k, v);
    }
    if c.default_policy {
        job = job.default_policy();
    }
    let wall = job.limits.wall_clock_ms;
    let r = job.run();
    let name = path.display();
    if c.expect_ok {
        assert!(r.result.is_ok(), "{name}: expected ok, got {:?}", r.result);
    } else {
        let e = match &r.result {
            Err(e) => e,
            Ok(()) => panic!("{name}: expected {:?}, the job succeeded", c.expect_kind),
        };
        assert_eq!(Some(e.kind), c.expect_kind, "{name}: {e:?}");
        if let Some(l) = c.expect_limit {
            assert_eq!(e.limit, Some(l), "{name}: {e:?}");
        }
        if c.any_limit {
            assert!(e.limit.is_some(), "{name}: a limit must be named: {e:?}");
        }
        if let Some(l) = e.limit {
            assert!(
                e.message.contains(l.name()),
                "{name}: the message must name the limit: {}",
                e.message
            );
        }
        assert_ne!(e.kind, ErrorKind::Internal, "{name}: {e:?}");
    }
    for m in &c.messages {
        let msg = r
            .result
            .as_ref()
            .err()
            .map(|e| e.message.as_str())
            .unwrap_or("");
        assert!(msg.contains(m.as_str()), "{name}: `{m}` not in `{msg}`");
    }
    if let Some(f) = c.fuel_used {
        assert_eq!(r.run.as_ref().map_or(0, |x| x.fuel_used), f, "{name}");
    }
    if let Some((out, rows)) = &c.output {
        let o = r
            .outputs
            .iter()
            .find(|o| &o.name == out)
            .unwrap_or_else(|| panic!("{name}: no output `{out}`"));
        assert_eq!(o.rows, *rows, "{name}");
    }
    for lacks in &c.output_lacks {
        for o in &r.outputs {
            assert!(
                !o.canonical
                    .windows(lacks.len())
                    .any(|w| w == lacks.as_bytes()),
                "{name}: output `{}` carries `{lacks}`",
                o.name
            );
        }
    }
    for (verdict, check) in &c.evidence {
        assert!(
            r.evidence.iter().any(|e| e.verdict.name() == verdict
                && e.findings
                    .iter()
                    .any(|f| f.verdict.name() == verdict && f.check.name() == check)),
            "{name}: no `{verdict}` by `{check}` in {:?}",
            r.evidence
        );
    }
    if let Some(run) = &r.run {
        assert!(
            run.wall_ms <= wall + WALL_SLACK_MS,
            "{name}: ran {} ms with a {wall} ms limit",
            run.wall_ms
        );
    }
    still_healthy();
    let peak = rss::peak();
    assert!(
        peak < RSS_LIMIT,
        "{name}: peak resident memory {} MiB",
        peak >> 20
    );
}

fn cases() -> Vec<PathBuf> {
    let dir = root().join("tests/wat/cases");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/wat/cases")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wat"))
        .collect();
    v.sort();
    v
}

/// The generated cases: crafted Arrow IPC outputs that declare more than they carry, use types
/// outputs may not hold, or hide bytes in slack.
mod generated {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Array, ArrayRef, DictionaryArray, Float64Array, Int32Array, ListArray, NullArray,
        RecordBatch, RecordBatchOptions, StringArray, StringViewArray,
    };
    use datafusion::arrow::buffer::OffsetBuffer;
    use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
    use datafusion::arrow::ipc::writer::StreamWriter;

    fn ipc(b: &RecordBatch) -> Vec<u8> {
        let mut w = StreamWriter::try_new(Vec::new(), &b.schema()).expect("writer");
        w.write(b).expect("write");
        w.finish().expect("finish");
        w.into_inner().expect("bytes")
    }

    fn one(name: &str, a: ArrayRef) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(
            name,
            a.data_type().clone(),
            true,
        )]));
        RecordBatch::try_new(schema, vec![a]).expect("batch")
    }

    /// Cases the evidence must block: (file name, description, expectation lines, IPC bytes,
    /// output kind code).
    pub fn evidence_cases() -> Vec<(&'static str, &'static str, &'static str, Vec<u8>, i32)> {
        let weights: Vec<f64> = (0..200).map(|i| f64::from(i) / 7.0).collect();
        let payload = f64::from_bits(0x7ff8_0000_dead_beef);
        vec![
            (
                "output-model-params.wat",
                "a model of 200 parameters from no training rows at all",
                ";;! expect: ok\n;;! evidence: block model-size",
                ipc(&one("w", Arc::new(Float64Array::from(weights)))),
                1,
            ),
            (
                "output-nan-payload.wat",
                "a NaN whose payload bits carry data",
                ";;! expect: ok\n;;! evidence: block nan-payload",
                ipc(&one("x", Arc::new(Float64Array::from(vec![1.5, payload])))),
                0,
            ),
        ]
    }

    /// (file name, description, expectation lines, IPC bytes, times emitted under one name).
    pub fn cases() -> Vec<(&'static str, &'static str, &'static str, Vec<u8>, usize)> {
        let secret = "hidden-bytes-of-a-slice";
        let list = ListArray::new(
            Arc::new(Field::new("item", DataType::Null, true)),
            OffsetBuffer::new(vec![0i32, 1 << 30].into()),
            Arc::new(NullArray::new(1 << 30)),
            None,
        );
        let dict: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
        vec![
            (
                "output-null-rows.wat",
                "a billion null rows in a few bytes",
                ";;! expect: limit_exceeded output_cells",
                ipc(&one("x", Arc::new(NullArray::new(1 << 30)))),
                1,
            ),
            (
                "output-no-columns.wat",
                "a billion rows of no columns",
                ";;! expect: limit_exceeded output_cells",
                ipc(&RecordBatch::try_new_with_options(
                    Arc::new(Schema::empty()),
                    vec![],
                    &RecordBatchOptions::new().with_row_count(Some(1 << 30)),
                )
                .expect("batch")),
                1,
            ),
            (
                "output-list-of-nulls.wat",
                "one row holding a list of a billion nulls",
                ";;! expect: limit_exceeded output_cells",
                ipc(&one("x", Arc::new(list))),
                1,
            ),
            (
                "output-dictionary.wat",
                "a dictionary column (values shared by any number of keys)",
                ";;! expect: invalid_output\n;;! message: not accepted",
                ipc(&one("d", Arc::new(dict))),
                1,
            ),
            (
                "output-string-view.wat",
                "a string-view column (views into shared buffers)",
                ";;! expect: invalid_output\n;;! message: not accepted",
                ipc(&one("v", Arc::new(StringViewArray::from(vec!["a", "b"])))),
                1,
            ),
            (
                "output-slack.wat",
                "a string column whose values buffer goes on past the rows the batch declares",
                ";;! expect: ok\n;;! output: result rows=1\n;;! output-lacks: hidden-bytes-of-a-slice",
                shrink_rows(
                    &ipc(&one(
                        "s",
                        Arc::new(StringArray::from(vec!["shown", secret])),
                    )),
                    2,
                    1,
                ),
                1,
            ),
            (
                "output-plain.wat",
                "a plain two-row table",
                ";;! expect: ok\n;;! output: result rows=2",
                ipc(&one("n", Arc::new(Int32Array::from(vec![1, 2])))),
                1,
            ),
            (
                "output-duplicate-name.wat",
                "a plain table, emitted twice under one name",
                ";;! expect: invalid_output\n;;! message: already emitted",
                ipc(&one("n", Arc::new(Int32Array::from(vec![1, 2])))),
                2,
            ),
        ]
    }

    /// Rewrites every little-endian `from` (as i64) in the record-batch message headers of an
    /// IPC stream to `to`: the batch then declares fewer rows than its buffers hold (what a
    /// hostile guest writes by hand; arrow's own writer trims).
    fn shrink_rows(bytes: &[u8], from: i64, to: i64) -> Vec<u8> {
        use datafusion::arrow::ipc::{MessageHeader, root_as_message};
        let mut out = bytes.to_vec();
        let mut pos = 0usize;
        while pos + 8 <= out.len() {
            let mut len = u32::from_le_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
            let mut head = pos + 4;
            if len == 0xFFFF_FFFF {
                len = u32::from_le_bytes(out[pos + 4..pos + 8].try_into().unwrap()) as usize;
                head = pos + 8;
            }
            if len == 0 {
                break;
            }
            let msg = root_as_message(&out[head..head + len]).unwrap();
            let body = msg.bodyLength() as usize;
            if msg.header_type() == MessageHeader::RecordBatch {
                let (f, t) = (from.to_le_bytes(), to.to_le_bytes());
                let mut i = head;
                while i + 8 <= head + len {
                    if out[i..i + 8] == f {
                        out[i..i + 8].copy_from_slice(&t);
                        i += 8;
                    } else {
                        i += 1;
                    }
                }
            }
            pos = head + len + body;
        }
        out
    }

    /// The WAT text of a job emitting `bytes` as output `result` (kind aggregate).
    pub fn module(description: &str, expect: &str, bytes: &[u8], times: usize) -> String {
        module_of_kind(description, expect, bytes, times, 0)
    }

    /// The WAT text of a job emitting `bytes` as output `result` of kind `kind`.
    pub fn module_of_kind(
        description: &str,
        expect: &str,
        bytes: &[u8],
        times: usize,
        kind: i32,
    ) -> String {
        let mut data = String::new();
        for b in bytes {
            data.push_str(&format!("\\{b:02x}"));
        }
        let pages = (1024 + bytes.len()).div_ceil(65536).max(1);
        format!(
            ";; Generated by tests/wat.rs (ENCLAVE_BLESS=1): an output holding {description}.\n\
             {expect}\n\
             (module\n  \
               (import \"enclave_v1\" \"output\" (func $output (param i32 i32 i32 i32 i32) (result i32)))\n  \
               (import \"enclave_v1\" \"last_error\" (func $last_error (param i32 i32) (result i32)))\n  \
               (import \"enclave_v1\" \"fail\" (func $fail (param i32 i32)))\n  \
               (memory (export \"memory\") {pages})\n  \
               (data (i32.const 0) \"result\")\n  \
               (data (i32.const 1024) \"{data}\")\n  \
               (func (export \"enclave_run\") (result i32)\n    \
                 (local $i i32)\n    \
                 (loop $emit\n      \
                   (if (i32.ne (call $output (i32.const 0) (i32.const 6) (i32.const {kind}) (i32.const 1024) (i32.const {len})) (i32.const 0))\n        \
                     (then\n          \
                       (call $fail (i32.const 64) (call $last_error (i32.const 64) (i32.const 512)))\n          \
                       (return (i32.const 1))))\n      \
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))\n      \
                   (br_if $emit (i32.lt_u (local.get $i) (i32.const {times}))))\n    \
                 (i32.const 0)))\n",
            len = bytes.len()
        )
    }
}

fn generated_cases_are_current() {
    let bless = std::env::var_os("ENCLAVE_BLESS").is_some();
    let all = generated::cases()
        .into_iter()
        .map(|(f, d, e, b, t)| (f, generated::module(d, e, &b, t)))
        .chain(
            generated::evidence_cases()
                .into_iter()
                .map(|(f, d, e, b, k)| (f, generated::module_of_kind(d, e, &b, 1, k))),
        );
    for (file, text) in all {
        let path = root().join("tests/wat/cases").join(file);
        if bless {
            std::fs::write(&path, &text).expect("write case");
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "{} is stale: rerun the tests with ENCLAVE_BLESS=1",
            path.display()
        );
    }
}

fn the_header_parser_refuses_nonsense() {
    assert!(parse(";;! expect: sideways").is_err());
    assert!(parse(";;! expect: limit_exceeded nosuchlimit").is_err());
    assert!(parse(";;! wat: 1").is_err());
    assert!(parse("(module)").is_err());
    assert!(parse(";;! expect: ok").is_ok());
}

/// One trial per case file, plus the suite's own checks.
pub fn tests() -> Vec<Trial> {
    rss::reset();
    let mut v: Vec<Trial> = cases()
        .into_iter()
        .map(|p| {
            let name = format!(
                "wat::{}",
                p.file_stem().and_then(|s| s.to_str()).unwrap_or("?")
            );
            Trial::test(name, move || crate::run_caught(|| run_case(&p)))
        })
        .collect();
    v.extend(crate::trials![
        generated_cases_are_current,
        the_header_parser_refuses_nonsense
    ]);
    v
}
