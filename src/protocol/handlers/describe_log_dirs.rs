//! DescribeLogDirs v1-v4: the one data directory, with the size of each asked partition
//! (null: every partition) as its partition actor reports it, and (v4) the total and usable
//! bytes of its file system. offset_lag is 0 as in Kafka for a partition's current log (it
//! is the high watermark's lead over the log end, never positive on the leader).

use futures::future::join_all;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, ResponseKind};

use super::{text, topic_name};
use crate::actors::partition::PartitionMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, req: DescribeLogDirsRequest) -> ResponseFuture {
    let routes = ctx.routes();
    let wanted: Vec<(String, Vec<i32>)> = match req.topics {
        None => routes
            .topics()
            .iter()
            .map(|r| (r.name.clone(), (0..r.partitions.len() as i32).collect()))
            .collect(),
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect(),
    };
    let node = ctx.config.node_id;
    let asks: Vec<_> = wanted
        .into_iter()
        .filter_map(|(name, partitions)| {
            let route = routes.topic(&name)?.clone();
            let asks: Vec<_> = partitions
                .into_iter()
                // In a cluster, only the partitions this broker holds a replica of.
                .filter(|p| {
                    route
                        .placement(*p)
                        .is_none_or(|placed| placed.replicas.contains(&node))
                })
                .filter_map(|p| {
                    route
                        .partition(p)
                        .and_then(|a| ask(a, |reply| PartitionMsg::Offsets { reply }))
                        .map(|rx| (p, rx))
                })
                .collect();
            Some((name, asks))
        })
        .collect();
    let dir =
        std::fs::canonicalize(&ctx.config.data_dir).unwrap_or_else(|_| ctx.config.data_dir.clone());
    let (total, usable) = crate::storage::io::disk_space(&dir)
        .map(|(t, u)| (t as i64, u as i64))
        .unwrap_or((-1, -1));
    Box::pin(async move {
        let mut topics = Vec::with_capacity(asks.len());
        for (name, partitions) in asks {
            let sizes = join_all(
                partitions
                    .into_iter()
                    .map(|(p, rx)| async move { (p, rx.await.ok()) }),
            )
            .await;
            let partitions = sizes
                .into_iter()
                .filter_map(|(p, offsets)| {
                    let o = offsets?;
                    Some(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(p)
                            .with_partition_size(o.size_bytes as i64)
                            .with_offset_lag(0),
                    )
                })
                .collect();
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(&name))
                    .with_partitions(partitions),
            );
        }
        let result = DescribeLogDirsResult::default()
            .with_log_dir(text(dir.display().to_string()))
            .with_topics(topics)
            .with_total_bytes(total)
            .with_usable_bytes(usable);
        ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_results(vec![result]))
    })
}
