//! The per-layer account: the request taken through each layer's own decision, in the
//! stack's order — the layers' [`Check`]s (route, client_ip, instance, network, allowed_ip,
//! service_rules, key_access), the bearer layer's [`Auth`](crate::auth::Auth) and the body layer's
//! [`check`](body::check) — with the pure rule functions beside them to tell a shadowed
//! refusal and to name the rule. It predicts an outcome; the engine compares the prediction
//! with what the real stack did and never reports a verdict the stack did not reach.

use std::sync::Arc;

use http::{Request, header};

use super::facts;
use super::report::{ClientInfo, InstanceInfo, PrivateInfo, RouteInfo, Step, TokenInfo};
pub use super::verdict::Predicted;
use super::verdict::{LAYERS, allowed_ip_rule, header_text, shadowed, step};
use crate::auth::token::ServiceRule;
use crate::auth::{Auth, ServiceRules};
use crate::body::Body;
use crate::config::{Config, ForwardedHeader};
use crate::context;
use crate::layer::allowed_ip::{self, AllowedIpLayer};
use crate::layer::bearer;
use crate::layer::body::{self, KeyBody};
use crate::layer::client_ip::{ClientIpLayer, ClientIpRules};
use crate::layer::guard::{Check, GuardLayer};
use crate::layer::instance::{BLUEMIX_INSTANCE, InstanceLayer};
use crate::layer::key_access::{self, KeyAccessLayer};
use crate::layer::network::{Ingress, NetworkLayer, PrivateNetwork};
use crate::layer::route::RouteLayer;
use crate::layer::service_rules::{self, ServiceRulesLayer};
use crate::policy::model::PolicyType;
use crate::policy::{PoliciesConfig, PolicyApiMode, PolicyStore};
use crate::reason::{Reason, Rejection};
use crate::route::Route;

/// The per-layer account of one request.
#[derive(Debug)]
pub struct Narrative {
    /// The route.
    pub route: Option<RouteInfo>,
    /// The client address.
    pub client: Option<ClientInfo>,
    /// The instance and its policies.
    pub instance: Option<InstanceInfo>,
    /// Private or not, and why.
    pub private: Option<PrivateInfo>,
    /// The token.
    pub token: Option<TokenInfo>,
    /// The layers' verdicts.
    pub steps: Vec<Step>,
    /// The predicted outcome.
    pub predicted: Predicted,
}

/// The layers' own decision functions, built from the configuration the way the gateway
/// builds them.
#[derive(Debug)]
pub struct Narrator {
    route: RouteLayer,
    client_rules: Arc<ClientIpRules>,
    forwarded_header: ForwardedHeader,
    client_ip: ClientIpLayer,
    instance: InstanceLayer,
    private: Arc<PrivateNetwork>,
    private_by_client: bool,
    network: NetworkLayer,
    allowed_ip: AllowedIpLayer,
    auth: Option<Arc<Auth>>,
    service: ServiceRule,
    service_mode: ServiceRules,
    service_rules: ServiceRulesLayer,
    body_limit: usize,
    policy_api: PolicyApiMode,
    key_access: KeyAccessLayer,
    policies: PoliciesConfig,
}

impl Narrator {
    /// The decision functions for `config`, over the policies in `store` and the token
    /// decisions of `auth` (none: `[auth]` is disabled).
    pub fn new(config: &Config, store: &PolicyStore, auth: Option<Arc<Auth>>) -> Narrator {
        let client_rules = Arc::new(ClientIpRules::new(&config.client_ip));
        let private = Arc::new(PrivateNetwork::new(&config.network));
        Narrator {
            route: RouteLayer::new(config.routes.unknown),
            client_ip: ClientIpLayer::new(client_rules.clone()),
            client_rules,
            forwarded_header: config.client_ip.header,
            instance: InstanceLayer::new(store.clone()),
            network: NetworkLayer::new(private.clone()),
            private,
            private_by_client: config.network.private_by_client_address,
            allowed_ip: AllowedIpLayer::new(),
            auth,
            service: crate::auth::verify::service_rule(&config.auth),
            service_mode: config.auth.service_rules,
            service_rules: ServiceRulesLayer::new(config.auth.service_rules),
            body_limit: config.body.limit,
            policy_api: config.policies.api,
            key_access: KeyAccessLayer::new(),
            policies: config.policies.clone(),
        }
    }

    /// Takes `req` through every layer's decision, in order, until one refuses; the layers
    /// after it are listed as not reached.
    /// `etcd_revision`: the shared store's revision, when the policies come from it.
    pub fn narrate(&self, req: Request<Body>, etcd_revision: Option<i64>) -> Narrative {
        let mut n = self.walk(req, etcd_revision);
        let last = n.steps.last().map(|s| s.layer);
        let after = last
            .and_then(|l| LAYERS.iter().position(|x| *x == l))
            .map_or(LAYERS.len(), |i| i + 1);
        for layer in &LAYERS[after..] {
            n.steps.push(step(layer, "skip", "not reached"));
        }
        n
    }

    fn walk(&self, mut req: Request<Body>, etcd_revision: Option<i64>) -> Narrative {
        let mut n = Narrative {
            route: None,
            client: None,
            instance: None,
            private: None,
            token: None,
            steps: Vec::new(),
            predicted: Predicted::Forwarded,
        };
        // route
        let sent = req.uri().to_string();
        if let Some(refused) = self.guard(&mut n, "route", &self.route, &mut req) {
            n.predicted = refused;
            return n;
        }
        let route = context::route(&req);
        let canonical_target = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().to_string(), ToString::to_string);
        n.route = Some(RouteInfo {
            name: route.as_str(),
            operation: route.operation().subject(),
            rewritten: req.uri().to_string() != sent,
            canonical_target: canonical_target.clone(),
        });
        n.steps.push(step(
            "route",
            "pass",
            format!(
                "{} ({}), canonical target {canonical_target}",
                route.as_str(),
                route.operation().subject()
            ),
        ));
        // client_ip (the walk reads the forwarded headers before the layer removes Forwarded)
        if let Some(peer) = context::conn(req.extensions()).map(|c| c.peer.ip()) {
            let info = facts::client(
                &self.client_rules,
                self.forwarded_header,
                peer,
                req.headers(),
            );
            n.steps.push(step(
                "client_ip",
                "pass",
                format!("client {}: {}", info.address, info.derivation),
            ));
            n.client = Some(info);
        }
        if let Some(refused) = self.guard(&mut n, "client_ip", &self.client_ip, &mut req) {
            n.predicted = refused;
            return n;
        }
        // instance
        let header_sent = header_text(&req, &BLUEMIX_INSTANCE);
        if let Some(refused) = self.guard(&mut n, "instance", &self.instance, &mut req) {
            n.instance = Some(InstanceInfo {
                header: header_sent,
                canonical: None,
                policy: super::report::PolicyOrigin {
                    source: "refused",
                    location: None,
                    note: None,
                },
                policies: Vec::new(),
            });
            n.predicted = refused;
            return n;
        }
        let policy = context::policy(req.extensions()).cloned();
        if let Some(policy) = &policy {
            let origin = facts::origin(&self.policies, policy, etcd_revision);
            let detail = format!(
                "policies: {}{}",
                origin.source,
                origin
                    .location
                    .as_deref()
                    .map_or(String::new(), |l| format!(" ({l})"))
            );
            n.instance = Some(InstanceInfo {
                header: header_sent,
                canonical: header_text(&req, &BLUEMIX_INSTANCE),
                policy: origin,
                policies: facts::policies(policy),
            });
            n.steps.push(step("instance", "pass", detail));
        }
        // network
        let client = context::client_ip(req.extensions());
        let host = header_text(&req, &header::HOST);
        let ingress = Ingress {
            listener: context::conn(req.extensions()).map(|c| c.listener),
            host: host.as_deref(),
            client,
        };
        n.private = Some(facts::private(
            &self.private,
            &ingress,
            self.private_by_client,
        ));
        let network_rule = policy.as_ref().map(|p| {
            (
                self.private.check(p, &ingress),
                p.shadowed(PolicyType::AllowedNetwork),
            )
        });
        let private_word = if self.private.is_private(&ingress) {
            "private"
        } else {
            "not private"
        };
        match network_rule {
            None => n
                .steps
                .push(step("network", "skip", "no instance policies")),
            Some((Ok(()), _)) => n.steps.push(step(
                "network",
                "pass",
                format!(
                    "allowedNetwork {}; request {private_word}",
                    if policy.as_ref().is_some_and(|p| p.private_only) {
                        "private-only"
                    } else {
                        "not private-only"
                    }
                ),
            )),
            Some((Err(reason), true)) => n.steps.push(shadowed(
                "network",
                reason,
                "allowedNetwork private-only, request not private",
            )),
            Some((Err(_), false)) => {}
        }
        if let Some(refused) = self.guard(&mut n, "network", &self.network, &mut req) {
            n.predicted = refused.with_rule(
                "allowedNetwork private-only: the request is not private",
                &mut n.steps,
            );
            return n;
        }
        // allowed_ip
        match (policy.as_ref(), client) {
            (Some(p), Some(client)) => match allowed_ip::check(p, Some(route), client) {
                Ok(()) if p.allowed_ip.is_none() => {
                    n.steps
                        .push(step("allowed_ip", "pass", "no allowedIP policy"))
                }
                Ok(()) if route == Route::AllowedIpPort => n.steps.push(step(
                    "allowed_ip",
                    "pass",
                    "GET /api/v2/instance/allowed_ip_port is exempt",
                )),
                Ok(()) => n.steps.push(step(
                    "allowed_ip",
                    "pass",
                    format!("client {client} is inside an allowedIP range"),
                )),
                Err(reason) if p.shadowed(PolicyType::AllowedIp) => {
                    n.steps.push(shadowed(
                        "allowed_ip",
                        reason,
                        &allowed_ip_rule(reason, client),
                    ));
                }
                Err(_) => {}
            },
            _ => n
                .steps
                .push(step("allowed_ip", "skip", "no instance policies")),
        }
        if let Some(refused) = self.guard(&mut n, "allowed_ip", &self.allowed_ip, &mut req) {
            let rule = client.map_or_else(String::new, |c| {
                allowed_ip_rule(refused.reason().unwrap_or(Reason::Unauthorized), c)
            });
            n.predicted = refused.with_rule(&rule, &mut n.steps);
            return n;
        }
        // bearer
        match &self.auth {
            None => {
                n.token = Some(super::report::TokenInfo {
                    result: "not checked",
                    failure: None,
                    subject: None,
                    verified: false,
                    caller: None,
                    expires: None,
                    expires_at: None,
                });
                n.steps.push(step(
                    "bearer",
                    "pass",
                    "[auth] is disabled: tokens are not checked",
                ));
            }
            Some(auth) => match auth.check(req.headers()) {
                Ok((identity, admission)) => {
                    let info =
                        facts::token(req.headers(), &self.service, Ok((&identity, admission)));
                    n.steps.push(step(
                        "bearer",
                        "pass",
                        format!(
                            "token {}; subject {} ({})",
                            info.result,
                            identity.subject,
                            info.caller.unwrap_or("user")
                        ),
                    ));
                    n.token = Some(info);
                    context::set_identity(req.extensions_mut(), identity);
                }
                Err(failure) => {
                    n.token = Some(facts::token(req.headers(), &self.service, Err(failure)));
                    let response = bearer::rejection(failure, Some(route));
                    let mut refused = step("bearer", "refuse", failure.note());
                    refused.code = Some(failure.reason().code());
                    n.steps.push(refused);
                    n.predicted = Predicted::Refused {
                        layer: "bearer",
                        rule: failure.note().to_owned(),
                        response: Box::new(response),
                    };
                    return n;
                }
            },
        }
        // service_rules
        if let Some(refused) = self.service_rules(&mut n, route, &mut req) {
            n.predicted = refused;
            return n;
        }
        // body
        if let Some(refused) = self.body(&mut n, route, &mut req) {
            n.predicted = refused;
            return n;
        }
        // policy_api
        let answers = self.policy_api == PolicyApiMode::Own
            && matches!(
                route,
                Route::InstancePoliciesGet | Route::InstancePoliciesPut
            );
        if answers {
            n.steps.push(Step {
                layer: "policy_api",
                verdict: "answer",
                detail: "policies.api = \"own\": the gateway answers the policy API itself"
                    .to_owned(),
                code: None,
            });
            n.predicted = Predicted::Answered;
            return n;
        }
        let detail = match (self.policy_api, route) {
            (PolicyApiMode::Mirror, Route::InstancePoliciesPut) => {
                "policies.api = \"mirror\": forwarded; applied by the gateway when the backend answers 2xx"
            }
            (_, Route::InstancePoliciesGet | Route::InstancePoliciesPut) => {
                "policies.api = \"passthrough\": forwarded"
            }
            _ => "not a policy API request",
        };
        n.steps.push(step("policy_api", "pass", detail));
        // key_access
        if let Some(p) = &policy {
            let kb = req.extensions().get::<KeyBody>().copied();
            let rule = key_access::check(
                route,
                kb.as_ref(),
                p.model.key_create_import_access.as_ref(),
            );
            match rule {
                Ok(()) => n.steps.push(step(
                    "key_access",
                    "pass",
                    if p.model
                        .key_create_import_access
                        .as_ref()
                        .is_some_and(|k| k.enabled)
                    {
                        "keyCreateImportAccess allows it"
                    } else {
                        "no keyCreateImportAccess policy"
                    },
                )),
                Err(refusal) if p.shadowed(PolicyType::KeyCreateImportAccess) => {
                    n.steps.push(shadowed(
                        "key_access",
                        refusal.rejection.reason(),
                        refusal.note,
                    ));
                }
                Err(refusal) => {
                    // The layer itself decides (and renders) the refusal.
                    if let Some(refused) =
                        self.guard(&mut n, "key_access", &self.key_access, &mut req)
                    {
                        n.predicted = refused.with_rule(refusal.note, &mut n.steps);
                        return n;
                    }
                }
            }
        } else {
            n.steps
                .push(step("key_access", "skip", "no instance policies"));
        }
        n.steps
            .push(step("proxy", "forward", "to the upstream KMS"));
        n
    }

    /// Runs the service_rules layer's own check on the bearer layer's identity; names the
    /// rule (and a shadowed refusal) with [`service_rules::check`].
    fn service_rules(
        &self,
        n: &mut Narrative,
        route: Route,
        req: &mut Request<Body>,
    ) -> Option<Predicted> {
        let identity = context::identity(req.extensions());
        let rule = service_rules::check(route, identity);
        let detail = match (&rule, self.service_mode, identity) {
            (_, ServiceRules::Off, _) => "auth.service_rules = \"off\"",
            (_, _, None) => "no caller identity (auth disabled): not decided",
            (Ok(()), _, Some(_)) => "the caller may do this",
            (Err(refusal), ServiceRules::Shadow, Some(_)) => {
                n.steps.push(shadowed(
                    "service_rules",
                    refusal.rejection.reason(),
                    refusal.note,
                ));
                return None;
            }
            (Err(refusal), _, Some(_)) => refusal.note,
        };
        match self.guard(n, "service_rules", &self.service_rules, req) {
            Some(refused) => Some(refused.with_rule(detail, &mut n.steps)),
            None => {
                n.steps.push(step("service_rules", "pass", detail));
                None
            }
        }
    }

    /// Runs the body layer's decision: the limit, then the shape checks; a create, import,
    /// rotate or restore body's [`KeyBody`] goes into the request for key_access.
    fn body(&self, n: &mut Narrative, route: Route, req: &mut Request<Body>) -> Option<Predicted> {
        if !body::inspects(route) {
            n.steps
                .push(step("body", "skip", "this route's body is not read"));
            return None;
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bytes = req.body().as_bytes().unwrap_or_default();
        let result = if declared.is_some_and(|l| l > self.body_limit as u64)
            || bytes.len() > self.body_limit
        {
            Err(Rejection::new(Reason::BodyTooLarge).operation(route.operation()))
        } else {
            body::check(route, req.uri().query(), bytes)
        };
        match result {
            Ok(kb) => {
                n.steps
                    .push(step("body", "pass", "the body has the operation's shape"));
                if let Some(kb) = kb {
                    req.extensions_mut().insert(kb);
                }
                None
            }
            Err(rejection) => {
                let rule = rejection.wire_message().into_owned();
                let mut refused = step("body", "refuse", rule.clone());
                refused.code = Some(rejection.reason().code());
                n.steps.push(refused);
                Some(Predicted::Refused {
                    layer: "body",
                    rule,
                    response: Box::new(rejection.into_response()),
                })
            }
        }
    }

    /// Runs a guarding layer's own [`Check`]; on a refusal, records the step and returns the
    /// prediction.
    fn guard<C: Check>(
        &self,
        n: &mut Narrative,
        layer: &'static str,
        guard: &GuardLayer<C>,
        req: &mut Request<Body>,
    ) -> Option<Predicted> {
        let rejection = guard.check().check(req).err()?;
        let rule = rejection.wire_message().into_owned();
        let mut refused = step(layer, "refuse", rule.clone());
        refused.code = Some(rejection.reason().code());
        n.steps.push(refused);
        Some(Predicted::Refused {
            layer,
            rule,
            response: Box::new(rejection.into_response()),
        })
    }
}
