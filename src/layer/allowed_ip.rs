//! allowedIP: with an enabled policy, a client outside every range is refused with 401
//! `UNAUTHORIZED_ERR` (errorMsg only, no `reasons`, as Key Protect answers). An IPv6 client
//! against a list that holds only IPv4 ranges gets 403 `FEATURE_RESTRICTED_ERR`.
//!
//! `GET /api/v2/instance/allowed_ip_port` is exempt, as in Key Protect. The check is one
//! binary search in the policy's compiled [`IpSet`](crate::policy::IpSet).

use std::net::IpAddr;

use http::Request;

use crate::body::Body;
use crate::context;
use crate::layer::guard::{Check, Guard, GuardLayer};
use crate::layer::refusal;
use crate::layer::shadow;
use crate::policy::ActivePolicy;
use crate::policy::model::PolicyType;
use crate::reason::{Reason, Rejection};
use crate::route::Route;

/// The allowedIP decision for a request on `route` from `client`: the refusal's reason, if any.
#[inline]
pub fn check(policy: &ActivePolicy, route: Option<Route>, client: IpAddr) -> Result<(), Reason> {
    let Some(set) = policy.allowed_ip.as_ref() else {
        return Ok(());
    };
    if route == Some(Route::AllowedIpPort) {
        return Ok(());
    }
    let client = client.to_canonical();
    if client.is_ipv6() && set.has_ipv4() && !set.has_ipv6() {
        return Err(Reason::FeatureRestricted);
    }
    if set.contains(client) {
        Ok(())
    } else {
        Err(Reason::Unauthorized)
    }
}

/// The allowedIP check of [`AllowedIpLayer`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowedIpCheck;

/// Adds [`AllowedIp`] to a stack.
///
/// # Example
///
/// After the instance layer (it enforces the instance's allowedIP policy on the client address
/// the client-ip layer found, else the peer's).
///
/// ```
/// # use kmsgate::body::Body;
/// # let kms = tower::service_fn(|_req: http::Request<Body>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// # });
/// use kmsgate::config::PoliciesConfig;
/// use kmsgate::layer::{allowed_ip::AllowedIpLayer, instance::InstanceLayer};
/// use kmsgate::policy::PolicyStore;
///
/// let store = PolicyStore::from_config(&PoliciesConfig::default()).unwrap();
/// let service = tower::ServiceBuilder::new()
///     .layer(InstanceLayer::new(store))
///     .layer(AllowedIpLayer::new())
///     .service(kms);
/// ```
pub type AllowedIpLayer = GuardLayer<AllowedIpCheck>;

/// See the [module docs](self).
pub type AllowedIp<S> = Guard<AllowedIpCheck, S>;

impl AllowedIpLayer {
    /// The layer (its policy comes with each request, from the instance layer).
    pub fn new() -> AllowedIpLayer {
        GuardLayer::with(AllowedIpCheck)
    }
}

impl Check for AllowedIpCheck {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Rejection> {
        let ext = req.extensions();
        let client = context::client_ip(ext);
        let (Some(policy), Some(client)) = (context::policy(ext), client) else {
            return Ok(());
        };
        let Err(reason) = check(policy, Some(context::route(req)), client) else {
            return Ok(());
        };
        let note = match reason {
            Reason::FeatureRestricted => "allowedIP: IPv6 client, IPv4-only list",
            _ => "allowedIP: client outside every range",
        };
        if shadow::refuses(ext, policy, PolicyType::AllowedIp, reason, note) {
            return Err(refusal(reason, req));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{AllowedIp as AllowedIpPolicy, InstancePolicies};

    fn policy(nets: &[&str], enabled: bool) -> ActivePolicy {
        ActivePolicy::compile(
            None,
            InstancePolicies {
                allowed_ip: Some(AllowedIpPolicy {
                    enabled,
                    allowed_ip: nets.iter().map(|n| n.parse().unwrap()).collect(),
                }),
                ..Default::default()
            },
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn code(r: Result<(), Reason>) -> Option<&'static str> {
        r.err().map(Reason::code)
    }

    #[test]
    fn inside_outside_ipv6_and_the_port_exception() {
        let p = policy(&["127.0.0.0/30", "192.0.2.0/24"], true);
        let route = Some(Route::classify(&http::Method::GET, "/api/v2/keys", None));
        assert_eq!(code(check(&p, route, ip("127.0.0.2"))), None);
        assert_eq!(code(check(&p, route, ip("::ffff:127.0.0.2"))), None);
        assert_eq!(
            code(check(&p, route, ip("127.0.0.7"))),
            Some("UNAUTHORIZED_ERR")
        );
        assert_eq!(
            code(check(&p, route, ip("::1"))),
            Some("FEATURE_RESTRICTED_ERR")
        );
        let port = Some(Route::AllowedIpPort);
        assert_eq!(code(check(&p, port, ip("127.0.0.7"))), None);
        assert_eq!(code(check(&p, port, ip("::1"))), None);
    }

    #[test]
    fn ipv6_ranges_match_ipv6_clients() {
        let p = policy(&["127.0.0.1/32", "::1/128"], true);
        assert_eq!(code(check(&p, None, ip("::1"))), None);
        assert_eq!(code(check(&p, None, ip("::2"))), Some("UNAUTHORIZED_ERR"));
        let p = policy(&["2001:db8::/32"], true);
        assert_eq!(
            code(check(&p, None, ip("10.0.0.1"))),
            Some("UNAUTHORIZED_ERR")
        );
    }

    #[test]
    fn disabled_or_absent_policy_allows() {
        assert_eq!(
            code(check(&policy(&["10.0.0.0/8"], false), None, ip("1.1.1.1"))),
            None
        );
        assert_eq!(
            code(check(&ActivePolicy::default(), None, ip("1.1.1.1"))),
            None
        );
    }

    #[test]
    fn refusal_envelopes() {
        let p = policy(&["10.0.0.0/8"], true);
        let req = Request::get("/api/v2/keys").body(Body::empty()).unwrap();
        let r = refusal(check(&p, None, ip("1.1.1.1")).unwrap_err(), &req);
        assert_eq!(
            r.error_msg(),
            "Unauthorized: The user does not have access to the specified resource"
        );
        let r = check(&p, None, ip("::1")).unwrap_err();
        assert_eq!(r.status(), 403);
        let req = Request::post("/api/v2/keys").body(Body::empty()).unwrap();
        let r = refusal(r, &req);
        assert!(
            r.error_msg()
                .starts_with("Forbidden: Key could not be created"),
            "{}",
            r.error_msg()
        );
    }
}
