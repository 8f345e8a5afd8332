//! DescribeAcls v1-v3: the ACLs a filter selects, grouped by resource pattern. Needs
//! DESCRIBE on the cluster; SECURITY_DISABLED without an authorizer; a filter with an
//! unknown code is INVALID_REQUEST.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use super::acls::{filter, refusal};
use super::text;
use crate::actors::metadata::MetadataMsg;
use crate::error::MetadataError;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::security::acl::{AclBinding, AclOperation};
use crate::security::authorizer_view::AuthorizerView;

pub fn prepare(
    ctx: &BrokerContext,
    req: DescribeAclsRequest,
    view: &AuthorizerView,
) -> ResponseFuture {
    let failed = |code: i16, message: String| {
        let response = DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(text(message)));
        Box::pin(async move { ResponseKind::DescribeAcls(response) }) as ResponseFuture
    };
    if let Some((code, message)) = refusal(view, AclOperation::Describe) {
        return failed(code, message.to_string());
    }
    let selected = filter(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    );
    let selected = match selected {
        Ok(f) => f,
        Err(message) => return failed(ResponseError::InvalidRequest.code(), message),
    };
    let rx = ask(&ctx.metadata, |reply| MetadataMsg::DescribeAcls {
        filter: selected,
        reply,
    });
    Box::pin(async move {
        let acls = match rx {
            Some(rx) => rx.await.ok(),
            None => None,
        };
        let Some(acls) = acls else {
            let err = MetadataError::Unavailable;
            return ResponseKind::DescribeAcls(
                DescribeAclsResponse::default()
                    .with_error_code(err.code())
                    .with_error_message(Some(text(err.to_string()))),
            );
        };
        ResponseKind::DescribeAcls(DescribeAclsResponse::default().with_resources(grouped(acls)))
    })
}

/// ACLs grouped by their resource pattern, as Kafka answers them.
fn grouped(acls: Vec<AclBinding>) -> Vec<DescribeAclsResource> {
    let mut by_pattern: BTreeMap<_, Vec<AclDescription>> = BTreeMap::new();
    for acl in acls {
        by_pattern
            .entry((acl.resource_type, acl.resource_name, acl.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(text(acl.principal))
                    .with_host(text(acl.host))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission.code()),
            );
    }
    by_pattern
        .into_iter()
        .map(|((resource_type, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type.code())
                .with_resource_name(text(name))
                .with_pattern_type(pattern.code())
                .with_acls(acls)
        })
        .collect()
}
