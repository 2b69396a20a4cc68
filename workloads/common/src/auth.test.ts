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

  it("reads a query key's scope: the ingest keys whose events it may read", () => {
    const q = new ApiKeys("reader:r1\nweb-only[web, mobile]:r2\nnothing[]:r3\n");
    expect(q.identify("r1")).toEqual({ name: "reader" });
    expect(q.identify("r2")).toEqual({ name: "web-only", writers: ["web", "mobile"] });
    // An empty scope reads nothing, never everything.
    expect(q.identify("r3")).toEqual({ name: "nothing", writers: [] });
    expect(() => new ApiKeys("bad[x:r4\n")).toThrow(/line 1/);
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
