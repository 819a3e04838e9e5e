//! The facts behind the verdicts, each read with the function the gateway itself uses: where
//! an instance's policy document comes from, why a request counts as private, what a bearer
//! token says, and the hops of the client-address walk.

use std::net::IpAddr;
use std::path::Path;

use http::{HeaderMap, header};

use super::report::{ClientInfo, HopInfo, PolicyOrigin, PrivateInfo, TokenInfo};
use crate::auth::token::{self, ServiceRule};
use crate::auth::{Admission, Failure, Identity};
use crate::canonical;
use crate::config::ForwardedHeader;
use crate::conn::ListenerKind;
use crate::layer::client_ip::{ClientIpRules, Hop};
use crate::layer::network::{Ingress, PrivateNetwork};
use crate::policy::model::PolicyType;
use crate::policy::{ActivePolicy, PoliciesConfig};

/// The client address of a request from `peer`, by [`ClientIpRules::walk`], with its hops.
pub fn client(
    rules: &ClientIpRules,
    header: ForwardedHeader,
    peer: IpAddr,
    headers: &HeaderMap,
) -> ClientInfo {
    let mut hops = Vec::new();
    let address = rules.walk(peer, headers, |hop| hops.push(hop));
    let header = match header {
        ForwardedHeader::XForwardedFor => "X-Forwarded-For",
        ForwardedHeader::Forwarded => "Forwarded",
    };
    let derivation = match hops.as_slice() {
        [Hop::Peer { trusted: false, .. }] => {
            "the TCP peer (not in client_ip.trusted_proxies: forwarded headers ignored)".to_owned()
        }
        [Hop::Peer { .. }] => format!("the TCP peer (a trusted proxy, and no {header} entry)"),
        [.., Hop::Forwarded { trusted: false, .. }] => {
            format!("the first untrusted {header} entry, walked right to left from a trusted peer")
        }
        [.., Hop::Malformed] => format!(
            "the last good address before a malformed {header} entry (the walk stops there)"
        ),
        _ => format!("the leftmost {header} entry (every hop is a trusted proxy)"),
    };
    let hops = hops
        .into_iter()
        .map(|hop| match hop {
            Hop::Peer { ip, trusted } => HopInfo {
                kind: "peer",
                address: Some(ip.to_string()),
                trusted,
            },
            Hop::Forwarded { ip, trusted } => HopInfo {
                kind: "forwarded",
                address: Some(ip.to_string()),
                trusted,
            },
            Hop::Malformed => HopInfo {
                kind: "malformed",
                address: None,
                trusted: false,
            },
        })
        .collect();
    ClientInfo {
        address: address.to_string(),
        derivation,
        hops,
    }
}

/// Whether a request that came in as `ingress` is private, rule by rule (each rule asked of
/// [`PrivateNetwork::is_private`] on its own).
pub fn private(network: &PrivateNetwork, ingress: &Ingress<'_>, by_client: bool) -> PrivateInfo {
    let only = |ingress: Ingress<'_>| network.is_private(&ingress);
    let none = Ingress {
        listener: None,
        host: None,
        client: None,
    };
    let mut why = Vec::new();
    let listener = ingress.listener.map_or("no", ListenerKind::as_str);
    why.push(if ingress.listener == Some(ListenerKind::Private) {
        "arrived on the private listener: private".to_owned()
    } else {
        format!("arrived on the {listener} listener: not private by listener")
    });
    let host = ingress.host.unwrap_or("(none)");
    why.push(
        if only(Ingress {
            host: ingress.host,
            ..none
        }) {
            format!("host {host} is in network.private_hosts: private")
        } else {
            format!("host {host} is not in network.private_hosts")
        },
    );
    let client = ingress
        .client
        .map_or("(none)".to_owned(), |c| c.to_string());
    why.push(if !by_client {
        "network.private_by_client_address is off: the client address is not considered".to_owned()
    } else if only(Ingress {
        client: ingress.client,
        ..none
    }) {
        format!("client {client} is in network.private_ranges: private")
    } else {
        format!("client {client} is not in network.private_ranges")
    });
    PrivateInfo {
        private: network.is_private(ingress),
        why,
    }
}

/// What the bearer layer decided about the token, and what the token says: the subject, the
/// caller kind and `exp` (read from the token itself, unverified when verification failed).
pub fn token(
    headers: &HeaderMap,
    rule: &ServiceRule,
    decision: Result<(&Identity, Admission), Failure>,
) -> TokenInfo {
    let unverified = token::bearer(headers.get(header::AUTHORIZATION))
        .ok()
        .and_then(|t| token::parse(t, rule).ok());
    let expires = unverified.as_ref().and_then(|u| u.exp);
    let expires_at = expires.map(|exp| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp),
        )
        .to_string()
    });
    let caller = |service: bool| Some(if service { "service" } else { "user" });
    match decision {
        Ok((identity, admission)) => TokenInfo {
            result: match admission {
                Admission::Verified => "verified",
                Admission::Decoded => "decoded",
            },
            failure: None,
            subject: Some(identity.subject.to_string()),
            verified: admission == Admission::Verified,
            caller: caller(identity.is_service),
            expires,
            expires_at,
        },
        Err(failure) => TokenInfo {
            result: if failure == Failure::MissingHeader {
                "absent"
            } else {
                "refused"
            },
            failure: Some(failure.note()),
            subject: unverified.as_ref().map(|u| u.subject.clone()),
            verified: false,
            caller: unverified.as_ref().and_then(|u| caller(u.is_service)),
            expires,
            expires_at,
        },
    }
}

/// Where the policy document `policy` (the one the instance layer found) comes from.
/// `etcd_revision`: the revision of the shared store the policies were taken from (the admin
/// endpoint of a gateway with `[policies.etcd]`).
pub fn origin(
    config: &PoliciesConfig,
    policy: &ActivePolicy,
    etcd_revision: Option<i64>,
) -> PolicyOrigin {
    if let (Some(etcd), Some(revision)) = (&config.etcd, etcd_revision) {
        let (source, key) = match policy.instance.as_deref() {
            Some(id) => ("etcd", id.to_owned()),
            None if policy.model == Default::default() => ("none", "(no document)".to_owned()),
            None => ("etcd-default", "default".to_owned()),
        };
        return PolicyOrigin {
            source,
            location: Some(format!("{}{key} at etcd revision {revision}", etcd.prefix)),
            note: None,
        };
    }
    let note = config.etcd.as_ref().map(|_| {
        "[policies.etcd] is configured: a running gateway takes its policies from etcd; explain \
         reads policies.dir and the inline documents only"
            .to_owned()
    });
    let found = |source, location: String| PolicyOrigin {
        source,
        location: Some(location),
        note: note.clone(),
    };
    match policy.instance.as_deref() {
        Some(id) => {
            if let Some(path) = config.dir.as_deref().and_then(|dir| instance_file(dir, id)) {
                return found("file", path);
            }
            if let Some(key) = config
                .instances
                .keys()
                .find(|k| canonical::instance_key(k) == id)
            {
                return found("inline", format!("policies.instances.{key:?}"));
            }
            PolicyOrigin {
                source: "api",
                location: None,
                note: Some("set through the policy API since the files were read".to_owned()),
            }
        }
        None => {
            if let Some(dir) = config.dir.as_deref() {
                let path = dir.join(crate::policy::source::DEFAULT_FILE);
                if path.is_file() {
                    return found("default-file", path.display().to_string());
                }
            }
            if config.default.is_some() {
                return found("default-inline", "policies.default".to_owned());
            }
            PolicyOrigin {
                source: "none",
                location: None,
                note: note.or_else(|| Some("no policies apply to this instance".to_owned())),
            }
        }
    }
}

/// The file of `dir` whose instance id is `id` (in any UUID spelling).
fn instance_file(dir: &Path, id: &str) -> Option<String> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let name = entry.file_name();
        let stem = name.to_str()?.strip_suffix(".json")?;
        (!stem.starts_with('.') && canonical::instance_key(stem) == id)
            .then(|| entry.path().display().to_string())
    })
}

/// The enabled policies of `policy`, in Key Protect's words; `(shadowed)` when they are.
pub fn policies(policy: &ActivePolicy) -> Vec<String> {
    let model = &policy.model;
    let shadow = |ty: PolicyType| {
        if policy.shadowed(ty) {
            " (shadowed)"
        } else {
            ""
        }
    };
    let mut out = Vec::new();
    if let Some(p) = model.allowed_ip.as_ref().filter(|p| p.enabled) {
        let list: Vec<String> = p.allowed_ip.iter().map(ToString::to_string).collect();
        out.push(format!(
            "allowedIP: {}{}",
            list.join(", "),
            shadow(PolicyType::AllowedIp)
        ));
    }
    if let Some(p) = model.allowed_network.as_ref().filter(|p| p.enabled) {
        out.push(format!(
            "allowedNetwork: {}{}",
            p.allowed_network.as_str(),
            shadow(PolicyType::AllowedNetwork)
        ));
    }
    if let Some(p) = model
        .key_create_import_access
        .as_ref()
        .filter(|p| p.enabled)
    {
        out.push(format!(
            "keyCreateImportAccess: create_root_key={} create_standard_key={} import_root_key={} import_standard_key={} enforce_token={}{}",
            p.create_root_key,
            p.create_standard_key,
            p.import_root_key,
            p.import_standard_key,
            p.enforce_token,
            shadow(PolicyType::KeyCreateImportAccess)
        ));
    }
    if let Some(true) = model.dual_auth_delete {
        out.push("dualAuthDelete: enabled".to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::policy::etcd::config::EtcdConfig;
    use crate::policy::model::InstancePolicies;

    #[test]
    fn the_policy_document_is_named_by_its_source() {
        let id = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9";
        let own = ActivePolicy::compile(Some(Arc::from(id)), InstancePolicies::default());
        let default = ActivePolicy::default();
        let mut config = PoliciesConfig::default();
        config.instances.insert(id.to_uppercase(), String::new());
        let origin = origin(&config, &own, None);
        assert_eq!(origin.source, "inline");
        assert_eq!(
            origin.location.as_deref(),
            Some(format!("policies.instances.{:?}", id.to_uppercase()).as_str())
        );
        assert_eq!(super::origin(&config, &default, None).source, "none");
        config.default = Some(String::new());
        assert_eq!(
            super::origin(&config, &default, None).source,
            "default-inline"
        );
        // From etcd: the key and the revision (the admin endpoint of a gateway with etcd).
        config.etcd = Some(EtcdConfig::default());
        let prefix = EtcdConfig::default().prefix;
        let origin = super::origin(&config, &own, Some(42));
        assert_eq!(origin.source, "etcd");
        assert_eq!(
            origin.location,
            Some(format!("{prefix}{id} at etcd revision 42"))
        );
        // Explained without the store: said so.
        assert!(super::origin(&config, &own, None).note.is_some());
    }
}
