//! `enclave policy check`: a policy validated against datasets, with the share of subjects
//! unique on the columns it exposes row by row (refused above `max_unique_share`) and on its
//! group keys.

use std::path::PathBuf;

use crate::split_pair;

#[derive(clap::Args)]
pub(crate) struct PolicyCheckArgs {
    /// The policy.
    #[arg(long)]
    policy: PathBuf,
    /// A dataset: NAME=FILE.parquet (repeatable).
    #[arg(long = "table", value_name = "NAME=FILE")]
    tables: Vec<String>,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn policy_check(args: PolicyCheckArgs) -> anyhow::Result<u8> {
    let (policy, _) = enclave_policy::Policy::load(&args.policy)?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let mut reports = Vec::new();
    let mut refused = Vec::new();
    for t in &args.tables {
        let (name, file) = split_pair(t, "--table").map_err(|e| anyhow::anyhow!(e.message))?;
        let rules = policy
            .dataset(&name)
            .ok_or_else(|| anyhow::anyhow!("dataset `{name}` is not classified by the policy"))?;
        let row_level: Vec<String> = rules
            .columns
            .keys()
            .filter(|c| policy.row_level(&name, c))
            .cloned()
            .collect();
        let keys: Vec<String> = rules
            .columns
            .iter()
            .filter(|(c, r)| policy.row_level(&name, c) || r.allows(enclave_policy::Use::GroupBy))
            .map(|(c, _)| c.clone())
            .collect();
        let path = PathBuf::from(&file);
        let subject = rules.subject.as_deref();
        let rows = rt.block_on(enclave_query::profile::uniqueness(
            &path, &row_level, subject,
        ))?;
        let groups = rt.block_on(enclave_query::profile::uniqueness(&path, &keys, subject))?;
        let share = |u: &enclave_query::profile::Uniqueness| {
            if u.subjects == 0 {
                0.0
            } else {
                u.unique as f64 / u.subjects as f64
            }
        };
        let ok = share(&rows) <= policy.max_unique_share;
        if !ok {
            refused.push(format!(
                "`{name}`: {:.2} % of its subjects are unique on the columns it exposes row by row ({}); at most {:.2} % may be",
                100.0 * share(&rows),
                row_level.join(", "),
                100.0 * policy.max_unique_share
            ));
        }
        reports.push(serde_json::json!({
            "dataset": name,
            "subject": subject,
            "row_level": {"columns": row_level, "subjects": rows.subjects, "unique": rows.unique,
                          "unique_share": share(&rows), "min_class": rows.min_class},
            "group_keys": {"columns": keys, "subjects": groups.subjects, "unique": groups.unique,
                           "unique_share": share(&groups), "min_class": groups.min_class},
            "ok": ok,
        }));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "policy": args.policy.display().to_string(),
                "max_unique_share": policy.max_unique_share,
                "ok": refused.is_empty(),
                "datasets": reports,
            }))?
        );
    } else {
        let names = |v: &serde_json::Value| {
            v.as_array().map_or(String::new(), |a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
        };
        for r in &reports {
            println!(
                "{}: row level [{}]: {} of {} subjects unique (smallest class {}); with group keys [{}]: {} unique (smallest class {}, suppressed below k = {} by the threshold)",
                r["dataset"].as_str().unwrap_or(""),
                names(&r["row_level"]["columns"]),
                r["row_level"]["unique"],
                r["row_level"]["subjects"],
                r["row_level"]["min_class"],
                names(&r["group_keys"]["columns"]),
                r["group_keys"]["unique"],
                r["group_keys"]["min_class"],
                policy.min_group_size,
            );
        }
    }
    if refused.is_empty() {
        eprintln!(
            "ok: the policy validates against {} dataset(s)",
            reports.len()
        );
        Ok(0)
    } else {
        for r in &refused {
            eprintln!("refused: {r}");
        }
        Ok(1)
    }
}
