//! DeleteAcls v1-v3: removes the ACLs each filter selects, each removal committed through
//! the metadata actor, and answers with the ACLs removed per filter. Needs ALTER on the
//! cluster; SECURITY_DISABLED without an authorizer; a filter with an unknown code is
//! INVALID_REQUEST on its own.

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse, ResponseKind};

use super::acls::{filter, refusal, Slots};
use super::text;
use crate::actors::metadata::MetadataMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::security::acl::{AclBinding, AclOperation};
use crate::security::authorizer_view::AuthorizerView;

pub fn prepare(
    ctx: &BrokerContext,
    req: DeleteAclsRequest,
    view: &AuthorizerView,
) -> ResponseFuture {
    let failed = |code: i16, message: String| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(Some(text(message)))
    };
    if let Some((code, message)) = refusal(view, AclOperation::Alter) {
        let results = req
            .filters
            .iter()
            .map(|_| failed(code, message.to_string()))
            .collect();
        return Box::pin(async move {
            ResponseKind::DeleteAcls(DeleteAclsResponse::default().with_filter_results(results))
        });
    }
    let (slots, valid) = Slots::new(req.filters.iter().map(|f| {
        filter(
            f.resource_type_filter,
            f.resource_name_filter.as_deref(),
            f.pattern_type_filter,
            f.principal_filter.as_deref(),
            f.host_filter.as_deref(),
            f.operation,
            f.permission_type,
        )
    }));
    let rx = ask(&ctx.metadata, |reply| MetadataMsg::DeleteAcls {
        filters: valid,
        reply,
    });
    Box::pin(async move {
        let deleted = match rx {
            Some(rx) => rx.await.ok(),
            None => None,
        };
        let removed = |acls: &Vec<AclBinding>| {
            DeleteAclsFilterResult::default()
                .with_matching_acls(acls.iter().map(matching).collect())
        };
        let results = slots.answer(deleted, removed, failed);
        ResponseKind::DeleteAcls(DeleteAclsResponse::default().with_filter_results(results))
    })
}

fn matching(acl: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type.code())
        .with_resource_name(text(acl.resource_name.clone()))
        .with_pattern_type(acl.pattern_type.code())
        .with_principal(text(acl.principal.clone()))
        .with_host(text(acl.host.clone()))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission.code())
}
