//! Product review (数据产品审核) and release: the outputs of governed jobs wait in quarantine
//! until a reviewer decides on them against the seed's six criteria; an approved output is
//! downloadable by its own development entity only (the first download releases it, and the
//! binary signs a receipt); a released output can be published as a product
//! ([`super::products`]).
//!
//! Owns who may see, preview, decide, download, withdraw and publish which output, and the
//! review's transitions ([`ReviewState::may_become`]). Separation of duties: only reviewers
//! decide, nobody decides on an output of their own organization's job, a block verdict of the
//! egress checks cannot be approved, and a flagged output is approved only by a reviewer who
//! says they read the findings. It must never hand out an output that is not approved, nor one
//! of another organization (whose existence is not even confirmed).

use serde_json::json;

use super::*;
use crate::job::JobNo;
use crate::output::{
    Criterion, Download, MAX_EVIDENCE, MAX_OUTPUT_NAME, MAX_OUTPUTS, NewOutput, OutputDecision,
    OutputNo, OutputRecord, OutputVerdict, Review, ReviewState,
};

fn subject(no: OutputNo) -> String {
    format!("output-record:{no}")
}

fn not_found(no: OutputNo) -> GovError {
    GovError::NotFound(format!("output {no}"))
}

/// The output as `actor` may see it: every output for record readers, the own organization's
/// for developers; another organization's output is "not found".
pub(super) fn visible(
    tx: &mut dyn Tx,
    actor: &Actor,
    no: OutputNo,
) -> Result<OutputRecord, GovError> {
    let o = tx.output(no)?.ok_or_else(|| not_found(no))?;
    if permits(actor.role(), Action::ReadRecords) || o.org == actor.org.id {
        Ok(o)
    } else {
        Err(not_found(no))
    }
}

pub(super) fn live_org(tx: &mut dyn Tx, actor: &Actor) -> Result<(), GovError> {
    let me = tx
        .org(actor.org.id)?
        .ok_or_else(|| GovError::Store("org vanished".into()))?;
    active(&me)
}

fn hex32(d: &[u8; 32]) -> String {
    hex::encode(d)
}

/// Bounds what a job's end hands over before it is stored: names cut to
/// [`MAX_OUTPUT_NAME`], an evidence report over [`MAX_EVIDENCE`] replaced by a blocking one
/// (fail closed: a report nobody can read does not let an output pass).
pub(crate) fn bounded(o: &NewOutput) -> NewOutput {
    let mut o = o.clone();
    if o.name.len() > MAX_OUTPUT_NAME {
        let mut end = MAX_OUTPUT_NAME;
        while !o.name.is_char_boundary(end) {
            end -= 1;
        }
        o.name.truncate(end);
    }
    if o.evidence.len() > MAX_EVIDENCE {
        o.verdict = OutputVerdict::Block;
        o.evidence = json!({
            "verdict": "block",
            "findings": [{"check": "size", "verdict": "block",
                          "message": "the evidence report is too large to keep"}],
        })
        .to_string();
    }
    o
}

/// Stores the outputs of job `job` (pending review) in the caller's transaction.
pub(super) fn insert_outputs(
    tx: &mut dyn Tx,
    job: JobNo,
    org: crate::model::OrgId,
    outputs: &[NewOutput],
    now: i64,
) -> Result<Vec<OutputNo>, GovError> {
    if outputs.len() > MAX_OUTPUTS {
        return Err(GovError::Invalid(format!(
            "a job keeps at most {MAX_OUTPUTS} outputs for review"
        )));
    }
    let terminated = tx
        .org(org)?
        .is_some_and(|o| o.status == crate::model::OrgStatus::Terminated);
    let mut nos = Vec::with_capacity(outputs.len());
    for o in outputs {
        let no = tx.insert_output(job, org, &bounded(o), now)?;
        // A job that ended after its entity's termination leaves nothing to review.
        if terminated {
            tx.withdraw_output(
                no,
                ReviewState::Pending,
                now,
                "organization terminated before its job ended",
            )?;
        }
        nos.push(no);
    }
    Ok(nos)
}

/// The difference check of a job's first release: given the job's runtime id and those of the
/// entity's jobs released before, a reason to withdraw the output, or none.
pub type ReleaseCheck<'a> = &'a mut dyn FnMut(&str, &[String]) -> Result<Option<String>, String>;

/// The runtime ids of `org`'s jobs with an output released (withdrawn since or not: it left).
fn released_runs_in(tx: &mut dyn Tx, org: crate::model::OrgId) -> Result<Vec<String>, GovError> {
    let mut runs: Vec<String> = Vec::new();
    for o in tx.outputs(Some(org), None, None, u32::MAX)? {
        if o.released_at.is_some()
            && let Some(r) = o.run
            && !runs.contains(&r)
        {
            runs.push(r);
        }
    }
    Ok(runs)
}

pub(super) fn withdraw_in(
    tx: &mut dyn Tx,
    o: &OutputRecord,
    reason: &str,
    now: i64,
) -> Result<u64, GovError> {
    let mut downs = 0;
    if o.state != ReviewState::Withdrawn {
        tx.withdraw_output(o.no, o.state, now, reason)?;
    }
    for p in tx.products(None, Some(o.no), false, u32::MAX)? {
        tx.take_down(p.no, now, reason)?;
        downs += 1;
    }
    Ok(downs)
}

/// Withdraws every output of `org` and takes its products down (its termination); returns
/// (outputs, products).
pub(super) fn withdraw_all_of(
    tx: &mut dyn Tx,
    org: crate::model::OrgId,
    reason: &str,
    now: i64,
) -> Result<(u64, u64), GovError> {
    let (mut outs, mut prods) = (0, 0);
    for o in tx.outputs(Some(org), None, None, u32::MAX)? {
        if matches!(o.state, ReviewState::Rejected | ReviewState::Withdrawn) {
            continue;
        }
        prods += withdraw_in(tx, &o, reason, now)?;
        outs += 1;
    }
    Ok((outs, prods))
}

impl<S: Store> Governance<S> {
    /// Outputs `actor` may see, newest first (at most `limit`): every one for record readers
    /// and reviewers, the own organization's for developers.
    pub fn outputs(
        &mut self,
        actor: &Actor,
        state: Option<ReviewState>,
        limit: u32,
    ) -> Result<Vec<OutputRecord>, GovError> {
        let org = if permits(actor.role(), Action::ReadRecords) {
            None
        } else {
            actor.require(Action::DownloadOutput)?;
            Some(actor.org.id)
        };
        self.tx(|tx| tx.outputs(org, None, state, limit))
    }

    /// One output, if `actor` may see it.
    pub fn output(&mut self, actor: &Actor, no: OutputNo) -> Result<OutputRecord, GovError> {
        if !permits(actor.role(), Action::ReadRecords) {
            actor.require(Action::DownloadOutput)?;
        }
        self.tx(|tx| visible(tx, actor, no))
    }

    /// A reviewer opens output `no` to preview it (the binary shows a bounded preview of the
    /// quarantined bytes); the step is on the record.
    pub fn preview_output(
        &mut self,
        actor: &Actor,
        no: OutputNo,
        now: i64,
    ) -> Result<OutputRecord, GovError> {
        actor.require(Action::DecideOutput)?;
        self.tx(|tx| {
            live_org(tx, actor)?;
            let o = visible(tx, actor, no)?;
            if o.org == actor.org.id {
                return Err(GovError::Refused(
                    "nobody reviews an output of their own organization's job".into(),
                ));
            }
            if o.state == ReviewState::Withdrawn {
                return Err(GovError::Refused(format!("{no} is withdrawn")));
            }
            journal(
                tx,
                actor,
                "gov.output.preview",
                &subject(no),
                json!({"output": no.to_string(), "digest": hex32(&o.output.digest)}),
                now,
            )?;
            Ok(o)
        })
    }

    /// A reviewer decides on pending output `no`. Approval affirms every criterion, is refused
    /// for an output the egress checks blocked, and needs `acknowledge` for a flagged one;
    /// rejection names the failed criteria and why.
    pub fn decide_output(
        &mut self,
        actor: &Actor,
        no: OutputNo,
        decision: &OutputDecision,
        now: i64,
    ) -> Result<OutputRecord, GovError> {
        actor.require(Action::DecideOutput)?;
        let review = match decision {
            OutputDecision::Approve {
                affirmed,
                acknowledge,
            } => {
                let missing: Vec<&str> = Criterion::ALL
                    .iter()
                    .filter(|c| !affirmed.contains(c))
                    .map(|c| c.as_str())
                    .collect();
                if !missing.is_empty() {
                    return Err(GovError::Invalid(format!(
                        "an approval affirms every criterion of product review; not affirmed: {}",
                        missing.join(", ")
                    )));
                }
                Review {
                    reviewer: actor.user.id,
                    at: now,
                    approved: true,
                    affirmed: Criterion::ALL.to_vec(),
                    failed: Vec::new(),
                    reason: None,
                    acknowledged: *acknowledge,
                }
            }
            OutputDecision::Reject { failed, reason } => {
                let failed: Vec<Criterion> = Criterion::ALL
                    .iter()
                    .copied()
                    .filter(|c| failed.contains(c))
                    .collect();
                if failed.is_empty() {
                    return Err(GovError::Invalid(
                        "a rejection names the criteria the output fails".into(),
                    ));
                }
                Review {
                    reviewer: actor.user.id,
                    at: now,
                    approved: false,
                    affirmed: Vec::new(),
                    failed,
                    reason: Some(text("the reason", reason)?),
                    acknowledged: false,
                }
            }
        };
        self.tx(|tx| {
            live_org(tx, actor)?;
            let o = visible(tx, actor, no)?;
            if o.org == actor.org.id {
                return Err(GovError::Refused(
                    "nobody decides on an output of their own organization's job".into(),
                ));
            }
            if o.state != ReviewState::Pending {
                return Err(GovError::Refused(format!(
                    "{no} is {} (only pending outputs are decided)",
                    o.state
                )));
            }
            if review.approved {
                match o.output.verdict {
                    OutputVerdict::Block => {
                        return Err(GovError::Refused(format!(
                            "the egress checks blocked {no}: it cannot be approved"
                        )));
                    }
                    OutputVerdict::Flag if !review.acknowledged => {
                        return Err(GovError::Refused(format!(
                            "the egress checks flagged {no}: read its evidence and approve \
                             acknowledging the findings"
                        )));
                    }
                    _ => {}
                }
            }
            tx.set_review(no, &review)?;
            let verb = if review.approved { "approve" } else { "reject" };
            journal(
                tx,
                actor,
                &format!("gov.output.{verb}"),
                &subject(no),
                json!({
                    "output": no.to_string(),
                    "job": o.job.to_string(),
                    "digest": hex32(&o.output.digest),
                    "verdict": o.output.verdict.as_str(),
                    "affirmed": review.affirmed.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "failed": review.failed.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "acknowledged": review.acknowledged,
                    "reason": review.reason,
                }),
                now,
            )?;
            tx.output(no)?.ok_or_else(|| not_found(no))
        })
    }

    /// A developer downloads approved output `no` of its own organization's job: the first
    /// download releases it. Refused while pending, once rejected or withdrawn, and while the
    /// organization is not active. Without the difference check: for this crate's tests only
    /// (the domain calls [`Governance::download_output_checked`]).
    #[cfg(test)]
    pub(crate) fn download_output(
        &mut self,
        actor: &Actor,
        no: OutputNo,
        now: i64,
    ) -> Result<Download, GovError> {
        self.download_output_checked(actor, no, now, &mut |_, _| Ok(None))
    }

    /// [`Governance::download_output`], with the difference check of a job's first release:
    /// before the first output of a job is released, `check(run, released)` compares the cells
    /// the job (runtime id `run`) was shown with those of the entity's jobs released before
    /// (`released`, their runtime ids). `Ok(Some(reason))` — a cell too close to a released
    /// one — withdraws the output with that reason, on the record, and refuses the download;
    /// `Err` refuses it and changes nothing. Checked and released in one transaction, so two
    /// jobs' first releases cannot both pass against the cells before either.
    pub fn download_output_checked(
        &mut self,
        actor: &Actor,
        no: OutputNo,
        now: i64,
        check: ReleaseCheck<'_>,
    ) -> Result<Download, GovError> {
        actor.require(Action::DownloadOutput)?;
        let done = self.tx(|tx| {
            live_org(tx, actor)?;
            let o = visible(tx, actor, no)?;
            // The grant it was computed under still stands: its application is not revoked, and
            // the operator is in operation.
            let app = tx
                .application(&o.application)?
                .ok_or_else(|| GovError::Store(format!("{no}'s application vanished")))?;
            if matches!(app.decision, crate::model::Decision::Revoked { .. }) {
                return Err(GovError::Refused(format!(
                    "application {} was revoked: {no} cannot be downloaded",
                    o.application
                )));
            }
            for op in tx.orgs_of_kind(crate::roles::OrgKind::Operator)? {
                active(&op)?;
            }
            if !o.state.downloadable() {
                return Err(GovError::Refused(match o.state {
                    ReviewState::Pending => format!(
                        "{no} is in quarantine until a reviewer approves it: it cannot be read"
                    ),
                    s => format!("{no} is {s}: it cannot be downloaded"),
                }));
            }
            let review = o
                .review
                .clone()
                .filter(|r| r.approved)
                .ok_or_else(|| GovError::Store(format!("{no} is approved without a review")))?;
            let reviewer = tx
                .user(review.reviewer)?
                .ok_or_else(|| GovError::Store("a reviewer is missing".into()))?;
            let first = o.state == ReviewState::Approved;
            if first && o.run.is_none() {
                return Err(GovError::Store(format!(
                    "{no} has no job run whose cells could be checked"
                )));
            }
            if first && let Some(run) = &o.run {
                let released = released_runs_in(tx, o.org)?;
                if !released.contains(run) {
                    match check(run, &released) {
                        Ok(None) => {}
                        Ok(Some(reason)) => {
                            let reason = format!("difference check: {reason}");
                            let products = withdraw_in(tx, &o, &reason, now)?;
                            journal(
                                tx,
                                actor,
                                "gov.output.withdraw",
                                &subject(no),
                                json!({"output": no.to_string(), "reason": reason,
                                       "products": products}),
                                now,
                            )?;
                            return Ok(Err(reason));
                        }
                        Err(e) => {
                            return Err(GovError::Store(format!(
                                "the difference check of {no} could not run: {e}"
                            )));
                        }
                    }
                }
            }
            if first {
                tx.set_released(no, now)?;
                journal(
                    tx,
                    actor,
                    "gov.output.release",
                    &subject(no),
                    json!({"output": no.to_string(), "job": o.job.to_string(),
                           "digest": hex32(&o.output.digest)}),
                    now,
                )?;
            }
            journal(
                tx,
                actor,
                "gov.output.download",
                &subject(no),
                json!({"output": no.to_string(), "digest": hex32(&o.output.digest)}),
                now,
            )?;
            Ok(Ok(Download {
                record: tx.output(no)?.ok_or_else(|| not_found(no))?,
                first,
                reviewer: reviewer.name,
                developer: actor.org.name.clone(),
            }))
        })?;
        done.map_err(|reason| {
            GovError::Refused(format!(
                "{no} was withdrawn and cannot be downloaded: {reason}"
            ))
        })
    }

    /// The runtime ids of organization `org`'s jobs with an output released: whose cells its
    /// next job's queries are compared with.
    pub fn released_runs(&mut self, org: crate::model::OrgId) -> Result<Vec<String>, GovError> {
        self.tx(|tx| released_runs_in(tx, org))
    }

    /// Keeps the signed receipt of released output `no` unless one is kept already; returns the
    /// receipt kept (so two first downloads at once hand out the same one).
    pub fn keep_receipt(&mut self, no: OutputNo, receipt: &str) -> Result<String, GovError> {
        if receipt.len() > 16 << 10 {
            return Err(GovError::Invalid("a receipt is at most 16 KiB".into()));
        }
        self.tx(|tx| {
            let o = tx.output(no)?.ok_or_else(|| not_found(no))?;
            if let Some(kept) = o.receipt {
                return Ok(kept);
            }
            tx.set_receipt(no, receipt)?;
            Ok(receipt.to_owned())
        })
    }

    /// An operator admin or reviewer withdraws output `no` (pending, approved or released):
    /// no further download, and its products are taken down.
    pub fn withdraw_output(
        &mut self,
        actor: &Actor,
        no: OutputNo,
        reason: &str,
        now: i64,
    ) -> Result<OutputRecord, GovError> {
        actor.require(Action::ManageProducts)?;
        let reason = text("the reason", reason)?;
        self.tx(|tx| {
            live_org(tx, actor)?;
            let o = visible(tx, actor, no)?;
            if !o.state.may_become(ReviewState::Withdrawn) {
                return Err(GovError::Refused(format!("{no} is {}", o.state)));
            }
            let products = withdraw_in(tx, &o, &reason, now)?;
            journal(
                tx,
                actor,
                "gov.output.withdraw",
                &subject(no),
                json!({"output": no.to_string(), "reason": reason, "products": products}),
                now,
            )?;
            tx.output(no)?.ok_or_else(|| not_found(no))
        })
    }

    /// The quarantined outputs a terminated organization's shredding destroys: the digests of
    /// all its outputs (each kept in the organization's own quarantine).
    pub fn outputs_to_shred(
        &mut self,
        org: crate::model::OrgId,
    ) -> Result<Vec<[u8; 32]>, GovError> {
        self.tx(|tx| {
            let mut out: Vec<[u8; 32]> = Vec::new();
            for o in tx.outputs(Some(org), None, None, u32::MAX)? {
                if !out.contains(&o.output.digest) {
                    out.push(o.output.digest);
                }
            }
            Ok(out)
        })
    }
}
