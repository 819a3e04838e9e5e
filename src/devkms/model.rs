//! The dev KMS's records: keys and their versions, an instance's import token, policies and
//! registrations, as
//! the store holds them (the handlers that answer for them are `keys`, `import_token` and
//! `policies`).

use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::crypto::{self, ImportKeyPair, Secret};
use crate::policy::model::PolicyRecords;

/// The `type` of every key resource.
pub(super) const KEY_TYPE: &str = "application/vnd.ibm.kms.key+json";

/// Who the dev KMS says did something when the request names no one (no verified identity
/// from the gateway and no bearer token with a `sub`).
pub(crate) const ACTOR: &str = "devkms";

/// The rules with a waiting time, as `[upstream.dev_kms]` sets them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    /// A root key may be rotated once per this interval (Key Protect: one hour).
    pub(crate) rotation_interval: Duration,
    /// A deleted key may be purged this long after its deletion (Key Protect: four hours).
    pub(crate) purge_wait: Duration,
    /// A key may be enabled or restored this long after its last action (Key Protect: 30 s).
    pub(crate) action_wait: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            rotation_interval: Duration::from_secs(3600),
            purge_wait: Duration::from_secs(4 * 3600),
            action_wait: Duration::from_secs(30),
        }
    }
}

/// The largest standard-key payload Key Protect accepts.
pub(super) const STANDARD_PAYLOAD_MAX: usize = 7_500;

/// Key Protect's key states (the ones the dev KMS uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// 1: usable.
    Active = 1,
    /// 2: disabled.
    Suspended = 2,
    /// 5: deleted.
    Destroyed = 5,
}

/// One version of a key's material. A rotation adds one.
#[derive(Debug)]
pub(crate) struct Version {
    /// The version id; the first version's id is the key's id, as in Key Protect.
    pub(crate) id: String,
    pub(crate) created: String,
    pub(crate) material: Secret,
}

/// A key.
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) id: String,
    pub(crate) crn: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) aliases: Vec<String>,
    pub(crate) expiration_date: Option<String>,
    /// `true` for a standard key, `false` for a root key.
    pub(crate) extractable: bool,
    /// Created with key material the caller supplied.
    pub(crate) imported: bool,
    pub(crate) state: State,
    pub(crate) key_ring: String,
    pub(crate) created: String,
    /// The subject that created the key.
    pub(crate) created_by: String,
    pub(crate) updated: String,
    pub(crate) last_rotated: Option<String>,
    /// When the last rotation happened (the one-rotation-per-interval rule).
    pub(crate) last_rotated_at: Option<Instant>,
    /// When the key was deleted (while it is).
    pub(crate) deletion_date: Option<String>,
    /// When the key was deleted, for the purge waiting rule (while it is).
    pub(crate) deleted_at: Option<Instant>,
    /// The subject that deleted the key (while it is deleted).
    pub(crate) deleted_by: Option<String>,
    /// Whether deleting needs a prior `setKeyForDeletion` by another subject (dualAuthDelete
    /// at creation time, or the key's own dualAuthDelete policy).
    pub(crate) dual_auth_delete: bool,
    /// The subject that did `setKeyForDeletion`, until the key is deleted or the
    /// authorization is withdrawn.
    pub(crate) deletion_authorized_by: Option<String>,
    /// When the key's state last changed by an action (disable, enable, rotate, delete,
    /// restore): enable and restore wait `action_wait` after it.
    pub(crate) last_action_at: Option<Instant>,
    /// The key's own policies (`/keys/{id}/policies`).
    pub(crate) policies: KeyPolicies,
    /// Purged: gone for good (kept only so indexes into the key list stay valid).
    pub(crate) purged: bool,
    /// Oldest first; never empty.
    pub(super) versions: Vec<Version>,
}

impl Key {
    /// True for a root key.
    pub(crate) fn is_root(&self) -> bool {
        !self.extractable
    }

    /// True once deleted (and not restored).
    pub(crate) fn is_deleted(&self) -> bool {
        self.state == State::Destroyed
    }

    /// True when `alias` is one of the key's aliases.
    pub(crate) fn has_alias(&self, alias: &str) -> bool {
        self.aliases.iter().any(|a| a == alias)
    }

    /// The newest version.
    pub(crate) fn latest(&self) -> &Version {
        self.versions
            .last()
            .expect("a key is created with one version")
    }

    /// The version with this id.
    pub(crate) fn version(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }

    /// Adds a version with new material (a rotation).
    pub(crate) fn rotate(&mut self, material: Secret) {
        let date = now();
        self.last_rotated_at = Some(Instant::now());
        self.last_action_at = self.last_rotated_at;
        self.versions.push(Version {
            id: crypto::uuid_v4(),
            created: date.clone(),
            material,
        });
        self.updated = date.clone();
        self.last_rotated = Some(date);
    }

    /// True when the last action was less than `wait` ago.
    pub(crate) fn acted_within(&self, wait: Duration) -> bool {
        self.last_action_at.is_some_and(|at| at.elapsed() < wait)
    }

    /// The key as Key Protect renders it.
    pub(crate) fn resource(&self, view: View) -> KeyJson<'_> {
        let latest = self.latest();
        let payload = (view == View::Full && self.extractable && !self.is_deleted())
            .then(|| B64.encode(latest.material.expose()));
        KeyJson {
            kind: KEY_TYPE,
            id: &self.id,
            name: &self.name,
            aliases: &self.aliases,
            description: self.description.as_deref(),
            state: self.state as u8,
            expiration_date: self.expiration_date.as_deref(),
            extractable: self.extractable,
            crn: &self.crn,
            imported: self.imported,
            deleted: self.is_deleted(),
            key_ring_id: &self.key_ring,
            algorithm_type: "AES",
            creation_date: &self.created,
            created_by: &self.created_by,
            last_update_date: &self.updated,
            last_rotate_date: self.last_rotated.as_deref(),
            key_version: VersionJson::of(latest),
            dual_auth_delete: Enabled {
                enabled: self.dual_auth_delete,
            },
            deletion_date: self.deletion_date.as_deref(),
            deleted_by: self.deleted_by.as_deref(),
            payload,
        }
    }
}

/// Which rendering of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// `GET /keys/{id}`, create, restore: with a standard key's payload.
    Full,
    /// Metadata, lists, delete: never a payload.
    Metadata,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    aliases: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    state: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_date: Option<&'a str>,
    extractable: bool,
    crn: &'a str,
    imported: bool,
    deleted: bool,
    #[serde(rename = "keyRingID")]
    key_ring_id: &'a str,
    algorithm_type: &'static str,
    creation_date: &'a str,
    created_by: &'a str,
    last_update_date: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_rotate_date: Option<&'a str>,
    key_version: VersionJson<'a>,
    dual_auth_delete: Enabled,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_date: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
}

/// `{"id", "creationDate"}` of a key version.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VersionJson<'a> {
    id: &'a str,
    creation_date: &'a str,
}

impl<'a> VersionJson<'a> {
    pub(crate) fn of(version: &'a Version) -> Self {
        VersionJson {
            id: &version.id,
            creation_date: &version.created,
        }
    }
}

/// `{"enabled": bool}`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
pub(crate) struct Enabled {
    #[serde(default)]
    pub(crate) enabled: bool,
}

/// Who set a key policy, and when.
#[derive(Clone, Debug)]
pub(crate) struct Stamp {
    pub(crate) id: String,
    pub(crate) created: String,
    pub(crate) created_by: String,
    pub(crate) updated: String,
    pub(crate) updated_by: String,
}

impl Stamp {
    /// A new policy record set by `by` now.
    pub(crate) fn new(by: &str) -> Self {
        let date = now();
        Stamp {
            id: crypto::uuid_v4(),
            created: date.clone(),
            created_by: by.to_owned(),
            updated: date,
            updated_by: by.to_owned(),
        }
    }

    /// Records an update by `by` now.
    pub(crate) fn touch(&mut self, by: &str) {
        self.updated = now();
        by.clone_into(&mut self.updated_by);
    }
}

/// A key's own policies, as last put (`None`: never put).
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyPolicies {
    /// `rotation`: enabled, and the interval in months (1–12).
    pub(crate) rotation: Option<(Stamp, bool, Option<u8>)>,
    /// `dualAuthDelete`: the record of its last change (its value is `Key::dual_auth_delete`).
    pub(crate) dual_auth_delete: Option<Stamp>,
}

/// An instance's import token.
#[derive(Debug)]
pub(crate) struct ImportToken {
    pub(super) created: SystemTime,
    pub(super) expires: SystemTime,
    pub(super) max_retrievals: u32,
    pub(super) remaining: u32,
    pub(super) nonce: Vec<u8>,
    /// The key pair whose public key the token hands out.
    pub(super) key: ImportKeyPair,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TokenJson {
    creation_date: String,
    expiration_date: String,
    max_allowed_retrievals: u32,
    remaining_retrievals: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
}

impl ImportToken {
    /// The token; with `with_nonce` (a GET) also its public key (`payload`) and `nonce`.
    pub(super) fn render(&self, with_nonce: bool) -> TokenJson {
        TokenJson {
            creation_date: humantime::format_rfc3339_seconds(self.created).to_string(),
            expiration_date: humantime::format_rfc3339_seconds(self.expires).to_string(),
            max_allowed_retrievals: self.max_retrievals,
            remaining_retrievals: self.remaining,
            payload: with_nonce.then(|| self.key.public_key_payload()),
            nonce: with_nonce.then(|| B64.encode(&self.nonce)),
        }
    }
}

/// The instance policies of one instance.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    pub(super) records: PolicyRecords,
}

impl Policies {
    /// Whether keys created now need dual authorization to be deleted.
    pub(crate) fn dual_auth_delete(&self) -> bool {
        self.records.policies.dual_auth_delete == Some(true)
    }

    pub(super) fn allowed_ip(&self) -> bool {
        self.records
            .policies
            .allowed_ip
            .as_ref()
            .is_some_and(|p| p.enabled)
    }
}

/// The current time as Key Protect writes it: RFC 3339, whole seconds, UTC.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A registration: a root key protecting a cloud resource (by CRN), created by the service
/// that owns the resource (`registrations.rs` answers for them).
#[derive(Clone, Debug)]
pub(crate) struct Registration {
    /// The key's id (never an alias).
    pub(crate) key_id: String,
    pub(crate) resource_crn: String,
    pub(crate) prevent_key_deletion: bool,
    pub(crate) description: Option<String>,
    pub(crate) registration_metadata: Option<String>,
    pub(crate) key_version: (String, String),
    pub(crate) created_by: String,
    pub(crate) created: String,
    pub(crate) updated_by: String,
    pub(crate) updated: String,
}

/// A registration as Key Protect renders it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RegistrationJson<'a> {
    key_id: &'a str,
    resource_crn: &'a str,
    created_by: &'a str,
    creation_date: &'a str,
    updated_by: &'a str,
    last_updated: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    prevent_key_deletion: bool,
    key_version: VersionJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_metadata: Option<&'a str>,
}

impl Registration {
    /// Its Key Protect JSON.
    pub(crate) fn json(&self) -> RegistrationJson<'_> {
        RegistrationJson {
            key_id: &self.key_id,
            resource_crn: &self.resource_crn,
            created_by: &self.created_by,
            creation_date: &self.created,
            updated_by: &self.updated_by,
            last_updated: &self.updated,
            description: self.description.as_deref(),
            prevent_key_deletion: self.prevent_key_deletion,
            key_version: VersionJson {
                id: &self.key_version.0,
                creation_date: &self.key_version.1,
            },
            registration_metadata: self.registration_metadata.as_deref(),
        }
    }
}
