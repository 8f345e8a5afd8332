//! DeleteTopics v1-v6 (by name, and from v6 by topic id). A deleted partition's directory
//! is moved aside at once and removed in the background, so a large topic does not stall
//! other requests and may be re-created at once.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, ResponseKind};
use uuid::Uuid;

use super::{text, topic_name};
use crate::actors::metadata::{MetadataMsg, TopicRef};
use crate::error::MetadataError;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, version: i16, req: DeleteTopicsRequest) -> ResponseFuture {
    let refs: Vec<TopicRef> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| match t.name {
                Some(name) => TopicRef::Name(name.0.to_string()),
                None => TopicRef::Id(t.topic_id),
            })
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| TopicRef::Name(n.0.to_string()))
            .collect()
    };
    let asked = refs.clone();
    let rx = ask(&ctx.metadata, |reply| MetadataMsg::DeleteTopics {
        topics: refs,
        reply,
    });
    Box::pin(async move {
        let results = match rx {
            Some(rx) => rx.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let mut results = results.into_iter();
        let responses = asked
            .into_iter()
            .map(|asked| {
                let result = results.next().unwrap_or(Err(MetadataError::Unavailable));
                let (name, id) = match (&asked, &result) {
                    (_, Ok((name, id))) => (Some(topic_name(name)), *id),
                    (TopicRef::Name(name), Err(_)) => (Some(topic_name(name)), Uuid::nil()),
                    (TopicRef::Id(id), Err(_)) => (None, *id),
                };
                let entry = DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(id);
                match result {
                    Ok(_) => entry,
                    Err(err) => {
                        let code = match (&asked, &err) {
                            (TopicRef::Id(_), MetadataError::UnknownTopic) => {
                                kafka_protocol::ResponseError::UnknownTopicId.code()
                            }
                            _ => err.code(),
                        };
                        entry
                            .with_error_code(code)
                            .with_error_message(Some(text(err.to_string())))
                    }
                }
            })
            .collect();
        ResponseKind::DeleteTopics(DeleteTopicsResponse::default().with_responses(responses))
    })
}
