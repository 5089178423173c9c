// Generates test/generated/openapi.d.ts from the LIVE server's OpenAPI document, so that
// test/types-match.ts can check the client's hand-written types against what the server says.
// The server: $XIMAGEPIPELINE_URL (default http://127.0.0.1:3000), API prefix /image-pipeline
// (or $XIMAGEPIPELINE_PREFIX).
import { mkdir, writeFile } from "node:fs/promises";
import openapiTS, { astToString } from "openapi-typescript";

const base = (process.env.XIMAGEPIPELINE_URL ?? "http://127.0.0.1:3000").replace(/\/+$/, "");
const prefix = process.env.XIMAGEPIPELINE_PREFIX ?? "/image-pipeline";
const url = `${base}${prefix}/openapi.json`;
const outDir = new URL("./generated/", import.meta.url);

function fail(message) {
  console.error(`\ngenerate: ${message}\n`);
  process.exit(1);
}

let response;
try {
  response = await fetch(url, { headers: { Accept: "application/json" } });
} catch (e) {
  fail(`cannot reach ${url} (${e.cause?.message ?? e.message}).\n` +
    `Start the server (from the repository root: cargo run --release -- serve) or set XIMAGEPIPELINE_URL.`);
}
if (response.status === 404) {
  fail(`${url} answered 404: this server does not serve its OpenAPI document yet.\n` +
    `Build a server with the OpenAPI route, or run only the live tests: npm run test:live`);
}
if (!response.ok) fail(`${url} answered HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
const text = await response.text();
let doc;
try {
  doc = JSON.parse(text);
} catch {
  fail(`${url} is not JSON: ${text.slice(0, 200)}`);
}
if (typeof doc.openapi !== "string") fail(`${url} is not an OpenAPI document (no "openapi" field)`);

const ast = await openapiTS(doc);
await mkdir(outDir, { recursive: true });
await writeFile(new URL("openapi.json", outDir), JSON.stringify(doc, null, 2) + "\n");
await writeFile(new URL("openapi.d.ts", outDir), astToString(ast));
console.log(`generate: ${url} (OpenAPI ${doc.openapi}) -> test/generated/openapi.d.ts`);

// The schema names test/types-match.ts compares with.
const wanted = ["Media", "MediaPage", "UploadAccepted", "JobPending", "JobComplete", "JobRejected", "JobFailed", "ApiError"];
const schemas = Object.keys(doc.components?.schemas ?? {});
const missing = wanted.filter((name) => !schemas.includes(name));
if (missing.length > 0) {
  fail(`${url} lacks components.schemas ${missing.join(", ")} (it has: ${schemas.join(", ")}).` +
    (missing.includes("JobPending") && schemas.includes("JobRunning")
      ? `\nThe PENDING/PROCESSING body is named JobRunning there; the client expects JobPending.`
      : ""));
}
