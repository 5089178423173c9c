/**
 * The client against a LIVE server (no mocks): $XIMAGEPIPELINE_URL (default
 * http://127.0.0.1:3000), running with its default configuration (no [auth]). Images come from
 * the shared corpus: $XIMAGEPIPELINE_CORPUS, default ../../../shared/corpus from the package.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import {
  XImagePipelineClient,
  XImagePipelineError,
  isFinal,
  type FailedJobCode,
  type JobStatus,
  type Media,
} from "../src/index.js";

const BASE_URL = process.env["XIMAGEPIPELINE_URL"] ?? "http://127.0.0.1:3000";
/** The package's folder (this file runs as dist-test/test/client.test.js). */
const PACKAGE_ROOT = new URL("../../", import.meta.url);
const CORPUS = dirUrl(process.env["XIMAGEPIPELINE_CORPUS"] ?? "../../../shared/corpus", PACKAGE_ROOT);
/** Generous: the server may be a debug build. */
const JOB_TIMEOUT_MS = 90_000;

const client = new XImagePipelineClient({ baseUrl: BASE_URL });

function dirUrl(path: string, base: URL): URL {
  return new URL(path.endsWith("/") ? path : `${path}/`, base);
}

/** A fresh source id, so runs never see each other's media. */
function sourceId(label: string): string {
  return `ts-${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

function corpusFile(path: string): Promise<Uint8Array> {
  return readFile(new URL(path, CORPUS));
}

/** MANIFEST.tsv's row of a file, by column name. */
async function manifestRow(path: string): Promise<Record<string, string>> {
  const lines = (await readFile(new URL("MANIFEST.tsv", CORPUS), "utf8")).split("\n");
  const header = (lines[0] ?? "").split("\t");
  for (const line of lines.slice(1)) {
    const cells = line.split("\t");
    if (cells[0] === path) return Object.fromEntries(header.map((h, i) => [h, cells[i] ?? ""]));
  }
  throw new Error(`${path} is not in the corpus manifest`);
}

/** Asserts that `promise` rejects with an XImagePipelineError of this status and code. */
async function rejectsWith(promise: Promise<unknown>, status: number, code: string): Promise<XImagePipelineError> {
  let caught: unknown;
  await assert.rejects(promise, (e: unknown) => {
    caught = e;
    return true;
  });
  assert.ok(caught instanceof XImagePipelineError, `expected an XImagePipelineError, got ${String(caught)}`);
  assert.equal(caught.code, code, `code (message: ${caught.message})`);
  assert.equal(caught.status, status, "status");
  assert.equal(caught.name, "XImagePipelineError");
  assert.ok(caught.message.length > 0);
  return caught;
}

async function completed(jobId: string): Promise<Media> {
  const job = await client.waitFor(jobId, { timeoutMs: JOB_TIMEOUT_MS });
  assert.equal(job.status, "COMPLETE", `job ${jobId} ended ${JSON.stringify(job)}`);
  if (job.status !== "COMPLETE" || job.media === null) throw new Error(`job ${jobId} has no media`);
  return job.media;
}

const MAIN_JPEG = "orientation/Landscape_6.jpg"; // EXIF orientation 6: stored 1200x1800, shown 1800x1200
const SMALL_JPEG = "valid/jpeg_gray_concert.jpg";

test("uploads a corpus JPEG as an avatar, waits for it, and fetches its WebP variant", async () => {
  const row = await manifestRow(MAIN_JPEG);
  const bytes = await corpusFile(MAIN_JPEG);
  const id = sourceId("avatar");
  const progress: Array<[number, number]> = [];

  const accepted = await client.upload(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "image/jpeg" }), {
    sourceType: "avatar",
    sourceId: id,
    filename: "Landscape_6.jpg",
    onProgress: (loaded, total) => progress.push([loaded, total]),
  });
  assert.match(accepted.jobId, /^[a-z0-9]+$/);
  assert.equal(accepted.statusUrl, `/image-pipeline/status/${accepted.jobId}`);
  assert.equal(accepted.message, "File uploaded. Processing started.");
  assert.equal(accepted.replayed, false);
  const last = progress[progress.length - 1];
  assert.ok(last, "onProgress was called");
  assert.equal(last[0], last[1], "the last progress report has loaded === total");
  assert.equal(last[1], bytes.byteLength);

  const early = await client.status(accepted.jobId);
  assert.ok(["PENDING", "PROCESSING", "COMPLETE"].includes(early.status), early.status);
  assert.equal(early.jobId, accepted.jobId);

  const media = await completed(accepted.jobId);
  // Exactly the fields of the Media type, every one present (null or not).
  const fields: Array<keyof Media> = ["aspectRatio", "blurhash", "createdAt", "format", "height", "id", "originalUrl", "sourceId", "sourceType", "urls", "variants", "width"];
  assert.deepEqual(Object.keys(media).sort(), fields);
  assert.match(media.id, /^med_/);
  assert.equal(media.sourceType, "avatar");
  assert.equal(media.sourceId, id);
  assert.deepEqual(Object.keys(media.urls).sort(), ["sm", "xs"]);
  assert.equal(media.width, Number(row["display_width"]));
  assert.equal(media.height, Number(row["display_height"]));
  assert.equal(media.aspectRatio, "3:2");
  assert.equal(typeof media.blurhash, "string");
  assert.ok(media.blurhash.length > 6);
  assert.match(media.originalUrl ?? "", /^https?:\/\/.*\/original\.jpg$/, "avatar keeps its original");
  assert.equal(media.format, "jpeg");
  assert.ok(media.createdAt !== null && !Number.isNaN(Date.parse(media.createdAt)));
  assert.deepEqual(media.variants["xs"], { width: 64, height: 64 });
  assert.deepEqual(media.variants["sm"], { width: 256, height: 256 });

  // The status after the end is the same answer, without waiting.
  const again = await client.status(accepted.jobId, { wait: 5 });
  assert.equal(again.status, "COMPLETE");
  assert.ok(isFinal(again));

  const sm = await fetch(media.urls["sm"] ?? "");
  assert.equal(sm.status, 200);
  assert.equal(sm.headers.get("content-type"), "image/webp");
  const webp = new Uint8Array(await sm.arrayBuffer());
  assert.equal(String.fromCharCode(...webp.slice(0, 4)), "RIFF");
  assert.equal(String.fromCharCode(...webp.slice(8, 12)), "WEBP");

  assert.deepEqual(await client.media(media.id), media);
  const page = await client.listMedia("avatar", id);
  assert.deepEqual(page.media.map((m) => m.id), [media.id]);
  assert.equal(page.nextCursor, null);
  assert.equal(await client.deleteMedia(media.id), true);
});

test("allMedia follows nextCursor over pages of one", async () => {
  const bytes = await corpusFile(SMALL_JPEG);
  const id = sourceId("pages");
  const first = await client.upload(bytes, { sourceType: "member_photo", sourceId: id });
  const firstMedia = await completed(first.jobId);
  const second = await client.upload(new Uint8Array(bytes).buffer, { sourceType: "member_photo", sourceId: id });
  const secondMedia = await completed(second.jobId);

  const page = await client.listMedia("member_photo", id, { limit: 1 });
  assert.equal(page.media.length, 1);
  assert.equal(typeof page.nextCursor, "string");
  assert.deepEqual(Object.keys(page.media[0]?.urls ?? {}).sort(), ["md", "sm", "xs"]);

  const all: Media[] = [];
  for await (const m of client.allMedia("member_photo", id, { limit: 1 })) all.push(m);
  // Newest first.
  assert.deepEqual(all.map((m) => m.id), [secondMedia.id, firstMedia.id]);
  const whole = await client.listMedia("member_photo", id);
  assert.deepEqual(whole.media.map((m) => m.id), [secondMedia.id, firstMedia.id]);
  assert.equal(whole.nextCursor, null);

  for (const m of all) assert.equal(await client.deleteMedia(m.id), true);
  const none: Media[] = [];
  for await (const m of client.allMedia("member_photo", id)) none.push(m);
  assert.deepEqual(none, []);
});

test("deleteMedia is true once, then media() is MEDIA_NOT_FOUND and deleteMedia false", async () => {
  const accepted = await client.upload(await corpusFile(SMALL_JPEG), { sourceType: "avatar", sourceId: sourceId("delete") });
  const media = await completed(accepted.jobId);
  assert.equal(await client.deleteMedia(media.id), true);
  await rejectsWith(client.media(media.id), 404, "MEDIA_NOT_FOUND");
  assert.equal(await client.deleteMedia(media.id), false);
  const gone = await fetch(media.urls["xs"] ?? "");
  assert.equal(gone.status, 404, "the variant's file is gone too");
});

test("the same Idempotency-Key twice gives the same job, replayed", async () => {
  const bytes = await corpusFile(SMALL_JPEG);
  const id = sourceId("idem");
  const key = `ts-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const first = await client.upload(bytes, { sourceType: "avatar", sourceId: id, idempotencyKey: key });
  const second = await client.upload(new Uint8Array(bytes).buffer, { sourceType: "avatar", sourceId: id, idempotencyKey: key });
  assert.equal(first.replayed, false);
  assert.equal(second.replayed, true);
  assert.equal(second.jobId, first.jobId);
  const media = await completed(first.jobId);
  const page = await client.listMedia("avatar", id);
  assert.deepEqual(page.media.map((m) => m.id), [media.id], "one upload stored");

  // The same key with another source is a misuse.
  await rejectsWith(
    client.upload(bytes, { sourceType: "avatar", sourceId: `${id}-other`, idempotencyKey: key }),
    422,
    "IDEMPOTENCY_KEY_REUSED",
  );
  // A malformed key is refused before anything is sent (status 0), with the server's code.
  await rejectsWith(client.upload(bytes, { sourceType: "avatar", sourceId: id, idempotencyKey: "bad key" }), 0, "INVALID_IDEMPOTENCY_KEY");
  await rejectsWith(client.upload(bytes, { sourceType: "avatar", sourceId: id, idempotencyKey: "k".repeat(256) }), 0, "INVALID_IDEMPOTENCY_KEY");
  await client.deleteMedia(media.id);
});

test("a text file is refused at upload with 415 TYPE_NOT_ALLOWED", async () => {
  const text = new TextEncoder().encode("This is not an image, whatever its name says.\n");
  const e = await rejectsWith(
    client.upload(text, { sourceType: "avatar", sourceId: sourceId("text"), filename: "photo.jpg" }),
    415,
    "TYPE_NOT_ALLOWED",
  );
  assert.match(e.message, /application\/octet-stream|text\/plain/);
  await rejectsWith(
    client.upload(await corpusFile("invalid/text_renamed.jpg"), { sourceType: "avatar", sourceId: sourceId("text") }),
    415,
    "TYPE_NOT_ALLOWED",
  );
});

test("upload refusals of the fields: unknown source type, bad source id, missing fields", async () => {
  const bytes = await corpusFile(SMALL_JPEG);
  const e = await rejectsWith(client.upload(bytes, { sourceType: "no_such_type", sourceId: "x1" }), 400, "UNKNOWN_SOURCE_TYPE");
  assert.equal(e.message, "Unknown sourceType: no_such_type");
  await rejectsWith(client.upload(bytes, { sourceType: "avatar", sourceId: "../etc" }), 400, "INVALID_SOURCE_ID");
  await rejectsWith(client.upload(bytes, { sourceType: "avatar", sourceId: "" }), 400, "MISSING_FIELDS");
});

test("a broken JPEG ends FAILED (a 500 status answer, returned as a value) or is refused at upload", async () => {
  let jobId: string;
  try {
    ({ jobId } = await client.upload(await corpusFile("invalid/truncated_40pct.jpg"), {
      sourceType: "avatar",
      sourceId: sourceId("broken"),
    }));
  } catch (e) {
    assert.ok(e instanceof XImagePipelineError && e.status === 422, String(e));
    return;
  }
  const job = await client.waitFor(jobId, { timeoutMs: JOB_TIMEOUT_MS });
  assert.equal(job.status, "FAILED", JSON.stringify(job));
  if (job.status !== "FAILED") return;
  const codes: FailedJobCode[] = ["UNREADABLE_IMAGE", "TOO_MANY_PIXELS", "OVER_BUDGET", "UNSUPPORTED_IMAGE", "TIMED_OUT", "STORAGE_UNAVAILABLE", "QUEUE_UNAVAILABLE", "MODERATION_UNAVAILABLE", "INTERNAL"];
  assert.ok(codes.includes(job.code), job.code);
  assert.ok(job.attempts >= 1);
  assert.ok(job.error.length > 0);
  const same: JobStatus = await client.status(jobId);
  assert.deepEqual(same, job);
});

test("status of an unknown job is JOB_NOT_FOUND; a bad wait is INVALID_WAIT", async () => {
  await rejectsWith(client.status("nosuchjob0000000000000000"), 404, "JOB_NOT_FOUND");
  await rejectsWith(client.waitFor("nosuchjob0000000000000000", { timeoutMs: 5000 }), 404, "JOB_NOT_FOUND");
  await rejectsWith(client.status("nosuchjob0000000000000000", { wait: -1 }), 400, "INVALID_WAIT");
});

test("media of an unknown id is MEDIA_NOT_FOUND; a bad page limit or cursor is refused", async () => {
  await rejectsWith(client.media("med_nosuchmedia"), 404, "MEDIA_NOT_FOUND");
  assert.equal(await client.deleteMedia("med_nosuchmedia"), false);
  await rejectsWith(client.listMedia("avatar", "x1", { limit: 0 }), 400, "INVALID_LIMIT");
  await rejectsWith(client.listMedia("avatar", "x1", { cursor: "not a cursor" }), 400, "INVALID_CURSOR");
});

test("waitFor with a tiny timeout either sees the job done or throws WAIT_TIMEOUT", async () => {
  const accepted = await client.upload(await corpusFile(SMALL_JPEG), { sourceType: "avatar", sourceId: sourceId("tiny") });
  const started = Date.now();
  try {
    const job = await client.waitFor(accepted.jobId, { timeoutMs: 1 });
    assert.equal(job.status, "COMPLETE");
  } catch (e) {
    assert.ok(e instanceof XImagePipelineError, String(e));
    assert.equal(e.code, "WAIT_TIMEOUT");
    assert.equal(e.status, 0);
  }
  assert.ok(Date.now() - started < 5000, "a 1 ms wait does not long-poll");
  const media = await completed(accepted.jobId);
  await client.deleteMedia(media.id);
});

test("an aborted signal cancels with the signal's reason, not an XImagePipelineError", async () => {
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(
    client.upload(await corpusFile(SMALL_JPEG), { sourceType: "avatar", sourceId: sourceId("abort"), signal: controller.signal }),
    (e: unknown) => e instanceof Error && e.name === "AbortError",
  );
  // Aborting a long-poll in flight: either the job ends first, or the wait is cut off.
  const accepted = await client.upload(await corpusFile(SMALL_JPEG), { sourceType: "avatar", sourceId: sourceId("abort") });
  try {
    const job = await client.status(accepted.jobId, { wait: 30, signal: AbortSignal.timeout(20) });
    assert.equal(job.status, "COMPLETE");
  } catch (e) {
    assert.ok(e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError"), String(e));
  }
  const media = await completed(accepted.jobId);
  await client.deleteMedia(media.id);
});

test("no server answering is a NETWORK error with status 0", async () => {
  const offline = new XImagePipelineClient({ baseUrl: "http://127.0.0.1:9" });
  await rejectsWith(offline.status("anything"), 0, "NETWORK");
  await rejectsWith(offline.upload(new Uint8Array([1, 2, 3]), { sourceType: "avatar", sourceId: "x1" }), 0, "NETWORK");
});

test("an answer that is not the contract's JSON is BAD_RESPONSE", async () => {
  // A client pointed at the server's HTML demo page (GET /, everything else in the query)
  // stands for a proxy or a wrong base URL answering a page instead of the API.
  const wrong = new XImagePipelineClient({ baseUrl: `${BASE_URL}/?`, prefix: "" });
  const e = await rejectsWith(wrong.media("med_x"), 200, "BAD_RESPONSE");
  assert.match(e.message, /not JSON/);
  // A wrong prefix: the server's JSON 404 for an unknown route, with its own code.
  const wrongPrefix = new XImagePipelineClient({ baseUrl: BASE_URL, prefix: "/nothing-here" });
  await rejectsWith(wrongPrefix.media("med_x"), 404, "NOT_FOUND");
});
