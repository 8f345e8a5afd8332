//! CreateAcls v1-v3: adds ACLs to the authorizer's set, each committed through the metadata
//! actor (the quorum in a cluster) before it is answered. Needs ALTER on the cluster;
//! SECURITY_DISABLED without an authorizer; a malformed ACL is INVALID_REQUEST on its own.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse, ResponseKind};

use super::acls::{binding, refusal, Slots, WireAcl};
use super::text;
use crate::actors::metadata::MetadataMsg;
use crate::protocol::context::ask;
use crate::protocol::dispatch::ResponseFuture;
use crate::protocol::BrokerContext;
use crate::security::acl::AclOperation;
use crate::security::authorizer_view::AuthorizerView;

pub fn prepare(
    ctx: &BrokerContext,
    req: CreateAclsRequest,
    view: &AuthorizerView,
) -> ResponseFuture {
    let failed = |code: i16, message: String| {
        AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(Some(text(message)))
    };
    if let Some((code, message)) = refusal(view, AclOperation::Alter) {
        let results = req
            .creations
            .iter()
            .map(|_| failed(code, message.to_string()))
            .collect();
        return Box::pin(async move {
            ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(results))
        });
    }
    let (slots, valid) = Slots::new(req.creations.iter().map(|c| {
        binding(WireAcl {
            resource_type: c.resource_type,
            resource_name: c.resource_name.as_str(),
            pattern_type: c.resource_pattern_type,
            principal: c.principal.as_str(),
            host: c.host.as_str(),
            operation: c.operation,
            permission: c.permission_type,
        })
    }));
    let rx = ask(&ctx.metadata, |reply| MetadataMsg::CreateAcls {
        acls: valid,
        reply,
    });
    Box::pin(async move {
        let committed = match rx {
            Some(rx) => rx.await.ok(),
            None => None,
        };
        let results = slots.answer(committed, |()| AclCreationResult::default(), failed);
        ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(results))
    })
}
