//! The population of a restricted query's cells, for the difference check: the rows its cells
//! come from and their subjects, and the same rows before the WHERE's conditions on restricted
//! columns (what open columns alone select).
//!
//! Owns splitting the WHERE into open and restricted conditions, and refusing a condition that
//! mixes them. It must never take a restricted condition for an open one.

use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use enclave_policy::Policy;

use super::build::df;
use super::{Restricted, refuse};
use crate::check::CheckError;

/// The rows a restricted query's cells come from, and their subjects: what the difference check
/// needs to compute a cell's subject set when it must.
#[derive(Debug, Clone)]
pub struct Population {
    /// Scans, joins and WHERE, before the aggregate.
    pub input: LogicalPlan,
    /// The grouping keys over `input`.
    pub keys: Vec<Expr>,
    /// The raw subject value of each class over `input`, with the class's name (its datasets'
    /// subject column: one kind of subject across datasets).
    pub subjects: Vec<(String, Expr)>,
    /// The raw subject value of each class over `open_input`.
    pub open_subjects: Vec<Expr>,
    /// Whether the groups partition the subjects (one class, one row per subject): then the
    /// union of shown cells has exactly the sum of their counts.
    pub partition: bool,
    /// The datasets read.
    pub datasets: Vec<String>,
    /// How the plan chose each cell's rows beyond the population (a noised plan whose subjects
    /// have several rows keeps a keyed choice of groups per subject: its key is part of it), so
    /// that two cells of one definition have the same subjects.
    pub variant: String,
    /// The rows of the population before the WHERE's conditions on restricted columns, when it
    /// has some: the complement of each cell within it must hold no one or at least k subjects.
    pub open_input: Option<LogicalPlan>,
    /// The WHERE, whose `Debug` form (literals quoted and escaped) names the population
    /// unambiguously where the plan's display does not.
    pub predicate: Option<Expr>,
}

/// The joined rows of `q` (`plan`, before its WHERE) with the WHERE's open conditions only, when
/// the WHERE has restricted ones.
pub(super) fn open_input(
    q: &Restricted,
    policy: &Policy,
    plan: &LogicalPlanBuilder,
) -> Result<Option<LogicalPlan>, CheckError> {
    // The population before the WHERE's restricted conditions: the joined rows with its open
    // conditions only. A condition that mixes open and restricted columns is refused: an open
    // condition hidden under an OR or a NOT beside a restricted one would hide that population.
    Ok(match &q.predicate {
        Some(p) => {
            let open_col = |c: &Column| {
                let i = match &c.relation {
                    Some(r) => q.instances.iter().position(|x| &x.qualifier == r),
                    None if q.instances.len() == 1 => Some(0),
                    None => None,
                };
                i.is_some_and(|i| policy.row_level(&q.instances[i].dataset, &c.name))
            };
            let mut open = Vec::new();
            let mut restricted = false;
            for c in datafusion::logical_expr::utils::split_conjunction(p) {
                let cols = c.column_refs();
                let opened = cols.iter().filter(|col| open_col(col)).count();
                if opened == cols.len() {
                    open.push(c.clone());
                } else if opened == 0 {
                    restricted = true;
                } else {
                    return Err(refuse(format!(
                        "a condition of the WHERE mixes open and restricted columns (`{c}`): \
                         write each condition over open columns only or restricted columns \
                         only, joined by AND"
                    )));
                }
            }
            if restricted {
                let b = plan.clone();
                let b = match datafusion::logical_expr::utils::conjunction(open) {
                    Some(o) => b.filter(o).map_err(df)?,
                    None => b,
                };
                Some(b.build().map_err(df)?)
            } else {
                None
            }
        }
        None => None,
    })
}
