import type { ClientErrorCode, ErrorCode } from "./types.js";

/**
 * Every failure of a client call, so one `catch` handles all: a refusal of the server (its
 * HTTP `status` and the `code` of its `{"error","code"}` body), or a client-side failure with
 * `status` 0 and code `NETWORK`, `BAD_RESPONSE` (status kept when there was one) or
 * `WAIT_TIMEOUT`. A call cancelled through its `AbortSignal` rejects with the signal's reason
 * (an `AbortError`) instead.
 */
export class XImagePipelineError extends Error {
  /** The HTTP status of the answer; 0 when there was none (network failure, `WAIT_TIMEOUT`). */
  readonly status: number;
  /** The stable code to branch on: the server's ({@link ErrorCode}) or the client's ({@link ClientErrorCode}). */
  readonly code: ErrorCode | ClientErrorCode | (string & {});
  /** Seconds the server asked to wait before trying again (`Retry-After`), when it said. */
  readonly retryAfter?: number;

  /** Builds an error; `message` is the server's sentence when it sent one. */
  constructor(
    message: string,
    init: { status: number; code: ErrorCode | ClientErrorCode | (string & {}); retryAfter?: number; cause?: unknown },
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "XImagePipelineError";
    this.status = init.status;
    this.code = init.code;
    if (init.retryAfter !== undefined) this.retryAfter = init.retryAfter;
  }
}

/** Whether `e` is an {@link XImagePipelineError}, optionally with the given code. */
export function isXImagePipelineError(
  e: unknown,
  code?: ErrorCode | ClientErrorCode,
): e is XImagePipelineError {
  return e instanceof XImagePipelineError && (code === undefined || e.code === code);
}
