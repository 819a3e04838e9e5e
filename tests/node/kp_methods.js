// Calls every public API method of IBM's Node SDK for Key Protect (@ibm-cloud/ibm-key-protect
// 0.1.2, IbmKeyProtectApiV2) through kmsgate on the quickstart configuration, one row per call,
// as tests/python/matrix.py does for the Python clients: `ROW {json}` lines (method, call, HTTP
// status, result: `ok`, or the refusal's reason code, with `(gateway)` when kmsgate refused it
// itself), then `METHODS [json]` naming the client's API methods. tests/client_matrix.rs compares
// the rows with docs/clients.md. The reference's reproductions of UNAUTHORIZED_ERR,
// CONFIG_RULE_CONFLICT_ERR and KEY_CREATE_IMPORT_ACCESS_ERR are checked here byte for byte.
//
//   NODE_PATH=target/node-sdk/node_modules KP_URL=http://127.0.0.1:8080 \
//   KP_PRIVATE_URL=http://127.0.0.1:8081 KP_INSTANCE=<id> KP_TOKEN=<token> KP_TOKEN_2=<token> \
//   KP_CATALOGUE=tests/fixtures/reason-catalogue.json node tests/node/kp_methods.js
'use strict';

const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const IbmKeyProtectApiV2 = require('@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2');
const { BearerTokenAuthenticator } = require('@ibm-cloud/ibm-key-protect/auth');

const env = (name) => {
  const value = process.env[name];
  assert(value, `${name} is not set`);
  return value;
};
const I = env('KP_INSTANCE');
const MORE_INFO = 'https://cloud.ibm.com/apidocs/key-protect';
const UNAUTHORIZED_MSG = 'Unauthorized: The user does not have access to the specified resource';

const client = (token, url) =>
  new IbmKeyProtectApiV2({ authenticator: new BearerTokenAuthenticator({ bearerToken: token }), serviceUrl: url });
const kp = client(env('KP_TOKEN'), env('KP_URL'));
const kp2 = client(env('KP_TOKEN_2'), env('KP_URL'));
const kpPrivate = client(env('KP_TOKEN'), env('KP_PRIVATE_URL'));

// The envelope the reference shows for a code: its example (tests/fixtures/reason-catalogue.json)
// where it has one, else the catalogued code, message and status under errorMsg.
const catalogue = JSON.parse(fs.readFileSync(env('KP_CATALOGUE'), 'utf8'));
const EXAMPLES = {
  UNAUTHORIZED_ERR: 'error-messages-unauthorized-err-cxt-json',
  KEY_CREATE_IMPORT_ACCESS_ERR: 'error-messages-key-create-import-access-err-example-json-1',
};
const ERROR_MSGS = {
  CONFIG_RULE_CONFLICT_ERR: 'Forbidden: Keys could not be retrieved. Please see `reasons` for more details.',
};
function referenceEnvelope(code) {
  if (EXAMPLES[code]) {
    return catalogue.examples.find((e) => e.id === EXAMPLES[code]).envelope;
  }
  const entry = catalogue.reasons.find((r) => r.code === code);
  return {
    metadata: { collectionType: 'application/vnd.ibm.kms.error+json', collectionTotal: 1 },
    resources: [
      {
        errorMsg: ERROR_MSGS[code],
        reasons: [{ code, message: entry.message, status: entry.status, moreInfo: MORE_INFO }],
      },
    ],
  };
}

function codeOf(body) {
  let resource;
  try {
    resource = JSON.parse(body).resources[0];
  } catch (e) {
    return String(body).slice(0, 60);
  }
  if (resource.reasons && resource.reasons.length) {
    return resource.reasons[0].code;
  }
  return resource.errorMsg === UNAUTHORIZED_MSG ? 'UNAUTHORIZED_ERR' : String(resource.errorMsg).slice(0, 60);
}

const rows = [];
// Runs the call and records its row; resolves to its result (undefined when refused). With
// `reproduces`, the gateway must refuse it with exactly the reference's envelope, byte for byte.
async function call(method, how, fn, reproduces) {
  let response;
  try {
    response = await fn();
  } catch (err) {
    if (err.status === undefined) {
      throw err;
    }
    // A method that reads its answer as a stream (restoreKey) leaves the stream as the body.
    let body = err.body;
    if (body && typeof body[Symbol.asyncIterator] === 'function') {
      const chunks = [];
      for await (const chunk of body) {
        chunks.push(chunk);
      }
      body = Buffer.concat(chunks).toString();
    }
    const code = codeOf(body);
    const headers = err.headers || {};
    const who = headers['kmsgate-reason'] ? ' (gateway)' : '';
    rows.push({ method, call: how, status: err.status, result: `\`${code}\`${who}` });
    if (reproduces) {
      assert.strictEqual(code, reproduces, `${method} (${how}): ${body}`);
      assert.strictEqual(who, ' (gateway)', `${method} (${how}) was not refused by the gateway`);
      assert.strictEqual(body, JSON.stringify(referenceEnvelope(reproduces)));
    }
    return undefined;
  }
  assert(!reproduces, `${method} (${how}) succeeded, expected ${reproduces}`);
  rows.push({ method, call: how, status: response.status, result: 'ok' });
  return response.result;
}

const json = (obj) => Buffer.from(JSON.stringify(obj));
const keyBody = (name, extractable, extra) =>
  json({
    metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
    resources: [{ type: 'application/vnd.ibm.kms.key+json', name, extractable, ...extra }],
  });
const policies = (resources) => ({
  metadata: { collectionType: 'application/vnd.ibm.kms.policy+json', collectionTotal: resources.length },
  resources,
});
const instancePolicy = (type, data) => policies([{ policy_type: type, policy_data: data }]);

async function main() {
  const create = async (how, name, extractable, extra) =>
    (await call('createKey', how, () => kp.createKey({ bluemixInstance: I, body: keyBody(name, extractable, extra) })))
      .resources[0].id;
  const root = await create('root key', 'root', false);
  const std = await create('standard key', 'std', true);
  const imported = await create('imported root key (payload)', 'imported', false, {
    payload: crypto.randomBytes(32).toString('base64'),
  });
  await call('getKeys', 'no arguments', () => kp.getKeys({ bluemixInstance: I }));
  await call('getKeys', '`state: [1, 5]`, limit, offset, extractable', () =>
    kp.getKeys({ bluemixInstance: I, state: [1, 5], limit: 10, offset: 0, extractable: false }),
  );
  await call('getKeyCollectionMetadata', 'HEAD, `state: [1, 5]`', () =>
    kp.getKeyCollectionMetadata({ bluemixInstance: I, state: [1, 5], extractable: true }),
  );
  await call('getKey', '', () => kp.getKey({ id: std, bluemixInstance: I }));
  await call('getKeyMetadata', '', () => kp.getKeyMetadata({ id: root, bluemixInstance: I }));
  await call('getKeyVersions', '', () => kp.getKeyVersions({ id: root, bluemixInstance: I }));
  const dek = crypto.randomBytes(32).toString('base64');
  const wrapped = await call('wrapKey', '', () =>
    kp.wrapKey({ id: root, bluemixInstance: I, keyActionWrapBody: json({ plaintext: dek, aad: ['node'] }) }),
  );
  const unwrapped = await call('unwrapKey', '', () =>
    kp.unwrapKey({
      id: root,
      bluemixInstance: I,
      keyActionUnwrapBody: json({ ciphertext: wrapped.ciphertext, aad: ['node'] }),
    }),
  );
  assert.strictEqual(unwrapped.plaintext, dek);
  await call('rewrapKey', '', () =>
    kp.rewrapKey({
      id: root,
      bluemixInstance: I,
      keyActionRewrapBody: json({ ciphertext: wrapped.ciphertext, aad: ['node'] }),
    }),
  );
  await call('rotateKey', 'no body', () => kp.rotateKey({ id: root, bluemixInstance: I }));
  await call('rotateKey', 'again within the hour', () =>
    kp.rotateKey({ id: root, bluemixInstance: I, keyActionRotateBody: json({}) }),
  );
  const toDisable = await create('root key to disable', 'to-disable', false);
  await call('disableKey', '', () => kp.disableKey({ id: toDisable, bluemixInstance: I }));
  await call('enableKey', 'right after disable', () => kp.enableKey({ id: toDisable, bluemixInstance: I }));
  await call('setKeyForDeletion', 'key without dual auth', () => kp.setKeyForDeletion({ id: root, bluemixInstance: I }));
  await call('unsetKeyForDeletion', 'key without dual auth', () =>
    kp.unsetKeyForDeletion({ id: root, bluemixInstance: I }),
  );
  const dual = await create('root key for dual auth', 'dual', false);
  await call('putPolicy', 'key policy: dualAuthDelete', () =>
    kp.putPolicy({
      id: dual,
      bluemixInstance: I,
      policy: 'dualAuthDelete',
      setKeyPoliciesOneOf: policies([{ type: 'application/vnd.ibm.kms.policy+json', dualAuthDelete: { enabled: true } }]),
    }),
  );
  await call('setKeyForDeletion', 'dual-auth key', () => kp.setKeyForDeletion({ id: dual, bluemixInstance: I }));
  await call('unsetKeyForDeletion', 'dual-auth key', () => kp.unsetKeyForDeletion({ id: dual, bluemixInstance: I }));
  await call('setKeyForDeletion', 'dual-auth key, again', () => kp.setKeyForDeletion({ id: dual, bluemixInstance: I }));
  await call('deleteKey', 'dual-auth key, by the user who authorized', () =>
    kp.deleteKey({ id: dual, bluemixInstance: I }),
  );
  await call('deleteKey', 'dual-auth key, by a second user', () => kp2.deleteKey({ id: dual, bluemixInstance: I }));
  await call('syncAssociatedResources', '', () => kp.syncAssociatedResources({ id: root, bluemixInstance: I }));
  await call('deleteKey', 'imported root key', () => kp.deleteKey({ id: imported, bluemixInstance: I }));
  await call('restoreKey', 'right after deletion', () => kp.restoreKey({ id: imported, bluemixInstance: I }));
  await call('createKeyAlias', '', () => kp.createKeyAlias({ id: root, alias: 'node-alias', bluemixInstance: I }));
  await call('getKey', 'by alias', () => kp.getKey({ id: 'node-alias', bluemixInstance: I }));
  await call('deleteKeyAlias', '', () => kp.deleteKeyAlias({ id: root, alias: 'node-alias', bluemixInstance: I }));
  await call('putPolicy', 'key policy: rotation', () =>
    kp.putPolicy({
      id: root,
      bluemixInstance: I,
      policy: 'rotation',
      setKeyPoliciesOneOf: policies([{ type: 'application/vnd.ibm.kms.policy+json', rotation: { interval_month: 3 } }]),
    }),
  );
  await call('getPolicy', 'key policies', () => kp.getPolicy({ id: root, bluemixInstance: I }));
  await call('putInstancePolicy', 'metrics', () =>
    kp.putInstancePolicy({
      bluemixInstance: I,
      policy: 'metrics',
      setInstancePoliciesOneOf: instancePolicy('metrics', { enabled: true }),
    }),
  );
  await call('getInstancePolicy', '', () => kp.getInstancePolicy({ bluemixInstance: I }));
  await call('getAllowedIpPort', '', () => kp.getAllowedIpPort({ bluemixInstance: I }));
  await call('postImportToken', '', () =>
    kp.postImportToken({ bluemixInstance: I, expiration: 600, maxAllowedRetrievals: 2 }),
  );
  const token = await call('getImportToken', '', () => kp.getImportToken({ bluemixInstance: I }));
  // Secure import as a client does it with Node's own crypto: the token's public key seals the
  // key material (RSA-OAEP SHA-256), the material seals the token's nonce (AES-256-GCM).
  const material = crypto.randomBytes(32);
  const sealedPayload = crypto
    .publicEncrypt(
      { key: Buffer.from(token.payload, 'base64').toString(), padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      material,
    )
    .toString('base64');
  const sealNonce = (nonce, iv) => {
    const cipher = crypto.createCipheriv('aes-256-gcm', material, iv);
    return Buffer.concat([cipher.update(nonce), cipher.final(), cipher.getAuthTag()]).toString('base64');
  };
  const secureImport = (nonce) => {
    const iv = crypto.randomBytes(12);
    return kp.createKey({
      bluemixInstance: I,
      body: keyBody('secure', false, {
        payload: sealedPayload,
        encryptedNonce: sealNonce(nonce, iv),
        iv: iv.toString('base64'),
        encryptionAlgorithm: 'RSAES_OAEP_SHA_256',
      }),
    });
  };
  await call('createKey', 'secure import, another nonce than the token\'s', () => secureImport(Buffer.from('wrong-nonce')));
  await call('createKey', 'secure import (`encryptedNonce`, `iv`)', () => secureImport(Buffer.from(token.nonce, 'base64')));
  await call('getRegistrations', '', () => kp.getRegistrations({ id: root, bluemixInstance: I }));
  await call('getRegistrationsAllKeys', '', () => kp.getRegistrationsAllKeys({ bluemixInstance: I }));
  await call('createKeyRing', '', () => kp.createKeyRing({ keyRingId: 'ring-node', bluemixInstance: I }));
  await call('createKey', 'root key in that ring (`X-Kms-Key-Ring`)', () =>
    kp.createKey({ bluemixInstance: I, xKmsKeyRing: 'ring-node', body: keyBody('ringed', false) }),
  );
  await call('listKeyRings', '', () => kp.listKeyRings({ bluemixInstance: I }));
  await call('deleteKeyRing', 'ring that holds a key', () =>
    kp.deleteKeyRing({ keyRingId: 'ring-node', bluemixInstance: I }),
  );

  // The reference's reproductions: the policy set through the API, then the refused call.
  // Each on an instance of its own (allowedIP locks one out), named after KP_INSTANCE.
  const other = (n) => n + I.slice(2);
  await call('putInstancePolicy', 'allowedIP 65.128.226.252/24', () =>
    kp.putInstancePolicy({
      bluemixInstance: other('b1'),
      policy: 'allowedIP',
      setInstancePoliciesOneOf: instancePolicy('allowedIP', {
        enabled: true,
        attributes: { allowed_ip: ['65.128.226.252/24'] },
      }),
    }),
  );
  await call('getKeys', 'from outside that range', () => kp.getKeys({ bluemixInstance: other('b1') }), 'UNAUTHORIZED_ERR');
  await call('putInstancePolicy', 'allowedNetwork private-only', () =>
    kp.putInstancePolicy({
      bluemixInstance: other('b2'),
      policy: 'allowedNetwork',
      setInstancePoliciesOneOf: instancePolicy('allowedNetwork', {
        enabled: true,
        attributes: { allowed_network: 'private-only' },
      }),
    }),
  );
  await call(
    'getKeys',
    'public listener, private-only',
    () => kp.getKeys({ bluemixInstance: other('b2') }),
    'CONFIG_RULE_CONFLICT_ERR',
  );
  await call('getKeys', 'private listener, private-only', () => kpPrivate.getKeys({ bluemixInstance: other('b2') }));
  const noStandard = (enabled) =>
    kp.putInstancePolicy({
      bluemixInstance: other('b3'),
      policy: 'keyCreateImportAccess',
      setInstancePoliciesOneOf: instancePolicy('keyCreateImportAccess', {
        enabled,
        attributes: {
          create_root_key: true,
          create_standard_key: false,
          import_root_key: true,
          import_standard_key: true,
          enforce_token: true,
        },
      }),
    });
  const standardKey = () =>
    kp.createKey({
      bluemixInstance: other('b3'),
      body: keyBody('my-standard-key', true, { description: 'my-standard-key' }),
    });
  await call('putInstancePolicy', 'keyCreateImportAccess, no standard keys', () => noStandard(true));
  await call('createKey', 'standard key, after that policy', standardKey, 'KEY_CREATE_IMPORT_ACCESS_ERR');
  await call('putInstancePolicy', 'keyCreateImportAccess, disabled', () => noStandard(false));
  await call('createKey', 'standard key, policy disabled', standardKey);

  await call('deleteKey', 'root key', () => kp.deleteKey({ id: root, bluemixInstance: I }));
  await call('deleteKey', 'again', () => kp.deleteKey({ id: root, bluemixInstance: I }));

  for (const row of rows) {
    console.log(`ROW ${JSON.stringify(row)}`);
  }
  const methods = Object.getOwnPropertyNames(IbmKeyProtectApiV2.prototype).filter(
    (name) => name !== 'constructor' && typeof IbmKeyProtectApiV2.prototype[name] === 'function',
  );
  console.log(`METHODS ${JSON.stringify(methods.sort())}`);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  if (err && err.body) {
    console.error(err.status, err.body);
  }
  process.exit(1);
});
