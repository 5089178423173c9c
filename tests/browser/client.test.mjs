// The TypeScript client (clients/typescript, built to dist/) in a real browser: its upload
// helper takes the XMLHttpRequest path there and reports progress, then waits for the job.
//
//   (cd ../../clients/typescript && npm ci && npm run build)
//   cd tests/browser && npm ci && XIMAGEPIPELINE_URL=http://127.0.0.1:3000 node --test
//
// The page is served by the test on the server's own origin (playwright's routing), holding
// only the client's module, so the client's requests go to the real server as a page's would.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.XIMAGEPIPELINE_URL || "http://127.0.0.1:3000").replace(/\/+$/, "");
const CORPUS = path.resolve(process.env.XIMAGEPIPELINE_CORPUS || path.join(here, "../../../shared/corpus"));
const CLIENT = path.resolve(here, "../../clients/typescript/dist");
const PHOTO = "photos/dog_12mp_orientation6_exif_xmp_icc.jpg";

test("the TypeScript client uploads from chromium with progress and waits for the variants", async () => {
  const photo = await fs.readFile(path.join(CORPUS, PHOTO));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  try {
    const page = await browser.newPage();
    await page.route(`${BASE}/__client-test/**`, async (route) => {
      const name = path.basename(new URL(route.request().url()).pathname);
      if (name === "page.html") {
        return route.fulfill({ contentType: "text/html", body: "<!doctype html><title>client</title>" });
      }
      if (name === "photo.jpg") return route.fulfill({ contentType: "image/jpeg", body: photo });
      return route.fulfill({
        contentType: "text/javascript",
        body: await fs.readFile(path.join(CLIENT, name), "utf8"),
      });
    });
    // Counts the uploads sent by XMLHttpRequest, the browser path of `upload`.
    await page.addInitScript(() => {
      const send = XMLHttpRequest.prototype.send;
      window.xhrSends = 0;
      XMLHttpRequest.prototype.send = function (...args) {
        window.xhrSends += 1;
        return send.apply(this, args);
      };
    });
    await page.goto(`${BASE}/__client-test/page.html`);

    const result = await page.evaluate(async () => {
      const { XImagePipelineClient } = await import("/__client-test/index.js");
      const client = new XImagePipelineClient({ baseUrl: location.origin });
      const blob = await (await fetch("/__client-test/photo.jpg")).blob();
      const progress = [];
      const accepted = await client.upload(blob, {
        sourceType: "avatar",
        sourceId: "browser-client",
        onProgress: (loaded, total) => progress.push([loaded, total]),
      });
      const job = await client.waitFor(accepted.jobId, { timeoutMs: 120_000 });
      const media = job.status === "COMPLETE" ? job.media : null;
      const deleted = media ? await client.deleteMedia(media.id) : null;
      return { progress, status: job.status, media, deleted, xhrSends: window.xhrSends, size: blob.size };
    });

    assert.equal(result.xhrSends, 1, "the upload went through XMLHttpRequest");
    assert.ok(result.progress.length >= 1, "progress was reported");
    const [loaded, total] = result.progress.at(-1);
    assert.equal(loaded, total, "the last report is the whole body");
    assert.ok(total >= result.size, `the body (${total} B) holds the photo (${result.size} B)`);
    assert.equal(result.status, "COMPLETE");
    assert.deepEqual(Object.keys(result.media.urls).sort(), ["sm", "xs"]);
    assert.deepEqual([result.media.width, result.media.height], [3024, 4032], "displayed size");
    assert.equal(result.deleted, true);
  } finally {
    await browser.close();
  }
});
