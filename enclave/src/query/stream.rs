//! The result stream a guest reads: partitions in a fixed order.
//!
//! Owns turning DataFusion's partition streams into one stream whose batch order does not
//! depend on thread scheduling. It must never buffer more than a few batches per partition.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;

/// Batches each partition may run ahead of the guest.
const RUN_AHEAD: usize = 4;

/// Streams the partitions one after another, in partition order, while every partition runs
/// concurrently into a small bounded buffer. A plan whose partitions are each deterministic
/// (scans, filters, projections) thus reaches the guest in the same order on every run, and
/// the scan still uses every core. Dropping the stream stops the partition tasks.
pub(super) fn in_partition_order(
    schema: SchemaRef,
    partitions: Vec<SendableRecordBatchStream>,
) -> SendableRecordBatchStream {
    use datafusion::common::runtime::SpawnedTask;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::StreamExt;

    if partitions.len() == 1 {
        if let Some(only) = partitions.into_iter().next() {
            return only;
        }
        return Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::empty(),
        ));
    }
    let mut tasks = Vec::with_capacity(partitions.len());
    let mut receivers = Vec::with_capacity(partitions.len());
    for mut part in partitions {
        let (tx, rx) = tokio::sync::mpsc::channel(RUN_AHEAD);
        tasks.push(SpawnedTask::spawn(async move {
            while let Some(item) = part.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        }));
        receivers.push(rx);
    }
    let tasks = Arc::new(tasks);
    let ordered = futures::stream::iter(receivers)
        .flat_map(|rx| {
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
        })
        .map(move |item| {
            // The stream owns the partition tasks: they are aborted when it is dropped.
            let _owned = &tasks;
            item
        });
    Box::pin(RecordBatchStreamAdapter::new(schema, ordered))
}
