"""Calls every public API method of keyprotect 3.0.1's IbmKeyProtectApiV2 once through kmsgate on
the quickstart configuration, and prints one Markdown table row per method: the HTTP status and
the result (`ok`, or the reason code of the refusal, with `gateway` when kmsgate refused it
itself). docs/clients.md is this script's output.

    KP_URL=http://127.0.0.1:8080 KP_INSTANCE=<id> KP_TOKEN=<token> KP_TOKEN_2=<token> python kp_methods.py

KP_TOKEN_2 is a token for a second subject (dual authorization needs two users).

A fresh instance id each run keeps the results independent of earlier runs.
"""

import base64
import io
import json
import os

from ibm_cloud_sdk_core import ApiException
from ibm_cloud_sdk_core.authenticators import BearerTokenAuthenticator
from keyprotect.ibm_key_protect_api_v2 import IbmKeyProtectApiV2

URL = os.environ["KP_URL"]
INSTANCE = os.environ["KP_INSTANCE"]
TOKEN = os.environ["KP_TOKEN"]

kp = IbmKeyProtectApiV2(authenticator=BearerTokenAuthenticator(TOKEN))
kp.set_service_url(URL)
kp2 = IbmKeyProtectApiV2(authenticator=BearerTokenAuthenticator(os.environ["KP_TOKEN_2"]))
kp2.set_service_url(URL)
rows = []


def body(obj) -> io.BytesIO:
    return io.BytesIO(json.dumps(obj).encode())


def key_body(name: str, extractable: bool, **extra) -> dict:
    resource = {"type": "application/vnd.ibm.kms.key+json", "name": name, "extractable": extractable}
    resource.update(extra)
    return {
        "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
        "resources": [resource],
    }


def call(method: str, how: str, fn):
    """Runs `fn`, records the row, returns the JSON result (or None)."""
    try:
        response = fn()
    except ApiException as e:
        try:
            envelope = e.http_response.json()
            reasons = envelope["resources"][0].get("reasons") or [{}]
            code = reasons[0].get("code") or envelope["resources"][0]["errorMsg"].split(":")[0]
        except Exception:  # noqa: BLE001 - a body that is not an envelope
            code = e.http_response.text[:60]
        who = " (gateway)" if e.http_response.headers.get("kmsgate-reason") else ""
        rows.append((method, how, e.status_code, f"`{code}`{who}"))
        return None
    result = response.get_result()
    if result is not None and not isinstance(result, dict):
        try:
            result = result.json()
        except Exception:  # noqa: BLE001
            result = None
    rows.append((method, how, response.get_status_code(), "ok"))
    return result


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
call(
    "put_instance_policy",
    "keyCreateImportAccess",
    lambda: kp.put_instance_policy(
        bluemix_instance=I,
        policy="keyCreateImportAccess",
        instance_policy_put_body={
            "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
            "resources": [
                {
                    "policy_type": "keyCreateImportAccess",
                    "policy_data": {"enabled": True, "attributes": {"create_standard_key": False}},
                }
            ],
        },
    ),
)
call(
    "create_key",
    "standard key, after that policy",
    lambda: kp.create_key(bluemix_instance=I, key_create_body=body(key_body("std2", True))),
)
call("get_instance_policy", "", lambda: kp.get_instance_policy(bluemix_instance=I))
call("get_allowed_ip_port", "", lambda: kp.get_allowed_ip_port(bluemix_instance=I))
call(
    "post_import_token",
    "",
    lambda: kp.post_import_token(bluemix_instance=I, expiration=600, max_allowed_retrievals=2),
)
call("get_import_token", "", lambda: kp.get_import_token(bluemix_instance=I))
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

print("| method | call | HTTP | result |")
print("|---|---|---|---|")
for method, how, status, result in rows:
    print(f"| `{method}` | {how} | {status} | {result} |")
