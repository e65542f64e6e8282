//! Cost of the allow-list for restricted queries — parsing DataFusion's plan into the
//! aggregation grammar and building the host's plan (subject accounting, threshold, noise) —
//! next to the cost of planning the same query, for a simple query and a 4-way join. Execution
//! is measured in `vs_native`; this must be negligible.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use enclave_core::ApplicationId;
use enclave_query::functions::Pseudonym;
use enclave_query::grammar::{BuildContext, build, parse};
use enclave_tests::default_policy_path;

const SIMPLE: &str = "SELECT district, COUNT(*) AS n, AVG(income) AS m FROM residents WHERE age > 30 GROUP BY district";
const JOIN4: &str = "SELECT r.district, v.diagnosis, COUNT(*) AS n \
    FROM residents r \
    JOIN hospital_visits v ON r.resident_id = v.resident_id \
    JOIN hospital_visits v2 ON v.resident_id = v2.resident_id \
    JOIN residents r2 ON r2.resident_id = v2.resident_id \
    WHERE r.age > 30 AND v.insured \
    GROUP BY r.district, v.diagnosis";

fn plan_check(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ctx = SessionContext::new();
    let mut raw: BTreeMap<String, Arc<dyn TableProvider>> = BTreeMap::new();
    for t in enclave_datagen::TABLES {
        let schema = enclave_datagen::schema_of(t).unwrap();
        let table: Arc<dyn TableProvider> =
            Arc::new(MemTable::try_new(schema, vec![vec![]]).unwrap());
        ctx.register_table(*t, Arc::clone(&table)).unwrap();
        raw.insert(t.to_string(), table);
    }
    let policy = enclave_policy::Policy::load(&default_policy_path())
        .unwrap()
        .0;
    let key = enclave_policy::PseudonymKey::derive(&[1; 32], &ApplicationId::new("bench").unwrap());
    let unique = |_: &str| false;
    for (name, sql) in [("simple", SIMPLE), ("4-way join", JOIN4)] {
        let plan = rt.block_on(ctx.state().create_logical_plan(sql)).unwrap();
        c.bench_function(&format!("plan SQL ({name})"), |b| {
            b.iter(|| rt.block_on(ctx.state().create_logical_plan(sql)).unwrap())
        });
        c.bench_function(&format!("grammar parse ({name})"), |b| {
            b.iter(|| parse(&policy, &plan).unwrap())
        });
        let q = parse(&policy, &plan).unwrap();
        c.bench_function(&format!("host plan build ({name})"), |b| {
            b.iter(|| {
                let cx = BuildContext {
                    policy: &policy,
                    raw: &raw,
                    pseudonym: Arc::new(Pseudonym::udf(&key)),
                    min_group_size: 10,
                    suppressed: Arc::new(AtomicU64::new(0)),
                    dominated: [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))],
                    hidden_subjects: Arc::new(AtomicU64::new(0)),
                    noise_key: [2; 32],
                    query_index: 0,
                    subject_unique: &unique,
                };
                build(&q, &cx).unwrap()
            })
        });
    }
}

criterion_group!(benches, plan_check);
criterion_main!(benches);
