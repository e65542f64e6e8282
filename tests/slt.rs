//! The SQL suites: every `slt/*.slt` file is a sqllogictest script (the `sqllogictest` crate, as
//! DataFusion keeps its own): a statement, then the rows it must return or the error it must
//! fail with. Errors read `<class>: <message>` (classes: `sql_refused`, `policy_violation`,
//! `sql_error`, `query_failed`, `limit_exceeded(<limit>)`, …), so a script can match both.
//!
//! Header comments set each file up: `# enclave: mode session` runs statements straight against
//! a job's query session, `# enclave: mode job` runs each in a whole job (passthrough.wat in the
//! sandbox, on the record); `# enclave: policy open|default`; `# enclave: table <name> <rows>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use enclave_core::{ApplicationId, TableName};
use enclave_policy::{Policy, open_policy_text};
use enclave_query::{Dataset, JobSession, SessionLimits};
use enclave_tests::*;
use futures::StreamExt;
use libtest_mimic::Trial;
use sqllogictest::{DB, DBOutput, DefaultColumnType};

/// An error as a script sees it.
#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Session,
    Job,
}

#[derive(Debug, Clone)]
struct Setup {
    mode: Mode,
    default_policy: bool,
    tables: Vec<(String, PathBuf)>,
}

fn setup(script: &str) -> Setup {
    let mut s = Setup {
        mode: Mode::Session,
        default_policy: false,
        tables: vec![],
    };
    for line in script.lines() {
        let Some(d) = line.strip_prefix("# enclave: ") else {
            continue;
        };
        let words: Vec<&str> = d.split_whitespace().collect();
        match words.as_slice() {
            ["mode", "session"] => s.mode = Mode::Session,
            ["mode", "job"] => s.mode = Mode::Job,
            ["policy", "open"] => s.default_policy = false,
            ["policy", "default"] => s.default_policy = true,
            ["table", name, rows] => {
                let rows: u64 = rows.parse().expect("rows");
                let population = if *name == "hospital_visits" { 2000 } else { 0 };
                s.tables
                    .push((name.to_string(), table(name, rows, 1, population)));
            }
            other => panic!("unknown directive {other:?}"),
        }
    }
    s
}

fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, SltError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SltError(e.to_string()))?;
        for r in 0..b.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    Ok(rows)
}

fn output(
    batches: Vec<RecordBatch>,
    width: usize,
) -> Result<DBOutput<DefaultColumnType>, SltError> {
    Ok(DBOutput::Rows {
        types: vec![DefaultColumnType::Any; width],
        rows: rows_of(&batches)?,
    })
}

/// Statements against a job's query session.
struct SessionDb {
    session: JobSession,
}

impl SessionDb {
    fn new(s: &Setup) -> SessionDb {
        let names: Vec<TableName> = s
            .tables
            .iter()
            .map(|(n, _)| TableName::new(n).unwrap())
            .collect();
        let policy = if s.default_policy {
            Policy::load(&default_policy_path()).unwrap().0
        } else {
            let tables: Vec<(TableName, Vec<String>)> = s
                .tables
                .iter()
                .map(|(n, _)| {
                    let schema = enclave_datagen::schema_of(n).unwrap();
                    (
                        TableName::new(n).unwrap(),
                        schema.fields().iter().map(|f| f.name().clone()).collect(),
                    )
                })
                .collect();
            Policy::parse("open", &open_policy_text(&tables)).unwrap()
        };
        let auth = Arc::new(policy)
            .authorize(&names, &ApplicationId::new("slt").unwrap(), &[9; 32])
            .expect("authorized");
        let datasets: Vec<Dataset> = s
            .tables
            .iter()
            .map(|(n, p)| Dataset::new(n, p).unwrap())
            .collect();
        let session = engine()
            .queries
            .block_on(JobSession::new(&datasets, SessionLimits::default(), auth))
            .expect("session");
        SessionDb { session }
    }
}

impl DB for SessionDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let session = &self.session;
        let limit = session.limits().memory_bytes;
        let (width, batches) = engine()
            .queries
            .block_on(async {
                let started = session.open(sql).await?;
                let width = started.stream.schema().fields().len();
                let mut batches = Vec::new();
                let mut stream = started.stream;
                while let Some(b) = stream.next().await {
                    batches.push(b.map_err(enclave_query::classify_exec_error(limit))?);
                }
                Ok::<_, enclave_query::QueryError>((width, batches))
            })
            .map_err(|e| SltError(format!("{}: {e}", e.class())))?;
        output(batches, width)
    }

    fn engine_name(&self) -> &str {
        "enclave-session"
    }
}

/// Statements each run as a whole job (passthrough.wat) in one domain.
struct JobDb {
    setup: Setup,
    domain: enclave_runtime::Domain,
    _dir: tempfile::TempDir,
}

impl DB for JobDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let mut job = Job::new(wat_file("lib/passthrough.wat")).param("sql", sql);
        for (n, p) in &self.setup.tables {
            job = job.table(n, p);
        }
        if self.setup.default_policy {
            job = job.default_policy();
        }
        let r = job
            .run_in(&self.domain)
            .map_err(|e| SltError(e.to_string()))?;
        match r.result {
            Ok(()) => {
                let o = &r.outputs[0];
                output(o.batches.clone(), o.schema.fields().len())
            }
            Err(e) => {
                let class = match e.limit {
                    Some(l) => format!("limit_exceeded({})", l.key()),
                    None => e.kind.as_str().to_owned(),
                };
                Err(SltError(format!("{class}: {}", e.message)))
            }
        }
    }

    fn engine_name(&self) -> &str {
        "enclave-job"
    }
}

fn run_script(path: &Path) {
    let script = std::fs::read_to_string(path).unwrap();
    let s = setup(&script);
    let result = match s.mode {
        Mode::Session => {
            let mut runner = sqllogictest::Runner::new(|| {
                let s = s.clone();
                async move { Ok(SessionDb::new(&s)) }
            });
            runner.with_column_validator(|_, _| true);
            if std::env::var_os("ENCLAVE_SLT_ALL").is_some() {
                // Developer aid: every failing record of the script, not just the first.
                let records = sqllogictest::parse_file::<DefaultColumnType>(path).unwrap();
                let mut failures = Vec::new();
                for r in records {
                    if let Err(e) = runner.run(r) {
                        failures.push(e.display(false).to_string());
                    }
                }
                if !failures.is_empty() {
                    panic!("{}:\n{}", path.display(), failures.join("\n---\n"));
                }
                return;
            }
            runner.run_file(path)
        }
        Mode::Job => {
            let mut runner = sqllogictest::Runner::new(|| {
                let setup = s.clone();
                async move {
                    let (dir, domain) = temp_domain();
                    Ok(JobDb {
                        setup,
                        domain,
                        _dir: dir,
                    })
                }
            });
            runner.with_column_validator(|_, _| true);
            runner.run_file(path)
        }
    };
    if let Err(e) = result {
        panic!("{}: {}", path.display(), e.display(false));
    }
}

/// One trial per script.
pub fn tests() -> Vec<Trial> {
    let dir = root().join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = format!(
                "slt::{}",
                p.file_stem().and_then(|s| s.to_str()).unwrap_or("?")
            );
            Trial::test(name, move || crate::run_caught(|| run_script(&p)))
        })
        .collect()
}
