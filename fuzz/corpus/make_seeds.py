#!/usr/bin/env python3
"""Writes the seed corpora: small, real inputs for each fuzz target.

The bodies, policies, tokens, paths and PROXY headers are the examples of Key Protect's API
reference (shared/reference/key-protect-api.md) and of kmsgate's own tests. Run it from
anywhere; it rewrites corpus/<target>/ beside this file. The output is committed.
"""

import base64
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def b64url(obj):
    text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


KEY_META = '{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1}'
POLICY_META = '{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":%d}'


def create(resource, meta=KEY_META):
    return '{"metadata":%s,"resources":[%s]}' % (meta, resource)


# --- body: "<route label>[?query]\n<body>" -------------------------------------------------
body = {
    "create_root": ("key_create", create(
        '{"type":"application/vnd.ibm.kms.key+json","name":"my-key","aliases":["alias1"],'
        '"description":"d","expirationDate":"2030-01-01T00:00:00Z","extractable":false}')),
    "create_standard": ("key_create", create(
        '{"type":"application/vnd.ibm.kms.key+json","name":"k","extractable":true}')),
    "import_root": ("key_create", create(
        '{"type":"application/vnd.ibm.kms.key+json","name":"k","extractable":false,'
        '"payload":"AAECAwQFBgcICQoLDA0ODw=="}')),
    "import_with_token": ("key_create", create(
        '{"type":"application/vnd.ibm.kms.key+json","name":"k","extractable":false,'
        '"payload":"dGhpcyBpcyBub3QgcmVhbGx5IGVuY3J5cHRlZA==","encryptionAlgorithm":'
        '"RSAES_OAEP_SHA_256","encryptedNonce":"DVy/Dbk37X8gfJ7z","iv":"puQrzDX7gU1TcTTx"}')),
    "create_two_resources": ("key_create", create(
        '{"name":"a","extractable":false},{"name":"b","extractable":false}',
        KEY_META.replace(":1}", ":2}"))),
    "create_empty_metadata": ("key_create_with_policy_overrides",
                              '{"metadata": {}, "resources": [{"name":"k","extractable":false}]}'),
    "create_overrides": ("key_create_with_policy_overrides", create(
        '{"name":"k","extractable":false,"rotation":{"enabled":true,"interval_month":3},'
        '"dualAuthDelete":{"enabled":false}}')),
    "create_case_variant": ("key_create",
                            '{"Metadata":{"CollectionType":"application/vnd.ibm.kms.key+json",'
                            '"collectiontotal":1},"RESOURCES":[{"Extractable":true,"PAYLOAD":"AAAA"}]}'),
    "create_duplicate_resources": ("key_create",
                                   '{"metadata":%s,"resources":[{"extractable":true,"payload":"AAAA"}],'
                                   '"resources":[{"extractable":true}]}' % KEY_META),
    "create_empty_token": ("key_create", create(
        '{"extractable":false,"payload":"AAAA","encryptedNonce":"","iv":""}')),
    "wrap": ("key_wrap", '{"plaintext":"q+x3QiAAAAAAAAAA/BVb8bPjAAAAAAAAAAAvVD=","aad":["s1","s2"]}'),
    "wrap_bad_base64": ("key_wrap", '{"plaintext": "q+x3Qi.../BVb8bPj....vVD;"}'),
    "wrap_empty": ("key_wrap", "{}"),
    "unwrap": ("key_unwrap", '{"ciphertext":"eyJjaXBoZXJ0ZXh0IjoiUnl' + "A" * 40 +
               'hYTUtNDNmMi05NTc5LWM2NjAzN2EwNjhkNyJ9","aad":["s1"]}'),
    "unwrap_no_body": ("key_unwrap", ""),
    "rewrap": ("key_rewrap", '{"ciphertext":"AAAA","aad":[]}'),
    "rotate_empty": ("key_rotate", ""),
    "rotate_payload": ("key_rotate", '{"payload":"AAECAwQFBgcICQoLDA0ODw=="}'),
    "rotate_secure": ("key_rotate", '{"payload":"AAAA","encryptionAlgorithm":"RSAES_OAEP_SHA_256",'
                      '"encryptedNonce":"AAAA","iv":"puQrzDX7gU1TcTTx"}'),
    "restore": ("key_restore", '{"payload":"AAECAwQFBgcICQoLDA0ODw=="}'),
    "policy_put": ("instance_policies_put?policy=allowedIP", '{"metadata":%s,"resources":[{"policy_type":'
                   '"allowedIP","policy_data":{"enabled":true,"attributes":{"allowed_ip":'
                   '["192.0.2.0/24"]}}}]}' % (POLICY_META % 1)),
    "null_fields": ("key_create", create('{"extractable":null,"payload":null,"iv":null}')),
}
for name, (head, text) in body.items():
    write("body", name, head + "\n" + text)

# --- policy: "<query>\n<body>" ---------------------------------------------------------------
def policy(resources, total=None):
    if total is None:
        total = len(resources)
    return '{"metadata":%s,"resources":[%s]}' % (POLICY_META % total, ",".join(resources))


ALLOWED_IP = ('{"policy_type":"allowedIP","policy_data":{"enabled":true,"attributes":'
              '{"allowed_ip":["192.0.2.1/24","2001:db8::/32"]}}}')
NETWORK = ('{"policy_type":"allowedNetwork","policy_data":{"enabled":true,"attributes":'
           '{"allowed_network":"private-only"}}}')
KCIA = ('{"policy_type":"keyCreateImportAccess","policy_data":{"enabled":true,"attributes":'
        '{"create_root_key":true,"create_standard_key":false,"import_root_key":true,'
        '"import_standard_key":false,"enforce_token":true}}}')
DUAL = '{"policy_type":"dualAuthDelete","policy_data":{"enabled":false}}'
METRICS = '{"policy_type":"metrics","policy_data":{"enabled":true}}'
ROTATION = '{"policy_type":"rotation","policy_data":{"enabled":true,"attributes":{"interval_month":3}}}'
GET_KCIA = ('{"createdBy":"IBMid-1","creationDate":"2020-09-02T21:12:26Z","updatedBy":"IBMid-1",'
            '"lastUpdated":"2020-09-08T18:31:37Z",' + KCIA[1:])
pol = {
    "allowed_ip": ("policy=allowedIP", policy([ALLOWED_IP])),
    "allowed_network": ("policy=allowedNetwork", policy([NETWORK])),
    "kcia": ("policy=keyCreateImportAccess", policy([KCIA])),
    "kcia_disabled": ("policy=keyCreateImportAccess", policy(
        ['{"policy_type":"keyCreateImportAccess","policy_data":{"enabled":false}}'])),
    "rotation": ("policy=rotation", policy([ROTATION])),
    "dual_metrics": ("", policy([DUAL, METRICS])),
    "all": ("", policy([ALLOWED_IP, NETWORK, KCIA, DUAL, METRICS, ROTATION])),
    "mismatch": ("policy=allowedIP", policy(['{"policy_type":"badName","policy_data":{"enabled":false}}'])),
    "total_mismatch": ("policy=dualAuthDelete", policy([DUAL], total=2)),
    "unknown_field": ("", '{"metadata":%s,"resources":[],"extra_field":1}' % (POLICY_META % 0)),
    "get_document": ("", policy([GET_KCIA], total=1)),
    "get_legacy": ("", policy(['{"policy_type":"ipWhitelist","policy_data":{"enabled":true,"attributes":'
                               '{"allowed_ip":["10.0.0.0/8"]}}}', ALLOWED_IP])),
    "case_variant": ("", '{"Metadata":{"COLLECTIONTYPE":"x","collectiontotal":1},"Resources":['
                     + DUAL + "]}"),
    "empty": ("", '{"metadata":{"collectionType":"x","collectionTotal":0},"resources":[]}'),
}
for name, (head, text) in pol.items():
    write("policy", name, head + "\n" + text)

# --- token: an Authorization value, or a bare JWT ---------------------------------------------
SIG = "c2lnbmF0dXJl"
tok = {
    "iam_user": "Bearer %s.%s.%s" % (
        b64url({"kid": "20240101", "alg": "RS256"}),
        b64url({"iam_id": "IBMid-1", "sub": "user@example.com", "sub_type": "User",
                "iss": "https://iam.cloud.ibm.com/identity", "aud": "kms",
                "exp": 1700003600, "iat": 1700000000, "nbf": 1699999990}), SIG),
    "iam_service": "bearer %s.%s.%s" % (
        b64url({"alg": "RS256", "kid": "k1", "typ": "JWT"}),
        b64url({"iss": "x", "sub": "ServiceId-1", "exp": 1700000000, "sub_type": "ServiceId",
                "n": {"a": [1]}}), SIG),
    "aud_array": "%s.%s.%s" % (
        b64url({"alg": "ES256"}),
        b64url('{"sub":"a","exp":10.6,"nbf":5,"iss":"i","aud":["x","y"],"other":{"exp":[1]}}'), SIG),
    "duplicate_claims": "Bearer %s.%s.%s" % (
        b64url({"alg": "HS256"}), b64url('{"sub":"a","exp":1,"exp":2}'), SIG),
    "service_array": "Bearer %s.%s.%s" % (
        b64url({"alg": "RS256"}), b64url({"sub": "svc", "sub_type": ["User", "ServiceId"]}), SIG),
    "no_sub": "Bearer %s.%s.%s" % (b64url({"alg": "RS256"}), b64url({"exp": 1}), SIG),
    "trailing": "Bearer %s.%s.%s" % (b64url({"alg": "RS256"}), b64url('{"sub":"a"} x'), ""),
    "not_bearer": "Basic dXNlcjpwYXNz",
    "b64_crit": "Bearer %s.%s.%s" % (
        b64url({"alg": "RS256", "b64": True, "crit": ["b64"]}), b64url({"sub": "a", "exp": 5}), SIG),
    # Regressions: payloads with a syntax error behind a claim whose unreadable value is tolerated
    # (the token target's finding, fixed in 375512f; see README.md). Both must be NotJwt.
    "regress_unterminated_iss": "%s.%s.c2ln" % (
        b64url({"alg": "RS256"}), b64url('{"sub":"a","iss":"\x01}')),
    "regress_broken_nbf_array": "%s.%s.c2ln" % (
        b64url({"alg": "RS256"}), b64url('{"sub":"a","nbf":[,,"b":1}')),
}
for name, text in tok.items():
    write("token", name, text)

# --- route: "<METHOD> <path>[?query]" ----------------------------------------------------------
KEY = "12e8c9c2-a162-472d-b7d6-8b9a86b815a6"
routes = {
    "create": "POST /api/v2/keys",
    "list": "GET /api/v2/keys?limit=200&offset=0&extractable=false",
    "get": "GET /api/v2/keys/" + KEY,
    "wrap": "POST /api/v2/keys/%s/actions/wrap" % KEY,
    "wrap_old": "POST /api/v2/keys/%s?action=wrap" % KEY,
    "restore_old": "POST /api/v2/keys/%s?action=restore" % KEY,
    "restore": "POST /api/v2/keys/%s/restore" % KEY,
    "purge": "DELETE /api/v2/keys/%s/purge" % KEY,
    "aliases": "POST /api/v2/keys/%s/aliases/alias1" % KEY,
    "policies_put": "PUT /api/v2/instance/policies?policy=allowedNetwork",
    "allowed_ip_port": "GET /api/v2/instance/allowed_ip_port",
    "encoded": "POST /api/v2/%6Beys/" + KEY + "/actions/%72otate?%61ction=re%73tore",
    "dot_segments": "POST /api/v2/keys/../keys/./" + KEY + "//actions/wrap/",
    "overrides": "POST /api/v2/keys_with_policy_overrides",
    "key_rings": "GET /api/v2/key_rings/default",
    "connect": "CONNECT /api/v2/keys",
}
for name, text in routes.items():
    write("route", name, text)

# --- canonical: a path, a query, an instance id or a host --------------------------------------
canon = {
    "path_encoded": "/api/v2/%6Beys/%2e%2E/keys//x/%2F",
    "path_plain": "/api/v2/keys/" + KEY + "/actions/wrap",
    "query": "action=re%73tore&policy=allowedIP&x=a+b",
    "query_dup": "action=wrap&%61ction=rotate",
    "query_semicolon": "a=1;action=wrap",
    "id_upper": "7A3D1F5C-9B2E-4C8D-A1F0-3E5B7C9D2A4F",
    "id_braced": "{7a3d1f5c-9b2e-4c8d-a1f0-3e5b7c9d2a4f}",
    "id_urn": "urn:uuid:7a3d1f5c-9b2e-4c8d-a1f0-3e5b7c9d2a4f",
    "id_bare": "7a3d1f5c9b2e4c8da1f03e5b7c9d2a4f",
    "host_v6": "[2001:db8::1]:8443",
    "host_name": "private.us-south.kms.cloud.ibm.com:443",
}
for name, text in canon.items():
    write("canonical", name, text)

# --- proxy_protocol: the first bytes of a connection ------------------------------------------
V2 = b"\r\n\r\n\x00\r\nQUIT\n"
pp = {
    "v1_tcp4": b"PROXY TCP4 192.0.2.1 10.0.0.1 5678 80\r\nGET / HTTP/1.1\r\n",
    "v1_tcp6": b"PROXY TCP6 2001:db8::1 ::1 5678 443\r\n",
    "v1_unknown": b"PROXY UNKNOWN\r\nX",
    "v1_bad_port": b"PROXY TCP4 192.0.2.1 10.0.0.1 01 80\r\n",
    "v1_lf_only": b"PROXY TCP4 192.0.2.1 10.0.0.1 1 80\n",
    "v2_tcp4": V2 + b"\x21\x11" + struct.pack(">H", 12) + bytes([192, 0, 2, 1, 10, 0, 0, 1])
    + struct.pack(">HH", 5678, 80) + b"GET",
    "v2_tcp6_tlv": V2 + b"\x21\x21" + struct.pack(">H", 36 + 7) + bytes(15) + b"\x01" + bytes(15)
    + b"\x01" + struct.pack(">HH", 443, 8443) + b"\x04\x00\x04abcd",
    "v2_local": V2 + b"\x20\x00" + struct.pack(">H", 0),
    "v2_unspec": V2 + b"\x21\x00" + struct.pack(">H", 3) + b"xyz",
    "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
}
for name, data in pp.items():
    write("proxy_protocol", name, data)
