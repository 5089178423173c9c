/**
 * `@ximagepipeline/client`: a dependency-free client of the ximagepipeline HTTP API for
 * browsers and Node 18+ (global `fetch`; `XMLHttpRequest` for upload progress in browsers).
 *
 * @packageDocumentation
 */

import { XImagePipelineError } from "./errors.js";
import type {
  ApiError,
  FinalJobStatus,
  JobStatus,
  Media,
  MediaPage,
  UploadAccepted,
  UploadResult,
} from "./types.js";

export { XImagePipelineError, isXImagePipelineError } from "./errors.js";
export type * from "./types.js";

/** How to reach a server. */
export interface ClientOptions {
  /**
   * The server's origin, e.g. `https://images.example.com` (a trailing `/` is ignored). In a
   * browser, `""` means the page's own origin.
   */
  baseUrl: string;
  /** Where the API is mounted (`[server] route_prefix`, or where a host app nested the router). */
  prefix?: string;
  /**
   * An API key (`ximagepipeline api-key`), sent as `Authorization: Bearer` on every request.
   * For backends only: never ship a key to a browser; give the page an upload token instead.
   */
  apiKey?: string;
  /** A `fetch` to use instead of the global one (tests, instrumentation, custom agents). */
  fetch?: typeof globalThis.fetch;
}

/** What an upload may carry besides the file. */
export interface UploadOptions {
  /** Decides the variants made (e.g. `avatar`, `gallery`); an unknown one is 400 `UNKNOWN_SOURCE_TYPE`. */
  sourceType: string;
  /** Whose image it is, e.g. a user id: `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`. */
  sourceId: string;
  /** The file name sent in the form (the server ignores it for the type; default the `File`'s name or `upload`). */
  filename?: string;
  /**
   * Makes retries safe: the same key with the same source and file within a day answers the
   * first upload's job (`replayed: true`) and stores nothing. Use one random id per upload
   * (1–255 visible ASCII characters; others throw `INVALID_IDEMPOTENCY_KEY`, status 0, unsent).
   */
  idempotencyKey?: string;
  /** An upload token (minted by your backend) for browsers, sent as the `token` form field. */
  token?: string;
  /** A webhook URL for this job's end, on a host the server's `allowed_callback_hosts` lists. */
  callbackUrl?: string;
  /**
   * Told the bytes sent so far and the total. In browsers it is called as the upload goes
   * (through `XMLHttpRequest`); elsewhere once, with `loaded === total`, when the upload is
   * accepted.
   */
  onProgress?: (loaded: number, total: number) => void;
  /** Cancels the upload. */
  signal?: AbortSignal;
}

/** Options of {@link XImagePipelineClient.status}. */
export interface StatusOptions {
  /**
   * Long-poll: seconds (0–30, fractions allowed) the server may hold the answer until the job
   * ends; without it, the current status comes at once.
   */
  wait?: number;
  /**
   * An upload token to read the status with, instead of the client's API key (servers with
   * `protect_status` let a token read the jobs it created).
   */
  token?: string;
  /** Cancels the request. */
  signal?: AbortSignal;
}

/** Options of {@link XImagePipelineClient.waitFor}. */
export interface WaitOptions {
  /** Give up after this many milliseconds with the client-side code `WAIT_TIMEOUT` (default 120000). */
  timeoutMs?: number;
  /** See {@link StatusOptions.token}. */
  token?: string;
  /** Cancels the wait. */
  signal?: AbortSignal;
}

/** Options of {@link XImagePipelineClient.listMedia}. */
export interface ListOptions {
  /** Page size, 1–500 (the server returns at most 1,000 without it). */
  limit?: number;
  /** The previous page's `nextCursor`. */
  cursor?: string;
  /** Cancels the request. */
  signal?: AbortSignal;
}

/** Options of {@link XImagePipelineClient.allMedia}. */
export interface AllMediaOptions {
  /** Page size of each request, 1–500. */
  limit?: number;
  /** Cancels the iteration. */
  signal?: AbortSignal;
}

/** Options of the calls that only take a signal. */
export interface RequestOptions {
  /** Cancels the request. */
  signal?: AbortSignal;
}

/** An answer, read whole, from `fetch` or `XMLHttpRequest`. */
interface RawResponse {
  status: number;
  header(name: string): string | null;
  text: string;
}

/** A request before it is sent. */
interface Outgoing {
  method: string;
  path: string;
  query?: Record<string, string | undefined>;
  headers?: Record<string, string>;
  body?: FormData;
  signal?: AbortSignal | undefined;
  /** A bearer credential replacing the client's API key for this request. */
  bearer?: string | undefined;
}

const FINAL = new Set(["COMPLETE", "REJECTED", "FAILED"]);
const ANY_STATUS = new Set(["PENDING", "PROCESSING", "COMPLETE", "REJECTED", "FAILED"]);
/** The longest `?wait` the server honours. */
const MAX_WAIT_SECS = 30;

/**
 * A client of one ximagepipeline server: upload images, follow their jobs, and list, read and
 * delete the media they produced. Every method rejects with an {@link XImagePipelineError}
 * (or the signal's reason when cancelled).
 *
 * @example
 * ```ts
 * const client = new XImagePipelineClient({ baseUrl: "http://127.0.0.1:3000", apiKey });
 * const { jobId } = await client.upload(bytes, { sourceType: "avatar", sourceId: "user-42" });
 * const job = await client.waitFor(jobId);
 * if (job.status === "COMPLETE") console.log(job.media.urls.sm);
 * ```
 */
export class XImagePipelineClient {
  /** The API's root URL: `baseUrl` + `prefix`, without a trailing slash. */
  readonly apiUrl: string;
  readonly #apiKey: string | undefined;
  readonly #fetch: typeof globalThis.fetch;

  /** Makes a client; it holds no connection and can be shared. */
  constructor(options: ClientOptions) {
    const base = options.baseUrl.replace(/\/+$/, "");
    let prefix = (options.prefix ?? "/image-pipeline").replace(/\/+$/, "");
    if (prefix !== "" && !prefix.startsWith("/")) prefix = `/${prefix}`;
    this.apiUrl = base + prefix;
    this.#apiKey = options.apiKey;
    // Called through a closure so a browser's fetch keeps its `this` (window).
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /**
   * Uploads an image and resolves when the server has accepted it (202), with the job to
   * follow. The server identifies the format from the bytes; processing happens afterwards
   * (see {@link waitFor}). The form's fields go before the file, as a server with access
   * control requires.
   */
  async upload(
    file: Blob | ArrayBuffer | Uint8Array,
    options: UploadOptions,
  ): Promise<UploadResult> {
    options.signal?.throwIfAborted();
    const key = options.idempotencyKey;
    if (key !== undefined && !/^[\x21-\x7e]{1,255}$/.test(key)) {
      // The server refuses it before reading the body, and Node's fetch may then see only the
      // closed connection: say it here, with the server's code.
      throw new XImagePipelineError(
        "Invalid Idempotency-Key: expected 1 to 255 visible ASCII characters",
        { status: 0, code: "INVALID_IDEMPOTENCY_KEY" },
      );
    }
    const blob = toBlob(file);
    const form = new FormData();
    if (options.token !== undefined) form.append("token", options.token);
    form.append("sourceType", options.sourceType);
    form.append("sourceId", options.sourceId);
    if (options.callbackUrl !== undefined) form.append("callbackUrl", options.callbackUrl);
    form.append("file", blob, options.filename ?? fileName(file) ?? "upload");

    const headers: Record<string, string> = {};
    if (key !== undefined) headers["Idempotency-Key"] = key;
    const outgoing: Outgoing = {
      method: "POST",
      path: "/upload",
      headers,
      body: form,
      signal: options.signal,
    };

    const onProgress = options.onProgress;
    let raw: RawResponse;
    if (onProgress && typeof XMLHttpRequest !== "undefined") {
      raw = await this.#sendWithProgress(outgoing, blob.size, onProgress);
    } else {
      raw = await this.#send(outgoing);
    }
    if (raw.status !== 202) throw toError(raw);
    const body = parseJson(raw);
    if (!isUploadAccepted(body)) throw badResponse(raw, "the upload's answer has no jobId");
    if (onProgress && typeof XMLHttpRequest === "undefined") onProgress(blob.size, blob.size);
    return {
      jobId: body.jobId,
      statusUrl: body.statusUrl,
      message: body.message,
      replayed: raw.header("Idempotent-Replayed")?.trim().toLowerCase() === "true",
    };
  }

  /**
   * A job's current status. PENDING/PROCESSING (HTTP 202), COMPLETE (200), REJECTED (400) and
   * FAILED (500) are all answers, returned as values; branch on `status`. An unknown job
   * throws with code `JOB_NOT_FOUND`. With `wait`, the server holds the answer until the job
   * ends or `wait` seconds pass.
   */
  async status(jobId: string, options: StatusOptions = {}): Promise<JobStatus> {
    const raw = await this.#send({
      method: "GET",
      path: `/status/${encodeURIComponent(jobId)}`,
      query: { wait: options.wait === undefined ? undefined : String(options.wait) },
      signal: options.signal,
      bearer: options.token,
    });
    if (raw.status === 200 || raw.status === 202 || raw.status === 400 || raw.status === 500) {
      const body = tryJson(raw.text);
      if (isJobStatus(body)) return body;
    }
    if (raw.status >= 200 && raw.status < 300) {
      throw badResponse(raw, "the status answer has no job status");
    }
    throw toError(raw);
  }

  /**
   * Waits until a job ends (COMPLETE, REJECTED or FAILED) and returns that status, using the
   * server's long-poll (`?wait=`, at most 30 s a request and never past the deadline) rather
   * than polling. Passing failures (network, 503 with `Retry-After`) are retried until the
   * deadline. At the deadline it throws the client-side code `WAIT_TIMEOUT` (the job goes on
   * on the server; wait again later if you like).
   */
  async waitFor(jobId: string, options: WaitOptions = {}): Promise<FinalJobStatus> {
    const timeoutMs = options.timeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    const signal = options.signal;
    for (;;) {
      signal?.throwIfAborted();
      const remainingMs = deadline - Date.now();
      // Tenths of a second, rounded down, so a wait never ends past the deadline.
      const wait = Math.max(0, Math.min(MAX_WAIT_SECS, Math.floor(remainingMs / 100) / 10));
      const asked = Date.now();
      let job: JobStatus;
      try {
        job = await this.status(jobId, { wait, token: options.token, signal });
      } catch (e) {
        if (!isPassing(e) || deadline - Date.now() <= 0) throw e;
        await sleep(Math.min(retryDelayMs(e), deadline - Date.now()), signal);
        continue;
      }
      if (isFinal(job)) return job;
      const left = deadline - Date.now();
      if (left <= 0 || wait === 0) {
        throw new XImagePipelineError(
          `Job ${jobId} was still ${job.status} after ${timeoutMs} ms`,
          { status: 0, code: "WAIT_TIMEOUT" },
        );
      }
      // A server (or proxy) that answered well before the wait ran out: do not spin.
      if (Date.now() - asked < wait * 1000 - 250) await sleep(Math.min(1000, left), signal);
    }
  }

  /** One media by id; an unknown (or deleted) one throws with code `MEDIA_NOT_FOUND`. */
  async media(mediaId: string, options: RequestOptions = {}): Promise<Media> {
    const raw = await this.#send({
      method: "GET",
      path: `/media/${encodeURIComponent(mediaId)}`,
      signal: options.signal,
    });
    if (raw.status !== 200) throw toError(raw);
    const body = parseJson(raw);
    if (!isMedia(body)) throw badResponse(raw, "the answer is not a media");
    return body;
  }

  /**
   * One page of a source's media, newest first. Pass the page's `nextCursor` back as `cursor`
   * for the next; null means there is none. See {@link allMedia} to iterate over them all.
   */
  async listMedia(
    sourceType: string,
    sourceId: string,
    options: ListOptions = {},
  ): Promise<MediaPage> {
    const raw = await this.#send({
      method: "GET",
      path: "/media",
      query: {
        sourceType,
        sourceId,
        limit: options.limit === undefined ? undefined : String(options.limit),
        cursor: options.cursor,
      },
      signal: options.signal,
    });
    if (raw.status !== 200) throw toError(raw);
    const body = parseJson(raw);
    if (!isMediaPage(body)) throw badResponse(raw, "the answer is not a media page");
    return body;
  }

  /** Every media of a source, newest first, fetching page after page as you iterate. */
  async *allMedia(
    sourceType: string,
    sourceId: string,
    options: AllMediaOptions = {},
  ): AsyncGenerator<Media, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await this.listMedia(sourceType, sourceId, {
        limit: options.limit,
        cursor,
        signal: options.signal,
      });
      yield* page.media;
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
  }

  /**
   * Deletes a media: its variants, its original and its record. Resolves true when it was
   * deleted (204), false when there was no such media (404 `MEDIA_NOT_FOUND`), so deleting
   * twice is harmless.
   */
  async deleteMedia(mediaId: string, options: RequestOptions = {}): Promise<boolean> {
    const raw = await this.#send({
      method: "DELETE",
      path: `/media/${encodeURIComponent(mediaId)}`,
      signal: options.signal,
    });
    if (raw.status === 204 || raw.status === 200) return true;
    const error = toError(raw);
    if (error.status === 404 && error.code === "MEDIA_NOT_FOUND") return false;
    throw error;
  }

  /** The request's URL and headers. */
  #prepare(req: Outgoing): { url: string; headers: Record<string, string> } {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) params.set(k, v);
    const search = params.toString();
    const url = `${this.apiUrl}${req.path}${search ? `?${search}` : ""}`;
    const headers: Record<string, string> = { Accept: "application/json", ...req.headers };
    const bearer = req.bearer ?? this.#apiKey;
    if (bearer !== undefined) headers["Authorization"] = `Bearer ${bearer}`;
    return { url, headers };
  }

  /** Sends with `fetch` and reads the whole answer. */
  async #send(req: Outgoing): Promise<RawResponse> {
    const { url, headers } = this.#prepare(req);
    const init: RequestInit = { method: req.method, headers };
    if (req.body !== undefined) init.body = req.body;
    if (req.signal !== undefined) init.signal = req.signal;
    try {
      const response = await this.#fetch(url, init);
      const text = await response.text();
      return { status: response.status, header: (n) => response.headers.get(n), text };
    } catch (e) {
      if (req.signal?.aborted) throw req.signal.reason ?? e;
      throw new XImagePipelineError(`Network error: ${describe(e)}`, {
        status: 0,
        code: "NETWORK",
        cause: e,
      });
    }
  }

  /** Sends with `XMLHttpRequest` (browsers), reporting upload progress. */
  #sendWithProgress(
    req: Outgoing,
    fileSize: number,
    onProgress: (loaded: number, total: number) => void,
  ): Promise<RawResponse> {
    const { url, headers } = this.#prepare(req);
    const signal = req.signal;
    return new Promise<RawResponse>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      let lastLoaded = -1;
      let lastTotal = fileSize;
      const onAbort = () => xhr.abort();
      const done = () => signal?.removeEventListener("abort", onAbort);
      xhr.open(req.method, url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => {
        lastLoaded = e.loaded;
        lastTotal = e.lengthComputable ? e.total : fileSize;
        onProgress(lastLoaded, lastTotal);
      };
      xhr.onload = () => {
        done();
        if (xhr.status === 202 && lastLoaded !== lastTotal) onProgress(lastTotal, lastTotal);
        resolve({ status: xhr.status, header: (n) => xhr.getResponseHeader(n), text: xhr.responseText });
      };
      xhr.onerror = () => {
        done();
        reject(new XImagePipelineError("Network error: the upload did not get an answer", { status: 0, code: "NETWORK" }));
      };
      xhr.onabort = () => {
        done();
        reject(signal?.reason ?? new DOMException("The upload was aborted", "AbortError"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      xhr.send(req.body ?? null);
    });
  }
}

/** The file as a `Blob` for the form. */
function toBlob(file: Blob | ArrayBuffer | Uint8Array): Blob {
  if (typeof Blob !== "undefined" && file instanceof Blob) return file;
  // A Uint8Array may view a SharedArrayBuffer, which Blob's types do not take: copy it then.
  const part = file instanceof Uint8Array && !(file.buffer instanceof ArrayBuffer) ? file.slice() : file;
  return new Blob([part as BlobPart]);
}

/** The name of a `File`, if it is one. */
function fileName(file: unknown): string | undefined {
  const name = (file as { name?: unknown }).name;
  return typeof name === "string" && name !== "" ? name : undefined;
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The body as JSON, or `BAD_RESPONSE`. */
function parseJson(raw: RawResponse): unknown {
  const body = tryJson(raw.text);
  if (body === undefined) throw badResponse(raw, "the answer is not JSON");
  return body;
}

function badResponse(raw: RawResponse, why: string): XImagePipelineError {
  const retryAfter = parseRetryAfter(raw.header("Retry-After"));
  return new XImagePipelineError(`Unexpected answer from the server (HTTP ${raw.status}): ${why}`, {
    status: raw.status,
    code: "BAD_RESPONSE",
    ...(retryAfter === undefined ? {} : { retryAfter }),
  });
}

/** The error of a refusal: the server's `{"error","code"}`, else `BAD_RESPONSE`. */
function toError(raw: RawResponse): XImagePipelineError {
  const body = tryJson(raw.text);
  if (!isApiError(body)) return badResponse(raw, "no {error, code} body");
  const retryAfter = parseRetryAfter(raw.header("Retry-After"));
  return new XImagePipelineError(body.error, {
    status: raw.status,
    code: body.code,
    ...(retryAfter === undefined ? {} : { retryAfter }),
  });
}

/** `Retry-After` in seconds: delta-seconds or an HTTP date. */
function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** Whether a failure may pass by itself (worth retrying while waiting). */
function isPassing(e: unknown): e is XImagePipelineError {
  return e instanceof XImagePipelineError && (e.code === "NETWORK" || e.status === 503 || e.status === 429);
}

function retryDelayMs(e: XImagePipelineError): number {
  return e.retryAfter !== undefined ? e.retryAfter * 1000 : 1000;
}

/** Resolves after `ms`, or rejects when the signal aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
  }
  return String(e);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isApiError(v: unknown): v is ApiError {
  return isObject(v) && typeof v["error"] === "string" && typeof v["code"] === "string";
}

function isUploadAccepted(v: unknown): v is UploadAccepted {
  return isObject(v) && typeof v["jobId"] === "string" && typeof v["statusUrl"] === "string";
}

function isJobStatus(v: unknown): v is JobStatus {
  return isObject(v) && typeof v["jobId"] === "string" && typeof v["status"] === "string" && ANY_STATUS.has(v["status"]);
}

function isMedia(v: unknown): v is Media {
  return isObject(v) && typeof v["id"] === "string" && isObject(v["urls"]);
}

function isMediaPage(v: unknown): v is MediaPage {
  return isObject(v) && Array.isArray(v["media"]) && v["media"].every(isMedia) && "nextCursor" in v;
}

/** Whether a status is final (COMPLETE, REJECTED or FAILED): it will not change any more. */
export function isFinal(job: JobStatus): job is FinalJobStatus {
  return FINAL.has(job.status);
}
