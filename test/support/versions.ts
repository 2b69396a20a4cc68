import { readFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "./stack.js";

/** Reads hack/versions.env, the one place versions are pinned. */
export function pinnedVersions(): Record<string, string> {
  const text = readFileSync(path.join(repoRoot, "hack/versions.env"), "utf8");
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z0-9_]+)=(\S+)/.exec(line);
    if (m?.[1] && m[2]) out[m[1]] = m[2];
  }
  return out;
}

const pinned = pinnedVersions();
if (!pinned.NODE_MAJOR) throw new Error("hack/versions.env has no NODE_MAJOR");
export const NODE_MAJOR: string = pinned.NODE_MAJOR;
