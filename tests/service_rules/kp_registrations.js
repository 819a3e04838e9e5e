// Registrations and the service-to-service rules with IBM's Node SDK (@ibm-cloud/ibm-key-protect
// 0.1.2) through kmsgate in front of its embedded dev KMS, as kp_registrations.py does with the
// Python SDK. The SDK lists registrations (getRegistrations, getRegistrationsAllKeys) and deletes
// keys, but has no method for the registration writes (IBM services call them) nor for purge;
// those go through the SDK's own request machinery (createRequest, path parameters encoded by
// it), as its generated methods do. KP_TOKEN is a user's token, KP_TOKEN_2 a service's.
//
//   NODE_PATH=target/node-sdk/node_modules KP_URL=http://127.0.0.1:8080 KP_INSTANCE=<id> \
//   KP_TOKEN=<user token> KP_TOKEN_2=<service token> node tests/service_rules/kp_registrations.js
'use strict';

const assert = require('assert');
const { BearerTokenAuthenticator } = require('@ibm-cloud/ibm-key-protect/auth');
const IbmKeyProtectApiV2 = require('@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2');

const { KP_URL, KP_INSTANCE: I, KP_TOKEN, KP_TOKEN_2 } = process.env;
assert(KP_URL && I && KP_TOKEN && KP_TOKEN_2, 'set KP_URL, KP_INSTANCE, KP_TOKEN and KP_TOKEN_2');
const CRN = 'crn:v1:bluemix:public:cloud-object-storage:global:a/0123456789abcdef:inst-1:bucket:node-bucket';
const [user, service] = [KP_TOKEN, KP_TOKEN_2].map(
  (bearerToken) =>
    new IbmKeyProtectApiV2({ authenticator: new BearerTokenAuthenticator({ bearerToken }), serviceUrl: KP_URL }),
);
const step = (name) => console.log(`ok: ${name}`);

// A request as the SDK's generated methods build one.
function request(kp, method, url, path, body) {
  return kp.createRequest({
    options: { url, method, path, body },
    defaultOptions: Object.assign({}, kp.baseOptions, {
      headers: {
        Accept: 'application/json',
        'Content-Type': 'application/vnd.ibm.kms.registration_input+json',
        'Bluemix-Instance': I,
      },
    }),
  });
}

const registration = (kp, method, id, resource) =>
  request(
    kp,
    method,
    '/api/v2/keys/{id}/registrations/{urlEncodedResourceCRN}',
    { id, urlEncodedResourceCRN: CRN },
    resource && {
      metadata: { collectionType: 'application/vnd.ibm.kms.registration_input+json', collectionTotal: 1 },
      resources: [resource],
    },
  );

// `fn` fails with the gateway's refusal: status, kmsgate-reason, the envelope.
async function refused(fn, status, code, errorMsg) {
  try {
    await fn();
  } catch (err) {
    if (err.status === undefined) {
      throw err;
    }
    assert.strictEqual(err.status, status, err.body);
    assert.strictEqual((err.headers || {})['kmsgate-reason'], code, JSON.stringify(err.headers));
    const envelope = JSON.parse(err.body);
    assert.deepStrictEqual(envelope.metadata, {
      collectionType: 'application/vnd.ibm.kms.error+json',
      collectionTotal: 1,
    });
    assert.strictEqual(envelope.resources[0].errorMsg, errorMsg);
    assert.strictEqual(envelope.resources[0].reasons[0].code, code);
    assert.strictEqual(envelope.resources[0].reasons[0].status, status);
    return;
  }
  throw new Error(`expected ${status} ${code}`);
}

async function main() {
  const created = await user.createKey({
    bluemixInstance: I,
    body: Buffer.from(
      JSON.stringify({
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'node-bucket-key', extractable: false }],
      }),
    ),
  });
  assert.strictEqual(created.status, 201);
  const id = created.result.resources[0].id;
  step('createKey (user)');

  await refused(
    () => registration(user, 'POST', id, { preventKeyDeletion: false }),
    403,
    'SERVICE_ONLY_ERR',
    'Forbidden: Registration could not be created. Please see `reasons` for more details.',
  );
  const made = await registration(service, 'POST', id, { preventKeyDeletion: false, description: 'node' });
  assert.strictEqual(made.status, 201);
  assert.strictEqual(made.result.resources[0].resourceCrn, CRN);
  step('registration create: SERVICE_ONLY_ERR for the user, 201 for the service');

  for (const listed of [
    await user.getRegistrations({ id, bluemixInstance: I, totalCount: true }),
    await user.getRegistrationsAllKeys({
      bluemixInstance: I,
      urlEncodedResourceCrnQuery: 'crn:v1:bluemix:public:cloud-object-storage:global:*',
    }),
  ]) {
    assert.deepStrictEqual(
      listed.result.resources.map((r) => r.resourceCrn),
      [CRN],
      JSON.stringify(listed.result),
    );
  }
  step('getRegistrations, getRegistrationsAllKeys');

  await refused(
    () => registration(user, 'PUT', id, { preventKeyDeletion: true }),
    403,
    'SERVICE_ONLY_ERR',
    'Forbidden: Registration could not be replaced. Please see `reasons` for more details.',
  );
  const replaced = await registration(service, 'PUT', id, { preventKeyDeletion: true });
  assert.strictEqual(replaced.result.resources[0].preventKeyDeletion, true);
  step('registration replace: SERVICE_ONLY_ERR for the user, 200 for the service');

  await refused(
    () => service.deleteKey({ id, bluemixInstance: I, force: true }),
    403,
    'RESOURCE_OWNER_ERR',
    'Forbidden: Key could not be deleted. Please see `reasons` for more details.',
  );
  await refused(
    () => request(service, 'DELETE', '/api/v2/keys/{id}/purge', { id }),
    403,
    'RESOURCE_OWNER_ERR',
    "Forbidden: Key could not be purged. Please see 'reasons' for more details.",
  );
  step('deleteKey and purge by the service: RESOURCE_OWNER_ERR');

  try {
    await user.deleteKey({ id, bluemixInstance: I, force: true });
    throw new Error('a key with a preventKeyDeletion registration was deleted');
  } catch (err) {
    assert.strictEqual(err.status, 409, String(err));
    assert.strictEqual((err.headers || {})['kmsgate-reason'], undefined);
    assert.strictEqual(JSON.parse(err.body).resources[0].reasons[0].code, 'PREV_KEY_DEL_ERR');
  }
  step("deleteKey by the user while registered: the dev KMS's PREV_KEY_DEL_ERR");

  await refused(
    () => registration(user, 'DELETE', id),
    403,
    'SERVICE_ONLY_ERR',
    'Forbidden: Registration could not be deleted. Please see `reasons` for more details.',
  );
  const removed = await registration(service, 'DELETE', id);
  assert.strictEqual(removed.status, 204);
  const deleted = await user.deleteKey({ id, bluemixInstance: I });
  assert.strictEqual(deleted.status, 204);
  step('registration delete (service); deleteKey (user)');
  console.log('all steps passed');
}

main().catch((err) => {
  console.error(err && err.body ? `${err.status} ${err.body}` : err);
  process.exit(1);
});
