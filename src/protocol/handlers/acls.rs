//! Shared by CreateAcls, DescribeAcls and DeleteAcls: turning wire fields into ACLs and
//! filters, and the checks all three make before touching the ACL set.

use kafka_protocol::ResponseError;

use crate::error::MetadataError;

use crate::security::acl::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};
use crate::security::acl_filter::AclFilter;
use crate::security::authorizer_view::{AuthorizerView, CLUSTER_NAME};
use crate::security::KafkaPrincipal;

/// Why an ACL API refuses a whole request: no authorizer configured (SECURITY_DISABLED),
/// or the principal lacks `operation` on the cluster (CLUSTER_AUTHORIZATION_FAILED).
pub fn refusal(view: &AuthorizerView, operation: AclOperation) -> Option<(i16, &'static str)> {
    if !view.enabled() {
        return Some((
            ResponseError::SecurityDisabled.code(),
            "No authorizer is configured on the broker (authorizer_class_name).",
        ));
    }
    if !view.allows_cluster(operation) {
        return Some((
            ResponseError::ClusterAuthorizationFailed.code(),
            "Cluster authorization failed.",
        ));
    }
    None
}

/// The entries of a CreateAcls or DeleteAcls request in request order: each one parsed
/// (an index into the valid ones, which go to the metadata actor) or refused with its reason.
pub struct Slots(Vec<Result<usize, String>>);

impl Slots {
    /// The slots, and the valid entries in order.
    pub fn new<T>(parsed: impl IntoIterator<Item = Result<T, String>>) -> (Self, Vec<T>) {
        let mut valid = Vec::new();
        let slots = parsed
            .into_iter()
            .map(|entry| {
                entry.map(|item| {
                    valid.push(item);
                    valid.len() - 1
                })
            })
            .collect();
        (Slots(slots), valid)
    }

    /// One answer per entry, in request order, from the metadata actor's outcomes for the
    /// valid ones (None: it did not answer, so each is unavailable); refused entries are
    /// INVALID_REQUEST.
    pub fn answer<R, O>(
        self,
        outcomes: Option<Vec<Result<R, MetadataError>>>,
        ok: impl Fn(&R) -> O,
        failed: impl Fn(i16, String) -> O,
    ) -> Vec<O> {
        let outcomes = outcomes.unwrap_or_default();
        let unavailable = MetadataError::Unavailable;
        self.0
            .into_iter()
            .map(|slot| match slot {
                Ok(i) => match outcomes.get(i) {
                    Some(Ok(done)) => ok(done),
                    Some(Err(err)) => failed(err.code(), err.to_string()),
                    None => failed(unavailable.code(), unavailable.to_string()),
                },
                Err(message) => failed(ResponseError::InvalidRequest.code(), message),
            })
            .collect()
    }
}

/// One ACL as CreateAcls sends it, wire codes and all.
pub struct WireAcl<'a> {
    pub resource_type: i8,
    pub resource_name: &'a str,
    pub pattern_type: i8,
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: i8,
    pub permission: i8,
}

/// An ACL Kafka's AclControlManager would accept, or why not (INVALID_REQUEST).
pub fn binding(wire: WireAcl<'_>) -> Result<AclBinding, String> {
    let resource_type = ResourceType::from_code(wire.resource_type)
        .ok_or_else(|| format!("Invalid resource type {}", wire.resource_type))?;
    let pattern_type = PatternType::from_code(wire.pattern_type)
        .ok_or_else(|| format!("Invalid pattern type {}", wire.pattern_type))?;
    let operation = AclOperation::from_code(wire.operation)
        .ok_or_else(|| format!("Invalid operation {}", wire.operation))?;
    let permission = AclPermission::from_code(wire.permission)
        .ok_or_else(|| format!("Invalid permission type {}", wire.permission))?;
    if wire.resource_name.is_empty() {
        return Err("Resource name should not be empty".into());
    }
    if resource_type == ResourceType::Cluster && wire.resource_name != CLUSTER_NAME {
        return Err(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        ));
    }
    KafkaPrincipal::parse(wire.principal).map_err(|e| e.to_string())?;
    if wire.host.is_empty() {
        return Err("Host should not be empty; use * for every host".into());
    }
    Ok(AclBinding {
        resource_type,
        resource_name: wire.resource_name.to_string(),
        pattern_type,
        principal: wire.principal.to_string(),
        host: wire.host.to_string(),
        operation,
        permission,
    })
}

/// A DescribeAcls or DeleteAcls filter from its wire fields.
#[allow(clippy::too_many_arguments)]
pub fn filter(
    resource_type: i8,
    resource_name: Option<&str>,
    pattern_type: i8,
    principal: Option<&str>,
    host: Option<&str>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    AclFilter::from_wire(
        resource_type,
        resource_name.map(String::from),
        pattern_type,
        principal.map(String::from),
        host.map(String::from),
        operation,
        permission,
    )
    .map_err(|e| e.to_string())
}
