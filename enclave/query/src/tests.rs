use super::*;
use enclave_core::{ApplicationId, TableName};
use enclave_policy::{Policy, open_policy_text};
use futures::TryStreamExt;
use std::path::Path;
use std::sync::Arc;

fn residents(dir: &Path, rows: u64) -> Dataset {
    let path = dir.join("residents.parquet");
    enclave_datagen::generate("residents", rows, 1, 0, &path, |_| {}).unwrap();
    Dataset::new("residents", path).unwrap()
}

/// The explicit open policy over `datasets` (every column of the residents schema plaintext).
fn open_auth(datasets: &[&Dataset]) -> Authorization {
    let schema = enclave_datagen::schema_of("residents").unwrap();
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut tables: Vec<(TableName, Vec<String>)> = datasets
        .iter()
        .map(|d| (d.name.clone(), columns.clone()))
        .collect();
    tables.dedup_by(|a, b| a.0 == b.0);
    let policy = Arc::new(Policy::parse("open", &open_policy_text(&tables)).unwrap());
    let names: Vec<TableName> = datasets.iter().map(|d| d.name.clone()).collect();
    policy
        .authorize(&names, &ApplicationId::new("local").unwrap(), &[0; 32])
        .unwrap()
}

async fn session(datasets: &[Dataset], limits: SessionLimits) -> Result<JobSession, QueryError> {
    let refs: Vec<&Dataset> = datasets.iter().collect();
    JobSession::new(datasets, limits, open_auth(&refs)).await
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn count(session: &JobSession, sql: &str) -> Result<usize, QueryError> {
    let stream = session.open(sql).await?.stream;
    let batches: Vec<_> = stream.try_collect().await.map_err(classify_exec_error(0))?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

#[test]
fn plain_queries_run() {
    let dir = tempfile::tempdir().unwrap();
    let ds = residents(dir.path(), 2000);
    rt().block_on(async {
        let s = session(&[ds], SessionLimits::default()).await.unwrap();
        assert_eq!(count(&s, "SELECT * FROM residents").await.unwrap(), 2000);
        let n = count(&s, "WITH d AS (SELECT district, COUNT(*) AS n FROM residents GROUP BY district) SELECT * FROM d ORDER BY n")
            .await
            .unwrap();
        assert!(n > 1 && n <= 9);
        assert_eq!(count(&s, "select count(*) from public.residents").await.unwrap(), 1);
        assert_eq!(count(&s, "select 1 from datafusion.public.residents limit 3").await.unwrap(), 3);
    });
}

#[test]
fn refusals_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let ds = residents(dir.path(), 100);
    let file = ds.path.display().to_string();
    rt().block_on(async {
        let s = session(&[ds], SessionLimits::default()).await.unwrap();
        let cases: Vec<(String, &str)> = vec![
            (
                format!("CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '{file}'"),
                "CREATE EXTERNAL TABLE",
            ),
            (
                "COPY residents TO '/tmp/leak.parquet' STORED AS PARQUET".into(),
                "COPY",
            ),
            (
                "COPY (SELECT * FROM residents) TO '/tmp/leak.csv'".into(),
                "COPY",
            ),
            ("SET datafusion.runtime.memory_limit = '100G'".into(), "Set"),
            (
                "SET datafusion.execution.target_partitions = 1".into(),
                "Set",
            ),
            (
                "INSERT INTO residents SELECT * FROM residents".into(),
                "Insert",
            ),
            (
                "CREATE TABLE t AS SELECT * FROM residents".into(),
                "CreateTable",
            ),
            (
                "CREATE VIEW v AS SELECT * FROM residents".into(),
                "CreateView",
            ),
            ("DROP TABLE residents".into(), "Drop"),
            ("PREPARE p AS SELECT 1".into(), "Prepare"),
            ("EXPLAIN SELECT * FROM residents".into(), "EXPLAIN"),
            ("EXPLAIN ANALYZE SELECT * FROM residents".into(), "EXPLAIN"),
            ("DESCRIBE residents".into(), "statements"),
            ("SHOW TABLES".into(), "statements"),
            (format!("SELECT * FROM '{file}'"), "file path or URL"),
            ("SELECT * FROM 'file.parquet'".into(), "file path or URL"),
            (
                "SELECT * FROM 's3://bucket/x.parquet'".into(),
                "file path or URL",
            ),
            ("SELECT * FROM hospital_visits".into(), "not granted"),
            (
                "SELECT * FROM residents r JOIN secrets s ON r.name = s.name".into(),
                "not granted",
            ),
            (
                "SELECT * FROM information_schema.tables".into(),
                "not granted",
            ),
            ("SELECT * FROM other.public.residents".into(), "not granted"),
        ];
        for (sql, needle) in cases {
            match s.open(&sql).await {
                Err(QueryError::Refused(m)) => assert!(m.contains(needle), "{sql}: {m}"),
                Err(other) => panic!("{sql}: expected a refusal, got {other:?}"),
                Ok(_) => panic!("{sql}: expected a refusal, it ran"),
            }
        }
        // Table functions are not registered at all.
        for sql in [
            "SELECT * FROM generate_series(1, 10)",
            "SELECT * FROM range(10)",
        ] {
            assert!(
                matches!(
                    s.open(sql).await,
                    Err(QueryError::Refused(_) | QueryError::Sql(_))
                ),
                "{sql}"
            );
        }
        assert!(matches!(s.open("SELEC 1").await, Err(QueryError::Sql(_))));
        assert!(matches!(
            s.open("SELECT 1; SELECT 2").await,
            Err(QueryError::Sql(_))
        ));
        assert!(matches!(
            s.open("SELECT nosuchcol FROM residents").await,
            Err(QueryError::Sql(_))
        ));
        let long = format!("SELECT 1{}", " ".repeat(70_000));
        assert!(matches!(
            s.open(&long).await,
            Err(QueryError::TooLong { .. })
        ));
    });
}

#[test]
fn deeply_nested_sql_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let ds = residents(dir.path(), 10);
    rt().block_on(async {
        let s = session(&[ds], SessionLimits::default()).await.unwrap();
        let deep = format!(
            "SELECT {}1{} FROM residents",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        assert!(matches!(
            s.open(&deep).await,
            Err(QueryError::TooComplex { .. })
        ));
        // A chain of thousands of operators is short text but a deep tree: refused before parsing.
        for op in [" + ", " || ", " OR ", " AND "] {
            let chain = vec!["age"; 4000].join(op);
            let sql = format!("SELECT {chain} FROM residents");
            assert!(sql.len() < 64 << 10);
            assert!(
                matches!(s.open(&sql).await, Err(QueryError::TooComplex { .. })),
                "{op}"
            );
        }
        // A long literal list is flat: allowed.
        let list: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        let sql = format!(
            "SELECT COUNT(*) FROM residents WHERE age IN ({})",
            list.join(",")
        );
        assert_eq!(count(&s, &sql).await.unwrap(), 1);
    });
}

#[test]
fn memory_pool_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let ds = residents(dir.path(), 50_000);
    rt().block_on(async {
        let limits = SessionLimits {
            memory_bytes: 256 << 10,
            ..SessionLimits::default()
        };
        let s = session(&[ds], limits).await.unwrap();
        let r = count(
            &s,
            "SELECT resident_id, COUNT(*) FROM residents GROUP BY resident_id ORDER BY resident_id",
        )
        .await;
        match r {
            Err(QueryError::Memory { .. }) => {}
            other => panic!("expected the memory limit, got {other:?}"),
        }
    });
}

#[test]
fn bad_datasets_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Dataset::new("Bad-Name", dir.path()),
        Err(QueryError::Input(_))
    ));
    assert!(
        matches!(Dataset::new("x", dir.path()), Err(QueryError::Input(m)) if m.contains("not a regular file"))
    );
    assert!(matches!(
        Dataset::new("x", dir.path().join("missing")),
        Err(QueryError::Input(_))
    ));
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"not parquet at all").unwrap();
    let ds = Dataset::new("junk", &junk).unwrap();
    let r = rt().block_on(session(&[ds.clone(), ds.clone()], SessionLimits::default()));
    assert!(matches!(r, Err(QueryError::Input(_))));
    let r = rt().block_on(session(&[ds], SessionLimits::default()));
    assert!(matches!(r, Err(QueryError::Input(m)) if m.contains("cannot be opened as Parquet")));
}

#[test]
fn subject_uniqueness_is_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ds = residents(dir.path(), 500);
    let policy =
        Arc::new(Policy::parse("default", include_str!("../../../policies/default.toml")).unwrap());
    let auth = policy
        .authorize(
            std::slice::from_ref(&ds.name),
            &ApplicationId::new("t").unwrap(),
            &[0; 32],
        )
        .unwrap();
    rt().block_on(async {
        let s = JobSession::new(
            std::slice::from_ref(&ds),
            SessionLimits::default(),
            auth.clone(),
        )
        .await
        .unwrap();
        assert_eq!(s.count_uniqueness("residents").await.unwrap(), Some(true));
        assert!(s.learned_uniqueness().is_empty(), "nothing counted yet");
        let sql = "SELECT district, COUNT(*) AS n, AVG(age) AS a FROM residents GROUP BY district";
        assert!(count(&s, sql).await.unwrap() > 1);
        assert_eq!(s.learned_uniqueness(), vec![("residents".to_owned(), true)]);
        // Counted once per session.
        count(&s, sql).await.unwrap();
        assert_eq!(s.learned_uniqueness().len(), 1);
        // A known fact is used, not counted again.
        let mut known = ds.clone();
        known.subject_unique = Some(true);
        let s = JobSession::new(&[known], SessionLimits::default(), auth)
            .await
            .unwrap();
        count(&s, sql).await.unwrap();
        assert!(s.learned_uniqueness().is_empty());
    });
}
