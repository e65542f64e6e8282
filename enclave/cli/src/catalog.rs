//! Catalog commands: `catalog register|list|fusion` (the operator's datasets, the published
//! development catalog, the fusion catalog) and `social upload|approve|reject` (social data a
//! development entity brings for fusion).
//!
//! Owns measuring a file for the catalog (blake3, rows, schema, each column's level) and keeping
//! it inside the domain, content-addressed and read-only. It must never print a value of a
//! dataset: catalogs show names, types, levels and counts.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use enclave_core::TableName;
use enclave_governance::{
    CatalogColumn, CatalogSnapshot, Day, Origin, SnapshotFacts, SocialStatus,
};
use enclave_store::Home;

use crate::gov::{Common, Session};

#[derive(Args)]
pub(crate) struct CatalogArgs {
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CatalogCommand,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Register a Parquet file as the next version of a dataset (operator admins). The dataset
    /// and every column must be classified by the domain's policy.
    Register {
        /// The dataset's name.
        name: String,
        /// The Parquet file (copied into the domain).
        file: PathBuf,
    },
    /// The development catalog: datasets, versions, schemas, levels, row counts.
    List,
    /// The fusion catalog: approved social data.
    Fusion,
}

#[derive(Args)]
pub(crate) struct SocialArgs {
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: SocialCommand,
}

#[derive(Subcommand)]
enum SocialCommand {
    /// Bring social data for fusion (developers): every column gets the declared level.
    Upload {
        /// The dataset's name (not one of the domain's).
        name: String,
        /// The Parquet file (copied into the domain).
        file: PathBuf,
        /// The classification level of its columns (a level of the domain's policy).
        #[arg(long)]
        level: String,
        /// Where the data comes from and why its use is lawful.
        #[arg(long)]
        statement: String,
    },
    /// Approve social data (reviewers).
    Approve(DecideArgs),
    /// Reject social data (reviewers).
    Reject(DecideArgs),
}

#[derive(Args)]
struct DecideArgs {
    /// The dataset.
    name: String,
    /// The version.
    #[arg(long, default_value_t = 1)]
    version: i64,
    /// Why.
    #[arg(long)]
    reason: String,
}

/// How a measured file is kept in the domain.
enum Keep<'a> {
    /// The operator's datasets: a read-only copy under `datasets/files/<blake3>.parquet`.
    Plain,
    /// An entity's social data: sealed under its key (`entities/org-<n>/social/`), so that
    /// terminating the entity destroys it.
    Sealed(&'a enclave_store::EntityKey),
}

/// Copies `file` into the domain, measures the copy (blake3, rows, columns) and keeps it as
/// `keep` says; each column's level comes from `level`, which refuses an unclassified column.
fn measure(
    home: &Home,
    name: &TableName,
    file: &Path,
    level: impl Fn(&str) -> anyhow::Result<String>,
    keep: Keep<'_>,
) -> anyhow::Result<SnapshotFacts> {
    let dir = home.root().join("datasets").join("files");
    std::fs::create_dir_all(&dir)?;
    let mut nonce = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    let tmp = dir.join(format!(".upload-{}.partial", hex::encode(nonce)));
    std::fs::copy(file, &tmp).with_context(|| format!("copying {}", file.display()))?;
    let measured = (|| -> anyhow::Result<SnapshotFacts> {
        let blake3 = enclave_store::file_blake3(&tmp)?;
        let (rows, columns) = enclave_runtime::job::parquet_facts(name, &tmp)?;
        let columns = columns
            .into_iter()
            .map(|(n, t)| {
                Ok(CatalogColumn {
                    level: level(&n)?,
                    name: n,
                    data_type: t,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let bytes = std::fs::metadata(&tmp)?.len();
        let path = match keep {
            Keep::Plain => {
                let kept = dir.join(format!("{blake3}.parquet"));
                if !kept.exists() {
                    let mut perms = std::fs::metadata(&tmp)?.permissions();
                    perms.set_readonly(true);
                    std::fs::set_permissions(&tmp, perms)?;
                    std::fs::rename(&tmp, &kept)?;
                }
                kept
            }
            Keep::Sealed(key) => home.seal_social(key, &blake3, &tmp)?,
        };
        Ok(SnapshotFacts {
            path: path.display().to_string(),
            blake3: blake3.0,
            rows,
            bytes,
            columns,
        })
    })();
    let _ = std::fs::remove_file(&tmp);
    measured
}

fn domain_policy(home: &Home) -> anyhow::Result<enclave_policy::Policy> {
    let path = home.policy_path();
    Ok(enclave_policy::Policy::load(&path)
        .with_context(|| format!("the domain policy {}", path.display()))?
        .0)
}

/// A snapshot as JSON: names, types, levels and counts, never a value.
fn snapshot_json(s: &CatalogSnapshot) -> serde_json::Value {
    let mut v = serde_json::json!({
        "dataset": s.dataset.as_str(),
        "version": s.version,
        "rows": s.facts.rows,
        "bytes": s.facts.bytes,
        "blake3": enclave_core::Digest(s.facts.blake3).to_string(),
        "columns": s.facts.columns,
        "social": matches!(s.origin, Origin::Social { .. }),
    });
    if let Origin::Social { status, .. } = &s.origin {
        v["review"] = serde_json::Value::String(
            match status {
                SocialStatus::Pending => "pending",
                SocialStatus::Approved => "approved",
                SocialStatus::Rejected => "rejected",
            }
            .into(),
        );
    }
    v
}

fn print(list: &[CatalogSnapshot], json: bool) -> anyhow::Result<()> {
    if json {
        let v: Vec<serde_json::Value> = list.iter().map(snapshot_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for s in list {
        println!(
            "{} v{}: {} rows, blake3 {}",
            s.dataset,
            s.version,
            s.facts.rows,
            &enclave_core::Digest(s.facts.blake3).to_string()[..16]
        );
        for c in &s.facts.columns {
            println!("  {} {} ({})", c.name, c.data_type, c.level);
        }
    }
    Ok(())
}

/// `enclave catalog`.
pub(crate) fn catalog(args: CatalogArgs) -> anyhow::Result<u8> {
    let mut s = Session::open(&args.common)?;
    let json = args.json;
    match args.command {
        CatalogCommand::Register { name, file } => {
            let name = TableName::new(&name)?;
            let home = Home::open(&s.root)?;
            let policy = domain_policy(&home)?;
            let rules = policy.dataset(name.as_str()).ok_or_else(|| {
                anyhow::anyhow!("dataset `{name}` is not classified by the domain policy")
            })?;
            let facts = measure(
                &home,
                &name,
                &file,
                |c| {
                    rules
                        .columns
                        .get(c)
                        .map(|r| r.level.clone())
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "column `{name}.{c}` is not classified by the domain policy"
                            )
                        })
                },
                Keep::Plain,
            )?;
            // The leak index of its identifying values is built now, so that no job waits for
            // it (and a file the index cannot be built from is refused before it is listed).
            enclave_runtime::evidence::leak_index(
                &home,
                &policy,
                name.as_str(),
                &enclave_core::Digest(facts.blake3),
                Path::new(&facts.path),
                None,
            )
            .context("building the dataset's leak index")?;
            let snap = s.gov.register_dataset(
                &s.actor,
                &name,
                &facts,
                Day::today(),
                enclave_governance::now(),
            )?;
            s.flush()?;
            crate::gov::emit(json, snapshot_json(&snap), || {
                eprintln!(
                    "registered `{name}` version {} ({} rows)",
                    snap.version, snap.facts.rows
                )
            })
        }
        CatalogCommand::List => {
            let list = s.gov.development_catalog(&s.actor)?;
            print(&list, json)?;
            Ok(0)
        }
        CatalogCommand::Fusion => {
            let list = s.gov.fusion_catalog(&s.actor)?;
            print(&list, json)?;
            Ok(0)
        }
    }
}

/// `enclave social`.
pub(crate) fn social(args: SocialArgs) -> anyhow::Result<u8> {
    let mut s = Session::open(&args.common)?;
    let json = args.json;
    let now = enclave_governance::now();
    match args.command {
        SocialCommand::Upload {
            name,
            file,
            level,
            statement,
        } => {
            let name = TableName::new(&name)?;
            let home = Home::open(&s.root)?;
            let policy = domain_policy(&home)?;
            if policy.dataset(name.as_str()).is_some() {
                anyhow::bail!("`{name}` is a dataset of the domain policy: choose another name");
            }
            if !policy.levels.contains_key(&level) {
                anyhow::bail!("level `{level}` is not a level of the domain policy");
            }
            // Checked before the file is sealed: only a developer brings social data.
            s.actor.require(enclave_governance::Action::UploadSocial)?;
            let key = home.entity_key_or_create(s.actor.org().id.0)?;
            let facts = measure(
                &home,
                &name,
                &file,
                |_| Ok(level.clone()),
                Keep::Sealed(&key),
            )?;
            let snap = s
                .gov
                .upload_social(&s.actor, &name, &facts, &statement, now)?;
            s.flush()?;
            crate::gov::emit(json, snapshot_json(&snap), || {
                eprintln!(
                    "uploaded `{name}` version {}: it waits for the operator's review",
                    snap.version
                )
            })
        }
        SocialCommand::Approve(d) => decide(&mut s, &d, true, now, json),
        SocialCommand::Reject(d) => decide(&mut s, &d, false, now, json),
    }
}

fn decide(
    s: &mut Session,
    d: &DecideArgs,
    approve: bool,
    now: i64,
    json: bool,
) -> anyhow::Result<u8> {
    let name = TableName::new(&d.name)?;
    s.gov
        .decide_social(&s.actor, &name, d.version, approve, &d.reason, now)?;
    s.flush()?;
    let decision = if approve { "approved" } else { "rejected" };
    let v = serde_json::json!({"dataset": name.as_str(), "version": d.version, "review": decision});
    crate::gov::emit(json, v, || {
        eprintln!("`{name}` version {}: {decision}", d.version)
    })
}

/// The policy text that classifies `snap` (social data) at its declared levels, to append to
/// the domain policy for a job that joins it.
pub(crate) fn social_policy_text(snap: &CatalogSnapshot) -> Option<String> {
    let Origin::Social {
        status: SocialStatus::Approved,
        ..
    } = &snap.origin
    else {
        return None;
    };
    let mut s = format!(
        "\n# Social data `{}` v{} at its declared levels.\n[datasets.{}.columns]\n",
        snap.dataset, snap.version, snap.dataset
    );
    for c in &snap.facts.columns {
        s.push_str(&format!(
            "{} = {}\n",
            toml_string(&c.name),
            toml_string(&c.level)
        ));
    }
    Some(s)
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}
