import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

/**
 * API keys from a mounted Secret file: one per line, `name:key` (or a bare key, named by its
 * position). Keys are held only as SHA-256 digests and compared in constant time.
 */
export class ApiKeys {
  private readonly digests: { name: string; digest: Buffer }[];

  constructor(text: string) {
    this.digests = text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"))
      .map((l, i) => {
        const at = l.indexOf(":");
        const [name, key] = at > 0 ? [l.slice(0, at), l.slice(at + 1)] : [`key-${i + 1}`, l];
        return { name, digest: sha256(key) };
      });
    if (this.digests.length === 0) throw new Error("the API keys file holds no key");
  }

  static fromFile(path: string): ApiKeys {
    return new ApiKeys(readFileSync(path, "utf8"));
  }

  /** The key's name, or undefined when it is not a valid key. */
  verify(presented: string | undefined): string | undefined {
    if (!presented) return undefined;
    const d = sha256(presented);
    let found: string | undefined;
    for (const k of this.digests) if (timingSafeEqual(k.digest, d)) found = k.name;
    return found;
  }
}

const sha256 = (s: string) => createHash("sha256").update(s).digest();

/** The key from `X-API-Key` or `Authorization: Bearer …`. */
export function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const x = headers["x-api-key"];
  if (typeof x === "string" && x) return x;
  const auth = headers.authorization;
  if (typeof auth === "string" && auth.toLowerCase().startsWith("bearer ")) return auth.slice(7).trim();
  return undefined;
}
