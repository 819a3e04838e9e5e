//! [`Identity`]: who made a request, as its verified bearer token says.

use std::sync::Arc;

/// Who made a request, as its bearer token says. Recorded in the request's context by the
/// bearer layer for the layers after it (read it with
/// [`context::identity`](crate::context::identity)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub subject: Arc<str>,
    /// Whether the token's service claim (`auth.service_claim`) names a service.
    pub is_service: bool,
}

impl Identity {
    /// An identity.
    pub fn new(subject: &str, is_service: bool) -> Self {
        Identity {
            subject: subject.into(),
            is_service,
        }
    }
}
