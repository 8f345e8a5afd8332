//! DescribeClientQuotas v0-1 (KIP-546): the quota entities a filter selects, with their
//! keys, answered from the latest published quota configs. Each filter component names an
//! entity type and matches it EXACT (that name), DEFAULT (the default entity) or SPECIFIED
//! (any name, the default included); `strict` leaves out entities of other types too. A
//! malformed filter is INVALID_REQUEST and an unknown entity type UNSUPPORTED_VERSION, for
//! the whole request, as Kafka answers them.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    DescribeClientQuotasRequest, DescribeClientQuotasResponse, ResponseKind,
};
use kafka_protocol::ResponseError;

use super::text;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::quota::entity::{EntityName, CLIENT_ID, IP, USER};

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// A filter the entities are matched with.
struct Filter {
    exact: BTreeMap<String, EntityName>,
    specified: Vec<String>,
    /// Only ip entities are asked for: this broker holds none.
    ip: bool,
}

pub fn prepare(ctx: &BrokerContext, req: DescribeClientQuotasRequest) -> ResponseFuture {
    let quotas = ctx.routes().client_quotas.clone();
    let response = match parse(&req) {
        Err((error, message)) => DescribeClientQuotasResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(text(message))),
        Ok(filter) => {
            let entries = if filter.ip {
                Vec::new()
            } else {
                quotas
                    .describe(&filter.exact, &filter.specified, req.strict)
                    .map(|(entity, keys)| entry(entity, keys))
                    .collect()
            };
            DescribeClientQuotasResponse::default().with_entries(Some(entries))
        }
    };
    Box::pin(async move { ResponseKind::DescribeClientQuotas(response) })
}

fn parse(req: &DescribeClientQuotasRequest) -> Result<Filter, (ResponseError, String)> {
    let invalid = |m: String| (ResponseError::InvalidRequest, m);
    let mut filter = Filter {
        exact: BTreeMap::new(),
        specified: Vec::new(),
        ip: false,
    };
    for component in &req.components {
        let entity_type = component.entity_type.to_string();
        if entity_type.is_empty() {
            return Err(invalid("Invalid empty entity type.".into()));
        }
        if filter.exact.contains_key(&entity_type) || filter.specified.contains(&entity_type) {
            return Err(invalid(format!(
                "Entity type {entity_type} cannot appear more than once in the filter."
            )));
        }
        if ![USER, CLIENT_ID, IP].contains(&entity_type.as_str()) {
            return Err((
                ResponseError::UnsupportedVersion,
                format!("Custom entity type {entity_type} not supported"),
            ));
        }
        let name = component._match.as_ref().map(|m| m.to_string());
        match (component.match_type, name) {
            (MATCH_EXACT, Some(name)) => {
                filter.exact.insert(entity_type, Some(name));
            }
            (MATCH_EXACT, None) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ))
            }
            (MATCH_DEFAULT, None) => {
                filter.exact.insert(entity_type, None);
            }
            (MATCH_SPECIFIED, None) => filter.specified.push(entity_type),
            (MATCH_DEFAULT | MATCH_SPECIFIED, Some(_)) => {
                return Err(invalid(format!(
                    "Request specified match type {}, but also specified a match string.",
                    component.match_type
                )))
            }
            (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
        }
    }
    let has = |t: &str| filter.exact.contains_key(t) || filter.specified.iter().any(|s| s == t);
    filter.ip = has(IP);
    if filter.ip && (has(USER) || has(CLIENT_ID)) {
        return Err(invalid(
            "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into(),
        ));
    }
    Ok(filter)
}

fn entry(entity: &crate::quota::ClientQuotaEntity, keys: &BTreeMap<String, f64>) -> EntryData {
    let entity = entity
        .components()
        .into_iter()
        .map(|(t, name)| {
            EntityData::default()
                .with_entity_type(text(t))
                .with_entity_name(name.map(text))
        })
        .collect();
    let values = keys
        .iter()
        .map(|(key, value)| {
            ValueData::default()
                .with_key(text(key.clone()))
                .with_value(*value)
        })
        .collect();
    EntryData::default().with_entity(entity).with_values(values)
}
