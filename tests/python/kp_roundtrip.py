"""Drives kmsgate (in front of the embedded dev KMS) with IBM's official Python client,
keyprotect 3.0.1: create a root key, wrap and unwrap a DEK, both action URL styles, a rotation,
a refusal, and instance policies.

Run by tests/python_client.rs with KP_URL (the gateway) and KP_INSTANCE in the environment.
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
INSTANCE = os.environ["KP_INSTANCE"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# A JWT-shaped bearer token (header.claims.signature); the dev KMS does not verify it.
TOKEN = ".".join(
    [
        b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()),
        b64url(json.dumps({"sub": "python-client", "iat": 1700000000}).encode()),
        b64url(b"signature"),
    ]
)

kp = IbmKeyProtectApiV2(authenticator=BearerTokenAuthenticator(TOKEN))
kp.set_service_url(URL)


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

print("all steps passed", flush=True)
sys.exit(0)
