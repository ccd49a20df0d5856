import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * A function exported by an optional native module (native/malloc-trim,
 * native/aes-gcm, @node-rs/crc32), or null where the module is not built or
 * has no binary for this platform: cairn then does the same work in
 * JavaScript, or goes without.
 */
export function optionalNativeFunction<F extends (...args: never[]) => unknown>(specifier: string, name: string): F | null {
  try {
    const fn = (require(specifier) as Record<string, unknown>)[name];
    return typeof fn === 'function' ? (fn as F) : null;
  } catch {
    return null;
  }
}
