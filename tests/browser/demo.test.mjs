// Browser test of the demo page served at `/` by `ximagepipeline serve`.
//
//   cd tests/browser && npm ci && XIMAGEPIPELINE_URL=http://127.0.0.1:3000 node --test
//
// Environment: XIMAGEPIPELINE_URL (default http://127.0.0.1:3000), XIMAGEPIPELINE_CORPUS
// (default ../../../shared/corpus), SCREENSHOT_DIR (default ../../target/browser-screenshots),
// CHROMIUM (default /usr/bin/chromium), XIMAGEPIPELINE_JOB_TIMEOUT_MS (default 180000).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.XIMAGEPIPELINE_URL || "http://127.0.0.1:3000").replace(/\/+$/, "");
const CORPUS = path.resolve(process.env.XIMAGEPIPELINE_CORPUS || path.join(here, "../../../shared/corpus"));
const SHOTS = path.resolve(process.env.SCREENSHOT_DIR || path.join(here, "../../target/browser-screenshots"));
const JOB_TIMEOUT = Number(process.env.XIMAGEPIPELINE_JOB_TIMEOUT_MS || 180_000);

// A 12 MP phone photo stored 4032x3024 with EXIF Orientation 6: displayed 3024x4032.
const PHOTO = "photos/dog_12mp_orientation6_exif_xmp_icc.jpg";
const NON_IMAGE = "invalid/text_renamed.jpg"; // plain text named .jpg

// The contract's default `gallery` variants (API.md §4): `inside`, width-bounded, never enlarged.
const GALLERY_VARIANTS = { md: 640, lg: 1280, xl: 1920 };

function manifestRow(file) {
  const [header, ...rows] = fs.readFileSync(path.join(CORPUS, "MANIFEST.tsv"), "utf8").trim().split("\n");
  const cols = header.split("\t");
  const row = rows.map((line) => line.split("\t")).find((cells) => cells[0] === file);
  assert.ok(row, `${file} is in MANIFEST.tsv`);
  return Object.fromEntries(cols.map((c, i) => [c, row[i]]));
}

function expectedInside(maxWidth, width, height) {
  const scale = Math.min(1, maxWidth / width);
  return { width: Math.round(width * scale), height: height * scale };
}

let browser;

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
});

after(async () => {
  await browser?.close();
});

async function openPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, colorScheme: "light", deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
  });
  await page.goto(`${BASE}/`);
  await page.waitForSelector("html[data-ready='true']");
  await page.waitForSelector("[data-testid='gallery'][data-loaded='true']", { state: "attached" });
  const config = await page.evaluate(() => JSON.parse(document.getElementById("xip-config").textContent));
  return { context, page, problems, prefix: config.prefix };
}

const shot = (page, name, fullPage = true) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });

async function horizontalOverflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

async function waitForFinalStatus(page) {
  await page.waitForSelector(
    "[data-testid='status']:is([data-state='complete'],[data-state='failed'],[data-state='rejected'],[data-state='error'])",
    { timeout: JOB_TIMEOUT },
  );
  return page.getAttribute("[data-testid='status']", "data-state");
}

test("upload a photo: progress, blurhash, variants, gallery, delete", { timeout: JOB_TIMEOUT + 120_000 }, async () => {
  const photo = manifestRow(PHOTO);
  const width = Number(photo.display_width);
  const height = Number(photo.display_height);
  const { context, page, problems, prefix } = await openPage();
  try {
    assert.equal(await page.inputValue("[data-testid='source-type']"), "gallery", "gallery is the default source type");
    assert.match(await page.inputValue("[data-testid='source-id']"), /^demo-[a-z0-9]+$/);
    await shot(page, "01-page-loaded");

    await page.selectOption("[data-testid='source-type']", "gallery");
    await page.setInputFiles("[data-testid='file']", path.join(CORPUS, PHOTO));
    await page.waitForSelector("[data-testid='progress']:visible");

    const final = await waitForFinalStatus(page);
    assert.equal(final, "complete", `status: ${await page.textContent("[data-testid='status']")}`);

    // Blurhash painted into the canvas before/under the variants.
    const painted = await page.evaluate(() => {
      const canvas = document.querySelector("canvas[data-testid='blurhash']");
      const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
      let opaque = 0;
      const colours = new Set();
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] > 0) opaque++;
        colours.add(`${data[i]},${data[i + 1]},${data[i + 2]}`);
      }
      return { w: canvas.width, h: canvas.height, opaque, pixels: data.length / 4, colours: colours.size };
    });
    assert.ok(painted.w >= 4 && painted.h >= 4, `canvas size ${painted.w}x${painted.h}`);
    assert.equal(painted.opaque, painted.pixels, "every blurhash pixel is painted");
    assert.ok(painted.colours > 1, "the blurhash has more than one colour");
    // Painted at the image's aspect ratio (portrait here).
    assert.ok(Math.abs(painted.w / painted.h - width / height) < 0.1, "blurhash canvas has the image's ratio");

    // Each variant loads with the contract's size.
    for (const [name, maxWidth] of Object.entries(GALLERY_VARIANTS)) {
      const figure = `[data-testid='variant-${name}']`;
      await page.waitForSelector(`${figure}[data-loaded='true']`, { timeout: 60_000 });
      const natural = await page.$eval(`${figure} img`, (img) => ({ w: img.naturalWidth, h: img.naturalHeight }));
      const expected = expectedInside(maxWidth, width, height);
      assert.equal(natural.w, expected.width, `${name} width`);
      assert.ok(Math.abs(natural.h - expected.height) <= 1, `${name} height ${natural.h} ≈ ${expected.height}`);
      await page.waitForFunction((sel) => document.querySelector(`${sel} [data-testid='variant-bytes']`).textContent.trim() !== "", figure);
      assert.match(await page.textContent(`${figure} [data-testid='variant-dims']`), new RegExp(`${natural.w} × ${natural.h}`));
    }
    assert.equal(await page.locator("figure[data-testid^='variant-']").count(), 3);

    // Facts of the original.
    assert.match(await page.textContent("[data-testid='fact-size']"), new RegExp(`${width} × ${height}`));
    assert.equal((await page.textContent("[data-testid='fact-ratio']")).trim(), "3:4");
    assert.match(await page.textContent("[data-testid='fact-blurhash']"), /^[0-9A-Za-z#$%*+,\-.:;=?@[\]^_{|}~]{6,}$/);
    const mediaId = (await page.textContent("[data-testid='fact-id']")).trim();
    assert.match(mediaId, /^med_/);

    await page.waitForSelector("[data-testid='stage-img'].is-loaded");
    await page.waitForTimeout(800); // let the fade-in finish
    await shot(page, "02-uploaded-complete");

    // Phone sizes: no horizontal scrolling, and a screenshot of the completed page.
    await page.setViewportSize({ width: 375, height: 812 });
    await page.waitForTimeout(200);
    assert.ok((await horizontalOverflow(page)) <= 0, "no horizontal overflow at 375 px (completed page)");
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    await shot(page, "05-phone-complete");
    await page.setViewportSize({ width: 1280, height: 900 });

    // The gallery shows the new media; clicking it shows its details.
    const item = page.locator(`[data-testid='gallery-item'][data-media-id='${mediaId}']`);
    await item.waitFor({ state: "visible" });
    assert.equal(await page.locator("[data-testid='gallery-item']").first().getAttribute("data-media-id"), mediaId,
      "newest first");
    await item.locator("img.is-loaded").waitFor();
    await item.locator("[data-testid='gallery-thumb']").click();
    assert.equal((await page.textContent("[data-testid='fact-id']")).trim(), mediaId);
    await page.locator("[data-testid='gallery-item']").first().scrollIntoViewIfNeeded();
    await page.waitForTimeout(700);
    await shot(page, "03-gallery");

    // Delete it: the item goes, the result panel empties, the API says 404.
    await item.locator("[data-testid='delete']").click();
    await item.waitFor({ state: "detached" });
    await page.waitForSelector("[data-testid='result-empty']:visible");
    const gone = await fetch(`${BASE}${prefix}/media/${encodeURIComponent(mediaId)}`);
    assert.equal(gone.status, 404);
    await shot(page, "04-deleted");

    assert.deepEqual(problems, [], "no page errors or CSP violations");
  } finally {
    await context.close();
  }
});

test("uploading a non-image shows the 415 error", async () => {
  const { context, page } = await openPage();
  try {
    await page.setInputFiles("[data-testid='file']", path.join(CORPUS, NON_IMAGE));
    assert.equal(await waitForFinalStatus(page), "error");
    await page.waitForSelector("[data-testid='error']:visible");
    assert.equal((await page.textContent("[data-testid='error-code']")).trim(), "TYPE_NOT_ALLOWED");
    assert.match(await page.textContent("[data-testid='error-http']"), /415/);
    assert.match(await page.textContent("[data-testid='error-message']"), /not allowed/i);
    assert.match(await page.textContent("[data-testid='status']"), /TYPE_NOT_ALLOWED/);
  } finally {
    await context.close();
  }
});

test("no horizontal overflow at 375 px", async () => {
  const { context, page, problems } = await openPage({ width: 375, height: 740 });
  try {
    assert.ok((await horizontalOverflow(page)) <= 0, "no horizontal overflow at 375 px");
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});
