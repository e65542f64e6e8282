//! The crate layout's rules, checked on the real dependency graph (`cargo metadata`): trust
//! boundaries (the verifier and the policy without wasmtime, the sandbox without DataFusion), the
//! data path without back-calls, binaries owning clap/anyhow/indicatif, one Arrow.

use std::collections::{BTreeMap, BTreeSet};

use enclave_tests::*;
use libtest_mimic::Trial;
use serde_json::Value;

struct Graph {
    /// Workspace member name → names of its direct normal dependencies.
    direct: BTreeMap<String, Vec<String>>,
    /// Package id → name.
    names: BTreeMap<String, String>,
    /// Package id → ids of its normal and build dependencies.
    deps: BTreeMap<String, Vec<String>>,
    /// Workspace member name → id.
    members: BTreeMap<String, String>,
    /// Every package name with its versions.
    versions: BTreeMap<String, BTreeSet<String>>,
}

fn graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(root())
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let mut g = Graph {
        direct: BTreeMap::new(),
        names: BTreeMap::new(),
        deps: BTreeMap::new(),
        members: BTreeMap::new(),
        versions: BTreeMap::new(),
    };
    for p in v["packages"].as_array().expect("packages") {
        let id = p["id"].as_str().unwrap_or_default().to_owned();
        let name = p["name"].as_str().unwrap_or_default().to_owned();
        g.versions
            .entry(name.clone())
            .or_default()
            .insert(p["version"].as_str().unwrap_or_default().to_owned());
        let direct = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect();
        g.direct.insert(name.clone(), direct);
        g.names.insert(id, name);
    }
    for id in v["workspace_members"].as_array().expect("members") {
        let id = id.as_str().unwrap_or_default().to_owned();
        g.members.insert(g.names[&id].clone(), id);
    }
    for node in v["resolve"]["nodes"].as_array().expect("resolve") {
        let id = node["id"].as_str().unwrap_or_default().to_owned();
        let deps = node["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null() || k["kind"].as_str() == Some("build"))
            })
            .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
            .collect();
        g.deps.insert(id, deps);
    }
    g
}

impl Graph {
    /// Every package `member` depends on (normal and build), transitively.
    fn closure(&self, member: &str) -> BTreeSet<String> {
        let start = self
            .members
            .get(member)
            .unwrap_or_else(|| panic!("{member} is not a workspace member"));
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.clone()];
        while let Some(id) = stack.pop() {
            for d in self.deps.get(&id).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen.into_iter().map(|id| self.names[&id].clone()).collect()
    }
}

fn forbidden(name: &str, prefixes: &[&str]) -> bool {
    prefixes
        .iter()
        .any(|p| name == *p || name.starts_with(&format!("{p}-")))
}

/// The rules: crate → names (or `name-*` families) it must never depend on.
const RULES: &[(&str, &[&str])] = &[
    ("enclave-abi", &["*"]),
    (
        "enclave-core",
        &[
            "wasmtime",
            "cranelift",
            "datafusion",
            "arrow",
            "parquet",
            "tokio",
        ],
    ),
    (
        "enclave-tlog",
        &[
            "wasmtime",
            "cranelift",
            "datafusion",
            "arrow",
            "parquet",
            "enclave",
        ],
    ),
    (
        "enclave-auditor",
        &[
            "wasmtime",
            "cranelift",
            "datafusion",
            "arrow",
            "parquet",
            "enclave-core",
            "enclave-runtime",
            "enclave-store",
            "enclave-sandbox",
            "enclave-query",
        ],
    ),
    (
        // Differential privacy is arithmetic and a keyed generator: no engine, no other crate
        // of Enclave.
        "enclave-dp",
        &[
            "wasmtime",
            "cranelift",
            "datafusion",
            "arrow",
            "parquet",
            "tokio",
            "enclave",
        ],
    ),
    (
        "enclave-policy",
        &[
            "wasmtime",
            "cranelift",
            "datafusion",
            "arrow",
            "parquet",
            "tokio",
        ],
    ),
    (
        "enclave-sandbox",
        &[
            "datafusion",
            "arrow",
            "parquet",
            "sqlparser",
            "tokio",
            "enclave-query",
            "enclave-egress",
            "enclave-record",
            "enclave-runtime",
            "enclave-policy",
            "enclave-store",
        ],
    ),
    (
        "enclave-query",
        &[
            "wasmtime",
            "cranelift",
            "enclave-sandbox",
            "enclave-record",
            "enclave-runtime",
            "enclave-store",
        ],
    ),
    (
        "enclave-egress",
        &[
            "wasmtime",
            "cranelift",
            "datafusion",
            "enclave-query",
            "enclave-sandbox",
            "enclave-record",
            "enclave-runtime",
            "enclave-policy",
        ],
    ),
    (
        "enclave-record",
        &[
            "wasmtime",
            "cranelift",
            "datafusion",
            "arrow",
            "enclave-sandbox",
            "enclave-query",
            "enclave-runtime",
        ],
    ),
    (
        "enclave-store",
        &[
            "wasmtime",
            "cranelift",
            "datafusion",
            "arrow",
            "enclave-runtime",
            "enclave-sandbox",
            "enclave-query",
        ],
    ),
    (
        "enclave-datagen",
        &["wasmtime", "cranelift", "datafusion", "enclave"],
    ),
    (
        // Governance decides who may do what; it runs nothing and reads no data.
        "enclave-governance",
        &[
            "wasmtime",
            "cranelift",
            "datafusion",
            "arrow",
            "parquet",
            "enclave-runtime",
            "enclave-sandbox",
            "enclave-query",
            "enclave-store",
            "enclave-tlog",
        ],
    ),
    (
        "enclave-guest",
        &[
            "wasmtime",
            "datafusion",
            "parquet",
            "enclave-core",
            "enclave-runtime",
            "tokio",
        ],
    ),
];

/// Packages that are binaries (they may own clap, anyhow, indicatif, a tracing subscriber).
const BINARIES: &[&str] = &[
    "enclave-cli",
    "enclave-auditor",
    "enclave-tests",
    "enclave-benches",
];

fn trust_boundaries_and_the_data_path_hold() {
    let g = graph();
    for (member, banned) in RULES {
        let deps = g.closure(member);
        if banned == &["*"] {
            assert!(deps.is_empty(), "{member} must depend on nothing: {deps:?}");
            continue;
        }
        for d in &deps {
            assert!(
                !forbidden(d, banned),
                "{member} must not depend on {d} (rule: not {banned:?})"
            );
        }
    }
    // The rule checker itself can fail: the runtime does reach all of them, the CLI owns clap.
    assert!(g.direct["enclave-cli"].iter().any(|d| d == "clap"));
    let runtime = g.closure("enclave-runtime");
    for must in [
        "wasmtime",
        "datafusion",
        "enclave-sandbox",
        "enclave-query",
        "enclave-tlog",
    ] {
        assert!(runtime.contains(must), "enclave-runtime lacks {must}");
    }
}

fn libraries_do_not_own_binary_dependencies() {
    let g = graph();
    for member in g.members.keys() {
        if BINARIES.contains(&member.as_str()) {
            continue;
        }
        // Direct dependencies: wasmtime itself uses anyhow; what matters is that no library of
        // ours takes on a binary's concerns.
        for d in &g.direct[member] {
            assert!(
                !matches!(
                    d.as_str(),
                    "clap" | "anyhow" | "indicatif" | "tracing-subscriber"
                ),
                "library {member} depends on {d}: only binaries may"
            );
        }
    }
}

fn there_is_one_arrow() {
    let g = graph();
    for (name, versions) in &g.versions {
        if name.starts_with("arrow") || name == "parquet" || name == "wasmtime" {
            assert_eq!(
                versions.len(),
                1,
                "{name} in several versions: {versions:?}"
            );
        }
    }
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        trust_boundaries_and_the_data_path_hold,
        libraries_do_not_own_binary_dependencies,
        there_is_one_arrow,
    ]
}
