//! Parsing and validating Key Protect instance-policy JSON (PUT bodies and GET documents),
//! with Key Protect's own reason codes for every defect.
//!
//! The checks run in the order Key Protect's examples imply:
//!
//! 1. `?policy=` names a policy type, else `INVALID_QUERY_PARAM_ERR`;
//! 2. the body decodes (Go `encoding/json` rules: keys match case-insensitively, an unknown field
//!    anywhere in the envelope is an error), else `BAD_BODY_ERR` (`json: unknown field "x"`); a
//!    field given twice in one object, in any spelling, is refused (`duplicate field "x"`): Go
//!    would merge the two values ([`gojson::parse_value`]);
//! 3. `metadata` is not empty, else `BAD_BODY_ERR` "…: CollectionMetadata is empty";
//!    `resources` is present, else `BAD_BODY_ERR`;
//! 4. `metadata.collectionTotal` equals the number of resources, else
//!    `COLLECTION_TOTAL_MISMATCH_ERR` (the reference shows it for `?policy=` with one resource);
//! 5. with `?policy=`: one resource (`NUM_COLLECTION_RESOURCE_ERR`, shown with a matching
//!    total of 2), whose `policy_type` is the query's (`BODY_QUERY_PARAM_MISMATCH_ERR`, shown for
//!    the unknown type `badName`, so this comes before the type is looked up);
//! 6. each resource: a known `policy_type` (`INVALID_FIELD_ERR`), no type twice (`BAD_BODY_ERR`),
//!    and its `policy_data` checked for that type (unknown fields → `BAD_BODY_ERR`, bad values →
//!    `INVALID_FIELD_ERR` with the field as `target`).
//!
//! A GET document ([`parse_document`]) is read as Key Protect sends it: its resources also carry
//! `createdBy`, `creationDate`, `updatedBy` and `lastUpdated` (unknown fields in a PUT); its
//! `metadata` is not checked (the Go client's own fixture has `collectionTotal` 1 for four
//! resources); `resources` may be empty (no policies); a legacy `ipWhitelist` record and an
//! identical repeat of a record are skipped. Everything else — unknown fields, policy types,
//! every `policy_data` value — is checked as in a PUT, so a typo in a policy file is an error.

use ipnet::IpNet;
use serde_json::Value;

use super::model::{
    AllowedIp, AllowedNetwork, InstancePolicies, KeyCreateImportAccess, NetworkAccess, Policy,
    PolicyMeta, PolicyRecords, PolicyType, Rotation,
};
use crate::gojson;
use crate::reason::{Operation, Quote, Reason, Rejection, Target};

/// The `errorMsg` operation of envelope refusals (the reference examples: backticks, period).
const OPERATION: Operation = Operation::INSTANCE_POLICY_CREATE;

/// The `errorMsg` operation of field refusals (Key Protect's Go client fixture: "Bad Request:
/// Instance policy could not be created: Please see \"reasons\" for more details
/// (INVALID_FIELD_ERR)").
const FIELD_OPERATION: Operation =
    Operation::new("Instance policy could not be created", Quote::Double);

/// The most CIDR blocks an allowedIP policy may list.
pub const MAX_ALLOWED_IP: usize = 1000;

/// allowedIP's historic policy type, which a GET of all policies may still return.
const LEGACY_ALLOWED_IP: &str = "ipWhitelist";

const BOOLEAN: &str = "a boolean (true or false)";

/// Which of the two document shapes is being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// A `PUT /api/v2/instance/policies` body.
    Put,
    /// A `GET /api/v2/instance/policies` answer (or a PUT body without `?policy=`).
    Document,
}

/// The fields of a resource; the last four only in a GET document.
const RESOURCE_FIELDS: [&str; 6] = [
    "policy_type",
    "policy_data",
    "createdBy",
    "creationDate",
    "updatedBy",
    "lastUpdated",
];

/// Parses a policy document: the body `GET /api/v2/instance/policies` returns (a dump of a
/// real instance) or a `PUT` body without `?policy=`. An empty `resources` list is no policy.
pub fn parse_document(body: &[u8]) -> Result<InstancePolicies, Rejection> {
    parse_records(body).map(|records| records.policies)
}

/// Like [`parse_document`], keeping each policy's `createdBy`, `creationDate`, `updatedBy` and
/// `lastUpdated` (when they are strings), so a document read from a file renders back the same.
pub fn parse_records(body: &[u8]) -> Result<PolicyRecords, Rejection> {
    let mut records = PolicyRecords::default();
    for (policy, meta) in parse(body, Shape::Document, None)? {
        records.set(policy, meta);
    }
    Ok(records)
}

/// Validates a `PUT /api/v2/instance/policies[?policy=<type>]` body as Key Protect does;
/// `policy_query` is the raw value of `?policy=`, if given. On success, the policies it sets.
pub fn parse_put(body: &[u8], policy_query: Option<&str>) -> Result<Vec<Policy>, Rejection> {
    let query = policy_query.map(parse_policy_query).transpose()?;
    parse(body, Shape::Put, query).map(|records| records.into_iter().map(|(p, _)| p).collect())
}

/// The policy type a `?policy=` value names, else `INVALID_QUERY_PARAM_ERR`.
pub fn parse_policy_query(value: &str) -> Result<PolicyType, Rejection> {
    PolicyType::from_name(value).ok_or_else(|| {
        Rejection::new(Reason::InvalidQueryParam)
            .operation(FIELD_OPERATION)
            .message(format!(
                "The query_param {} must be: {}",
                Quote::Double.around("policy"),
                type_rule()
            ))
            .target(Target::query_param("policy"))
    })
}

fn type_rule() -> String {
    let names: Vec<&str> = PolicyType::ALL.iter().map(|t| t.as_str()).collect();
    format!("one of {}", names.join(", "))
}

fn parse(
    body: &[u8],
    shape: Shape,
    query: Option<PolicyType>,
) -> Result<Vec<(Policy, Option<PolicyMeta>)>, Rejection> {
    let value = gojson::parse_value(body).map_err(|e| bad_body(gojson::decode_message(&e)))?;

    // Decoding: the envelope and each resource, with Go's unknown-field and type errors.
    let [metadata, resources] = object(&value, "", ["metadata", "resources"], 2)?;
    let (collection_type, collection_total) = match metadata {
        Some(metadata) => {
            let [ty, total] = object(
                metadata,
                "metadata",
                ["collectionType", "collectionTotal"],
                2,
            )?;
            (
                ty.map(|v| string(v, "metadata.collectionType"))
                    .transpose()?,
                total
                    .map(|v| integer(v, "metadata.collectionTotal"))
                    .transpose()?,
            )
        }
        None => (None, None),
    };
    let resources = resources.map(|v| array(v, "resources")).transpose()?;
    let accepted = match shape {
        Shape::Put => 2,
        Shape::Document => RESOURCE_FIELDS.len(),
    };
    let mut items = Vec::with_capacity(resources.map_or(0, |r| r.len()));
    for resource in resources.into_iter().flatten() {
        let [
            ty,
            data,
            created_by,
            creation_date,
            updated_by,
            last_updated,
        ] = object(resource, "resources", RESOURCE_FIELDS, accepted)?;
        let ty = ty.map(|v| string(v, "resources.policy_type")).transpose()?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let meta = creation_date.is_some().then(|| PolicyMeta {
            created_by: text(created_by).unwrap_or_default(),
            creation_date: text(creation_date).unwrap_or_default(),
            updated_by: text(updated_by).unwrap_or_default(),
            last_updated: text(last_updated).unwrap_or_default(),
        });
        items.push((ty, data, meta));
    }

    // The envelope (a GET answer is taken as Key Protect sent it: its metadata is not ours to
    // check, and the Go client's own fixture has a collectionTotal of 1 for 4 resources).
    let put = shape == Shape::Put;
    if put && collection_type.is_none_or(str::is_empty) && collection_total.is_none_or(|t| t == 0) {
        return Err(bad_body("CollectionMetadata is empty"));
    }
    let Some(resources) = resources else {
        return Err(bad_body("No resources section was provided"));
    };
    if put && resources.is_empty() {
        return Err(bad_body("No resources section was provided"));
    }
    if put && collection_total != Some(items.len() as i64) {
        return Err(Rejection::new(Reason::CollectionTotalMismatch).operation(OPERATION));
    }
    if let Some(query) = query {
        if items.len() > 1 {
            return Err(Rejection::new(Reason::NumCollectionResource).operation(OPERATION));
        }
        if items.first().and_then(|(ty, ..)| *ty) != Some(query.as_str()) {
            return Err(Rejection::new(Reason::BodyQueryParamMismatch).operation(OPERATION));
        }
    }

    // Each policy.
    let mut policies: Vec<(Policy, Option<PolicyMeta>)> = Vec::with_capacity(items.len());
    for (ty, data, meta) in items {
        // A GET without `?policy=` also returns allowedIP under its historic name.
        if !put && ty == Some(LEGACY_ALLOWED_IP) {
            continue;
        }
        let ty = ty
            .and_then(PolicyType::from_name)
            .ok_or_else(|| field_error("policy_type", type_rule()))?;
        let policy = policy(ty, data)?;
        match policies.iter().find(|(p, _)| p.policy_type() == ty) {
            None => policies.push((policy, meta)),
            // A GET may repeat a record (the duplicate allowedIP one); an identical repeat is harmless.
            Some((seen, _)) if !put && *seen == policy => {}
            Some(_) => return Err(bad_body("Only one of each policy can be created")),
        }
    }
    Ok(policies)
}

/// One policy's `policy_data`, checked for its type.
fn policy(ty: PolicyType, data: Option<&Value>) -> Result<Policy, Rejection> {
    let data = data.ok_or_else(|| field_error("policy_data", "an object"))?;
    match ty {
        PolicyType::DualAuthDelete | PolicyType::Metrics => {
            let [enabled] = object(data, "policy_data", ["enabled"], 1)?;
            let enabled = required_flag(enabled, "enabled")?;
            Ok(match ty {
                PolicyType::DualAuthDelete => Policy::DualAuthDelete(enabled),
                _ => Policy::Metrics(enabled),
            })
        }
        PolicyType::AllowedIp => {
            let (enabled, attributes) = with_attributes(data)?;
            let [list] = attributes_of(attributes, ["allowed_ip"])?;
            let allowed_ip = match list {
                Some(list) => cidrs(list)?,
                None => Vec::new(),
            };
            if enabled && allowed_ip.is_empty() {
                return Err(field_error("allowed_ip", cidr_rule()));
            }
            Ok(Policy::AllowedIp(AllowedIp {
                enabled,
                allowed_ip,
            }))
        }
        PolicyType::AllowedNetwork => {
            let (enabled, attributes) = with_attributes(data)?;
            let [network] = attributes_of(attributes, ["allowed_network"])?;
            let allowed_network = match network {
                Some(v) => match v.as_str() {
                    Some("public-and-private") => NetworkAccess::PublicAndPrivate,
                    Some("private-only") => NetworkAccess::PrivateOnly,
                    _ => return Err(network_error()),
                },
                None if enabled => return Err(network_error()),
                None => NetworkAccess::default(),
            };
            Ok(Policy::AllowedNetwork(AllowedNetwork {
                enabled,
                allowed_network,
            }))
        }
        PolicyType::KeyCreateImportAccess => {
            let (enabled, attributes) = with_attributes(data)?;
            let [cr, cs, ir, is, et] = attributes_of(
                attributes,
                [
                    "create_root_key",
                    "create_standard_key",
                    "import_root_key",
                    "import_standard_key",
                    "enforce_token",
                ],
            )?;
            let defaults = KeyCreateImportAccess::default();
            Ok(Policy::KeyCreateImportAccess(KeyCreateImportAccess {
                enabled,
                create_root_key: flag(cr, "create_root_key")?.unwrap_or(defaults.create_root_key),
                create_standard_key: flag(cs, "create_standard_key")?
                    .unwrap_or(defaults.create_standard_key),
                import_root_key: flag(ir, "import_root_key")?.unwrap_or(defaults.import_root_key),
                import_standard_key: flag(is, "import_standard_key")?
                    .unwrap_or(defaults.import_standard_key),
                enforce_token: flag(et, "enforce_token")?.unwrap_or(defaults.enforce_token),
            }))
        }
        PolicyType::Rotation => {
            let (enabled, attributes) = with_attributes(data)?;
            let [interval] = attributes_of(attributes, ["interval_month"])?;
            let interval_month = match interval {
                Some(v) => Some(
                    v.as_u64()
                        .and_then(|m| u8::try_from(m).ok())
                        .filter(|m| (1..=12).contains(m))
                        .ok_or_else(interval_error)?,
                ),
                None if enabled => return Err(interval_error()),
                None => None,
            };
            Ok(Policy::Rotation(Rotation {
                enabled,
                interval_month,
            }))
        }
    }
}

/// `{"enabled": bool, "attributes": {...}}`.
fn with_attributes(data: &Value) -> Result<(bool, Option<&Value>), Rejection> {
    let [enabled, attributes] = object(data, "policy_data", ["enabled", "attributes"], 2)?;
    Ok((required_flag(enabled, "enabled")?, attributes))
}

fn attributes_of<'v, const N: usize>(
    attributes: Option<&'v Value>,
    names: [&'static str; N],
) -> Result<[Option<&'v Value>; N], Rejection> {
    match attributes {
        Some(attributes) => object(attributes, "policy_data.attributes", names, N),
        None => Ok([None; N]),
    }
}

fn cidr_rule() -> String {
    format!("a list of 1 to {MAX_ALLOWED_IP} IPv4 or IPv6 CIDR blocks")
}

fn cidrs(list: &Value) -> Result<Vec<IpNet>, Rejection> {
    let list = list
        .as_array()
        .filter(|l| l.len() <= MAX_ALLOWED_IP)
        .ok_or_else(|| field_error("allowed_ip", cidr_rule()))?;
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            entry
                .as_str()
                .and_then(|s| s.parse::<IpNet>().ok())
                .map(|net| net.trunc())
                .ok_or_else(|| {
                    field_error("allowed_ip", cidr_rule())
                        .detail(format!("entry {i} is not a CIDR block"))
                })
        })
        .collect()
}

fn network_error() -> Rejection {
    field_error(
        "allowed_network",
        "one of \"public-and-private\" or \"private-only\"",
    )
}

fn interval_error() -> Rejection {
    field_error("interval_month", "an integer between 1 and 12 (inclusive)")
}

fn required_flag(value: Option<&Value>, field: &'static str) -> Result<bool, Rejection> {
    flag(value, field)?.ok_or_else(|| field_error(field, BOOLEAN))
}

fn flag(value: Option<&Value>, field: &'static str) -> Result<Option<bool>, Rejection> {
    value
        .map(|v| v.as_bool().ok_or_else(|| field_error(field, BOOLEAN)))
        .transpose()
}

fn field_error(field: &'static str, rule: impl std::fmt::Display) -> Rejection {
    Rejection::invalid_field_of(FIELD_OPERATION, field, rule)
}

fn bad_body(detail: impl Into<std::borrow::Cow<'static, str>>) -> Rejection {
    Rejection::new(Reason::BadBody)
        .operation(OPERATION)
        .detail(detail)
}

/// The fields `names` of a JSON object, matched the way Go's `encoding/json` does (case-
/// insensitively; `null` leaves a field unset). A key matching none of the first `accepted`
/// names is an unknown field; `null` as a whole is an object with no fields.
fn object<'v, const N: usize>(
    value: &'v Value,
    path: &str,
    names: [&'static str; N],
    accepted: usize,
) -> Result<[Option<&'v Value>; N], Rejection> {
    let mut fields = [None; N];
    let map = match value {
        Value::Object(map) => map,
        Value::Null => return Ok(fields),
        other => return Err(type_error(other, path, "object")),
    };
    for (key, v) in map {
        let slot = names[..accepted.min(N)]
            .iter()
            .position(|name| gojson::key_eq(key, name))
            .ok_or_else(|| bad_body(gojson::unknown_field(key)))?;
        if !v.is_null() {
            fields[slot] = Some(v);
        }
    }
    Ok(fields)
}

fn string<'v>(value: &'v Value, path: &str) -> Result<&'v str, Rejection> {
    value
        .as_str()
        .ok_or_else(|| type_error(value, path, "string"))
}

fn integer(value: &Value, path: &str) -> Result<i64, Rejection> {
    value.as_i64().ok_or_else(|| type_error(value, path, "int"))
}

fn array<'v>(value: &'v Value, path: &str) -> Result<&'v [Value], Rejection> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| type_error(value, path, "array"))
}

fn type_error(value: &Value, path: &str, want: &str) -> Rejection {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    bad_body(gojson::type_error(kind, path, want))
}

#[cfg(test)]
mod tests;
