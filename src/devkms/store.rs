//! The dev KMS's state: one [`Instance`] per `bluemix-instance`, created on first use, all in
//! memory behind one mutex.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

pub(crate) use super::model::now;
use super::model::{ImportToken, Key, Policies, Registration};

/// The key ring every instance has, and keys created without `X-Kms-Key-Ring` go to.
pub(crate) const DEFAULT_RING: &str = "default";

/// A key ring.
#[derive(Debug)]
pub(crate) struct KeyRing {
    pub(crate) id: String,
    pub(crate) created: String,
    pub(crate) created_by: String,
}

/// Every instance the dev KMS has seen.
#[derive(Debug, Default)]
pub(crate) struct Store {
    instances: Mutex<Instances>,
}

#[derive(Debug, Default)]
struct Instances {
    by_id: HashMap<String, Instance>,
    /// The private endpoint port the next instance gets (`allowed_ip_port`).
    next_port: u16,
}

/// The first private endpoint port handed out (the port Key Protect's own examples show).
const FIRST_PRIVATE_PORT: u16 = 15008;

impl Store {
    /// Runs `f` on the instance `id`, creating it on first use.
    ///
    /// The whole request runs under the lock: the dev KMS is for trying things out and for
    /// tests, and its work per request is microseconds.
    pub(crate) fn with_instance<R>(&self, id: &str, f: impl FnOnce(&mut Instance) -> R) -> R {
        let mut instances = self
            .instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let instances = &mut *instances;
        if !instances.by_id.contains_key(id) {
            let port = FIRST_PRIVATE_PORT.wrapping_add(instances.next_port);
            instances.next_port = instances.next_port.wrapping_add(1);
            instances
                .by_id
                .insert(id.to_owned(), Instance::new(id.to_owned(), port));
        }
        let instance = instances
            .by_id
            .get_mut(id)
            .expect("the instance was inserted above");
        f(instance)
    }
}

/// One Key Protect instance: its keys, key rings, instance policies and import token.
#[derive(Debug)]
pub(crate) struct Instance {
    /// The `bluemix-instance` id.
    pub(crate) id: String,
    /// Keys in creation order. Keys are never removed (deletion is a state), so indexes into
    /// this list stay valid.
    keys: Vec<Key>,
    /// Key id → index in `keys`.
    index: HashMap<String, usize>,
    /// Key rings in creation order; `default` first.
    pub(crate) key_rings: Vec<KeyRing>,
    /// Instance policies as last put.
    pub(crate) policies: Policies,
    /// The instance's import token, if one was created.
    pub(crate) import_token: Option<ImportToken>,
    /// The private endpoint port `GET /instance/allowed_ip_port` reports.
    pub(crate) private_port: u16,
    /// Registrations, in creation order.
    pub(crate) registrations: Vec<Registration>,
}

impl Instance {
    fn new(id: String, private_port: u16) -> Self {
        Instance {
            id,
            keys: Vec::new(),
            index: HashMap::new(),
            key_rings: vec![KeyRing {
                id: DEFAULT_RING.to_owned(),
                created: now(),
                created_by: super::model::ACTOR.to_owned(),
            }],
            policies: Policies::default(),
            import_token: None,
            private_port,
            registrations: Vec::new(),
        }
    }

    /// Every key not purged, in creation order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter().filter(|k| !k.purged)
    }

    /// The key (not purged) with this id or alias.
    pub(crate) fn key_mut(&mut self, id_or_alias: &str) -> Option<&mut Key> {
        let position = match self.index.get(id_or_alias) {
            Some(&i) => i,
            None => self
                .keys
                .iter()
                .position(|k| !k.purged && k.has_alias(id_or_alias))?,
        };
        self.keys.get_mut(position).filter(|k| !k.purged)
    }

    /// True when a key already uses `alias`.
    pub(crate) fn alias_taken(&self, alias: &str) -> bool {
        self.keys().any(|k| k.has_alias(alias))
    }

    /// Moves every key (purged ones too) of the ring `from` to the ring `to`.
    pub(crate) fn move_ring_keys(&mut self, from: &str, to: &str) {
        for key in self.keys.iter_mut().filter(|k| k.key_ring == from) {
            to.clone_into(&mut key.key_ring);
        }
    }

    /// The key ring with this id.
    pub(crate) fn key_ring(&self, id: &str) -> Option<&KeyRing> {
        self.key_rings.iter().find(|r| r.id == id)
    }

    /// Adds a new key and returns it.
    pub(crate) fn insert_key(&mut self, key: Key) -> &Key {
        let position = self.keys.len();
        self.index.insert(key.id.clone(), position);
        self.keys.push(key);
        &self.keys[position]
    }

    /// Whether registrations keep the key `key_id`: `(any, any with preventKeyDeletion)`.
    pub(crate) fn registered(&self, key_id: &str) -> (bool, bool) {
        let mut of_key = self.registrations.iter().filter(|r| r.key_id == key_id);
        let any = of_key.clone().next().is_some();
        (any, of_key.any(|r| r.prevent_key_deletion))
    }

    /// Removes the registrations of `key_id` (a forced deletion does).
    pub(crate) fn unregister(&mut self, key_id: &str) {
        self.registrations.retain(|r| r.key_id != key_id);
    }

    /// The CRN of a resource of this instance, e.g. `…:key:<id>`.
    pub(crate) fn crn(&self, kind: &str, id: &str) -> String {
        format!(
            "crn:v1:bluemix:public:kms:local:a/devkms:{}:{kind}:{id}",
            self.id
        )
    }
}
