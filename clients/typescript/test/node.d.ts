/**
 * The few Node built-ins the tests use, declared here so the package needs no @types/node
 * (its only devDependencies are typescript and openapi-typescript).
 */
declare module "node:test" {
  type Fn = (t: unknown) => void | Promise<void>;
  interface Options { timeout?: number; skip?: boolean | string }
  export function test(name: string, fn: Fn): Promise<void>;
  export function test(name: string, options: Options, fn: Fn): Promise<void>;
  export function describe(name: string, fn: () => void | Promise<void>): Promise<void>;
  export function before(fn: () => void | Promise<void>, options?: Options): void;
  export function after(fn: () => void | Promise<void>, options?: Options): void;
}

declare module "node:assert/strict" {
  interface Assert {
    (value: unknown, message?: string): asserts value;
    ok(value: unknown, message?: string): asserts value;
    equal<T>(actual: unknown, expected: T, message?: string): asserts actual is T;
    notEqual(actual: unknown, expected: unknown, message?: string): void;
    deepEqual<T>(actual: unknown, expected: T, message?: string): asserts actual is T;
    match(value: string, regexp: RegExp, message?: string): void;
    rejects(
      block: Promise<unknown> | (() => Promise<unknown>),
      error?: ((e: unknown) => boolean) | RegExp | object,
      message?: string,
    ): Promise<void>;
    fail(message?: string): never;
  }
  const assert: Assert;
  export default assert;
}

declare module "node:fs/promises" {
  export function readFile(path: string | URL): Promise<Uint8Array>;
  export function readFile(path: string | URL, encoding: "utf8"): Promise<string>;
}

declare const process: { env: Record<string, string | undefined>; cwd(): string };
