// The same walkthrough with the official `svix` npm package, run by .ci/run.
// Usage: HOOKD_URL=... HOOKD_TOKEN=... node walkthrough.mjs
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Svix } from "svix";

const svix = new Svix(process.env.HOOKD_TOKEN, { serverUrl: process.env.HOOKD_URL });
const suffix = randomUUID().slice(0, 8);

const app = await svix.application.create({ name: "My shop", uid: `shop-${suffix}` });
assert.match(app.id, /^app_/);
assert.equal((await svix.application.get(`shop-${suffix}`)).id, app.id);

const eventType = await svix.eventType.create({ name: `invoice.paid.${suffix}`, description: "paid" });
const endpoint = await svix.endpoint.create(app.id, {
  url: "https://example.com/webhooks",
  eventTypes: [eventType.name],
  channels: ["project_1"],
});
assert.match(endpoint.id, /^ep_/);
assert.deepEqual(endpoint.eventTypes, [eventType.name]);

const { key } = await svix.endpoint.getSecret(app.id, endpoint.id);
assert.match(key, /^whsec_/);
await svix.endpoint.rotateSecret(app.id, endpoint.id, {});
assert.notEqual((await svix.endpoint.getSecret(app.id, endpoint.id)).key, key);

await svix.endpoint.setHeaders(app.id, endpoint.id, { headers: { "X-Shop": "1" } });
assert.deepEqual((await svix.endpoint.getHeaders(app.id, endpoint.id)).headers, { "X-Shop": "1" });

const page = await svix.application.list({ limit: 1 });
assert.equal(page.data.length, 1);

await assert.rejects(svix.application.create({ name: "again", uid: `shop-${suffix}` }), (e) => e.code === 409);

await svix.endpoint.delete(app.id, endpoint.id);
await svix.application.delete(app.id);
console.log("node svix walkthrough: ok");
