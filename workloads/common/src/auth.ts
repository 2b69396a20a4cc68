import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

/** Who a key belongs to, and for a query key scoped to some ingest keys, which ones. */
export interface KeyIdentity {
  name: string;
  /** Only the events these ingest keys wrote (a query key's scope); absent: all events. */
  writers?: string[];
}

/** `name` or `name[writer,writer]` before the first colon. */
const NAME = /^([^[\]:\s]{1,128})(?:\[([^\]]*)\])?$/;

/**
 * API keys from a mounted Secret file: one per line, `name:key` (or a bare key, named by its
 * position). A query key may be scoped to the events some ingest keys wrote:
 * `name[ingest-a,ingest-b]:key`. Keys are held only as SHA-256 digests and compared in
 * constant time.
 */
export class ApiKeys {
  private readonly digests: (KeyIdentity & { digest: Buffer })[];

  constructor(text: string) {
    this.digests = text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"))
      .map((l, i) => {
        const at = l.indexOf(":");
        if (at <= 0) return { name: `key-${i + 1}`, digest: sha256(l) };
        const m = NAME.exec(l.slice(0, at));
        if (!m?.[1])
          throw new Error(
            `API keys file, line ${i + 1}: the name before ':' is not name or name[writer,…] (a name is 1-128 characters)`,
          );
        const writers = m[2]
          ?.split(",")
          .map((w) => w.trim())
          .filter(Boolean);
        return { name: m[1], ...(writers && { writers }), digest: sha256(l.slice(at + 1)) };
      });
    if (this.digests.length === 0) throw new Error("the API keys file holds no key");
  }

  static fromFile(path: string): ApiKeys {
    return new ApiKeys(readFileSync(path, "utf8"));
  }

  /** The key's name, or undefined when it is not a valid key. */
  verify(presented: string | undefined): string | undefined {
    return this.identify(presented)?.name;
  }

  /** The key's name and scope, or undefined when it is not a valid key. */
  identify(presented: string | undefined): KeyIdentity | undefined {
    if (!presented) return undefined;
    const d = sha256(presented);
    let found: KeyIdentity | undefined;
    // Every digest is compared: the time taken says nothing about which key matched.
    for (const k of this.digests)
      if (timingSafeEqual(k.digest, d)) found = { name: k.name, ...(k.writers && { writers: k.writers }) };
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
