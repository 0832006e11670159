/**
 * A real browser for the page's tests: Debian's headless Chromium, driven over the
 * DevTools protocol by puppeteer-core (which downloads no browser of its own).
 *
 * When no Chromium is installed and the tests run as root (CI does), the setup installs
 * Debian's `chromium` package with apt-get, once per machine (about a minute and a
 * half); otherwise it says how to install it. CHROMIUM=/path picks another binary.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

function findChromium(): string | undefined {
  const given = process.env['CHROMIUM'];
  if (given) return given;
  return CANDIDATES.find((p) => existsSync(p));
}

export function chromiumPath(): string {
  let path = findChromium();
  if (path) return path;
  if (process.getuid?.() !== 0) {
    throw new Error("no Chromium found: install Debian's package (sudo apt-get install -y chromium) or set CHROMIUM=/path/to/chromium");
  }
  console.warn("browser: installing Debian's chromium package (apt-get), once per machine");
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'], env, timeout: 5 * 60_000 });
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env,
    timeout: 10 * 60_000,
  });
  path = findChromium();
  if (!path) throw new Error('apt-get installed chromium but no chromium binary was found');
  return path;
}

/** Long enough for a first-time apt-get install of Chromium on a loaded machine. */
export const BROWSER_SETUP_TIMEOUT_MS = 12 * 60_000;

export async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    userDataDir: mkdtempSync(join(tmpdir(), 'remediator-chromium-')),
    // As root Chromium needs --no-sandbox (CI runs as root); /dev/shm is small in containers.
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
    defaultViewport: { width: 1200, height: 900 },
  });
}
