//! DescribeUserScramCredentials v0 (KIP-554): each user's SCRAM mechanisms and iteration
//! counts, never salts or keys. No users (null or empty) means every user with a
//! credential; an unknown user is RESOURCE_NOT_FOUND, one named twice DUPLICATE_RESOURCE.

use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, ResponseKind,
};

use super::text;
use crate::actors::metadata::MetadataMsg;
use crate::error::ScramCredentialError;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;

pub fn prepare(ctx: &BrokerContext, req: DescribeUserScramCredentialsRequest) -> ResponseFuture {
    let users = req
        .users
        .map(|users| users.into_iter().map(|u| u.name.to_string()).collect());
    let rx = ask(&ctx.metadata, |reply| {
        MetadataMsg::DescribeScramCredentials { users, reply }
    });
    Box::pin(async move {
        let response = DescribeUserScramCredentialsResponse::default();
        let answered = match rx {
            Some(rx) => rx.await.ok(),
            None => None,
        };
        let Some(answered) = answered else {
            let err = ScramCredentialError::Unavailable;
            return ResponseKind::DescribeUserScramCredentials(
                response
                    .with_error_code(err.code())
                    .with_error_message(Some(text(err.to_string()))),
            );
        };
        let results = answered
            .into_iter()
            .map(|(user, result)| {
                let entry = DescribeUserScramCredentialsResult::default().with_user(text(user));
                match result {
                    Ok(mechanisms) => entry.with_credential_infos(
                        mechanisms
                            .into_iter()
                            .map(|(m, iterations)| {
                                CredentialInfo::default()
                                    .with_mechanism(m.wire_id())
                                    .with_iterations(iterations)
                            })
                            .collect(),
                    ),
                    Err(err) => entry
                        .with_error_code(err.code())
                        .with_error_message(Some(text(err.to_string()))),
                }
            })
            .collect();
        ResponseKind::DescribeUserScramCredentials(response.with_results(results))
    })
}
