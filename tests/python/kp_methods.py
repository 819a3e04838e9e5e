"""Calls every public API method of keyprotect 3.0.1's IbmKeyProtectApiV2 through kmsgate on the
quickstart configuration, one row per call (see matrix.py), and the reference's reproductions of
UNAUTHORIZED_ERR, CONFIG_RULE_CONFLICT_ERR and KEY_CREATE_IMPORT_ACCESS_ERR, checked byte for
byte. tests/client_matrix.rs runs it and compares the rows with docs/clients.md.

    KP_URL=http://127.0.0.1:8080 KP_PRIVATE_URL=http://127.0.0.1:8081 KP_INSTANCE=<id> \
    KP_TOKEN=<token> KP_TOKEN_2=<token> KP_CATALOGUE=tests/fixtures/reason-catalogue.json \
      python kp_methods.py

KP_TOKEN_2 is a token for a second subject (dual authorization needs two users). Use a fresh
instance id each run.
"""

import base64
import io
import json
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from ibm_cloud_sdk_core import ApiException
from ibm_cloud_sdk_core.authenticators import BearerTokenAuthenticator
from keyprotect.ibm_key_protect_api_v2 import IbmKeyProtectApiV2

from matrix import Matrix

URL = os.environ["KP_URL"]
INSTANCE = os.environ["KP_INSTANCE"]
TOKEN = os.environ["KP_TOKEN"]


def client(token: str = TOKEN, url: str = URL) -> IbmKeyProtectApiV2:
    kp = IbmKeyProtectApiV2(authenticator=BearerTokenAuthenticator(token))
    kp.set_service_url(url)
    return kp


kp = client()
kp2 = client(os.environ["KP_TOKEN_2"])
m = Matrix(ApiException, lambda e: e.http_response, lambda r: r.get_status_code())


def body(obj) -> io.BytesIO:
    return io.BytesIO(json.dumps(obj).encode())


def key_body(name: str, extractable: bool, **extra) -> dict:
    resource = {"type": "application/vnd.ibm.kms.key+json", "name": name, "extractable": extractable}
    resource.update(extra)
    return {
        "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
        "resources": [resource],
    }


def call(method: str, how: str, fn, reproduces: str = ""):
    """Records the call's row (matrix.Matrix.call); returns its JSON result (or None)."""
    response = m.call(method, how, fn, reproduces)
    if response is None:
        return None
    result = response.get_result()
    if result is not None and not isinstance(result, dict):
        try:
            result = result.json()
        except Exception:  # noqa: BLE001 - a result that is not JSON
            result = None
    return result


def instance_policy(policy_type: str, policy_data: dict) -> dict:
    return {
        "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
        "resources": [{"policy_type": policy_type, "policy_data": policy_data}],
    }


I = INSTANCE
root = call(
    "create_key",
    "root key",
    lambda: kp.create_key(
        bluemix_instance=I, prefer="return=representation", key_create_body=body(key_body("root", False))
    ),
)
root_id = root["resources"][0]["id"]
std = call("create_key", "standard key", lambda: kp.create_key(bluemix_instance=I, key_create_body=body(key_body("std", True))))
std_id = std["resources"][0]["id"]
material = base64.b64encode(os.urandom(32)).decode()
imported = call(
    "create_key",
    "imported root key (payload)",
    lambda: kp.create_key(bluemix_instance=I, key_create_body=body(key_body("imported", False, payload=material))),
)
imported_id = imported["resources"][0]["id"]
override = call(
    "create_key_with_policies_overrides",
    "root key, dualAuthDelete on",
    lambda: kp.create_key_with_policies_overrides(
        bluemix_instance=I,
        key_with_policy_overrides_create_body=body(key_body("override", False, dualAuthDelete={"enabled": True})),
    ),
)
override_id = override["resources"][0]["id"]
call("get_keys", "no arguments (`state=`)", lambda: kp.get_keys(bluemix_instance=I))
call("get_keys", "`state=[1, 5]` (`state=1%2C5`)", lambda: kp.get_keys(bluemix_instance=I, state=[1, 5]))
call(
    "get_keys",
    "limit, offset, extractable, search, sort, filter",
    lambda: kp.get_keys(
        bluemix_instance=I,
        limit=10,
        offset=0,
        extractable=False,
        search="not:exact:override",
        sort="-creationDate",
        filter='lastRotateDate=none',
    ),
)
call("get_key_collection_metadata", "HEAD, `state=[1, 5]`", lambda: kp.get_key_collection_metadata(bluemix_instance=I, state=[1, 5]))
call("get_key", "", lambda: kp.get_key(id=std_id, bluemix_instance=I))
call("get_key_metadata", "", lambda: kp.get_key_metadata(id=root_id, bluemix_instance=I))
call("get_key_versions", "", lambda: kp.get_key_versions(id=root_id, bluemix_instance=I))
dek = base64.b64encode(os.urandom(32)).decode()
wrapped = call(
    "wrap_key",
    "",
    lambda: kp.wrap_key(id=root_id, bluemix_instance=I, key_action_wrap_body=body({"plaintext": dek})),
)
call(
    "unwrap_key",
    "",
    lambda: kp.unwrap_key(id=root_id, bluemix_instance=I, key_action_unwrap_body=body({"ciphertext": wrapped["ciphertext"]})),
)
call(
    "rewrap_key",
    "",
    lambda: kp.rewrap_key(id=root_id, bluemix_instance=I, key_action_rewrap_body=body({"ciphertext": wrapped["ciphertext"]})),
)
call(
    "action_on_key",
    "deprecated `?action=unwrap`",
    lambda: kp.action_on_key(
        id=root_id, bluemix_instance=I, action="unwrap", key_action_body=body({"ciphertext": wrapped["ciphertext"]})
    ),
)
call("rotate_key", "", lambda: kp.rotate_key(id=root_id, bluemix_instance=I, key_action_rotate_body=body({})))
call("rotate_key", "again within the hour", lambda: kp.rotate_key(id=root_id, bluemix_instance=I, key_action_rotate_body=body({})))
# A key of its own for disable and enable: Key Protect refuses the enable for 30 s, and the key
# stays disabled.
to_disable = call(
    "create_key",
    "root key to disable",
    lambda: kp.create_key(bluemix_instance=I, key_create_body=body(key_body("to-disable", False))),
)["resources"][0]["id"]
call("disable_key", "", lambda: kp.disable_key(id=to_disable, bluemix_instance=I))
call("enable_key", "right after disable", lambda: kp.enable_key(id=to_disable, bluemix_instance=I))
call("set_key_for_deletion", "key without dual auth", lambda: kp.set_key_for_deletion(id=root_id, bluemix_instance=I))
call("unset_key_for_deletion", "key without dual auth", lambda: kp.unset_key_for_deletion(id=root_id, bluemix_instance=I))
call("set_key_for_deletion", "dual-auth key", lambda: kp.set_key_for_deletion(id=override_id, bluemix_instance=I))
call("unset_key_for_deletion", "dual-auth key", lambda: kp.unset_key_for_deletion(id=override_id, bluemix_instance=I))
call("set_key_for_deletion", "dual-auth key, again", lambda: kp.set_key_for_deletion(id=override_id, bluemix_instance=I))
call("delete_key", "dual-auth key, by the user who authorized", lambda: kp.delete_key(id=override_id, bluemix_instance=I))
call("delete_key", "dual-auth key, by a second user", lambda: kp2.delete_key(id=override_id, bluemix_instance=I))
call("purge_key", "right after deletion", lambda: kp.purge_key(id=override_id, bluemix_instance=I))
call("sync_associated_resources", "", lambda: kp.sync_associated_resources(id=root_id, bluemix_instance=I))
call("delete_key", "imported root key", lambda: kp.delete_key(id=imported_id, bluemix_instance=I))
call("restore_key", "imported root key", lambda: kp.restore_key(id=imported_id, bluemix_instance=I))
call("purge_key", "key not deleted", lambda: kp.purge_key(id=std_id, bluemix_instance=I))
call("patch_key", "move to key ring `default`", lambda: kp.patch_key(id=root_id, bluemix_instance=I, key_patch_body=body({"keyRingID": "default"})))
call("create_key_alias", "", lambda: kp.create_key_alias(id=root_id, alias="my-alias", bluemix_instance=I))
call("delete_key_alias", "", lambda: kp.delete_key_alias(id=root_id, alias="my-alias", bluemix_instance=I))
call(
    "put_policy",
    "key policy: rotation",
    lambda: kp.put_policy(
        id=root_id,
        bluemix_instance=I,
        key_policy_put_body={
            "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
            "resources": [{"type": "application/vnd.ibm.kms.policy+json", "rotation": {"interval_month": 3}}],
        },
    ),
)
call("get_policy", "key policies", lambda: kp.get_policy(id=root_id, bluemix_instance=I))
def no_standard_keys(enabled: bool):
    attributes = {
        "create_root_key": True,
        "create_standard_key": False,
        "import_root_key": True,
        "import_standard_key": True,
        "enforce_token": True,
    }
    return kp.put_instance_policy(
        bluemix_instance=I,
        policy="keyCreateImportAccess",
        instance_policy_put_body=instance_policy("keyCreateImportAccess", {"enabled": enabled, "attributes": attributes}),
    )


standard_key = key_body("my-standard-key", True, description="my-standard-key")
call("put_instance_policy", "keyCreateImportAccess, no standard keys", lambda: no_standard_keys(True))
call(
    "create_key",
    "standard key, after that policy",
    lambda: kp.create_key(bluemix_instance=I, key_create_body=body(standard_key)),
    reproduces="KEY_CREATE_IMPORT_ACCESS_ERR",
)
call("put_instance_policy", "keyCreateImportAccess, disabled", lambda: no_standard_keys(False))
call(
    "create_key",
    "standard key, policy disabled",
    lambda: kp.create_key(bluemix_instance=I, key_create_body=body(standard_key)),
)
call("get_instance_policy", "", lambda: kp.get_instance_policy(bluemix_instance=I))
call("get_allowed_ip_port", "", lambda: kp.get_allowed_ip_port(bluemix_instance=I))
call(
    "post_import_token",
    "",
    lambda: kp.post_import_token(bluemix_instance=I, expiration=600, max_allowed_retrievals=2),
)
token = call("get_import_token", "", lambda: kp.get_import_token(bluemix_instance=I))
# Secure import as a client does it (the SDK has no helpers): the token's public key seals the
# key material (RSA-OAEP SHA-256), the material seals the token's nonce (AES-256-GCM).
material = os.urandom(32)
public_key = serialization.load_pem_public_key(base64.b64decode(token["payload"]))
oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
sealed_material = base64.b64encode(public_key.encrypt(material, oaep)).decode()


def secure_import(nonce: bytes):
    iv = os.urandom(12)
    sealed_nonce = base64.b64encode(AESGCM(material).encrypt(iv, nonce, None)).decode()
    fields = {"payload": sealed_material, "encryptedNonce": sealed_nonce, "iv": base64.b64encode(iv).decode()}
    fields["encryptionAlgorithm"] = "RSAES_OAEP_SHA_256"
    return kp.create_key(bluemix_instance=I, key_create_body=body(key_body("secure", False, **fields)))


call("create_key", "secure import, another nonce than the token's", lambda: secure_import(b"wrong-nonce"))
call("create_key", "secure import (`encryptedNonce`, `iv`)", lambda: secure_import(base64.b64decode(token["nonce"])))
call("get_registrations", "", lambda: kp.get_registrations(id=root_id, bluemix_instance=I))
call("get_registrations_all_keys", "", lambda: kp.get_registrations_all_keys(bluemix_instance=I))
call("create_key_ring", "", lambda: kp.create_key_ring(key_ring_id="ring-1", bluemix_instance=I))
call("list_key_rings", "", lambda: kp.list_key_rings(bluemix_instance=I))
call("delete_key_ring", "", lambda: kp.delete_key_ring(key_ring_id="ring-1", bluemix_instance=I))
call(
    "create_kmip_adapter",
    "",
    lambda: kp.create_kmip_adapter(
        bluemix_instance=I,
        metadata={"collectionType": "application/vnd.ibm.kms.kmip_adapter+json", "collectionTotal": 1},
        resources=[{"profile": "native_1.0", "profile_data": {"crk_id": root_id}}],
    ),
)
call("get_kmip_adapters", "", lambda: kp.get_kmip_adapters(bluemix_instance=I))
call("get_kmip_adapter", "", lambda: kp.get_kmip_adapter(id="adapter-1", bluemix_instance=I))
call("delete_kmip_adapter", "", lambda: kp.delete_kmip_adapter(id="adapter-1", bluemix_instance=I))
call(
    "add_kmip_client_certificate",
    "",
    lambda: kp.add_kmip_client_certificate(
        adapter_id="adapter-1",
        bluemix_instance=I,
        metadata={"collectionType": "application/vnd.ibm.kms.kmip_client_certificate+json", "collectionTotal": 1},
        resources=[{"certificate": "-----BEGIN CERTIFICATE-----"}],
    ),
)
call("get_kmip_client_certificates", "", lambda: kp.get_kmip_client_certificates(adapter_id="adapter-1", bluemix_instance=I))
call("get_kmip_client_certificate", "", lambda: kp.get_kmip_client_certificate(adapter_id="adapter-1", id="cert-1", bluemix_instance=I))
call("delete_kmip_client_certificate", "", lambda: kp.delete_kmip_client_certificate(adapter_id="adapter-1", id="cert-1", bluemix_instance=I))
call("get_kmip_objects", "", lambda: kp.get_kmip_objects(adapter_id="adapter-1", bluemix_instance=I))
call("get_kmip_object", "", lambda: kp.get_kmip_object(adapter_id="adapter-1", id="object-1", bluemix_instance=I))
call("delete_kmip_object", "", lambda: kp.delete_kmip_object(adapter_id="adapter-1", id="object-1", bluemix_instance=I))
call("delete_key", "root key", lambda: kp.delete_key(id=root_id, bluemix_instance=I))
call("delete_key", "again", lambda: kp.delete_key(id=root_id, bluemix_instance=I))

# The reference's reproductions: the policy set through the API, then the refused call, each on
# an instance of its own (allowedIP locks one out), named after KP_INSTANCE.
b1, b2 = "b1" + I[2:], "b2" + I[2:]
call(
    "put_instance_policy",
    "allowedIP 65.128.226.252/24",
    lambda: kp.put_instance_policy(
        bluemix_instance=b1,
        policy="allowedIP",
        instance_policy_put_body=instance_policy(
            "allowedIP", {"enabled": True, "attributes": {"allowed_ip": ["65.128.226.252/24"]}}
        ),
    ),
)
call("get_keys", "from outside that range", lambda: kp.get_keys(bluemix_instance=b1), reproduces="UNAUTHORIZED_ERR")
call(
    "put_instance_policy",
    "allowedNetwork private-only",
    lambda: kp.put_instance_policy(
        bluemix_instance=b2,
        policy="allowedNetwork",
        instance_policy_put_body=instance_policy(
            "allowedNetwork", {"enabled": True, "attributes": {"allowed_network": "private-only"}}
        ),
    ),
)
call(
    "get_keys",
    "public listener, private-only",
    lambda: kp.get_keys(bluemix_instance=b2),
    reproduces="CONFIG_RULE_CONFLICT_ERR",
)
kp_private = client(url=os.environ["KP_PRIVATE_URL"])
call("get_keys", "private listener, private-only", lambda: kp_private.get_keys(bluemix_instance=b2))
m.print(name for name, value in vars(IbmKeyProtectApiV2).items() if callable(value) and not name.startswith("_"))
