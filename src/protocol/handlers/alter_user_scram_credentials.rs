//! AlterUserScramCredentials v0 (KIP-554): delete or set users' SCRAM credentials. The
//! client sends the salted password (PBKDF2 done on its side); the broker keeps only the
//! stored and server keys derived from it. Per-user errors follow Kafka (see
//! `actors/metadata/scram_credentials.rs`).

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ResponseKind,
};

use super::text;
use crate::actors::metadata::{MetadataMsg, ScramDeletion, ScramUpsertion};
use crate::error::ScramCredentialError;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::security::scram::{ScramCredential, ScramMechanism};

pub fn prepare(ctx: &BrokerContext, req: AlterUserScramCredentialsRequest) -> ResponseFuture {
    let deletions: Vec<_> = req
        .deletions
        .into_iter()
        .map(|d| ScramDeletion {
            user: d.name.to_string(),
            mechanism: ScramMechanism::from_wire_id(d.mechanism),
        })
        .collect();
    let upsertions: Vec<_> = req
        .upsertions
        .into_iter()
        .map(|u| {
            let mechanism = ScramMechanism::from_wire_id(u.mechanism);
            // An unknown mechanism is refused by the metadata actor; its keys are unused.
            let credential = ScramCredential::from_salted_password(
                mechanism.unwrap_or(ScramMechanism::Sha256),
                &u.salted_password,
                u.salt.to_vec(),
                u.iterations,
            );
            ScramUpsertion {
                user: u.name.to_string(),
                mechanism,
                credential,
            }
        })
        .collect();
    let users: Vec<String> = deletions
        .iter()
        .map(|d| d.user.clone())
        .chain(upsertions.iter().map(|u| u.user.clone()))
        .collect();
    let rx = ask(&ctx.metadata, |reply| MetadataMsg::AlterScramCredentials {
        deletions,
        upsertions,
        reply,
    });
    Box::pin(async move {
        let answered = match rx {
            Some(rx) => rx.await.ok(),
            None => None,
        };
        let answered = answered.unwrap_or_else(|| {
            let mut seen = std::collections::HashSet::new();
            users
                .into_iter()
                .filter(|u| seen.insert(u.clone()))
                .map(|u| (u, Err(ScramCredentialError::Unavailable)))
                .collect()
        });
        let results = answered
            .into_iter()
            .map(|(user, result)| {
                let entry = AlterUserScramCredentialsResult::default().with_user(text(user));
                match result {
                    Ok(()) => entry,
                    Err(err) => entry
                        .with_error_code(err.code())
                        .with_error_message(Some(text(err.to_string()))),
                }
            })
            .collect();
        ResponseKind::AlterUserScramCredentials(
            AlterUserScramCredentialsResponse::default().with_results(results),
        )
    })
}
