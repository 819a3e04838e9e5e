//! The Key Protect instance-policy model: what `GET /api/v2/instance/policies` returns and
//! `PUT` takes, as typed values. Parsing and validation live in [`super::parse`].

use ipnet::IpNet;

/// The instance policy types Key Protect knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyType {
    /// `allowedIP`
    AllowedIp,
    /// `allowedNetwork`
    AllowedNetwork,
    /// `keyCreateImportAccess`
    KeyCreateImportAccess,
    /// `dualAuthDelete`
    DualAuthDelete,
    /// `metrics`
    Metrics,
    /// `rotation`
    Rotation,
}

impl PolicyType {
    /// Every policy type.
    pub const ALL: [PolicyType; 6] = [
        PolicyType::AllowedIp,
        PolicyType::AllowedNetwork,
        PolicyType::KeyCreateImportAccess,
        PolicyType::DualAuthDelete,
        PolicyType::Metrics,
        PolicyType::Rotation,
    ];

    /// The wire name, e.g. `allowedIP`.
    pub const fn as_str(self) -> &'static str {
        match self {
            PolicyType::AllowedIp => "allowedIP",
            PolicyType::AllowedNetwork => "allowedNetwork",
            PolicyType::KeyCreateImportAccess => "keyCreateImportAccess",
            PolicyType::DualAuthDelete => "dualAuthDelete",
            PolicyType::Metrics => "metrics",
            PolicyType::Rotation => "rotation",
        }
    }

    /// The type with this wire name.
    pub fn from_name(name: &str) -> Option<PolicyType> {
        PolicyType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// `allowedIP`: the client address must be in one of the ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedIp {
    /// Whether the policy is enforced.
    pub enabled: bool,
    /// The allowed ranges (IPv4 and/or IPv6 CIDRs).
    pub allowed_ip: Vec<IpNet>,
}

/// The values of `allowed_network`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetworkAccess {
    /// `public-and-private` (Key Protect's default).
    #[default]
    PublicAndPrivate,
    /// `private-only`.
    PrivateOnly,
}

impl NetworkAccess {
    /// The wire value.
    pub const fn as_str(self) -> &'static str {
        match self {
            NetworkAccess::PublicAndPrivate => "public-and-private",
            NetworkAccess::PrivateOnly => "private-only",
        }
    }
}

/// `allowedNetwork`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedNetwork {
    /// Whether the policy is enforced.
    pub enabled: bool,
    /// Which networks may reach the instance.
    pub allowed_network: NetworkAccess,
}

/// `keyCreateImportAccess`. Omitted attributes take Key Protect's defaults (all `true` but
/// `enforce_token`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCreateImportAccess {
    /// Whether the policy is enforced.
    pub enabled: bool,
    /// May root keys be created?
    pub create_root_key: bool,
    /// May standard keys be created?
    pub create_standard_key: bool,
    /// May root keys be imported?
    pub import_root_key: bool,
    /// May standard keys be imported?
    pub import_standard_key: bool,
    /// Must imported key material come with an import token (encryptedNonce + iv)?
    pub enforce_token: bool,
}

impl Default for KeyCreateImportAccess {
    fn default() -> Self {
        KeyCreateImportAccess {
            enabled: false,
            create_root_key: true,
            create_standard_key: true,
            import_root_key: true,
            import_standard_key: true,
            enforce_token: false,
        }
    }
}

/// `rotation`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Whether the policy is enforced.
    pub enabled: bool,
    /// Months between rotations, 1–12.
    pub interval_month: Option<u8>,
}

/// All instance policies of one instance. `None` means "never set".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstancePolicies {
    /// allowedIP
    pub allowed_ip: Option<AllowedIp>,
    /// allowedNetwork
    pub allowed_network: Option<AllowedNetwork>,
    /// keyCreateImportAccess
    pub key_create_import_access: Option<KeyCreateImportAccess>,
    /// dualAuthDelete (`enabled` only)
    pub dual_auth_delete: Option<bool>,
    /// metrics (`enabled` only)
    pub metrics: Option<bool>,
    /// rotation
    pub rotation: Option<Rotation>,
}

/// One instance policy, as one resource of a policy document carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `allowedIP`
    AllowedIp(AllowedIp),
    /// `allowedNetwork`
    AllowedNetwork(AllowedNetwork),
    /// `keyCreateImportAccess`
    KeyCreateImportAccess(KeyCreateImportAccess),
    /// `dualAuthDelete` (`enabled`)
    DualAuthDelete(bool),
    /// `metrics` (`enabled`)
    Metrics(bool),
    /// `rotation`
    Rotation(Rotation),
}

impl Policy {
    /// The type of this policy.
    pub const fn policy_type(&self) -> PolicyType {
        match self {
            Policy::AllowedIp(_) => PolicyType::AllowedIp,
            Policy::AllowedNetwork(_) => PolicyType::AllowedNetwork,
            Policy::KeyCreateImportAccess(_) => PolicyType::KeyCreateImportAccess,
            Policy::DualAuthDelete(_) => PolicyType::DualAuthDelete,
            Policy::Metrics(_) => PolicyType::Metrics,
            Policy::Rotation(_) => PolicyType::Rotation,
        }
    }
}

impl InstancePolicies {
    /// Sets (replaces) one policy, as a successful `PUT` of that policy does.
    pub fn set(&mut self, policy: Policy) {
        match policy {
            Policy::AllowedIp(p) => self.allowed_ip = Some(p),
            Policy::AllowedNetwork(p) => self.allowed_network = Some(p),
            Policy::KeyCreateImportAccess(p) => self.key_create_import_access = Some(p),
            Policy::DualAuthDelete(enabled) => self.dual_auth_delete = Some(enabled),
            Policy::Metrics(enabled) => self.metrics = Some(enabled),
            Policy::Rotation(p) => self.rotation = Some(p),
        }
    }
}
