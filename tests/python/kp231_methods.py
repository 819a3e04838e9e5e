"""Calls every public API method of keyprotect 2.3.1's client (redstone 0.6.2's KeyProtect, the
older client: it PUTs instance policies without `?policy=` and rotates with no body) through
kmsgate on the quickstart configuration, one row per call (see matrix.py). The reference's
reproductions of UNAUTHORIZED_ERR, CONFIG_RULE_CONFLICT_ERR and KEY_CREATE_IMPORT_ACCESS_ERR are
checked byte for byte, each on an instance of its own.

    KP_URL=http://127.0.0.1:8080 KP_PRIVATE_URL=http://127.0.0.1:8081 KP_INSTANCE=<id> \
    KP_TOKEN=<token> KP_TOKEN_2=<token> KP_CATALOGUE=tests/fixtures/reason-catalogue.json \
      python kp231_methods.py

KP_TOKEN_2 is a token for a second subject (dual authorization needs two users). Use a fresh
instance id each run.
"""

import os

import keyprotect
import redstone
import redstone.crypto
from redstone.client import KeyProtect

from matrix import Matrix

URL = os.environ["KP_URL"]
INSTANCE = os.environ["KP_INSTANCE"]
responses = []


class Token:
    """A raw bearer token as redstone's credentials (it calls get_token() per request)."""

    def __init__(self, token: str):
        self.token = token

    def get_token(self) -> str:
        return self.token


def client(instance: str, token: str = os.environ["KP_TOKEN"], url: str = URL):
    kp = keyprotect.Client(credentials=Token(token), region="us-south", service_instance_id=instance, endpoint_url=url)
    kp.session.hooks["response"].append(lambda r, *args, **kwargs: responses.append(r))
    return kp


def api_methods() -> list:
    """KeyProtect's own public methods (its deprecated aliases too), less the one that makes a URL."""
    return [
        name
        for name, value in vars(KeyProtect).items()
        if callable(value) and not isinstance(value, type) and not name.startswith("_") and name != "endpoint_for_region"
    ]


m = Matrix(KeyProtect.KeyProtectError, lambda e: e.http_error.response, lambda _: responses[-1].status_code)
kp = client(INSTANCE)
kp2 = client(INSTANCE, os.environ["KP_TOKEN_2"])

root = m.call("create_key", "root key", lambda: kp.create_key("root", root=True))["id"]
std = m.call("create_key", "standard key", lambda: kp.create_key("std"))["id"]
imported = m.call("create_key", "imported root key (payload)", lambda: kp.create_key("imported", payload=os.urandom(32), root=True))["id"]
m.call("create_key", "root key with an alias", lambda: kp.create_key("aliased", root=True, alias_list=["kp231-alias"]))
legacy = m.call("create", "deprecated name of create_key", lambda: kp.create("legacy", root=True))["id"]
m.call("list_keys", "", kp.list_keys)
m.call("keys", "deprecated name of list_keys", kp.keys)
m.call("get_key", "by id", lambda: kp.get_key(std))
m.call("get_key", "by alias", lambda: kp.get_key("kp231-alias"))
m.call("get", "deprecated name of get_key", lambda: kp.get(root))
wrapped = m.call("wrap", "", lambda: kp.wrap(root, os.urandom(32), aad=["kp231"]))
m.call("wrap", "no plaintext (the KMS makes a DEK)", lambda: kp.wrap(root, None))
m.call("unwrap", "", lambda: kp.unwrap(root, wrapped["ciphertext"], aad=["kp231"]))
m.call("rewrap", "", lambda: kp.rewrap(root, wrapped["ciphertext"], aad=["kp231"]))
m.call("rotate_key", "no body", lambda: kp.rotate_key(root))
m.call("rotate_key", "again within the hour", lambda: kp.rotate_key(root))
m.call("rotate_key", "imported root key, new payload", lambda: kp.rotate_key(imported, payload=os.urandom(32)))
m.call("rotate", "deprecated name of rotate_key", lambda: kp.rotate(legacy))
m.call("rotate_key", "standard key", lambda: kp.rotate_key(std))
m.call("disable_key", "", lambda: kp.disable_key(legacy))
m.call("enable_key", "right after disable", lambda: kp.enable_key(legacy))
m.call("initiate_dual_auth_delete", "key without dual auth", lambda: kp.initiate_dual_auth_delete(root))
m.call("cancel_dual_auth_delete", "key without dual auth", lambda: kp.cancel_dual_auth_delete(root))
dual = m.call("create_key", "root key for dual auth", lambda: kp.create_key("dual", root=True))["id"]
m.call("set_key_dual_auth_policy", "enable", lambda: kp.set_key_dual_auth_policy(dual, True))
m.call("initiate_dual_auth_delete", "dual-auth key", lambda: kp.initiate_dual_auth_delete(dual))
m.call("cancel_dual_auth_delete", "dual-auth key", lambda: kp.cancel_dual_auth_delete(dual))
m.call("initiate_dual_auth_delete", "dual-auth key, again", lambda: kp.initiate_dual_auth_delete(dual))
m.call("delete_key", "dual-auth key, by the user who authorized", lambda: kp.delete_key(dual))
m.call("delete_key", "dual-auth key, by a second user", lambda: kp2.delete_key(dual))
m.call("purge_key", "right after deletion", lambda: kp.purge_key(dual))
m.call("purge_key", "key not deleted", lambda: kp.purge_key(std))
m.call("delete_key", "imported root key", lambda: kp.delete_key(imported))
m.call("restore_key", "right after deletion", lambda: kp.restore_key(imported))
m.call("sync_associated_resources", "", lambda: kp.sync_associated_resources(root))
m.call("create_key_alias", "", lambda: kp.create_key_alias(root, "kp231-root"))
m.call("delete_key_alias", "", lambda: kp.delete_key_alias(root, "kp231-root"))
m.call("set_key_rotation_policy", "3 months", lambda: kp.set_key_rotation_policy(root, 3))
m.call("get_key_policies", "", lambda: kp.get_key_policies(root))
m.call("create_key_ring", "", lambda: kp.create_key_ring("ring-231"))
m.call("get_key_rings", "", kp.get_key_rings)
m.call("set_key_ring", "`default` to the new ring", lambda: kp.set_key_ring(std, "default", "ring-231"))
m.call("delete_key_ring", "ring that holds a key", lambda: kp.delete_key_ring("ring-231"))
m.call("set_key_ring", "back to `default`", lambda: kp.set_key_ring(std, "ring-231", "default"))
m.call("delete_key_ring", "empty ring", lambda: kp.delete_key_ring("ring-231"))


class Session(redstone.Session):
    """redstone's session, making clients for the gateway (redstone.crypto takes one)."""

    def service(self, service_name, **kwargs):
        return client(kwargs["service_instance_id"])


# redstone.crypto: envelope encryption with a DEK the KMS makes and wraps (with aad).
crn = f"crn:v1:bluemix:public:kms:us-south:a/kmsgate:{INSTANCE}:key:{root}"
sealed = m.call("redstone.crypto.encrypt", "DEK wrapped by the root key", lambda: redstone.crypto.encrypt(b"secret", [crn], "kp231", Session()))
opened = m.call("redstone.crypto.decrypt", "", lambda: redstone.crypto.decrypt(sealed[0], Session()))
assert opened[0] == b"secret", opened
m.call("create_import_token", "", lambda: kp.create_import_token(expiration=600, max_allowed_retrievals=2))
m.call("get_import_token", "", kp.get_import_token)
m.call("get_registrations", "of a key", lambda: kp.get_registrations(key_id=root))
m.call("get_registrations", "all keys, by CRN", lambda: kp.get_registrations(crn="crn:v1:bluemix:public:cloud-object-storage:global:a/1::bucket:b"))
m.call("set_instance_dual_auth_policy", "disable", lambda: kp.set_instance_dual_auth_policy(False))
m.call("set_instance_metrics_policy", "enable", lambda: kp.set_instance_metrics_policy(True))
m.call("get_instance_policies", "", kp.get_instance_policies)

# The reference's reproductions: the policy set through the API, then the refused call, each on
# an instance of its own (allowedIP locks one out), named after KP_INSTANCE.
b1 = client("b1" + INSTANCE[2:])
m.call("set_instance_allowed_ip_policy", "65.128.226.252/24", lambda: b1.set_instance_allowed_ip_policy(True, ["65.128.226.252/24"]))
m.call("list_keys", "from outside that range", b1.list_keys, reproduces="UNAUTHORIZED_ERR")
b2 = client("b2" + INSTANCE[2:])
m.call("set_instance_allowed_network_policy", "private-only", lambda: b2.set_instance_allowed_network_policy(True, "private-only"))
m.call("list_keys", "public listener, private-only", b2.list_keys, reproduces="CONFIG_RULE_CONFLICT_ERR")
b2_private = client("b2" + INSTANCE[2:], url=os.environ["KP_PRIVATE_URL"])
m.call("list_keys", "private listener, private-only", b2_private.list_keys)
b3 = client("b3" + INSTANCE[2:])
m.call(
    "set_instance_key_create_import_access_policy",
    "no standard keys",
    lambda: b3.set_instance_key_create_import_access_policy(True, True, False, True, True, True),
)
m.call("create_key", "standard key, after that policy", lambda: b3.create_key("my-standard-key"), reproduces="KEY_CREATE_IMPORT_ACCESS_ERR")
m.call(
    "set_instance_key_create_import_access_policy",
    "disabled",
    lambda: b3.set_instance_key_create_import_access_policy(False, True, True, True, True, False),
)
m.call("create_key", "standard key, policy disabled", lambda: b3.create_key("my-standard-key"))

m.call("kmip_adapter_create", "", lambda: kp.kmip_adapter_create("native_1.0", {"crk_id": root}))
m.call("kmip_adapter_list", "", kp.kmip_adapter_list)
m.call("kmip_adapter_get", "", lambda: kp.kmip_adapter_get("adapter-1"))
m.call("kmip_adapter_delete", "", lambda: kp.kmip_adapter_delete("adapter-1"))
m.call("kmip_cert_create", "", lambda: kp.kmip_cert_create("adapter-1", "-----BEGIN CERTIFICATE-----"))
m.call("kmip_cert_list", "", lambda: kp.kmip_cert_list("adapter-1"))
m.call("kmip_cert_get", "", lambda: kp.kmip_cert_get("adapter-1", "cert-1"))
m.call("kmip_cert_delete", "", lambda: kp.kmip_cert_delete("adapter-1", "cert-1"))
m.call("kmip_object_list", "", lambda: kp.kmip_object_list("adapter-1"))
m.call("kmip_object_get", "", lambda: kp.kmip_object_get("adapter-1", "object-1"))
m.call("kmip_object_delete", "", lambda: kp.kmip_object_delete("adapter-1", "object-1"))
m.call("delete_key", "root key", lambda: kp.delete_key(root))
m.call("delete", "deprecated name of delete_key, again", lambda: kp.delete(root))
m.print(api_methods())
