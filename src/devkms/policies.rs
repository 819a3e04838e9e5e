//! Instance policies, stored per instance and policy type, and `allowed_ip_port`.
//!
//! The gateway checks the shape of a PUT before the dev KMS sees it, so this reads leniently:
//! it stores each resource's `policy_data`, normalised as Key Protect does. Attributes a PUT
//! leaves out take their defaults (keyCreateImportAccess: every flag `true` but
//! `enforce_token`); an allowedIP list is replaced, not merged; disabling a policy resets its
//! attributes.

use std::collections::HashMap;

use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::keys::ACTOR;
use super::store::{Instance, now};
use super::{Call, collection, no_content};
use crate::body::Body;
use crate::policy::model::{KeyCreateImportAccess, NetworkAccess, PolicyType};
use crate::reason::{Reason, Rejection, Target};

/// The `collectionType` of policy documents.
const POLICY_COLLECTION: &str = "application/vnd.ibm.kms.policy+json";

/// The `collectionType` of `allowed_ip_port`.
const ALLOWED_IP_COLLECTION: &str = "application/vnd.ibm.kms.allowed_ip_metadata+json";

/// The instance policies of one instance.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    records: HashMap<PolicyType, Record>,
}

#[derive(Debug)]
struct Record {
    created: String,
    updated: String,
    /// `policy_data`, normalised.
    data: StoredData,
}

impl Policies {
    fn enabled(&self, policy: PolicyType) -> bool {
        self.records.get(&policy).is_some_and(|r| r.data.enabled)
    }

    /// Whether keys created now need dual authorization to be deleted.
    pub(crate) fn dual_auth_delete(&self) -> bool {
        self.enabled(PolicyType::DualAuthDelete)
    }

    fn store(&mut self, policy: PolicyType, data: StoredData) {
        let date = now();
        match self.records.get_mut(&policy) {
            Some(record) => {
                record.updated = date;
                record.data = data;
            }
            None => {
                let record = Record {
                    created: date.clone(),
                    updated: date,
                    data,
                };
                self.records.insert(policy, record);
            }
        }
    }
}

#[derive(Deserialize)]
struct PutBody {
    #[serde(default)]
    resources: Vec<PutResource>,
}

#[derive(Deserialize)]
struct PutResource {
    policy_type: String,
    policy_data: PolicyData,
}

#[derive(Deserialize)]
struct PolicyData {
    enabled: bool,
    #[serde(default)]
    attributes: Map<String, Value>,
}

/// `PUT /api/v2/instance/policies[?policy=]`: 204.
pub(crate) fn put(instance: &mut Instance, call: &Call<'_>) -> Result<Response<Body>, Rejection> {
    let body: PutBody = call.json()?.ok_or_else(|| call.reject(Reason::NoBody))?;
    if body.resources.is_empty() {
        return Err(call
            .reject(Reason::BadBody)
            .detail("at least one policy resource is required"));
    }
    // Check every resource before storing any: a PUT applies whole or not at all.
    let mut updates = Vec::with_capacity(body.resources.len());
    for resource in body.resources {
        let policy = PolicyType::from_name(&resource.policy_type)
            .ok_or_else(|| call.invalid_field("policy_type", "one of the instance policy types"))?;
        updates.push((policy, normalise(policy, resource.policy_data)));
    }
    for (policy, data) in updates {
        instance.policies.store(policy, data);
    }
    Ok(no_content())
}

/// `policy_data` as stored and shown: `enabled` first, attributes in Key Protect's order.
#[derive(Debug, Serialize)]
struct StoredData {
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes: Option<Attributes>,
}

/// The attributes of the policy types that have them. Values are kept as given (the gateway
/// checks their shape).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Attributes {
    AllowedIp {
        allowed_ip: Value,
    },
    AllowedNetwork {
        allowed_network: Value,
    },
    KeyCreateImportAccess {
        create_root_key: Value,
        create_standard_key: Value,
        import_root_key: Value,
        import_standard_key: Value,
        enforce_token: Value,
    },
    Rotation {
        interval_month: Value,
    },
}

/// `policy_data` as Key Protect keeps it: what is left out, or everything when disabled,
/// takes its default.
fn normalise(policy: PolicyType, data: PolicyData) -> StoredData {
    let PolicyData {
        enabled,
        attributes,
    } = data;
    let given = |name: &str| enabled.then(|| attributes.get(name).cloned()).flatten();
    let or = |name: &str, default: Value| given(name).unwrap_or(default);
    let attributes = match policy {
        PolicyType::AllowedIp => Some(Attributes::AllowedIp {
            allowed_ip: or("allowed_ip", json!([])),
        }),
        PolicyType::AllowedNetwork => Some(Attributes::AllowedNetwork {
            allowed_network: or("allowed_network", json!(NetworkAccess::default().as_str())),
        }),
        PolicyType::KeyCreateImportAccess => {
            let d = KeyCreateImportAccess::default();
            Some(Attributes::KeyCreateImportAccess {
                create_root_key: or("create_root_key", json!(d.create_root_key)),
                create_standard_key: or("create_standard_key", json!(d.create_standard_key)),
                import_root_key: or("import_root_key", json!(d.import_root_key)),
                import_standard_key: or("import_standard_key", json!(d.import_standard_key)),
                enforce_token: or("enforce_token", json!(d.enforce_token)),
            })
        }
        PolicyType::Rotation => {
            given("interval_month").map(|interval_month| Attributes::Rotation { interval_month })
        }
        PolicyType::DualAuthDelete | PolicyType::Metrics => None,
    };
    StoredData {
        enabled,
        attributes,
    }
}

/// One policy as `GET /instance/policies` shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyJson<'a> {
    created_by: &'static str,
    creation_date: &'a str,
    updated_by: &'static str,
    last_updated: &'a str,
    #[serde(rename = "policy_type")]
    policy_type: &'static str,
    #[serde(rename = "policy_data")]
    policy_data: &'a StoredData,
}

/// `GET /api/v2/instance/policies[?policy=]`: every policy that was put (in a fixed order),
/// or the one asked for; `resources` is empty for a policy never put.
pub(crate) fn get(instance: &mut Instance, call: &Call<'_>) -> Result<Response<Body>, Rejection> {
    let only = match call.query("policy") {
        None => None,
        Some(name) => Some(PolicyType::from_name(name).ok_or_else(|| {
            call.reject(Reason::InvalidQueryParam)
                .message("The query_param 'policy' must be: one of the instance policy types")
                .target(Target::query_param("policy"))
        })?),
    };
    let resources: Vec<PolicyJson<'_>> = PolicyType::ALL
        .into_iter()
        .filter(|p| only.is_none_or(|only| only == *p))
        .filter_map(|p| {
            let record = instance.policies.records.get(&p)?;
            Some(PolicyJson {
                created_by: ACTOR,
                creation_date: &record.created,
                updated_by: ACTOR,
                last_updated: &record.updated,
                policy_type: p.as_str(),
                policy_data: &record.data,
            })
        })
        .collect();
    Ok(collection(StatusCode::OK, POLICY_COLLECTION, &resources))
}

/// `GET /api/v2/instance/allowed_ip_port`: the private endpoint port while allowedIP is
/// enabled, no resources otherwise.
pub(crate) fn allowed_ip_port(instance: &Instance) -> Response<Body> {
    #[derive(Serialize)]
    struct Port {
        private_endpoint_port: u16,
    }
    let ports: Vec<Port> = instance
        .policies
        .enabled(PolicyType::AllowedIp)
        .then_some(Port {
            private_endpoint_port: instance.private_port,
        })
        .into_iter()
        .collect();
    collection(StatusCode::OK, ALLOWED_IP_COLLECTION, &ports)
}
