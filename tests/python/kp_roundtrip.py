"""Drives kmsgate on the quickstart configuration (config/kmsgate.toml: the embedded dev KMS,
policies.api = "own") with IBM's official Python client, keyprotect 3.0.1: create a root key,
wrap and unwrap a DEK, both action URL styles, a rotation, a refusal, instance policies, the
key list as the SDK sends it, and the reference's own reproductions of UNAUTHORIZED_ERR,
CONFIG_RULE_CONFLICT_ERR and KEY_CREATE_IMPORT_ACCESS_ERR (set the policy through the API, then
the refused call), asserting status, code and the envelope byte for byte.

Then the dev KMS as Key Protect: dual authorization across two users (KP_TOKEN and KP_TOKEN_2
name two subjects), one rotation an hour, key policies, aliases, key rings with X-Kms-Key-Ring
and patch_key, purge's waiting rule, registrations, and KMIP's refusal.

Run by tests/python_client.rs with KP_URL (the public listener), KP_PRIVATE_URL (the private
listener), KP_INSTANCE, KP_TOKEN and KP_TOKEN_2 (tokens the gateway accepts, for two different
subjects) in the environment.
Prints one line per step; exits non-zero on the first failed assertion.
"""

import base64
import io
import json
import os
import sys

from ibm_cloud_sdk_core import ApiException
from ibm_cloud_sdk_core.authenticators import BearerTokenAuthenticator
from keyprotect.ibm_key_protect_api_v2 import IbmKeyProtectApiV2

URL = os.environ["KP_URL"]
PRIVATE_URL = os.environ["KP_PRIVATE_URL"]
INSTANCE = os.environ["KP_INSTANCE"]
TOKEN = os.environ["KP_TOKEN"]

kp = IbmKeyProtectApiV2(authenticator=BearerTokenAuthenticator(TOKEN))
kp.set_service_url(URL)
# The same client on the private listener (allowedNetwork tells the two apart).
kp_private = IbmKeyProtectApiV2(authenticator=BearerTokenAuthenticator(TOKEN))
kp_private.set_service_url(PRIVATE_URL)


def body(obj) -> io.BytesIO:
    return io.BytesIO(json.dumps(obj).encode())


def result(response):
    """The JSON result: a dict when the response is application/json (as the dev KMS sends)."""
    r = response.get_result()
    assert isinstance(r, dict), f"expected a JSON result, got {type(r)}"
    return r


def step(name: str) -> None:
    print(f"ok: {name}", flush=True)


def key_create_body(name: str, extractable: bool) -> io.BytesIO:
    return body(
        {
            "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
            "resources": [
                {"type": "application/vnd.ibm.kms.key+json", "name": name, "extractable": extractable}
            ],
        }
    )


# Create a root key.
response = kp.create_key(
    bluemix_instance=INSTANCE,
    prefer="return=representation",
    key_create_body=key_create_body("python-root", False),
)
assert response.get_status_code() == 201, response.get_status_code()
key = result(response)["resources"][0]
key_id = key["id"]
assert key["name"] == "python-root" and key["extractable"] is False and key["state"] == 1, key
step("create_key")

# Wrap and unwrap a DEK, with aad.
dek = base64.b64encode(os.urandom(32)).decode()
wrapped = result(
    kp.wrap_key(
        id=key_id,
        bluemix_instance=INSTANCE,
        key_action_wrap_body=body({"plaintext": dek, "aad": ["python", "e2e"]}),
    )
)
ciphertext = wrapped["ciphertext"]
assert wrapped["keyVersion"]["id"] == key_id, wrapped
unwrapped = result(
    kp.unwrap_key(
        id=key_id,
        bluemix_instance=INSTANCE,
        key_action_unwrap_body=body({"ciphertext": ciphertext, "aad": ["python", "e2e"]}),
    )
)
assert unwrapped["plaintext"] == dek, "unwrap did not return the DEK"
step("wrap_key + unwrap_key")

# Wrap with no plaintext: the KMS generates the DEK.
generated = result(kp.wrap_key(id=key_id, bluemix_instance=INSTANCE, key_action_wrap_body=body({})))
assert len(base64.b64decode(generated["plaintext"])) == 32, generated
step("wrap_key generates a DEK")

# The deprecated ?action= style behaves the same.
old_style = result(
    kp.action_on_key(
        id=key_id,
        bluemix_instance=INSTANCE,
        action="unwrap",
        key_action_body=body({"ciphertext": ciphertext, "aad": ["python", "e2e"]}),
    )
)
assert old_style["plaintext"] == dek, old_style
step("action_on_key(unwrap)")

# Rotate; the old ciphertext still unwraps and comes back rewrapped with the new version.
response = kp.rotate_key(id=key_id, bluemix_instance=INSTANCE, key_action_rotate_body=body({}))
assert response.get_status_code() == 204, response.get_status_code()
after = result(
    kp.unwrap_key(
        id=key_id,
        bluemix_instance=INSTANCE,
        key_action_unwrap_body=body({"ciphertext": ciphertext, "aad": ["python", "e2e"]}),
    )
)
assert after["plaintext"] == dek, after
assert after["rewrappedKeyVersion"]["id"] != key_id, after
assert after["ciphertext"] != ciphertext, after
step("rotate_key + unwrap of old ciphertext")

# A refusal: wrap with a standard key.
standard = result(
    kp.create_key(bluemix_instance=INSTANCE, key_create_body=key_create_body("python-std", True))
)["resources"][0]
try:
    kp.wrap_key(id=standard["id"], bluemix_instance=INSTANCE, key_action_wrap_body=body({}))
    raise AssertionError("wrap with a standard key succeeded")
except ApiException as e:
    envelope = e.http_response.json()
    assert e.status_code == 400, e.status_code
    assert envelope["resources"][0]["reasons"][0]["code"] == "KEY_ROOT_REQ_ERR", envelope
step("wrap with a standard key is refused (KEY_ROOT_REQ_ERR)")

# Instance policies: put one, read it back.
response = kp.put_instance_policy(
    bluemix_instance=INSTANCE,
    policy="keyCreateImportAccess",
    instance_policy_put_body={
        "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
        "resources": [
            {
                "policy_type": "keyCreateImportAccess",
                "policy_data": {"enabled": True, "attributes": {"import_standard_key": False}},
            }
        ],
    },
)
assert response.get_status_code() == 204, response.get_status_code()
policies = result(kp.get_instance_policy(bluemix_instance=INSTANCE, policy="keyCreateImportAccess"))
data = policies["resources"][0]["policy_data"]
assert data["enabled"] is True and data["attributes"]["import_standard_key"] is False, policies
assert data["attributes"]["create_root_key"] is True, policies
step("put_instance_policy + get_instance_policy")

# Delete twice: the second is 410 KEY_DELETED_ERR.
kp.delete_key(id=key_id, bluemix_instance=INSTANCE)
try:
    kp.delete_key(id=key_id, bluemix_instance=INSTANCE)
    raise AssertionError("a second delete succeeded")
except ApiException as e:
    assert e.status_code == 410, e.status_code
    assert e.http_response.json()["resources"][0]["reasons"][0]["code"] == "KEY_DELETED_ERR"
step("delete_key twice (KEY_DELETED_ERR)")

# The key list as the SDK sends it: get_keys() sends `state=` (an empty list: no filter),
# state=[1, 5] sends `state=1%2C5`. python-root is deleted (state 5), python-std is active.
listed = result(kp.get_keys(bluemix_instance=INSTANCE))
names = sorted(k["name"] for k in listed["resources"])
assert names == ["python-std"], listed
both = result(kp.get_keys(bluemix_instance=INSTANCE, state=[1, 5]))
assert sorted(k["name"] for k in both["resources"]) == ["python-root", "python-std"], both
ids = [k["id"] for k in both["resources"]]
assert ids == sorted(ids), "Key Protect lists keys sorted by id"
page = result(
    kp.get_keys(
        bluemix_instance=INSTANCE, state=[1, 5], limit=1, offset=1, extractable=True, sort="-id"
    )
)
assert page["metadata"]["collectionTotal"] == 0, page
roots = result(kp.get_keys(bluemix_instance=INSTANCE, state=[5], extractable=False, search="exact:python-root"))
assert [k["id"] for k in roots["resources"]] == [key_id], roots
head = kp.get_key_collection_metadata(bluemix_instance=INSTANCE, state=[1, 5])
assert head.get_headers()["Key-Total"] == "2", head.get_headers()
step("get_keys() and get_keys(state=[1, 5]) (+ limit, offset, extractable, search, sort, HEAD)")


# === The reference's reproductions, on the quickstart: the policy is set through the API and
# === the very next request is refused. Each on its own instance (allowedIP locks one out).

MORE_INFO = "https://cloud.ibm.com/apidocs/key-protect"
ERROR_METADATA = {"collectionType": "application/vnd.ibm.kms.error+json", "collectionTotal": 1}


def refused(call, status: int, code: str, envelope: dict) -> None:
    """`call` raises the API error `status` with exactly `envelope`, from the gateway."""
    try:
        call()
    except ApiException as e:
        response = e.http_response
        assert e.status_code == status, (e.status_code, response.text)
        assert response.json() == envelope, response.text
        # Byte for byte: the gateway renders compact JSON in the reference's key order.
        assert response.content == json.dumps(envelope, separators=(",", ":")).encode(), response.text
        assert response.headers["kmsgate-reason"] == code, dict(response.headers)
        return
    raise AssertionError(f"expected {status} {code}, the call succeeded")


def put_policy(instance: str, policy_type: str, policy_data: dict) -> None:
    response = kp.put_instance_policy(
        bluemix_instance=instance,
        policy=policy_type,
        instance_policy_put_body={
            "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
            "resources": [{"policy_type": policy_type, "policy_data": policy_data}],
        },
    )
    assert response.get_status_code() == 204, response.get_status_code()


def instance(n: int) -> str:
    return INSTANCE[:-2] + f"{n:02x}"


# UNAUTHORIZED_ERR: limit access to a range of IP addresses, then retrieve keys from outside it.
only_range = instance(0xB1)
put_policy(only_range, "allowedIP", {"enabled": True, "attributes": {"allowed_ip": ["65.128.226.252/24"]}})
refused(
    lambda: kp.get_keys(bluemix_instance=only_range),
    401,
    "UNAUTHORIZED_ERR",
    {
        "metadata": ERROR_METADATA,
        "resources": [{"errorMsg": "Unauthorized: The user does not have access to the specified resource"}],
    },
)
step("allowedIP set, then get_keys: 401 UNAUTHORIZED_ERR, the reference's envelope")

# CONFIG_RULE_CONFLICT_ERR: private-only, then a request on the public endpoint; the private
# endpoint still works.
private_only = instance(0xB2)
put_policy(private_only, "allowedNetwork", {"enabled": True, "attributes": {"allowed_network": "private-only"}})
refused(
    lambda: kp.get_keys(bluemix_instance=private_only),
    403,
    "CONFIG_RULE_CONFLICT_ERR",
    {
        "metadata": ERROR_METADATA,
        "resources": [
            {
                "errorMsg": "Forbidden: Keys could not be retrieved. Please see `reasons` for more details.",
                "reasons": [
                    {
                        "code": "CONFIG_RULE_CONFLICT_ERR",
                        "message": "Requested change is not compliant with configuration rules",
                        "status": 403,
                        "moreInfo": MORE_INFO,
                    }
                ],
            }
        ],
    },
)
assert kp_private.get_keys(bluemix_instance=private_only).get_status_code() == 200
step("allowedNetwork private-only set, then get_keys: 403 CONFIG_RULE_CONFLICT_ERR (private: 200)")

# KEY_CREATE_IMPORT_ACCESS_ERR, the reference's steps 1-4.
no_standard = instance(0xB3)
standard_key = {
    "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
    "resources": [
        {
            "type": "application/vnd.ibm.kms.key+json",
            "name": "my-standard-key",
            "description": "my-standard-key",
            "extractable": True,
        }
    ],
}
# step 1 - enable an instance policy, which prevents creating standard keys
put_policy(
    no_standard,
    "keyCreateImportAccess",
    {
        "enabled": True,
        "attributes": {
            "create_root_key": True,
            "create_standard_key": False,
            "import_root_key": True,
            "import_standard_key": True,
            "enforce_token": True,
        },
    },
)
# step 2 - creating a standard key fails
refused(
    lambda: kp.create_key(bluemix_instance=no_standard, key_create_body=body(standard_key)),
    409,
    "KEY_CREATE_IMPORT_ACCESS_ERR",
    {
        "metadata": ERROR_METADATA,
        "resources": [
            {
                "errorMsg": "Conflict: Key could not be created: Please see `reasons` for more details (KEY_CREATE_IMPORT_ACCESS_ERR)",
                "reasons": [
                    {
                        "code": "KEY_CREATE_IMPORT_ACCESS_ERR",
                        "message": "KeyCreateImportAccess instance policy does not allow this action",
                        "status": 409,
                        "moreInfo": MORE_INFO,
                    }
                ],
            }
        ],
    },
)
# step 3 - disable the policy; step 4 - creating a standard key succeeds
put_policy(no_standard, "keyCreateImportAccess", {"enabled": False})
created = kp.create_key(
    bluemix_instance=no_standard, prefer="return=representation", key_create_body=body(standard_key)
)
assert created.get_status_code() == 201, created.get_status_code()
made = result(created)["resources"][0]
assert (made["name"], made["description"], made["state"], made["extractable"]) == (
    "my-standard-key",
    "my-standard-key",
    1,
    True,
), made
assert (made["imported"], made["deleted"]) == (False, False), made
step("keyCreateImportAccess set, then create_key: 409 KEY_CREATE_IMPORT_ACCESS_ERR; disabled: 201")

# The policies read back (on the private listener: the public one is refused) are the ones enforced.
enforced = result(kp_private.get_instance_policy(bluemix_instance=private_only))["resources"]
assert [p["policy_type"] for p in enforced] == ["allowedNetwork"], enforced
assert enforced[0]["policy_data"]["attributes"]["allowed_network"] == "private-only", enforced
step("get_instance_policy shows the enforced policy (private listener)")

# ---- The dev KMS as Key Protect (issue 13, item 4) ----
kp2 = IbmKeyProtectApiV2(authenticator=BearerTokenAuthenticator(os.environ["KP_TOKEN_2"]))
kp2.set_service_url(URL)
I2 = instance(0xC1)  # an instance of its own: no policies from the steps above


def refused(fn, status: int, code: str, error_msg: str = None, message: str = None):
    try:
        fn()
    except ApiException as e:
        assert e.status_code == status, (e.status_code, e.http_response.text)
        reason = e.http_response.json()["resources"][0]["reasons"][0]
        assert reason["code"] == code, e.http_response.text
        if error_msg is not None:
            assert e.http_response.json()["resources"][0]["errorMsg"] == error_msg, e.http_response.text
        if message is not None:
            assert reason["message"] == message, e.http_response.text
        assert e.http_response.headers.get("kmsgate-reason") is None, "the dev KMS refused, not the gateway"
        return
    raise AssertionError(f"expected {status} {code}")


def new_root(client, name: str, **extra) -> str:
    try:
        created = _new_root(client, name, **extra)
    except ApiException as e:
        raise AssertionError(f"create_key_with_policies_overrides: {e.status_code} {e.http_response.text}") from e
    return result(created)["resources"][0]["id"]


def _new_root(client, name: str, **extra):
    return client.create_key_with_policies_overrides(
        bluemix_instance=I2,
        key_with_policy_overrides_create_body=body(
            {
                "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
                "resources": [dict({"type": "application/vnd.ibm.kms.key+json", "name": name, "extractable": False}, **extra)],
            }
        ),
    )


guarded = new_root(kp, "guarded", dualAuthDelete={"enabled": True})
NOT_MET = (
    "Conflict: 1 prior authorization(s) are required for deletion: Key could not be deleted. "
    "Please see `reasons` for more details."
)
refused(lambda: kp.delete_key(id=guarded, bluemix_instance=I2), 409, "AUTHORIZATIONS_NOT_MET", NOT_MET)
assert kp.set_key_for_deletion(id=guarded, bluemix_instance=I2).get_status_code() == 204
refused(
    lambda: kp.delete_key(id=guarded, bluemix_instance=I2),
    409,
    "AUTHORIZATIONS_NOT_MET",
    NOT_MET,
    "Number of authorizations required to delete is not met",
)
deleted = kp2.delete_key(id=guarded, bluemix_instance=I2, prefer="return=representation")
assert deleted.get_status_code() == 200, deleted.get_status_code()
assert result(deleted)["resources"][0]["deleted"] is True
plain = new_root(kp, "plain")
refused(
    lambda: kp.set_key_for_deletion(id=plain, bluemix_instance=I2),
    409,
    "NOT_DUAL_AUTH_ERR",
    "Conflict: Action could not be performed on key. Please see `reasons` for more details.",
    "The key is not dual auth enabled and cannot be set for deletion",
)
step("dual authorization: set_key_for_deletion by one user, delete_key by the same 409, by another 200")

assert kp.rotate_key(id=plain, bluemix_instance=I2, key_action_rotate_body=body({})).get_status_code() == 204
refused(
    lambda: kp.rotate_key(id=plain, bluemix_instance=I2, key_action_rotate_body=body({})),
    409,
    "KEY_ROTATION_NOT_PERMITTED",
    "Conflict: Action could not be performed on key: Please see `reasons` for more details (KEY_ROTATION_NOT_PERMITTED)",
    "This root key has been rotated within the last hour: Only one 'rotate' action per hour is permitted",
)
step("rotate_key twice within the hour: 409 KEY_ROTATION_NOT_PERMITTED")

to_disable = new_root(kp, "to-disable")
assert kp.disable_key(id=to_disable, bluemix_instance=I2).get_status_code() == 204
refused(
    lambda: kp.enable_key(id=to_disable, bluemix_instance=I2),
    409,
    "REQ_TOO_EARLY_ERR",
    "Conflict: Key could not be enabled: Please see `reasons` for more details (REQ_TOO_EARLY_ERR)",
    "The key was updated recently: Please wait and try again",
)
step("enable_key right after disable_key: 409 REQ_TOO_EARLY_ERR (30 s)")

policies = kp.put_policy(
    id=plain,
    bluemix_instance=I2,
    policy="rotation",
    key_policy_put_body={
        "metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
        "resources": [{"type": "application/vnd.ibm.kms.policy+json", "rotation": {"enabled": True, "interval_month": 3}}],
    },
)
assert policies.get_status_code() == 200, policies.get_status_code()
got = result(kp.get_policy(id=plain, bluemix_instance=I2))["resources"]
assert [p.get("rotation") for p in got] == [{"enabled": True, "interval_month": 3}], got
step("put_policy + get_policy (key policy: rotation)")

alias = kp.create_key_alias(id=plain, alias="plain-alias", bluemix_instance=I2)
assert alias.get_status_code() == 201, alias.get_status_code()
by_alias = result(kp.get_key_metadata(id="plain-alias", bluemix_instance=I2))["resources"][0]
assert by_alias["id"] == plain, by_alias
assert kp.delete_key_alias(id=plain, alias="plain-alias", bluemix_instance=I2).get_status_code() == 204
step("create_key_alias, get by alias, delete_key_alias")

assert kp.create_key_ring(key_ring_id="ring-py", bluemix_instance=I2).get_status_code() == 201
rings = [r["id"] for r in result(kp.list_key_rings(bluemix_instance=I2))["resources"]]
assert rings == ["default", "ring-py"], rings
in_ring = kp.create_key(
    bluemix_instance=I2, x_kms_key_ring="ring-py", key_create_body=key_create_body("in-ring", False)
)
in_ring = result(in_ring)["resources"][0]
assert in_ring["keyRingID"] == "ring-py", in_ring
listed = result(kp.get_keys(bluemix_instance=I2, x_kms_key_ring="ring-py"))["resources"]
assert [k["id"] for k in listed] == [in_ring["id"]], listed
refused(lambda: kp.delete_key_ring(key_ring_id="ring-py", bluemix_instance=I2), 409, "KEY_ACTION_INVALID_STATE_ERR")
moved = kp.patch_key(id=in_ring["id"], bluemix_instance=I2, key_patch_body=body({"keyRingID": "default"}))
assert result(moved)["resources"][0]["keyRingID"] == "default"
assert kp.delete_key_ring(key_ring_id="ring-py", bluemix_instance=I2).get_status_code() == 204
step("key rings: create, list, X-Kms-Key-Ring, patch_key moves the key, delete")

refused(
    lambda: kp.purge_key(id=guarded, bluemix_instance=I2),
    409,
    "REQ_TOO_EARLY_ERR",
    "Conflict: Key could not be purged: Please see 'reasons' for more details (REQ_TOO_EARLY_ERR)",
)
step("purge_key right after deletion: 409 REQ_TOO_EARLY_ERR (4 h)")

for registrations in (
    kp.get_registrations(id=plain, bluemix_instance=I2),
    kp.get_registrations_all_keys(bluemix_instance=I2),
):
    assert result(registrations)["resources"] == [], registrations.get_result()
refused(lambda: kp.get_kmip_adapters(bluemix_instance=I2), 403, "FEATURE_RESTRICTED_ERR")
step("get_registrations (none); KMIP refused (FEATURE_RESTRICTED_ERR)")

print("all steps passed", flush=True)
sys.exit(0)
