//! The result stream a guest reads: partitions in a fixed order, a bounded amount ahead.
//!
//! Owns turning DataFusion's partition streams into one stream whose batch order does not depend
//! on thread scheduling, with at most a few partitions running ahead of the guest (a UNION of a
//! thousand branches does not start a thousand producers). Each batch is then put in wire form by
//! `enclave_egress::wire` before it is encoded for the guest. It must never buffer more than a
//! few batches per running partition.

use std::collections::VecDeque;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::runtime::SpawnedTask;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// Batches each running partition may produce ahead of the guest.
const RUN_AHEAD: usize = 2;

type Item = datafusion::common::Result<RecordBatch>;

struct Running {
    rx: tokio::sync::mpsc::Receiver<Item>,
    // Owned so that dropping the stream (or finishing the partition) aborts the task.
    _task: SpawnedTask<()>,
}

fn start(mut part: SendableRecordBatchStream) -> Running {
    let (tx, rx) = tokio::sync::mpsc::channel(RUN_AHEAD);
    let task = SpawnedTask::spawn(async move {
        while let Some(item) = part.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    Running { rx, _task: task }
}

/// Streams the partitions one after another, in partition order, while up to `ahead`
/// partitions run concurrently into small bounded buffers. A plan whose partitions are each
/// deterministic (scans, filters, projections) thus reaches the guest in the same order on every
/// run, and the scan still uses the cores. Dropping the stream stops the partition tasks.
pub(crate) fn in_partition_order(
    schema: SchemaRef,
    partitions: Vec<SendableRecordBatchStream>,
    ahead: usize,
) -> SendableRecordBatchStream {
    let mut partitions = partitions;
    if partitions.len() == 1
        && let Some(only) = partitions.pop()
    {
        return only;
    }
    struct State {
        waiting: VecDeque<SendableRecordBatchStream>,
        running: VecDeque<Running>,
        ahead: usize,
    }
    let state = State {
        waiting: partitions.into(),
        running: VecDeque::new(),
        ahead: ahead.max(1),
    };
    let ordered = futures::stream::unfold(state, |mut st| async move {
        loop {
            while st.running.len() < st.ahead {
                match st.waiting.pop_front() {
                    Some(p) => st.running.push_back(start(p)),
                    None => break,
                }
            }
            let front = st.running.front_mut()?;
            match front.rx.recv().await {
                Some(item) => return Some((item, st)),
                None => {
                    st.running.pop_front();
                }
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, ordered))
}
