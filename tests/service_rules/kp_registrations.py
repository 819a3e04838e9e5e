"""Registrations and the service-to-service rules with IBM's Python client (keyprotect 3.0.1)
through kmsgate in front of its embedded dev KMS.

keyprotect 3.0.1 lists registrations (get_registrations, get_registrations_all_keys) but has no
method for the writes, which only IBM services call; those go through the SDK's own request
machinery (prepare_request / send / encode_path_vars, the bearer authenticator), as its
generated methods do. A user's client and a service's client (KP_TOKEN, KP_TOKEN_2):
the user creates a root key; the user may not register it (403 SERVICE_ONLY_ERR), the service
may; both list it; the service may not delete the key (403 RESOURCE_OWNER_ERR, purge too); the
key is protected until the service deletes its registration; then the user deletes the key.

Run by tests/service_rules.rs (support::sdk::client_command) with KP_URL, KP_INSTANCE,
KP_TOKEN (a user's token) and KP_TOKEN_2 (a service's).
Prints one line per step; exits non-zero on the first failed assertion.
"""

import io
import json
import os

from ibm_cloud_sdk_core import ApiException
from ibm_cloud_sdk_core.authenticators import BearerTokenAuthenticator
from keyprotect.ibm_key_protect_api_v2 import IbmKeyProtectApiV2

URL = os.environ["KP_URL"]
I = os.environ["KP_INSTANCE"]
CRN = "crn:v1:bluemix:public:cloud-object-storage:global:a/0123456789abcdef:inst-1:bucket:py-bucket"


def client(token: str) -> IbmKeyProtectApiV2:
    kp = IbmKeyProtectApiV2(authenticator=BearerTokenAuthenticator(token))
    kp.set_service_url(URL)
    return kp


user = client(os.environ["KP_TOKEN"])
service = client(os.environ["KP_TOKEN_2"])


def step(name: str) -> None:
    print(f"ok: {name}", flush=True)


def refused(call, status: int, code: str, error_msg: str) -> None:
    """`call` fails with the gateway's refusal: status, kmsgate-reason, the envelope."""
    try:
        call()
    except ApiException as e:
        assert e.code == status, (e.code, e.message)
        response = e.http_response
        assert response.headers.get("kmsgate-reason") == code, dict(response.headers)
        envelope = response.json()
        assert envelope["metadata"] == {
            "collectionType": "application/vnd.ibm.kms.error+json",
            "collectionTotal": 1,
        }, envelope
        resource = envelope["resources"][0]
        assert resource["errorMsg"] == error_msg, resource
        assert resource["reasons"][0]["code"] == code, resource
        assert resource["reasons"][0]["status"] == status, resource
        return
    raise AssertionError(f"expected {status} {code}")


def registration(kp: IbmKeyProtectApiV2, method: str, key_id: str, resource=None):
    """A registration write as the SDK's generated methods send requests (path variables
    URL-encoded, so the CRN's ':' and '/' are escaped)."""
    key, crn = kp.encode_path_vars(key_id, CRN)
    data = None
    if resource is not None:
        data = json.dumps(
            {
                "metadata": {
                    "collectionType": "application/vnd.ibm.kms.registration_input+json",
                    "collectionTotal": 1,
                },
                "resources": [resource],
            }
        )
    request = kp.prepare_request(
        method=method,
        url=f"/api/v2/keys/{key}/registrations/{crn}",
        headers={
            "Bluemix-Instance": I,
            "Accept": "application/json",
            "Content-Type": "application/vnd.ibm.kms.registration_input+json",
        },
        data=data,
    )
    return kp.send(request)


created = user.create_key(
    bluemix_instance=I,
    prefer="return=representation",
    key_create_body=io.BytesIO(
        json.dumps(
            {
                "metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
                "resources": [
                    {"type": "application/vnd.ibm.kms.key+json", "name": "py-bucket-key", "extractable": False}
                ],
            }
        ).encode()
    ),
)
assert created.get_status_code() == 201, created.get_status_code()
key_id = created.get_result()["resources"][0]["id"]
step("create_key (user)")

refused(
    lambda: registration(user, "POST", key_id, {"preventKeyDeletion": False}),
    403,
    "SERVICE_ONLY_ERR",
    "Forbidden: Registration could not be created. Please see `reasons` for more details.",
)
step("registration create by the user: SERVICE_ONLY_ERR")

response = registration(service, "POST", key_id, {"preventKeyDeletion": False, "description": "py"})
assert response.get_status_code() == 201, response.get_status_code()
reg = response.get_result()["resources"][0]
assert reg["keyId"] == key_id and reg["resourceCrn"] == CRN, reg
step("registration create by the service")

for listed in (
    user.get_registrations(id=key_id, bluemix_instance=I, total_count=True),
    user.get_registrations_all_keys(
        bluemix_instance=I,
        url_encoded_resource_crn_query="crn:v1:bluemix:public:cloud-object-storage:global:*",
        total_count=True,
    ),
    service.get_registrations(id=key_id, bluemix_instance=I),
):
    result = listed.get_result()
    assert [r["resourceCrn"] for r in result["resources"]] == [CRN], result
step("get_registrations, get_registrations_all_keys (user and service)")

refused(
    lambda: registration(user, "PATCH", key_id, {"description": "mine"}),
    403,
    "SERVICE_ONLY_ERR",
    "Forbidden: Registration could not be updated. Please see `reasons` for more details.",
)
response = registration(service, "PATCH", key_id, {"description": "py, updated"})
assert response.get_result()["resources"][0]["description"] == "py, updated"
response = registration(service, "PUT", key_id, {"preventKeyDeletion": True})
assert response.get_result()["resources"][0]["preventKeyDeletion"] is True
step("registration update and replace (service); update by the user: SERVICE_ONLY_ERR")

refused(
    lambda: service.delete_key(id=key_id, bluemix_instance=I, force=True),
    403,
    "RESOURCE_OWNER_ERR",
    "Forbidden: Key could not be deleted. Please see `reasons` for more details.",
)
refused(
    lambda: service.purge_key(id=key_id, bluemix_instance=I),
    403,
    "RESOURCE_OWNER_ERR",
    "Forbidden: Key could not be purged. Please see 'reasons' for more details.",
)
step("delete_key and purge_key by the service: RESOURCE_OWNER_ERR")

try:
    user.delete_key(id=key_id, bluemix_instance=I, force=True)
    raise AssertionError("a key with a preventKeyDeletion registration was deleted")
except ApiException as e:
    assert e.code == 409, e.code
    assert e.http_response.headers.get("kmsgate-reason") is None
    assert e.http_response.json()["resources"][0]["reasons"][0]["code"] == "PREV_KEY_DEL_ERR"
step("delete_key by the user while registered: the dev KMS's PREV_KEY_DEL_ERR")

refused(
    lambda: registration(user, "DELETE", key_id),
    403,
    "SERVICE_ONLY_ERR",
    "Forbidden: Registration could not be deleted. Please see `reasons` for more details.",
)
response = registration(service, "DELETE", key_id)
assert response.get_status_code() == 204, response.get_status_code()
assert user.get_registrations(id=key_id, bluemix_instance=I).get_result()["resources"] == []
response = user.delete_key(id=key_id, bluemix_instance=I)
assert response.get_status_code() == 204, response.get_status_code()
step("registration delete (service); delete_key (user)")

print("all steps passed", flush=True)
