//! Request → typed [`Route`]: which Key Protect operation a request is.
//!
//! Both URL styles of key actions (`/keys/{id}/actions/wrap` and the deprecated
//! `/keys/{id}?action=wrap`) become the same route, so every later decision is the same for
//! both. Routes form a closed set: they are the `route` label of the metrics and name the
//! operation in an `errorMsg`. Anything unrecognised is [`Route::Other`] and is forwarded.

use http::Method;

use crate::reason::Operation;

macro_rules! routes {
    ($( $(#[$doc:meta])* $variant:ident => $label:literal, )+) => {
        /// A Key Protect operation, as far as the gateway needs to tell them apart.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Route {
            $( $(#[$doc])* $variant, )+
        }

        impl Route {
            /// Every route (the index of a route is `route as usize`).
            pub const ALL: &'static [Route] = &[$(Route::$variant,)+];

            /// The metric label, e.g. `key_wrap`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Route::$variant => $label,)+ }
            }
        }
    };
}

routes! {
    /// `POST /api/v2/keys`: create or import a key.
    KeyCreate => "key_create",
    /// `POST /api/v2/keys_with_policy_overrides`.
    KeyCreateWithPolicyOverrides => "key_create_with_policy_overrides",
    /// `GET`/`HEAD /api/v2/keys`.
    KeyList => "key_list",
    /// `GET /api/v2/keys/{id}`.
    KeyGet => "key_get",
    /// `GET /api/v2/keys/{id}/metadata`.
    KeyMetadata => "key_metadata",
    /// `PATCH /api/v2/keys/{id}`.
    KeyPatch => "key_patch",
    /// `DELETE /api/v2/keys/{id}`.
    KeyDelete => "key_delete",
    /// `DELETE /api/v2/keys/{id}/purge`.
    KeyPurge => "key_purge",
    /// `POST /api/v2/keys/{id}/restore` (or `?action=restore`).
    KeyRestore => "key_restore",
    /// `GET /api/v2/keys/{id}/versions`.
    KeyVersions => "key_versions",
    /// wrap action.
    KeyWrap => "key_wrap",
    /// unwrap action.
    KeyUnwrap => "key_unwrap",
    /// rewrap action.
    KeyRewrap => "key_rewrap",
    /// rotate action.
    KeyRotate => "key_rotate",
    /// enable action.
    KeyEnable => "key_enable",
    /// disable action.
    KeyDisable => "key_disable",
    /// setKeyForDeletion action.
    KeySetForDeletion => "key_set_for_deletion",
    /// unsetKeyForDeletion action.
    KeyUnsetForDeletion => "key_unset_for_deletion",
    /// sync action.
    KeySync => "key_sync",
    /// `/api/v2/keys/{id}/policies`.
    KeyPolicies => "key_policies",
    /// `/api/v2/keys/{id}/aliases/{alias}`.
    KeyAliases => "key_aliases",
    /// `GET /api/v2/keys/{id}/registrations`, `GET /api/v2/keys/registrations`: list.
    Registrations => "registrations",
    /// `POST /api/v2/keys/{id}/registrations/{urlEncodedResourceCRN}` (service to service).
    RegistrationCreate => "registration_create",
    /// `PUT /api/v2/keys/{id}/registrations/{urlEncodedResourceCRN}` (service to service).
    RegistrationReplace => "registration_replace",
    /// `PATCH /api/v2/keys/{id}/registrations/{urlEncodedResourceCRN}` (service to service).
    RegistrationUpdate => "registration_update",
    /// `DELETE /api/v2/keys/{id}/registrations/{urlEncodedResourceCRN}` (service to service).
    RegistrationDelete => "registration_delete",
    /// `POST /api/v2/keys/{id}/registrations?action=<a>` (`deactivate`; service to service).
    RegistrationAction => "registration_action",
    /// `GET /api/v2/instance/policies`.
    InstancePoliciesGet => "instance_policies_get",
    /// `PUT /api/v2/instance/policies`.
    InstancePoliciesPut => "instance_policies_put",
    /// `GET /api/v2/instance/allowed_ip_port`.
    AllowedIpPort => "allowed_ip_port",
    /// `/api/v2/import_token`.
    ImportToken => "import_token",
    /// `/api/v2/key_rings[/{id}]`.
    KeyRings => "key_rings",
    /// `/api/v2/kmip_adapters/...`.
    Kmip => "kmip",
    /// Anything else: forwarded and counted as `other`.
    Other => "other",
}

impl Route {
    /// The number of routes.
    pub const COUNT: usize = Route::ALL.len();

    /// The position of this route in [`Route::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Classifies a request by method, path and query.
    pub fn classify(method: &Method, path: &str, query: Option<&str>) -> Route {
        let Some(rest) = path.strip_prefix("/api/v2/") else {
            return Route::Other;
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut parts = rest.split('/');
        let first = parts.next().unwrap_or("");
        let second = parts.next();
        let third = parts.next();
        let fourth = parts.next();
        let extra = parts.next();
        let m = method;
        match (first, second, third, fourth, extra) {
            ("keys", None, ..) => match *m {
                Method::POST => Route::KeyCreate,
                Method::GET | Method::HEAD => Route::KeyList,
                _ => Route::Other,
            },
            ("keys_with_policy_overrides", None, ..) if m == Method::POST => {
                Route::KeyCreateWithPolicyOverrides
            }
            ("keys", Some("registrations"), None, ..) => registration_route(m, query, false),
            ("keys", Some(id), None, ..) if !id.is_empty() => match *m {
                Method::GET => Route::KeyGet,
                Method::PATCH => Route::KeyPatch,
                Method::DELETE => Route::KeyDelete,
                Method::POST => query_param(query, "action").map_or(Route::Other, action_route),
                _ => Route::Other,
            },
            ("keys", Some(_), Some(sub), None, _) => match (m.clone(), sub) {
                (Method::GET, "metadata") => Route::KeyMetadata,
                (Method::DELETE, "purge") => Route::KeyPurge,
                (Method::POST, "restore") => Route::KeyRestore,
                (Method::GET, "versions") => Route::KeyVersions,
                (_, "policies") => Route::KeyPolicies,
                (_, "registrations") => registration_route(m, query, false),
                _ => Route::Other,
            },
            // `{urlEncodedResourceCRN}`, and a CRN sent unencoded (its `a/<account>` part makes
            // more segments): every write under a key's registrations is a registration write.
            ("keys", Some(_), Some("registrations"), Some(_), _) => {
                registration_route(m, query, true)
            }
            ("keys", Some(_), Some("actions"), Some(action), None) if m == Method::POST => {
                action_route(action)
            }
            ("keys", Some(_), Some("aliases"), Some(_), None) => Route::KeyAliases,
            ("instance", Some("policies"), None, ..) => match *m {
                Method::GET => Route::InstancePoliciesGet,
                Method::PUT => Route::InstancePoliciesPut,
                _ => Route::Other,
            },
            ("instance", Some("allowed_ip_port"), None, ..) if m == Method::GET => {
                Route::AllowedIpPort
            }
            ("import_token", None, ..) => Route::ImportToken,
            ("key_rings", ..) => Route::KeyRings,
            ("kmip_adapters", ..) => Route::Kmip,
            _ => Route::Other,
        }
    }

    /// The request's route: the one the observe layer classified (a request extension) or, for a
    /// layer used without it, classified now.
    pub fn of<B>(req: &http::Request<B>) -> Route {
        req.extensions()
            .get::<Route>()
            .copied()
            .unwrap_or_else(|| Route::classify(req.method(), req.uri().path(), req.uri().query()))
    }

    /// True for the key actions Key Protect allows on root keys only (a standard key answers
    /// `KEY_ROOT_REQ_ERR`).
    pub fn needs_root_key(self) -> bool {
        matches!(
            self,
            Route::KeyWrap
                | Route::KeyUnwrap
                | Route::KeyRewrap
                | Route::KeyRotate
                | Route::KeyEnable
                | Route::KeyDisable
        )
    }

    /// True for the key actions (both URL styles): the root-key-only ones and the rest.
    pub fn is_key_action(self) -> bool {
        self.needs_root_key()
            || matches!(
                self,
                Route::KeySetForDeletion | Route::KeyUnsetForDeletion | Route::KeySync
            )
    }

    /// True for the registration writes (create, replace, update, delete, and the action-style
    /// form): Key Protect allows them to services only.
    pub fn is_registration_write(self) -> bool {
        matches!(
            self,
            Route::RegistrationCreate
                | Route::RegistrationReplace
                | Route::RegistrationUpdate
                | Route::RegistrationDelete
                | Route::RegistrationAction
        )
    }

    /// The operation this route names in an `errorMsg`.
    pub fn operation(self) -> Operation {
        match self {
            Route::KeyCreate | Route::KeyCreateWithPolicyOverrides => Operation::KEY_CREATE,
            Route::KeyList => Operation::KEY_LIST,
            Route::KeyGet | Route::KeyMetadata | Route::KeyVersions => Operation::KEY_RETRIEVE,
            Route::KeyPatch => Operation::KEY_UPDATE,
            Route::KeyDelete => Operation::KEY_DELETE,
            Route::KeyPurge => Operation::KEY_PURGE,
            Route::KeyRestore => Operation::KEY_RESTORE,
            Route::KeyDisable => Operation::KEY_DISABLE,
            Route::KeyEnable => Operation::KEY_ENABLE,
            r if r.is_key_action() => Operation::KEY_ACTION,
            Route::KeyPolicies => Operation::KEY_POLICY,
            Route::Registrations => Operation::REGISTRATION_LIST,
            Route::RegistrationCreate => Operation::REGISTRATION_CREATE,
            Route::RegistrationReplace => Operation::REGISTRATION_REPLACE,
            Route::RegistrationUpdate => Operation::REGISTRATION_UPDATE,
            Route::RegistrationDelete => Operation::REGISTRATION_DELETE,
            Route::RegistrationAction => Operation::REGISTRATION_ACTION,
            Route::InstancePoliciesPut => Operation::INSTANCE_POLICY_CREATE,
            Route::InstancePoliciesGet => Operation::INSTANCE_POLICY_RETRIEVE,
            _ => Operation::REQUEST,
        }
    }
}

/// A request under `/keys[/{id}]/registrations`, by method: `with_crn` when the path names a
/// resource CRN. A read is the list; a `POST` with `?action=` is the action-style form; any
/// other write is one of the four registration writes (on the collection path too, so that no
/// registration write is ever classified as something else).
fn registration_route(method: &Method, query: Option<&str>, with_crn: bool) -> Route {
    match *method {
        Method::GET | Method::HEAD => Route::Registrations,
        Method::POST if !with_crn && query_param(query, "action").is_some() => {
            Route::RegistrationAction
        }
        Method::POST => Route::RegistrationCreate,
        Method::PUT => Route::RegistrationReplace,
        Method::PATCH => Route::RegistrationUpdate,
        Method::DELETE => Route::RegistrationDelete,
        _ => Route::Other,
    }
}

/// The route of a key action by its name (`/actions/<name>` or `?action=<name>`).
fn action_route(action: &str) -> Route {
    match action {
        "wrap" => Route::KeyWrap,
        "unwrap" => Route::KeyUnwrap,
        "rewrap" => Route::KeyRewrap,
        "rotate" => Route::KeyRotate,
        "enable" => Route::KeyEnable,
        "disable" => Route::KeyDisable,
        "setKeyForDeletion" => Route::KeySetForDeletion,
        "unsetKeyForDeletion" => Route::KeyUnsetForDeletion,
        "sync" => Route::KeySync,
        "restore" => Route::KeyRestore,
        _ => Route::Other,
    }
}

/// The first value of `name` in a query string (no percent-decoding: the values the gateway
/// looks at are plain ASCII names).
pub fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_actions_are_the_nine_action_routes_and_root_only_ones_among_them() {
        let expected = [
            Route::KeyWrap,
            Route::KeyUnwrap,
            Route::KeyRewrap,
            Route::KeyRotate,
            Route::KeyEnable,
            Route::KeyDisable,
            Route::KeySetForDeletion,
            Route::KeyUnsetForDeletion,
            Route::KeySync,
        ];
        for route in Route::ALL {
            assert_eq!(route.is_key_action(), expected.contains(route), "{route:?}");
        }
        assert!(expected[..6].iter().all(|r| r.needs_root_key()));
        assert!(expected[6..].iter().all(|r| !r.needs_root_key()));
    }

    fn c(method: Method, uri: &str) -> Route {
        let (path, query) = uri
            .split_once('?')
            .map_or((uri, None), |(p, q)| (p, Some(q)));
        Route::classify(&method, path, query)
    }

    #[test]
    fn both_action_styles_are_the_same_route() {
        for (name, route) in [
            ("wrap", Route::KeyWrap),
            ("unwrap", Route::KeyUnwrap),
            ("rewrap", Route::KeyRewrap),
            ("rotate", Route::KeyRotate),
            ("enable", Route::KeyEnable),
            ("disable", Route::KeyDisable),
            ("setKeyForDeletion", Route::KeySetForDeletion),
            ("unsetKeyForDeletion", Route::KeyUnsetForDeletion),
        ] {
            assert_eq!(
                c(Method::POST, &format!("/api/v2/keys/abc/actions/{name}")),
                route
            );
            assert_eq!(
                c(Method::POST, &format!("/api/v2/keys/abc?action={name}")),
                route
            );
        }
        assert_eq!(
            c(Method::POST, "/api/v2/keys/abc?action=restore"),
            Route::KeyRestore
        );
        assert_eq!(
            c(Method::POST, "/api/v2/keys/abc/restore"),
            Route::KeyRestore
        );
    }

    #[test]
    fn classifies_the_api_surface() {
        assert_eq!(c(Method::POST, "/api/v2/keys"), Route::KeyCreate);
        assert_eq!(c(Method::GET, "/api/v2/keys?limit=10"), Route::KeyList);
        assert_eq!(c(Method::HEAD, "/api/v2/keys"), Route::KeyList);
        assert_eq!(
            c(Method::POST, "/api/v2/keys_with_policy_overrides"),
            Route::KeyCreateWithPolicyOverrides
        );
        assert_eq!(c(Method::GET, "/api/v2/keys/abc"), Route::KeyGet);
        assert_eq!(
            c(Method::GET, "/api/v2/keys/abc/metadata"),
            Route::KeyMetadata
        );
        assert_eq!(c(Method::PATCH, "/api/v2/keys/abc"), Route::KeyPatch);
        assert_eq!(c(Method::DELETE, "/api/v2/keys/abc"), Route::KeyDelete);
        assert_eq!(c(Method::DELETE, "/api/v2/keys/abc/purge"), Route::KeyPurge);
        assert_eq!(
            c(Method::GET, "/api/v2/keys/abc/versions"),
            Route::KeyVersions
        );
        assert_eq!(
            c(Method::PUT, "/api/v2/keys/abc/policies?policy=rotation"),
            Route::KeyPolicies
        );
        assert_eq!(
            c(Method::POST, "/api/v2/keys/abc/aliases/al"),
            Route::KeyAliases
        );
        assert_eq!(
            c(Method::GET, "/api/v2/keys/registrations"),
            Route::Registrations
        );
        assert_eq!(
            c(Method::GET, "/api/v2/keys/abc/registrations"),
            Route::Registrations
        );
        for (method, route) in [
            (Method::POST, Route::RegistrationCreate),
            (Method::PUT, Route::RegistrationReplace),
            (Method::PATCH, Route::RegistrationUpdate),
            (Method::DELETE, Route::RegistrationDelete),
            (Method::GET, Route::Registrations),
        ] {
            let crn = "crn:v1:bluemix:public:cloud-object-storage:global:a%2Facct:inst:bucket:b";
            let path = format!("/api/v2/keys/abc/registrations/{crn}");
            assert_eq!(c(method.clone(), &path), route, "{method} {path}");
            // A CRN sent unencoded has more segments: still the same registration operation.
            let raw = "/api/v2/keys/abc/registrations/crn:v1:x:a/acct:inst:bucket:b";
            assert_eq!(c(method.clone(), raw), route, "{method} {raw}");
            assert_eq!(route.is_registration_write(), method != Method::GET);
        }
        assert_eq!(
            c(
                Method::POST,
                "/api/v2/keys/abc/registrations?action=deactivate"
            ),
            Route::RegistrationAction
        );
        assert_eq!(
            c(Method::DELETE, "/api/v2/keys/registrations"),
            Route::RegistrationDelete
        );
        assert_eq!(
            c(Method::GET, "/api/v2/instance/policies?policy=allowedIP"),
            Route::InstancePoliciesGet
        );
        assert_eq!(
            c(Method::PUT, "/api/v2/instance/policies"),
            Route::InstancePoliciesPut
        );
        assert_eq!(
            c(Method::GET, "/api/v2/instance/allowed_ip_port"),
            Route::AllowedIpPort
        );
        assert_eq!(c(Method::POST, "/api/v2/import_token"), Route::ImportToken);
        assert_eq!(c(Method::GET, "/api/v2/key_rings"), Route::KeyRings);
        assert_eq!(c(Method::DELETE, "/api/v2/key_rings/r1"), Route::KeyRings);
        assert_eq!(
            c(Method::GET, "/api/v2/kmip_adapters/a/kmip_objects"),
            Route::Kmip
        );
        assert_eq!(c(Method::GET, "/healthz"), Route::Other);
        assert_eq!(
            c(Method::POST, "/api/v2/keys/abc/actions/bogus"),
            Route::Other
        );
        assert_eq!(c(Method::POST, "/api/v2/keys/abc"), Route::Other);
    }

    #[test]
    fn labels_are_unique() {
        for (i, a) in Route::ALL.iter().enumerate() {
            assert_eq!(a.index(), i);
            assert!(Route::ALL[i + 1..].iter().all(|b| a.as_str() != b.as_str()));
        }
    }
}
