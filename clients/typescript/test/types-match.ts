/**
 * Type-level check: the client's hand-written types are the server's OpenAPI schemas.
 * `test/generated/openapi.d.ts` is made by `npm run generate` from the live server's
 * `{prefix}/openapi.json`; this file only has to compile (`npm run check:types`).
 * Each pair is assigned both ways, so a field missing, renamed, required on one side only, or
 * of another type or nullability is a compile error naming the field.
 */
import type { components } from "./generated/openapi.js";
import type {
  ApiError,
  ErrorCode,
  FailedJobCode,
  JobComplete,
  JobFailed,
  JobPending,
  JobRejected,
  JobStatus,
  Media,
  MediaPage,
  UploadAccepted,
} from "../src/index.js";

type Schemas = components["schemas"];

/** Compiles only when A and B are assignable to each other. */
function mutual<A, B>(_ab: (a: A) => B, _ba: (b: B) => A): void {}
const same = <T>(x: T) => x;
/** True when A and B are assignable to each other. */
type Equal<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

mutual<Media, Schemas["Media"]>(same, same);
mutual<MediaPage, Schemas["MediaPage"]>(same, same);
mutual<UploadAccepted, Schemas["UploadAccepted"]>(same, same);
mutual<JobPending, Schemas["JobPending"]>(same, same);
mutual<JobComplete, Schemas["JobComplete"]>(same, same);
mutual<JobRejected, Schemas["JobRejected"]>(same, same);
mutual<JobFailed, Schemas["JobFailed"]>(same, same);
mutual<
  JobStatus,
  Schemas["JobPending"] | Schemas["JobComplete"] | Schemas["JobRejected"] | Schemas["JobFailed"]
>(same, same);
const failedCodes: Equal<FailedJobCode, Schemas["JobFailed"]["code"]> = true;

// The refusal body. Its `code`: every code the server declares is one the client knows, and
// the client's extra codes are exactly the contract's (API.md §4a) that this server never sends.
mutual<Omit<ApiError, "code">, Omit<Schemas["ApiError"], "code">>(same, same);
const serverCodesKnown: Equal<Schemas["ApiError"]["code"] & ErrorCode, Schemas["ApiError"]["code"]> = true;
const contractOnlyCodes: Equal<
  Exclude<ErrorCode, Schemas["ApiError"]["code"]>,
  "RATE_LIMITED" | "TOO_MANY_UPLOADS"
> = true;

void [failedCodes, serverCodesKnown, contractOnlyCodes];
