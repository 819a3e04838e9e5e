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

impl Policy {
    /// The policy as Key Protect stores it: a disabled policy's attributes reset to their
    /// defaults (a PUT's omitted attributes already took theirs when it was parsed).
    pub fn normalised(self) -> Policy {
        match self {
            Policy::AllowedIp(p) if !p.enabled => Policy::AllowedIp(AllowedIp::default()),
            Policy::AllowedNetwork(p) if !p.enabled => {
                Policy::AllowedNetwork(AllowedNetwork::default())
            }
            Policy::KeyCreateImportAccess(p) if !p.enabled => {
                Policy::KeyCreateImportAccess(KeyCreateImportAccess::default())
            }
            Policy::Rotation(p) if !p.enabled => Policy::Rotation(Rotation::default()),
            other => other,
        }
    }
}

impl PolicyType {
    /// A dense index, `0..ALL.len()`.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Who set one policy and when, as a GET document shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyMeta {
    /// `createdBy`
    pub created_by: String,
    /// `creationDate` (RFC 3339)
    pub creation_date: String,
    /// `updatedBy`
    pub updated_by: String,
    /// `lastUpdated` (RFC 3339)
    pub last_updated: String,
}

/// An instance's policies with their metadata: what a GET document holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyRecords {
    /// The policies.
    pub policies: InstancePolicies,
    /// Per policy type (by [`PolicyType::index`]): who set it and when, if known.
    pub meta: [Option<PolicyMeta>; PolicyType::ALL.len()],
}

impl PolicyRecords {
    /// Sets one policy and its metadata.
    pub fn set(&mut self, policy: Policy, meta: Option<PolicyMeta>) {
        self.meta[policy.policy_type().index()] = meta;
        self.policies.set(policy);
    }

    /// Applies a successful `PUT` by `subject` at time `now`: each policy is normalised and
    /// replaces the stored one; its creation is kept, its update is stamped.
    pub fn update(&mut self, policies: impl IntoIterator<Item = Policy>, subject: &str, now: &str) {
        for policy in policies {
            let slot = &mut self.meta[policy.policy_type().index()];
            let meta = match slot.take() {
                Some(old) => PolicyMeta {
                    updated_by: subject.to_owned(),
                    last_updated: now.to_owned(),
                    ..old
                },
                None => PolicyMeta {
                    created_by: subject.to_owned(),
                    creation_date: now.to_owned(),
                    updated_by: subject.to_owned(),
                    last_updated: now.to_owned(),
                },
            };
            self.set(policy.normalised(), Some(meta));
        }
    }
}
