import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { repoRoot } from "../support/stack.js";

/**
 * Debian's chromium, headless, driven by puppeteer-core (no browser download: the system
 * browser, `make tools` installs it). `--no-sandbox` because the tests run as root. The page
 * reaches only the 127.0.0.1 servers the test starts.
 */
export const CHROMIUM = process.env.LP_CHROMIUM ?? "/usr/bin/chromium";

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`no browser at ${CHROMIUM}: make tools installs Debian's chromium (or set LP_CHROMIUM)`);
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-dev-shm-usage",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--proxy-server=direct://",
      "--proxy-bypass-list=*",
    ],
  });
}

/** Where a suite's screenshots go (test-output/<suite>/, not committed), emptied for this run. */
export function outputDir(suite: string): string {
  const dir = path.join(repoRoot, "test-output", suite);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: number;
  targets: string[];
}

/**
 * axe-core's WCAG 2.x A/AA rules on the page as it is now: the violations of serious or
 * critical impact. The script is evaluated through the DevTools protocol, which the page's
 * Content-Security-Policy (no inline script) does not apply to.
 */
export async function axeSerious(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const w = window as unknown as {
      axe: {
        run: (
          ctx: Document,
          o: object,
        ) => Promise<{
          violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[];
        }>;
      };
    };
    const r = await w.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
      resultTypes: ["violations"],
    });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.length,
      targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
    }));
  });
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}
