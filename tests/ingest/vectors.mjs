// GitHub test vectors signed with GitHub's own @octokit/webhooks-methods.
// Writes crates/hookd-core/tests/data/ingest_vectors_npm.json (checked by
// crates/hookd-core/tests/ingest_vectors.rs).
//
//     cd tests/ingest && npm ci && node vectors.mjs
import { sign, verify } from "@octokit/webhooks-methods";
import { writeFileSync, readFileSync } from "node:fs";

const version = JSON.parse(
  readFileSync(new URL("./node_modules/@octokit/webhooks-methods/package.json", import.meta.url)),
).version;
const secret = "It's a Secret to Everybody";
const body = JSON.stringify({ action: "opened", issue: { number: 1347, title: "Found a bug ☕" } });
const signature = await sign(secret, body);
if (!(await verify(secret, body, signature))) throw new Error("octokit does not verify its own signature");
const vectors = [
  {
    name: "github",
    library: `@octokit/webhooks-methods ${version}`,
    type: "github",
    config: { secret },
    url: "https://hooks.example.com/in/tok_vectors",
    headers: [
      ["content-type", "application/json"],
      ["x-github-event", "issues"],
      ["x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"],
      ["x-hub-signature-256", signature],
    ],
    body,
    now: 1763900000,
    timestamped: false,
  },
];
const out = new URL("../../crates/hookd-core/tests/data/ingest_vectors_npm.json", import.meta.url);
writeFileSync(out, JSON.stringify(vectors, null, 1) + "\n");
console.error(`wrote ${vectors.length} vectors`);
