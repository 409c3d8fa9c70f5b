// Every source the ingest check made — hookd-only types included — lists and gets
// with the official `svix` npm package (run by tests/sdk/run.sh after ingest.py).
// Usage: HOOKD_URL=... HOOKD_TOKEN=... node sources.mjs
import assert from "node:assert/strict";
import { Svix } from "svix";

const svix = new Svix(process.env.HOOKD_TOKEN, { serverUrl: process.env.HOOKD_URL });
const sources = [];
let iterator = undefined;
for (;;) {
  const page = await svix.ingest.source.list({ limit: 3, iterator });
  sources.push(...page.data);
  if (page.done) break;
  iterator = page.iterator;
}
const raw = await fetch(`${process.env.HOOKD_URL}/ingest/api/v1/source?limit=250`, {
  headers: { authorization: `Bearer ${process.env.HOOKD_TOKEN}` },
}).then((r) => r.json());
assert.equal(sources.length, raw.data.length);
assert.ok(raw.data.some((s) => s.options?.verify?.type === "twilio"), "a twilio source is among them");
for (const s of sources) {
  assert.equal((await svix.ingest.source.get(s.id)).id, s.id);
}
console.log(`ingest: the npm SDK lists and gets all ${sources.length} sources`);
