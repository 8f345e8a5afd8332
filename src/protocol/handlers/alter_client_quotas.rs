//! AlterClientQuotas v0-1 (KIP-546): set or remove quota keys of user and/or client-id
//! entities (a null name is that type's default entity). Each entry is checked apart and
//! answered in request order: an empty or repeated entity type, a key other than
//! `producer_byte_rate`, `consumer_byte_rate`, `request_percentage` and
//! `controller_mutation_rate`, or a value that is not a positive number (an integer for
//! the byte rates) is INVALID_REQUEST for that entry; an unknown entity type is
//! UNSUPPORTED_VERSION. `validate_only` checks and writes nothing. The valid entries are
//! committed to the metadata log by the metadata actor.

use kafka_protocol::messages::alter_client_quotas_request::EntryData as RequestEntry;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::text;
use crate::actors::metadata::{ClientQuotaAlteration, MetadataMsg};
use crate::error::MetadataError;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::quota::entity::{ClientQuotaEntity, QuotaKey, CLIENT_ID, IP, USER};

type Refusal = (ResponseError, String);

pub fn prepare(ctx: &BrokerContext, req: AlterClientQuotasRequest) -> ResponseFuture {
    let mut answers: Vec<(EntryData, Option<Refusal>)> = Vec::with_capacity(req.entries.len());
    let mut changes = Vec::new();
    for entry in &req.entries {
        let echo = EntryData::default().with_entity(
            entry
                .entity
                .iter()
                .map(|e| {
                    EntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect(),
        );
        match check(entry) {
            Ok(change) => {
                if !req.validate_only {
                    changes.push(change);
                }
                answers.push((echo, None));
            }
            Err(refusal) => answers.push((echo, Some(refusal))),
        }
    }
    let rx = (!changes.is_empty()).then(|| {
        ask(&ctx.metadata, |reply| MetadataMsg::AlterClientQuotas {
            changes,
            reply,
        })
    });
    Box::pin(async move {
        let mut outcomes = match rx {
            None => Vec::new(),
            Some(rx) => {
                let answered = match rx {
                    Some(rx) => rx.await.ok(),
                    None => None,
                };
                answered.unwrap_or_default()
            }
        }
        .into_iter();
        let entries = answers
            .into_iter()
            .map(|(echo, refusal)| {
                let (error, message) = match refusal {
                    Some(refusal) => refusal,
                    None if req.validate_only => return echo,
                    None => match outcomes.next() {
                        Some(Ok(())) => return echo,
                        Some(Err(err)) => (err_code(&err), err.to_string()),
                        None => (
                            ResponseError::CoordinatorNotAvailable,
                            MetadataError::Unavailable.to_string(),
                        ),
                    },
                };
                echo.with_error_code(error.code())
                    .with_error_message(Some(text(message)))
            })
            .collect();
        ResponseKind::AlterClientQuotas(AlterClientQuotasResponse::default().with_entries(entries))
    })
}

fn err_code(err: &MetadataError) -> ResponseError {
    ResponseError::try_from_code(err.code()).unwrap_or(ResponseError::UnknownServerError)
}

/// The change one entry asks for, or why it is refused.
fn check(entry: &RequestEntry) -> Result<ClientQuotaAlteration, Refusal> {
    let invalid = |m: String| (ResponseError::InvalidRequest, m);
    if entry.entity.is_empty() {
        return Err(invalid("Invalid empty client quota entity".into()));
    }
    let mut entity = ClientQuotaEntity {
        user: None,
        client_id: None,
    };
    for component in &entry.entity {
        let name = component.entity_name.as_ref().map(|n| n.to_string());
        let slot = match component.entity_type.as_str() {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            IP => {
                return Err(invalid(
                    "ip entities (connection_creation_rate) are not supported by this broker"
                        .into(),
                ))
            }
            other => {
                return Err((
                    ResponseError::UnsupportedVersion,
                    format!("Unhandled client quota entity type: {other}"),
                ))
            }
        };
        if slot.is_some() {
            return Err(invalid(format!(
                "Duplicate {} entity type in the client quota entity",
                component.entity_type.as_str()
            )));
        }
        *slot = Some(name);
    }
    let mut ops = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let Some(key) = QuotaKey::from_name(op.key.as_str()) else {
            return Err(invalid(format!(
                "Invalid configuration key {}",
                op.key.as_str()
            )));
        };
        if ops.iter().any(|(k, _)| *k == key) {
            return Err(invalid(format!("Duplicate quota key {}", key.name())));
        }
        if op.remove {
            ops.push((key, None));
        } else {
            key.check_value(op.value).map_err(invalid)?;
            ops.push((key, Some(op.value)));
        }
    }
    Ok(ClientQuotaAlteration { entity, ops })
}
