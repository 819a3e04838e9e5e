"""The client matrix's Python half, shared by kp_methods.py (keyprotect 3.0.1) and
kp231_methods.py (keyprotect 2.3.1): each SDK call becomes one row (method, call, HTTP status,
result), and the reference's reproductions are checked byte for byte.

A script prints one `ROW {json}` line per call, then one `METHODS [json]` line naming every
public method of its client that maps to an API call. tests/client_matrix.rs compares the rows
with the table in docs/clients.md, and checks that every method named has a row: the script
itself asserts only what a later step needs (an id, a refusal's exact envelope).

The result column is `ok` for a 2xx answer; otherwise the reason code of the error envelope in
backquotes (a 401 envelope carries no reasons: its errorMsg's catalogued code), followed by
`(gateway)` when kmsgate refused the request itself (the `kmsgate-reason` header) rather than
the dev KMS.
"""

import json
import os

# The reference's example envelopes (tests/fixtures/reason-catalogue.json), by reason code.
_EXAMPLES = {
    "UNAUTHORIZED_ERR": "error-messages-unauthorized-err-cxt-json",
    "KEY_CREATE_IMPORT_ACCESS_ERR": "error-messages-key-create-import-access-err-example-json-1",
}
MORE_INFO = "https://cloud.ibm.com/apidocs/key-protect"
ERROR_METADATA = {"collectionType": "application/vnd.ibm.kms.error+json", "collectionTotal": 1}
UNAUTHORIZED_MSG = "Unauthorized: The user does not have access to the specified resource"


def _catalogue() -> dict:
    with open(os.environ["KP_CATALOGUE"], encoding="utf-8") as f:
        return json.load(f)


def reference_envelope(code: str, error_msg: str = "") -> dict:
    """The envelope the reference shows for `code`: its example where it has one, else the
    catalogued code, message and status under `error_msg`."""
    catalogue = _catalogue()
    if code in _EXAMPLES:
        return next(e["envelope"] for e in catalogue["examples"] if e["id"] == _EXAMPLES[code])
    entry = next(r for r in catalogue["reasons"] if r["code"] == code)
    reason = {"code": code, "message": entry["message"], "status": entry["status"], "moreInfo": MORE_INFO}
    return {"metadata": ERROR_METADATA, "resources": [{"errorMsg": error_msg, "reasons": [reason]}]}


def code_of(response) -> str:
    """The reason code of an error response (a 401's from its errorMsg), else its first bytes."""
    try:
        resource = response.json()["resources"][0]
    except Exception:  # noqa: BLE001 - a body that is not an envelope
        return response.text[:60]
    reasons = resource.get("reasons") or []
    if reasons:
        return reasons[0]["code"]
    if resource.get("errorMsg") == UNAUTHORIZED_MSG:
        return "UNAUTHORIZED_ERR"
    return resource.get("errorMsg", "")[:60]


class Matrix:
    """Rows of one client's run. `error` is the SDK's exception type, `response_of` its HTTP
    response, `status_of` the status of a call's return value (None: the last response seen)."""

    def __init__(self, error, response_of, status_of):
        self.error = error
        self.response_of = response_of
        self.status_of = status_of
        self.rows = []

    def call(self, method: str, how: str, fn, reproduces: str = ""):
        """Runs `fn` and records its row; returns its value (None when refused). With
        `reproduces`, the call must be refused by the gateway with exactly the reference's
        envelope for that code, byte for byte."""
        try:
            value = fn()
        except self.error as e:
            response = self.response_of(e)
            code = code_of(response)
            who = " (gateway)" if response.headers.get("kmsgate-reason") else ""
            self.rows.append((method, how, response.status_code, f"`{code}`{who}"))
            if reproduces:
                expected = reference_envelope(reproduces, _ERROR_MSGS.get(reproduces, ""))
                rendered = json.dumps(expected, separators=(",", ":")).encode()
                assert code == reproduces and who, (method, how, code, response.text)
                assert response.content == rendered, (response.text, rendered)
            return None
        self.rows.append((method, how, self.status_of(value), "ok"))
        assert not reproduces, f"{method} ({how}) succeeded, expected {reproduces}"
        return value

    def print(self, methods) -> None:
        """The rows, then the client's public API methods (see the module's doc)."""
        for method, how, status, result in self.rows:
            print("ROW " + json.dumps({"method": method, "call": how, "status": status, "result": result}))
        print("METHODS " + json.dumps(sorted(methods)))


# errorMsg of the refusals the reference shows without an example envelope.
_ERROR_MSGS = {
    "CONFIG_RULE_CONFLICT_ERR": "Forbidden: Keys could not be retrieved. Please see `reasons` for more details.",
}
