//! The difference check at the domain's edge: the cells a job was shown, computed (by
//! re-deriving the job) and kept before its first output is released; the check of those cells
//! against the cells released to its development entity before; and the released cells read
//! back for the entity's next job.
//!
//! Owns computing and keeping a job's cells (`enclave_runtime::replay::release_cells`,
//! `Home::keep_cells`), loading them (`Home::cells_of`) and judging a release with
//! [`enclave_egress::difference::Cells::conflict`]. It must never let a first release through,
//! nor start a job, when cells that should be kept cannot be read.

use std::sync::Arc;

use anyhow::Context;
use enclave_egress::difference::Cells;
use enclave_store::{Home, Owner};

/// Most bytes of one job's kept cells read back.
const MAX_CELLS_BYTES: u64 = 1 << 31;

/// The cells of job `run` of entity `org`, as kept before its first release.
fn cells_of(home: &Home, org: i64, run: &str) -> anyhow::Result<Cells> {
    match home.cells_of(Owner::Entity(org), run, MAX_CELLS_BYTES)? {
        None => anyhow::bail!("the cells of job {run} were never computed"),
        Some(bytes) => Ok(Cells::decode(&bytes)?),
    }
}

/// Computes and keeps the cells job `run` of entity `org` was shown, unless kept already:
/// the job is re-derived (and that re-derivation logged); one that does not re-derive
/// identically keeps none, so its outputs cannot be released.
pub(crate) fn keep_for_release(root: &std::path::Path, org: i64, run: &str) -> anyhow::Result<()> {
    let home = Home::open(root)?;
    if home
        .cells_of(Owner::Entity(org), run, MAX_CELLS_BYTES)?
        .is_some()
    {
        return Ok(());
    }
    let job = crate::jobs::parse_run(run).with_context(|| format!("job id {run}"))?;
    let domain = enclave_runtime::Domain::open(root, "operator:difference-check".into())?;
    let engine = enclave_runtime::Engine::new(enclave_core::EngineLimits::default(), None)?;
    let (cells, _) = enclave_runtime::replay::release_cells(&domain, &engine, job)?;
    home.keep_cells(Owner::Entity(org), run, &cells.encode())?;
    Ok(())
}

/// Most cells released to one entity the check holds (their sets: about 2 bytes per subject of
/// a cell, 20 MiB for a cell of 10 million): past it the entity's next jobs fail (closed).
const MAX_RELEASED_CELLS: usize = 1 << 22;

/// Every cell released to entity `org`: those of its jobs `runs`.
pub(crate) fn released(home: &Home, org: i64, runs: &[String]) -> anyhow::Result<Arc<Cells>> {
    let mut all = Cells::new();
    for r in runs {
        all.extend(cells_of(home, org, r).with_context(|| format!("the cells of job {r}"))?);
        anyhow::ensure!(
            all.len() <= MAX_RELEASED_CELLS,
            "more than {MAX_RELEASED_CELLS} cells were released to org-{org}: the difference \
             check cannot hold them"
        );
    }
    Ok(Arc::new(all))
}

/// The group threshold k of the domain's policy.
pub(crate) fn threshold(home: &Home) -> anyhow::Result<u64> {
    let path = home.policy_path();
    let text = String::from_utf8(enclave_store::read_bounded(&path, 1 << 20)?)
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    let policy = enclave_policy::Policy::parse(&path.display().to_string(), &text)?;
    Ok(policy.min_group_size)
}

/// The difference check of job `run`'s first release against the jobs `released` before:
/// `Some(reason)` if one of its cells differs from a released one by fewer than `k` subjects.
pub(crate) fn check_release(
    home: &Home,
    org: i64,
    k: u64,
    run: &str,
    released: &[String],
) -> anyhow::Result<Option<String>> {
    let mine = cells_of(home, org, run)?;
    if mine.is_empty() {
        return Ok(None);
    }
    // Against every cell released before.
    let before = self::released(home, org, released)?;
    Ok(before.conflict(&mine, k).map(|c| {
        format!(
            "a cell its job was shown differs from a cell released to the entity before by {} \
             subject(s), fewer than the threshold of {k}: releasing both would give somebody away",
            c.distance
        )
    }))
}
