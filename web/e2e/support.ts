// What the scenario needs besides the browser: the server's log (temporary passwords of local
// invitations), screenshots, and sign-ins.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, type Browser, type BrowserContext, type Page } from '@playwright/test';

export const WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const RESULTS = join(WEB_DIR, 'test-results');
export const SCREENSHOTS = join(RESULTS, 'screenshots');
mkdirSync(SCREENSHOTS, { recursive: true });

export function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run infra/local/web-e2e.sh, which starts the server and sets it`);
  return value;
}

/** A full-page screenshot of every page the scenario visits, by name. */
export const shots: string[] = [];
export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  shots.push(name);
}

interface LogLine {
  message?: string;
  email?: string;
  temporary_password?: string;
  fields?: LogLine;
}

/** The temporary password of `email`'s latest local invitation, polling the server's log. */
export async function temporaryPassword(email: string, timeoutMs = 90_000): Promise<string> {
  const log = env('CASEBOOK_E2E_LOG');
  let found: string | undefined;
  await expect
    .poll(
      () => {
        const lines = readFileSync(log, 'utf8').split('\n');
        for (const text of lines) {
          if (!text.includes('local invitation')) continue;
          let line: LogLine;
          try {
            line = JSON.parse(text) as LogLine;
          } catch {
            continue;
          }
          const fields = { ...line, ...(line.fields ?? {}) };
          if (fields.message?.startsWith('local invitation') && fields.email === email && fields.temporary_password) {
            found = fields.temporary_password;
          }
        }
        return found;
      },
      { message: `the local invitation of ${email} in ${log}`, timeout: timeoutMs, intervals: [250, 500, 1000] },
    )
    .toBeTruthy();
  return found ?? '';
}

export interface Actor {
  email: string;
  password: string;
  context: BrowserContext;
  page: Page;
}

/** Problems the browser reported: CSP violations and uncaught errors fail the run. */
export const browserProblems: string[] = [];

export async function newActor(browser: Browser, email: string, password: string, viewport?: { width: number; height: number }): Promise<Actor> {
  const context = await browser.newContext(viewport ? { viewport } : {});
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content.Security.Policy|Refused to/i.test(msg.text())) browserProblems.push(`${email}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => browserProblems.push(`${email}: ${err.message}`));
  return { email, password, context, page };
}

/**
 * The first sign-in of an invited user: the temporary password from the log, then a password
 * of their own. Screenshots of both pages when `shootAs` is given.
 */
export async function firstSignIn(actor: Actor, home: RegExp, shootAs?: string): Promise<void> {
  const { page } = actor;
  const temporary = await temporaryPassword(actor.email);
  await page.goto(`/signin?email=${encodeURIComponent(actor.email)}`);
  await expect(page.getByLabel('Email', { exact: true })).toHaveValue(actor.email);
  await page.getByLabel('Password', { exact: true }).fill(temporary);
  if (shootAs) await shot(page, `${shootAs}-signin`);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/signin\/new-password/);
  await page.getByLabel('New password', { exact: true }).fill(actor.password);
  await page.getByLabel('Repeat the new password').fill(actor.password);
  if (shootAs) await shot(page, `${shootAs}-new-password`);
  await page.getByRole('button', { name: 'Set password and continue' }).click();
  await expect(page).toHaveURL(home);
}

/** A unique address for this run (the emulator's pool outlives the database). */
export function address(who: string, practice: string, run: string): string {
  return `${who}.${run}@${practice}.test`;
}
