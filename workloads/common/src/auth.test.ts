import { describe, expect, it } from "vitest";
import { ApiKeys, presentedKey } from "./auth.js";

describe("ApiKeys", () => {
  const keys = new ApiKeys("# ingest keys\nteam-a:alpha\n\nbravo\n");

  it("names the key's owner, and refuses unknown or empty keys", () => {
    expect(keys.verify("alpha")).toBe("team-a");
    expect(keys.verify("bravo")).toBe("key-2");
    expect(keys.verify("alph")).toBeUndefined();
    expect(keys.verify(undefined)).toBeUndefined();
  });

  it("refuses a file with no key", () => {
    expect(() => new ApiKeys("# nothing\n")).toThrow(/no key/);
  });

  it("reads X-API-Key or a bearer token", () => {
    expect(presentedKey({ "x-api-key": "k1" })).toBe("k1");
    expect(presentedKey({ authorization: "Bearer k2" })).toBe("k2");
    expect(presentedKey({ authorization: "Basic xyz" })).toBeUndefined();
  });
});
