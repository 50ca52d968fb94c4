/**
 * Headless Chromium for the live page's tests: Debian's browser (scripts/test.sh installs it),
 * driven by playwright-core, which never downloads a browser of its own. A page records every
 * console error and uncaught exception, and screenshots go to one folder the tests print.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env['SLUICE_CHROMIUM'] ?? '/usr/bin/chromium';

/**
 * Why the browser tests cannot run here, or undefined when they can. With CI=true they always
 * run, so a missing browser fails them instead of skipping.
 */
export function browserSkip(): string | undefined {
  if (existsSync(CHROMIUM) || process.env['CI'] === 'true') return undefined;
  return `no Chromium at ${CHROMIUM} (apt-get install chromium, or set SLUICE_CHROMIUM)`;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root Chromium needs --no-sandbox; the rest keeps it from calling out to the network.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-default-apps',
    ],
  });
}

/** The folder the screenshots of the live page's tests go to. */
export function screenshotFolder(): string {
  const dir = process.env['SLUICE_UI_SCREENSHOTS'] ?? join(tmpdir(), 'sluice-ui-screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface WatchedPage {
  readonly page: Page;
  /** Console errors and uncaught exceptions, in order. */
  readonly errors: string[];
  /** Writes `name`.png into the screenshot folder and returns its path. */
  shot(name: string): Promise<string>;
}

export async function openPage(browser: Browser): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  const dir = screenshotFolder();
  return {
    page,
    errors,
    shot: async (name) => {
      const path = join(dir, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      console.log(`# screenshot: ${path}`);
      return path;
    },
  };
}
