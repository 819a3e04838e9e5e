//! The closed set of token decisions: each refusal's reason code, access-log note and metric
//! label.

use crate::reason::Reason;

/// Why a token was refused. The first five are malformed requests (400
/// `BEARER_SUB_EXTRACTION_ERR`); the rest are well-formed tokens that failed verification (401
/// `UNAUTHORIZED_ERR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No `Authorization` header.
    MissingHeader,
    /// A scheme other than `Bearer`, a header value that is not visible ASCII, or more than
    /// one `Authorization` header.
    NotBearer,
    /// `Bearer` with nothing after it.
    EmptyToken,
    /// Not three base64url parts with a JSON object header and payload.
    NotJwt,
    /// The payload has no string `sub`.
    NoSubject,
    /// The token's `alg` is not in `auth.algorithms` (or is `none`, or unknown).
    AlgorithmNotAllowed,
    /// The key named by `kid` is for another algorithm.
    AlgorithmKeyMismatch,
    /// No key has the token's `kid`, or no key fits its algorithm.
    UnknownKey,
    /// No candidate key verified the signature.
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// The token has no `exp`.
    MissingExp,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is missing or not an accepted issuer.
    WrongIssuer,
    /// `aud` is missing or names no accepted audience.
    WrongAudience,
    /// A registered claim has the wrong type, or the token is otherwise unacceptable.
    InvalidToken,
}

impl Failure {
    /// Every failure, in declaration order (`failure as usize` indexes it).
    pub const ALL: [Failure; 15] = [
        Failure::MissingHeader,
        Failure::NotBearer,
        Failure::EmptyToken,
        Failure::NotJwt,
        Failure::NoSubject,
        Failure::AlgorithmNotAllowed,
        Failure::AlgorithmKeyMismatch,
        Failure::UnknownKey,
        Failure::BadSignature,
        Failure::Expired,
        Failure::MissingExp,
        Failure::NotYetValid,
        Failure::WrongIssuer,
        Failure::WrongAudience,
        Failure::InvalidToken,
    ];

    /// The reason code the caller gets.
    pub const fn reason(self) -> Reason {
        match self {
            Failure::MissingHeader
            | Failure::NotBearer
            | Failure::EmptyToken
            | Failure::NotJwt
            | Failure::NoSubject => Reason::BearerSubExtraction,
            _ => Reason::Unauthorized,
        }
    }

    /// The `result` label of `kmsgate_token_verifications_total`.
    pub const fn label(self) -> &'static str {
        match self {
            Failure::MissingHeader => "missing_header",
            Failure::NotBearer => "not_bearer",
            Failure::EmptyToken => "empty_token",
            Failure::NotJwt => "not_jwt",
            Failure::NoSubject => "no_subject",
            Failure::AlgorithmNotAllowed => "algorithm_not_allowed",
            Failure::AlgorithmKeyMismatch => "algorithm_key_mismatch",
            Failure::UnknownKey => "unknown_key",
            Failure::BadSignature => "bad_signature",
            Failure::Expired => "expired",
            Failure::MissingExp => "missing_exp",
            Failure::NotYetValid => "not_yet_valid",
            Failure::WrongIssuer => "wrong_issuer",
            Failure::WrongAudience => "wrong_audience",
            Failure::InvalidToken => "invalid_token",
        }
    }

    /// The access-log note: which check failed (never anything from the token itself).
    pub const fn note(self) -> &'static str {
        match self {
            Failure::MissingHeader => "bearer: no Authorization header",
            Failure::NotBearer => "bearer: Authorization scheme is not Bearer",
            Failure::EmptyToken => "bearer: empty token",
            Failure::NotJwt => "bearer: token is not a JWT",
            Failure::NoSubject => "bearer: token has no string sub",
            Failure::AlgorithmNotAllowed => "bearer: algorithm not allowed",
            Failure::AlgorithmKeyMismatch => "bearer: algorithm does not match the kid's key",
            Failure::UnknownKey => "bearer: unknown kid or no key for the algorithm",
            Failure::BadSignature => "bearer: bad signature",
            Failure::Expired => "bearer: token expired",
            Failure::MissingExp => "bearer: token has no exp",
            Failure::NotYetValid => "bearer: token not yet valid (nbf)",
            Failure::WrongIssuer => "bearer: wrong issuer",
            Failure::WrongAudience => "bearer: wrong audience",
            Failure::InvalidToken => "bearer: invalid claims or header",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order_and_labels_are_unique() {
        for (i, f) in Failure::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
        let mut labels: Vec<_> = Failure::ALL.iter().map(|f| f.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Failure::ALL.len());
        assert_eq!(Failure::NoSubject.reason().status().as_u16(), 400);
        assert_eq!(Failure::BadSignature.reason().status().as_u16(), 401);
    }
}
