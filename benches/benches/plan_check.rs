//! Cost of checking a query plan against the policy (column lineage + threshold rewrite),
//! next to the cost of planning the same query, for a simple query and a 5-way join.
//! Execution of the same queries is measured in `vs_native`; the check must be negligible.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use enclave_query::{check, threshold};
use enclave_tests::default_policy_path;

const SIMPLE: &str = "SELECT district, COUNT(*) AS n, AVG(income) AS m FROM residents WHERE age > 30 GROUP BY district";
const JOIN5: &str = "SELECT r.district, v.diagnosis, COUNT(*) AS n, AVG(v.cost) AS c \
    FROM residents r \
    JOIN hospital_visits v ON r.resident_id = v.resident_id \
    JOIN hospital_visits v2 ON v.resident_id = v2.resident_id \
    JOIN residents r2 ON r2.resident_id = v2.resident_id \
    JOIN traffic_records t ON t.district = r2.district \
    WHERE r.age > 30 AND v.insured \
    GROUP BY r.district, v.diagnosis";

fn plan_check(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ctx = SessionContext::new();
    for t in enclave_datagen::TABLES {
        let schema = enclave_datagen::schema_of(t).unwrap();
        ctx.register_table(
            *t,
            Arc::new(MemTable::try_new(schema, vec![vec![]]).unwrap()),
        )
        .unwrap();
    }
    let policy = enclave_policy::Policy::load(&default_policy_path())
        .unwrap()
        .0;
    for (name, sql) in [("simple", SIMPLE), ("5-way join", JOIN5)] {
        let plan = rt.block_on(ctx.state().create_logical_plan(sql)).unwrap();
        c.bench_function(&format!("plan SQL ({name})"), |b| {
            b.iter(|| rt.block_on(ctx.state().create_logical_plan(sql)).unwrap())
        });
        c.bench_function(&format!("policy check ({name})"), |b| {
            b.iter(|| check::check(&policy, &plan).unwrap())
        });
        c.bench_function(&format!("threshold rewrite ({name})"), |b| {
            b.iter(|| threshold::enforce(&policy, plan.clone()).unwrap())
        });
    }
}

criterion_group!(benches, plan_check);
criterion_main!(benches);
