//! Stopping a job's queries when the job ends, at every operator boundary.
//!
//! A task on the query runtime can be aborted only where it yields, and an operator that pulls
//! from another in memory (an aggregate over a cross join) never yields: after its job hit the
//! wall clock, such a query would keep a worker busy for good, and two of them would starve every
//! later job of the process. So every node of a job's physical plan is wrapped in a
//! [`CancelExec`] whose stream checks the job's [`Cancel`] flag before each batch it hands up:
//! once the job ends (its host is dropped or its deadline passes), the next batch boundary ends
//! the query with an error. It must never let a batch through after the flag is set.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::Stream;

/// A job's cancellation flag, shared by every operator of its queries.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Stops every query of the job at its next batch boundary.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the job ended.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

fn ended() -> DataFusionError {
    DataFusionError::Execution("the job ended: its query was stopped".into())
}

/// Wraps every node of `plan` (bottom up) in a [`CancelExec`] checking `cancel`.
pub(crate) fn cancellable(
    plan: Arc<dyn ExecutionPlan>,
    cancel: &Cancel,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        Ok(Transformed::yes(Arc::new(CancelExec {
            input: node,
            cancel: cancel.clone(),
        }) as Arc<dyn ExecutionPlan>))
    })
    .map(|t| t.data)
}

/// A node that passes its input's batches through while the job runs.
#[derive(Debug)]
struct CancelExec {
    input: Arc<dyn ExecutionPlan>,
    cancel: Cancel,
}

impl DisplayAs for CancelExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CancelExec")
    }
}

impl ExecutionPlan for CancelExec {
    fn name(&self) -> &str {
        "CancelExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[Arc<dyn ExecutionPlan>; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("CancelExec has one input".into()))?;
        Ok(Arc::new(CancelExec {
            input,
            cancel: self.cancel.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if self.cancel.is_cancelled() {
            return Err(ended());
        }
        Ok(Box::pin(CancelStream {
            inner: self.input.execute(partition, context)?,
            cancel: self.cancel.clone(),
        }))
    }
}

struct CancelStream {
    inner: SendableRecordBatchStream,
    cancel: Cancel,
}

impl Stream for CancelStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.cancel.is_cancelled() {
            return Poll::Ready(Some(Err(ended())));
        }
        self.inner.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for CancelStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}
