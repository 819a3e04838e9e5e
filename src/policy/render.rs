//! The one renderer of Key Protect's policy document (the body of `GET
//! /api/v2/instance/policies`): used by the gateway's own policy API, by the files it persists,
//! and by the embedded dev KMS. [`super::parse::parse_records`] reads it back unchanged.

use serde::Serialize;

use crate::collection::Collection;

use super::model::{Policy, PolicyMeta, PolicyRecords, PolicyType};

/// The `collectionType` of policy documents.
pub const POLICY_COLLECTION: &str = "application/vnd.ibm.kms.policy+json";

/// One policy as a GET shows it, in Key Protect's field order. Who and when are left out for a
/// policy without recorded metadata (a hand-written file), rather than made up.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resource<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    creation_date: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_updated: Option<&'a str>,
    #[serde(rename = "policy_type")]
    policy_type: &'static str,
    #[serde(rename = "policy_data")]
    policy_data: Data,
}

#[derive(Serialize)]
struct Data {
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes: Option<Attributes>,
}

/// The attributes of the policy types that have them, in Key Protect's order.
#[derive(Serialize)]
#[serde(untagged)]
enum Attributes {
    AllowedIp {
        allowed_ip: Vec<String>,
    },
    AllowedNetwork {
        allowed_network: &'static str,
    },
    KeyCreateImportAccess {
        create_root_key: bool,
        create_standard_key: bool,
        import_root_key: bool,
        import_standard_key: bool,
        enforce_token: bool,
    },
    Rotation {
        interval_month: u8,
    },
}

fn data(policy: &Policy) -> Data {
    let (enabled, attributes) = match policy {
        Policy::AllowedIp(p) => (
            p.enabled,
            Some(Attributes::AllowedIp {
                allowed_ip: p.allowed_ip.iter().map(ToString::to_string).collect(),
            }),
        ),
        Policy::AllowedNetwork(p) => (
            p.enabled,
            Some(Attributes::AllowedNetwork {
                allowed_network: p.allowed_network.as_str(),
            }),
        ),
        Policy::KeyCreateImportAccess(p) => (
            p.enabled,
            Some(Attributes::KeyCreateImportAccess {
                create_root_key: p.create_root_key,
                create_standard_key: p.create_standard_key,
                import_root_key: p.import_root_key,
                import_standard_key: p.import_standard_key,
                enforce_token: p.enforce_token,
            }),
        ),
        Policy::Rotation(p) => (
            p.enabled,
            p.interval_month
                .map(|interval_month| Attributes::Rotation { interval_month }),
        ),
        Policy::DualAuthDelete(enabled) | Policy::Metrics(enabled) => (*enabled, None),
    };
    Data {
        enabled,
        attributes,
    }
}

/// The policy of type `ty` in `records`, if set.
pub fn policy_of(records: &PolicyRecords, ty: PolicyType) -> Option<Policy> {
    let p = &records.policies;
    match ty {
        PolicyType::AllowedIp => p.allowed_ip.clone().map(Policy::AllowedIp),
        PolicyType::AllowedNetwork => p.allowed_network.clone().map(Policy::AllowedNetwork),
        PolicyType::KeyCreateImportAccess => p
            .key_create_import_access
            .clone()
            .map(Policy::KeyCreateImportAccess),
        PolicyType::DualAuthDelete => p.dual_auth_delete.map(Policy::DualAuthDelete),
        PolicyType::Metrics => p.metrics.map(Policy::Metrics),
        PolicyType::Rotation => p.rotation.clone().map(Policy::Rotation),
    }
}

/// The policies of `records` as GET resources: every policy set (in a fixed order), or `only`.
fn resources(records: &PolicyRecords, only: Option<PolicyType>) -> Vec<Resource<'_>> {
    PolicyType::ALL
        .into_iter()
        .filter(|ty| only.is_none_or(|only| only == *ty))
        .filter_map(|ty| {
            let policy = policy_of(records, ty)?;
            let meta: Option<&PolicyMeta> = records.meta[ty.index()].as_ref();
            Some(Resource {
                created_by: meta.map(|m| m.created_by.as_str()),
                creation_date: meta.map(|m| m.creation_date.as_str()),
                updated_by: meta.map(|m| m.updated_by.as_str()),
                last_updated: meta.map(|m| m.last_updated.as_str()),
                policy_type: ty.as_str(),
                policy_data: data(&policy),
            })
        })
        .collect()
}

/// The GET document of `records`: every policy set (in a fixed order), or only `only`.
pub fn render_document(records: &PolicyRecords, only: Option<PolicyType>) -> Vec<u8> {
    // Serialising these plain structs to a Vec cannot fail.
    let resources = resources(records, only);
    serde_json::to_vec(&Collection::new(POLICY_COLLECTION, &resources)).unwrap_or_default()
}

/// A `200` response carrying [`render_document`] (the gateway's own policy API and the dev
/// KMS answer `GET /api/v2/instance/policies` with it).
pub fn document_response(
    records: &PolicyRecords,
    only: Option<PolicyType>,
) -> http::Response<crate::body::Body> {
    let mut response = http::Response::new(crate::body::Body::full(render_document(records, only)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// [`render_document`], indented for a file an operator reads and diffs.
pub fn render_document_pretty(records: &PolicyRecords) -> Vec<u8> {
    let resources = resources(records, None);
    serde_json::to_vec_pretty(&Collection::new(POLICY_COLLECTION, &resources)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{AllowedIp, KeyCreateImportAccess};
    use crate::policy::parse::parse_records;

    #[test]
    fn a_rendered_document_parses_back_the_same() {
        let mut records = PolicyRecords::default();
        records.update(
            [
                Policy::AllowedIp(AllowedIp {
                    enabled: true,
                    allowed_ip: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
                }),
                Policy::KeyCreateImportAccess(KeyCreateImportAccess {
                    enabled: true,
                    create_standard_key: false,
                    ..Default::default()
                }),
                Policy::Metrics(true),
            ],
            "IBMid-1",
            "2026-11-29T12:00:00Z",
        );
        let text = render_document(&records, None);
        let back = parse_records(&text).unwrap();
        assert_eq!(back, records);
        let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(json["metadata"]["collectionTotal"], 3);
        assert_eq!(json["resources"][0]["policy_type"], "allowedIP");
        assert_eq!(json["resources"][0]["createdBy"], "IBMid-1");
        let only = render_document(&records, Some(PolicyType::Metrics));
        let json: serde_json::Value = serde_json::from_slice(&only).unwrap();
        assert_eq!(json["metadata"]["collectionTotal"], 1);
        assert_eq!(
            json["resources"][0]["policy_data"],
            serde_json::json!({"enabled": true})
        );
    }

    #[test]
    fn an_update_resets_omitted_and_disabled_attributes_and_keeps_creation() {
        let mut records = PolicyRecords::default();
        let kcia = |enabled, create_standard_key| {
            Policy::KeyCreateImportAccess(KeyCreateImportAccess {
                enabled,
                create_standard_key,
                ..Default::default()
            })
        };
        records.update([kcia(true, false)], "a", "t1");
        records.update([kcia(false, false)], "b", "t2");
        let p = records.policies.key_create_import_access.clone().unwrap();
        assert!(!p.enabled && p.create_standard_key);
        let meta = records.meta[PolicyType::KeyCreateImportAccess.index()]
            .clone()
            .unwrap();
        assert_eq!(
            (meta.created_by.as_str(), meta.creation_date.as_str()),
            ("a", "t1")
        );
        assert_eq!(
            (meta.updated_by.as_str(), meta.last_updated.as_str()),
            ("b", "t2")
        );
    }
}
