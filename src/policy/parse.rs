//! Parsing and validating Key Protect instance-policy JSON (PUT bodies and GET documents),
//! with Key Protect's own reason codes for every defect.

use super::model::InstancePolicies;
use crate::reason::{Reason, Rejection};

/// Parses a policy document: the body `GET /api/v2/instance/policies` returns (a dump of a
/// real instance) or a `PUT` body without `?policy=`.
pub fn parse_document(_body: &[u8]) -> Result<InstancePolicies, Rejection> {
    Err(Rejection::new(Reason::GatewayInternal).detail("policy parsing is not implemented yet"))
}
