//! allowedNetwork: an instance whose policy is `private-only` refuses requests that are not
//! private with 403 `CONFIG_RULE_CONFLICT_ERR`.
//!
//! A request is private when it arrived on the private listener, or its Host (`:authority` in
//! HTTP/2) is one of `network.private_hosts`, or — with `network.private_by_client_address` —
//! its client address is in `network.private_ranges`.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{Request, header};

use crate::body::Body;
use crate::config::NetworkConfig;
use crate::conn::ListenerKind;
use crate::context;
use crate::layer::guard::{Check, Guard, GuardLayer};
use crate::layer::refusal;
use crate::layer::shadow;
use crate::policy::model::PolicyType;
use crate::policy::{ActivePolicy, IpSet};
use crate::reason::{Reason, Rejection};

/// What makes a request private; built once from `[network]`.
#[derive(Debug, Default)]
pub struct PrivateNetwork {
    hosts: Box<[Box<str>]>,
    ranges: Option<IpSet>,
}

/// What the network check looks at in one request.
#[derive(Clone, Copy, Debug)]
pub struct Ingress<'a> {
    /// The listener the request arrived on.
    pub listener: Option<ListenerKind>,
    /// The Host header or `:authority`, port included.
    pub host: Option<&'a str>,
    /// The derived client address.
    pub client: Option<IpAddr>,
}

impl PrivateNetwork {
    /// Compiles `[network]`.
    pub fn new(config: &NetworkConfig) -> PrivateNetwork {
        PrivateNetwork {
            hosts: config
                .private_hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase().into())
                .collect(),
            ranges: config
                .private_by_client_address
                .then(|| IpSet::new(&config.private_ranges)),
        }
    }

    /// Whether a request that came in this way is private.
    pub fn is_private(&self, ingress: &Ingress<'_>) -> bool {
        ingress.listener == Some(ListenerKind::Private)
            || ingress.host.is_some_and(|h| self.is_private_host(h))
            || self
                .ranges
                .as_ref()
                .zip(ingress.client)
                .is_some_and(|(ranges, ip)| ranges.contains(ip))
    }

    fn is_private_host(&self, host: &str) -> bool {
        let name = strip_port(host);
        let name = name.strip_suffix('.').unwrap_or(name);
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// The allowedNetwork decision for `policy`: the refusal's reason, if any.
    pub fn check(&self, policy: &ActivePolicy, ingress: &Ingress<'_>) -> Result<(), Reason> {
        if policy.private_only && !self.is_private(ingress) {
            return Err(Reason::ConfigRuleConflict);
        }
        Ok(())
    }
}

/// `host[:port]` or `[v6][:port]` → the name without its port.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(name, _)| &name[1..]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The allowedNetwork check of [`NetworkLayer`]: the private-network rules, swappable by a
/// config reload.
#[derive(Clone, Debug)]
pub struct NetworkCheck {
    private: Arc<ArcSwap<PrivateNetwork>>,
}

/// Adds [`Network`] to a stack.
///
/// # Example
///
/// After the instance layer, with the private ranges and hosts of `[network]`.
///
/// ```
/// # use kmsgate::body::Body;
/// # let kms = tower::service_fn(|_req: http::Request<Body>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// # });
/// use std::sync::Arc;
///
/// use kmsgate::config::{NetworkConfig, PoliciesConfig};
/// use kmsgate::layer::instance::InstanceLayer;
/// use kmsgate::layer::network::{NetworkLayer, PrivateNetwork};
/// use kmsgate::policy::PolicyStore;
///
/// let store = PolicyStore::from_config(&PoliciesConfig::default()).unwrap();
/// let private = Arc::new(PrivateNetwork::new(&NetworkConfig::default()));
/// let service = tower::ServiceBuilder::new()
///     .layer(InstanceLayer::new(store))
///     .layer(NetworkLayer::new(private))
///     .service(kms);
/// ```
pub type NetworkLayer = GuardLayer<NetworkCheck>;

/// See the [module docs](self).
pub type Network<S> = Guard<NetworkCheck, S>;

impl NetworkLayer {
    /// Classifies requests by `private`.
    pub fn new(private: Arc<PrivateNetwork>) -> NetworkLayer {
        NetworkLayer::live(Arc::new(ArcSwap::new(private)))
    }

    /// Classifies requests by whatever `private` holds (a config reload swaps it).
    pub fn live(private: Arc<ArcSwap<PrivateNetwork>>) -> NetworkLayer {
        GuardLayer::with(NetworkCheck { private })
    }
}

impl Check for NetworkCheck {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Rejection> {
        let ext = req.extensions();
        let Some(policy) = context::policy(ext) else {
            return Ok(());
        };
        let ingress = Ingress {
            listener: context::conn(ext).map(|c| c.listener),
            host: req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri().authority().map(|a| a.as_str())),
            client: context::client_ip(ext),
        };
        let Err(reason) = self.private.load().check(policy, &ingress) else {
            return Ok(());
        };
        let note = "allowedNetwork private-only: request not private";
        if shadow::refuses(ext, policy, PolicyType::AllowedNetwork, reason, note) {
            return Err(refusal(reason, req));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{AllowedNetwork, InstancePolicies, NetworkAccess};

    fn policy(access: NetworkAccess, enabled: bool) -> ActivePolicy {
        ActivePolicy::compile(
            None,
            InstancePolicies {
                allowed_network: Some(AllowedNetwork {
                    enabled,
                    allowed_network: access,
                }),
                ..Default::default()
            },
        )
    }

    fn net(by_client: bool) -> PrivateNetwork {
        PrivateNetwork::new(&NetworkConfig {
            private_hosts: vec!["Private.us-south.kms.cloud.ibm.com".into()],
            private_by_client_address: by_client,
            ..Default::default()
        })
    }

    fn ingress(
        listener: ListenerKind,
        host: Option<&'static str>,
        client: &str,
    ) -> Ingress<'static> {
        Ingress {
            listener: Some(listener),
            host,
            client: Some(client.parse().unwrap()),
        }
    }

    #[test]
    fn private_only_refuses_public_requests() {
        let p = policy(NetworkAccess::PrivateOnly, true);
        let n = net(false);
        let public = ingress(
            ListenerKind::Public,
            Some("us-south.kms.cloud.ibm.com"),
            "10.0.0.1",
        );
        let err = n.check(&p, &public).unwrap_err();
        assert_eq!(err, Reason::ConfigRuleConflict);
        assert!(
            n.check(&p, &ingress(ListenerKind::Private, None, "8.8.8.8"))
                .is_ok()
        );
        for host in [
            "private.us-south.kms.cloud.ibm.com",
            "PRIVATE.us-south.kms.cloud.ibm.com:443",
            "private.us-south.kms.cloud.ibm.com.",
        ] {
            assert!(
                n.check(&p, &ingress(ListenerKind::Public, Some(host), "8.8.8.8"))
                    .is_ok(),
                "{host}"
            );
        }
        assert!(
            n.check(
                &p,
                &ingress(
                    ListenerKind::Public,
                    Some("private.us-south.kms.cloud.ibm.com.evil"),
                    "8.8.8.8"
                )
            )
            .is_err()
        );
    }

    #[test]
    fn client_ranges_only_when_configured() {
        let p = policy(NetworkAccess::PrivateOnly, true);
        let public = ingress(ListenerKind::Public, None, "::ffff:10.1.2.3");
        assert!(net(false).check(&p, &public).is_err());
        assert!(net(true).check(&p, &public).is_ok());
        assert!(
            net(true)
                .check(&p, &ingress(ListenerKind::Public, None, "fd00::1"))
                .is_ok()
        );
        assert!(
            net(true)
                .check(&p, &ingress(ListenerKind::Public, None, "8.8.8.8"))
                .is_err()
        );
    }

    #[test]
    fn public_and_private_or_disabled_allows_everything() {
        let n = net(false);
        let public = ingress(ListenerKind::Public, None, "8.8.8.8");
        assert!(
            n.check(&policy(NetworkAccess::PublicAndPrivate, true), &public)
                .is_ok()
        );
        assert!(
            n.check(&policy(NetworkAccess::PrivateOnly, false), &public)
                .is_ok()
        );
        assert!(n.check(&ActivePolicy::default(), &public).is_ok());
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("a.b:8080"), "a.b");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(strip_port("a.b"), "a.b");
    }
}
