//! Shadow mode, shared by the layers that enforce instance policies (network, allowed_ip,
//! key_access): a policy type listed in `policies.shadow` (or every one, with
//! `policies.shadow_all`) is evaluated as usual, but its refusal is only recorded — logged
//! with the code it would have returned, counted in `kmsgate_shadow_rejections_total{code}`
//! by the observe layer — and the request goes on. The service-to-service rules
//! (`auth.service_rules = "shadow"`, [`crate::layer::service_rules`]) are shadowed the same way
//! through [`record`].

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
    record(
        extensions,
        ty.as_str(),
        reason,
        policy.instance.as_deref(),
        note,
    );
    false
}

/// Records that `rule` (a policy type, or `service_rules`) would have refused the request with
/// `reason` but is shadowed: the access-log line's `shadow=<CODE>` (which the observe layer
/// counts) and one log line.
pub fn record(
    extensions: &Extensions,
    rule: &'static str,
    reason: Reason,
    instance: Option<&str>,
    note: &'static str,
) {
    if let Some(log) = extensions.get::<Arc<RequestLog>>() {
        log.set_shadow(reason);
    }
    tracing::info!(
        target: "kmsgate::shadow",
        policy = rule,
        code = reason.code(),
        instance,
        note,
        "shadowed policy would have refused; forwarded"
    );
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
