/**
 * The JSON shapes of the ximagepipeline HTTP API (`shared/spec/API.md`), mirroring the
 * `components.schemas` of the server's `{prefix}/openapi.json` (the test suite checks that
 * they match).
 */

/** Width and height of one stored variant, in pixels. */
export interface VariantSize {
  width: number;
  height: number;
}

/**
 * A processed image: what one COMPLETE job produced. Its URLs are absolute and ready to put in
 * an `<img src>`; with signed links (`[auth] files = "signed"`) they expire, so ask again
 * (`media()`) for fresh ones instead of storing them.
 */
export interface Media {
  /** `med_` + an unguessable id. */
  id: string;
  /** The source type the upload named (e.g. `avatar`); it decided the variants. */
  sourceType: string;
  /** The source id the upload named (e.g. a user id). */
  sourceId: string;
  /** Variant name (e.g. `xs`, `sm`, `md`) → absolute URL of its WebP file. */
  urls: Record<string, string>;
  /** Absolute URL of the original (metadata stripped), or null when the source type keeps none. */
  originalUrl: string | null;
  /** Displayed width (after EXIF/HEIF orientation), in pixels. */
  width: number;
  /** Displayed height (after EXIF/HEIF orientation), in pixels. */
  height: number;
  /** `W:H` reduced by their gcd, e.g. `"3:2"`: for an aspect-ratio box before the image loads. */
  aspectRatio: string;
  /** A 4×3-component blurhash, to paint a placeholder while the image loads. */
  blurhash: string;
  /** Variant name → its actual size (variants never enlarge, so it may be below the preset). */
  variants: Record<string, VariantSize>;
  /** The format sniffed from the upload's bytes, in lower case (e.g. `jpeg`, `png`). */
  format: string;
  /** When the media was recorded (RFC 3339). */
  createdAt: string | null;
}

/** One page of a source's media, newest first. */
export interface MediaPage {
  /** The page's media. */
  media: Media[];
  /** Pass it back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** The server's 202 answer to an upload: the job to follow. */
export interface UploadAccepted {
  /** The job id, for `status()` / `waitFor()`. */
  jobId: string;
  /** Path of the job's status route, relative to the server (`{prefix}/status/{jobId}`). */
  statusUrl: string;
  /** Always `"File uploaded. Processing started."`. */
  message: string;
}

/** What `upload()` resolves to: the 202 body plus whether it was a replay. */
export interface UploadResult extends UploadAccepted {
  /**
   * True when the server answered an earlier upload's 202 for the same `Idempotency-Key`
   * (header `Idempotent-Replayed: true`): nothing new was stored.
   */
  replayed: boolean;
}

/** A job that has not ended yet (HTTP 202): queued, or being processed by a worker. */
export interface JobPending {
  jobId: string;
  status: "PENDING" | "PROCESSING";
}

/** A job that ended well (HTTP 200): its media is ready. */
export interface JobComplete {
  jobId: string;
  status: "COMPLETE";
  /** What the job made; null only when the media has been deleted since. */
  media: Media | null;
}

/**
 * What the moderation provider said of a rejected image, e.g.
 * `{"flags": ["nsfw"], "confidence": 0.97}`; providers may add fields.
 */
export type ModerationDetails = Record<string, unknown>;

/** A job whose image content moderation refused (HTTP 400 on the status route). */
export interface JobRejected {
  jobId: string;
  status: "REJECTED";
  /** Always `"Content moderation failed"`. */
  reason: string;
  moderationDetails: ModerationDetails | null;
}

/** The codes a FAILED job carries (API.md §4a). */
export type FailedJobCode =
  | "UNREADABLE_IMAGE"
  | "TOO_MANY_PIXELS"
  | "OVER_BUDGET"
  | "UNSUPPORTED_IMAGE"
  | "TIMED_OUT"
  | "STORAGE_UNAVAILABLE"
  | "QUEUE_UNAVAILABLE"
  | "MODERATION_UNAVAILABLE"
  | "INTERNAL";

/** A job that failed (HTTP 500 on the status route): the image will not be processed. */
export interface JobFailed {
  jobId: string;
  status: "FAILED";
  /** Why, as a sentence safe to show (no paths, hosts or debug text). */
  error: string;
  /** A stable code to branch on; see {@link FailedJobCode}. */
  code: FailedJobCode;
  /** How many processing attempts were made. */
  attempts: number;
}

/**
 * Where a job is: a union discriminated on `status`. The status route answers these with
 * 202 / 200 / 400 / 500, and the client returns them all as values (they are answers, not
 * errors).
 */
export type JobStatus = JobPending | JobComplete | JobRejected | JobFailed;

/** A job status that will not change any more. */
export type FinalJobStatus = JobComplete | JobRejected | JobFailed;

/** The JSON body of every refusal: `{"error": "<message>", "code": "<STABLE_CODE>"}`. */
export interface ApiError {
  /** A sentence for people. */
  error: string;
  /** A stable code for programs. */
  code: ErrorCode;
}

/**
 * The stable codes of the server's refusals (API.md §2 and §4a, README), to branch on
 * `XImagePipelineError.code`.
 */
export type ErrorCode =
  // upload (§2)
  | "NO_FILE"
  | "MISSING_FIELDS"
  | "UNKNOWN_SOURCE_TYPE"
  | "INVALID_SOURCE_ID"
  | "FILE_TOO_LARGE"
  | "TYPE_NOT_ALLOWED"
  | "UNREADABLE_IMAGE"
  | "TOO_MANY_PIXELS"
  | "STORAGE_UNAVAILABLE"
  | "QUEUE_UNAVAILABLE"
  // status and media (§2)
  | "JOB_NOT_FOUND"
  | "MEDIA_NOT_FOUND"
  // later features (§4a)
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "FIELDS_AFTER_FILE"
  | "INVALID_WAIT"
  | "OVER_BUDGET"
  | "IDEMPOTENCY_KEY_REUSED"
  | "RATE_LIMITED"
  | "TOO_MANY_PENDING"
  | "TOO_MANY_UPLOADS"
  | "BUSY"
  | "STORAGE_FULL"
  // other refusals of the server (README)
  | "INVALID_LIMIT"
  | "INVALID_CURSOR"
  | "INVALID_TOKEN_REQUEST"
  | "INVALID_IDEMPOTENCY_KEY"
  | "INVALID_CALLBACK_URL"
  | "INVALID_MULTIPART"
  | "REQUEST_TIMEOUT"
  | "NOT_FOUND"
  | "INTERNAL";

/**
 * Codes this client makes itself (never sent by the server): `NETWORK` (no answer: DNS,
 * connection refused, CORS), `BAD_RESPONSE` (an answer that is not the contract's JSON),
 * `WAIT_TIMEOUT` (`waitFor()` reached its deadline before the job ended).
 */
export type ClientErrorCode = "NETWORK" | "BAD_RESPONSE" | "WAIT_TIMEOUT";
