//! The `enclave_v1` guest ABI, as data: the import table with exact signatures, the error codes,
//! the output kinds, the fixed per-call bounds and the rules for output names.
//!
//! Owns the contract between a job and the host in one place, shared by the host (`sandbox`
//! admits modules and links functions from [`IMPORTS`]), the Rust guest SDK (its error codes and
//! output kinds are these) and C guests ([`c_header`] generates `include/enclave_v1.h`).
//! `docs/abi.md` describes the same contract in prose; a test keeps the header in step. It must
//! never depend on anything: guests and the auditor's tools build it alone.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;

/// The Wasm module name of every import.
pub const MODULE: &str = "enclave_v1";
/// The export the host calls: `() -> i32`, 0 for success.
pub const ENTRY: &str = "enclave_run";
/// The linear memory the module must export.
pub const MEMORY: &str = "memory";

/// A Wasm value type used by the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValType {
    /// 32-bit integer (pointers and lengths: unsigned offsets into `memory`).
    I32,
    /// 64-bit integer.
    I64,
}

/// One parameter of an import: its name, Wasm type and C type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Name in the C header and in `docs/abi.md`.
    pub name: &'static str,
    /// Wasm type.
    pub ty: ValType,
    /// C type in `enclave_v1.h`.
    pub c: &'static str,
}

/// One imported host function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Import {
    /// Function name inside [`MODULE`].
    pub name: &'static str,
    /// Parameters.
    pub params: &'static [Param],
    /// Result type, if any.
    pub result: Option<ValType>,
    /// One line for the C header.
    pub doc: &'static str,
}

const fn p(name: &'static str, ty: ValType, c: &'static str) -> Param {
    Param { name, ty, c }
}

const PTR_IN: &str = "const void *";
const PTR_OUT: &str = "void *";
const LEN: &str = "uint32_t";

/// Every function of the ABI, with its exact signature. A module may import any subset, each
/// with exactly this signature; anything else is refused at admission.
pub const IMPORTS: &[Import] = {
    use ValType::{I32, I64};
    &[
        Import {
            name: "param",
            params: &[
                p("key_ptr", I32, PTR_IN),
                p("key_len", I32, LEN),
                p("buf_ptr", I32, PTR_OUT),
                p("buf_cap", I32, LEN),
            ],
            result: Some(I64),
            doc: "Value length of job parameter `key` (written to buf if it fits), or ENCLAVE_ERR_NOT_FOUND.",
        },
        Import {
            name: "query_open",
            params: &[p("sql_ptr", I32, PTR_IN), p("sql_len", I32, LEN)],
            result: Some(I64),
            doc: "Starts a SQL query over the granted tables: a handle >= 0, or a negative error code.",
        },
        Import {
            name: "query_next",
            params: &[p("handle", I32, "int32_t")],
            result: Some(I64),
            doc: "Size of the query's next Arrow IPC message, 0 at the end, or a negative error code.",
        },
        Import {
            name: "query_read",
            params: &[
                p("handle", I32, "int32_t"),
                p("buf_ptr", I32, PTR_OUT),
                p("buf_len", I32, LEN),
            ],
            result: Some(I32),
            doc: "Copies the message announced by query_next (buf_len must equal its size); returns 0.",
        },
        Import {
            name: "query_close",
            params: &[p("handle", I32, "int32_t")],
            result: Some(I32),
            doc: "Closes a query: 0, or ENCLAVE_ERR_BAD_HANDLE.",
        },
        Import {
            name: "query_suppressed",
            params: &[p("handle", I32, "int32_t")],
            result: Some(I64),
            doc: "Groups the host's threshold suppressed in this query so far (final once it ended).",
        },
        Import {
            name: "output",
            params: &[
                p("name_ptr", I32, PTR_IN),
                p("name_len", I32, LEN),
                p("kind", I32, "int32_t"),
                p("data_ptr", I32, PTR_IN),
                p("data_len", I32, LEN),
            ],
            result: Some(I32),
            doc: "Emits a named output (one uncompressed Arrow IPC stream): 0, or ENCLAVE_ERR_BAD_ARGUMENT.",
        },
        Import {
            name: "log",
            params: &[p("ptr", I32, PTR_IN), p("len", I32, LEN)],
            result: None,
            doc: "Writes one log line (kept inside the domain).",
        },
        Import {
            name: "random",
            params: &[p("buf_ptr", I32, PTR_OUT), p("buf_len", I32, LEN)],
            result: None,
            doc: "Fills buf with the job's deterministic random stream.",
        },
        Import {
            name: "clock",
            params: &[],
            result: Some(I64),
            doc: "The job's logical time, ms since the Unix epoch (fixed at submission).",
        },
        Import {
            name: "fail",
            params: &[p("ptr", I32, PTR_IN), p("len", I32, LEN)],
            result: None,
            doc: "Records the job's failure message; return non-zero from enclave_run afterwards.",
        },
        Import {
            name: "last_error",
            params: &[p("buf_ptr", I32, PTR_OUT), p("buf_cap", I32, LEN)],
            result: Some(I32),
            doc: "Writes the message of the last error code (at most buf_cap bytes); returns its full length.",
        },
    ]
};

/// The import named `name`, if the ABI has one.
pub fn import(name: &str) -> Option<&'static Import> {
    IMPORTS.iter().find(|i| i.name == name)
}

/// An error code returned (as a negative value) to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i64)]
pub enum ErrorCode {
    /// No such parameter.
    NotFound = -1,
    /// Refused: statement kind, table not granted, policy, bad SQL, SQL too long or too complex.
    Refused = -2,
    /// Accepted but failed while running (query memory, execution).
    Failed = -3,
    /// Unknown or closed handle (`query_close` only; elsewhere a trap).
    BadHandle = -4,
    /// Malformed output (name, kind, duplicate, invalid or oversized Arrow IPC).
    BadArgument = -5,
    /// Too many queries open at once.
    TooMany = -6,
}

impl ErrorCode {
    /// Every code, in order.
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::NotFound,
        ErrorCode::Refused,
        ErrorCode::Failed,
        ErrorCode::BadHandle,
        ErrorCode::BadArgument,
        ErrorCode::TooMany,
    ];

    /// The value returned to the guest.
    pub const fn value(self) -> i64 {
        self as i64
    }

    /// The code with this value.
    pub fn from_value(v: i64) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.value() == v)
    }

    /// Upper-case name (`ENCLAVE_ERR_<NAME>` in C).
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Refused => "REFUSED",
            ErrorCode::Failed => "FAILED",
            ErrorCode::BadHandle => "BAD_HANDLE",
            ErrorCode::BadArgument => "BAD_ARGUMENT",
            ErrorCode::TooMany => "TOO_MANY",
        }
    }
}

/// What an output is; egress rules depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum OutputKind {
    /// Aggregate statistics (counts, sums, means…).
    Aggregate = 0,
    /// Model parameters (coefficients, weights).
    Model = 1,
    /// A report of aggregate figures meant for people.
    Report = 2,
}

impl OutputKind {
    /// Every kind, in code order.
    pub const ALL: [OutputKind; 3] = [OutputKind::Aggregate, OutputKind::Model, OutputKind::Report];

    /// From the ABI's integer code.
    pub fn from_code(code: i32) -> Option<Self> {
        OutputKind::ALL.into_iter().find(|k| *k as i32 == code)
    }

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            OutputKind::Aggregate => "aggregate",
            OutputKind::Model => "model",
            OutputKind::Report => "report",
        }
    }
}

/// Largest parameter key (bytes).
pub const MAX_PARAM_KEY: u32 = 256;
/// Longest output name (bytes).
pub const MAX_OUTPUT_NAME: u32 = 64;
/// Longest log line kept (bytes); longer lines are truncated and still charged in full.
pub const MAX_LOG_LINE: u32 = 16 << 10;
/// Longest failure message kept (bytes).
pub const MAX_FAIL: u32 = 4 << 10;
/// Most random bytes one `random` call returns.
pub const MAX_RANDOM: u32 = 1 << 20;
/// Bytes every log line is charged on top of its length (so empty lines are not free).
pub const LOG_LINE_OVERHEAD: u64 = 64;

/// Checks an output name: 1–64 bytes of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn check_output_name(name: &[u8]) -> Result<(), &'static str> {
    let ok = !name.is_empty()
        && name.len() <= MAX_OUTPUT_NAME as usize
        && !matches!(name[0], b'.' | b'-')
        && name
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("output names are 1-64 characters of [A-Za-z0-9_.-], not starting with `.` or `-`")
    }
}

/// The C header `enclave_v1.h`: every import as a C prototype with Wasm import attributes, the
/// error codes, output kinds and bounds as macros, and `ENCLAVE_JOB` to declare the entry point.
/// For freestanding `clang --target=wasm32`; `include/enclave_v1.h` is this text.
pub fn c_header() -> String {
    let mut h = String::new();
    for line in [
        "/* enclave_v1.h: the Enclave guest ABI for C (see docs/abi.md).",
        " * Generated by the enclave-abi crate (enclave_abi::c_header); do not edit by hand.",
        " * Build a job: clang --target=wasm32-unknown-unknown -O2 -nostdlib -ffreestanding \\",
        " *   -Wl,--no-entry -I <this directory> -o job.wasm job.c",
        " */",
        "#ifndef ENCLAVE_V1_H",
        "#define ENCLAVE_V1_H",
        "",
        "#include <stdint.h>",
        "",
    ] {
        h.push_str(line);
        h.push('\n');
    }
    h.push_str("/* Error codes (negative results). */\n");
    for c in ErrorCode::ALL {
        h.push_str(&format!(
            "#define ENCLAVE_ERR_{} ({})\n",
            c.name(),
            c.value()
        ));
    }
    h.push_str("\n/* Output kinds. */\n");
    for k in OutputKind::ALL {
        h.push_str(&format!(
            "#define ENCLAVE_OUTPUT_{} {}\n",
            k.name().to_ascii_uppercase(),
            k as i32
        ));
    }
    h.push_str("\n/* Bounds. */\n");
    for (name, v) in [
        ("MAX_PARAM_KEY", MAX_PARAM_KEY),
        ("MAX_OUTPUT_NAME", MAX_OUTPUT_NAME),
        ("MAX_LOG_LINE", MAX_LOG_LINE),
        ("MAX_FAIL", MAX_FAIL),
        ("MAX_RANDOM", MAX_RANDOM),
    ] {
        h.push_str(&format!("#define ENCLAVE_{name} {v}u\n"));
    }
    h.push_str(&format!(
        "\n/* The entry point: ENCLAVE_JOB {{ ... return 0; }} */\n\
         #define ENCLAVE_JOB __attribute__((export_name(\"{ENTRY}\"))) int32_t {ENTRY}(void)\n\n\
         #define ENCLAVE_IMPORT(fn) __attribute__((import_module(\"{MODULE}\"), import_name(#fn)))\n\n"
    ));
    for i in IMPORTS {
        let ret = match i.result {
            None => "void",
            Some(ValType::I32) => "int32_t",
            Some(ValType::I64) => "int64_t",
        };
        let params = if i.params.is_empty() {
            String::from("void")
        } else {
            let mut s = String::new();
            for (n, p) in i.params.iter().enumerate() {
                if n > 0 {
                    s.push_str(", ");
                }
                s.push_str(p.c);
                if !p.c.ends_with('*') {
                    s.push(' ');
                }
                s.push_str(p.name);
            }
            s
        };
        h.push_str(&format!(
            "/* {} */\nENCLAVE_IMPORT({}) {ret} enclave_{}({params});\n",
            i.doc, i.name, i.name
        ));
    }
    h.push_str("\n#endif /* ENCLAVE_V1_H */\n");
    h
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn header_file_is_the_generated_header() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/enclave_v1.h");
        let generated = c_header();
        if std::env::var_os("ENCLAVE_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            on_disk, generated,
            "include/enclave_v1.h is stale: rerun with ENCLAVE_BLESS=1"
        );
    }

    #[test]
    fn codes_kinds_and_names() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_value(c.value()), Some(c));
            assert!(c.value() < 0);
        }
        assert_eq!(ErrorCode::from_value(0), None);
        assert_eq!(OutputKind::from_code(1), Some(OutputKind::Model));
        assert_eq!(OutputKind::from_code(3), None);
        assert_eq!(OutputKind::from_code(-1), None);
        assert!(check_output_name(b"result.v1-a_b").is_ok());
        for bad in [
            &b""[..],
            b".x",
            b"-x",
            b"a/b",
            b"a b",
            &[b'a'; 65],
            "é".as_bytes(),
        ] {
            assert!(check_output_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_output_name(&[b'a'; 64]).is_ok());
        let names: std::collections::BTreeSet<_> = IMPORTS.iter().map(|i| i.name).collect();
        assert_eq!(names.len(), IMPORTS.len(), "import names are unique");
        assert!(import("query_open").is_some() && import("open_file").is_none());
    }
}
