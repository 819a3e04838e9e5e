//! Shadow mode, shared by the layers that enforce instance policies (network, allowed_ip,
//! key_access): a policy type listed in `policies.shadow` (or every one, with
//! `policies.shadow_all`) is evaluated as usual, but its refusal is only recorded — logged
//! with the code it would have returned, counted in `kmsgate_shadow_rejections_total{code}`
//! by the observe layer — and the request goes on.

use std::sync::Arc;

use http::Extensions;

use crate::layer::observe::RequestLog;
use crate::policy::ActivePolicy;
use crate::policy::model::PolicyType;
use crate::reason::Reason;

/// A policy of type `ty` decided to refuse the request with `reason` (`note`: why, a fixed
/// phrase). Returns true when the refusal stands; false when `ty` is shadowed, after recording
/// what would have happened.
pub fn refuses(
    extensions: &Extensions,
    policy: &ActivePolicy,
    ty: PolicyType,
    reason: Reason,
    note: &'static str,
) -> bool {
    let log = extensions.get::<Arc<RequestLog>>();
    if !policy.shadowed(ty) {
        if let Some(log) = log {
            log.set_note(note);
        }
        return true;
    }
    if let Some(log) = log {
        log.set_shadow(reason);
    }
    tracing::info!(
        target: "kmsgate::shadow",
        policy = ty.as_str(),
        code = reason.code(),
        instance = policy.instance.as_deref(),
        note,
        "shadowed policy would have refused; forwarded"
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Shadow, model::InstancePolicies};

    #[test]
    fn only_shadowed_types_let_the_request_through() {
        let mut policy = ActivePolicy::compile(None, InstancePolicies::default());
        policy.shadow = Shadow::NONE.with(PolicyType::AllowedIp);
        let log = Arc::new(RequestLog::default());
        let mut ext = Extensions::new();
        ext.insert(log.clone());
        assert!(!refuses(
            &ext,
            &policy,
            PolicyType::AllowedIp,
            Reason::Unauthorized,
            "x"
        ));
        assert_eq!(log.shadow(), Some(Reason::Unauthorized));
        assert!(refuses(
            &ext,
            &policy,
            PolicyType::AllowedNetwork,
            Reason::ConfigRuleConflict,
            "y"
        ));
    }
}
