// The whole product in a real browser, against a live `casebook serve` with the AWS emulator
// and the local models: a practice signs up, invites its people, a customer asks with an
// attachment, a consultant amends and approves the model's draft and then browses, filters and
// searches the practice's judgments, the customer reads the answer, an auditor sees the trail
// with the chain verified, and another practice sees none of it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, type Locator, type Page } from '@playwright/test';
import { address, browserProblems, env, firstSignIn, newActor, RESULTS, shot, shots, temporaryPassword, type Actor } from './support';

const RUN = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
const PASSWORD = 'Casebook-e2e-Pass-1!';
const QUESTION = `Our supplier wants to end the cleaning contract with one week's notice (${RUN}). Is that allowed?`;
const AMENDED = `Amended by the consultant (${RUN}): the contract requires 30 days' written notice, so one week's notice is not enough.`;
const ATTACHMENT = 'Cleaning services agreement\nClause 9: either party may terminate with 30 days written notice.\n';
const LEASE = `Office leases renew for a year unless ended in writing (${RUN})`;
const LEASE_REVISED = `Office leases renew yearly unless ended in writing three months ahead (${RUN})`;
const VERBAL = `Verbal notice is enough to end a service contract (${RUN})`;
const RETIRED_BECAUSE = 'Superseded: the practice now requires written notice.';

test.describe.configure({ mode: 'serial' });

/** Signs a practice up on the landing page; returns its admin (not yet signed in). */
async function signUpPractice(page: Page, practice: string, admin: { name: string; email: string }, shootAs?: string): Promise<void> {
  await page.goto('/');
  await page.getByLabel('Practice name').fill(practice);
  await page.getByLabel('Your name').fill(admin.name);
  await page.getByLabel('Your work email').fill(admin.email);
  await page.getByLabel('Plan', { exact: true }).selectOption('professional');
  if (shootAs) await shot(page, `${shootAs}-landing-filled`);
  await page.getByRole('button', { name: 'Sign up', exact: true }).click();
  await expect(page.getByText('Your practice is signed up.')).toBeVisible();
  if (shootAs) await shot(page, `${shootAs}-signed-up`);
}

/** The card of the judgment titled `title` on the judgments page. */
function judgmentCard(page: Page, title: string): Locator {
  return page.locator('li[data-judgment]').filter({ has: page.getByRole('heading', { name: title, exact: true }) });
}

/** Writes a judgment on the judgments page and waits for it in the list. */
async function writeJudgment(page: Page, title: string, body: string, tags: string): Promise<void> {
  const form = page.getByRole('region', { name: 'Write a judgment' });
  await form.getByLabel('Title', { exact: true }).fill(title);
  await form.getByLabel('Judgment', { exact: true }).fill(body);
  await form.getByLabel('Tags', { exact: true }).fill(tags);
  await form.getByRole('button', { name: 'Capture judgment' }).click();
  await expect(page.getByText(`Captured “${title}”.`)).toBeVisible();
  await reloadUntilVisible(page, judgmentCard(page, title));
}

/** Reloads until `locator` shows: read models follow the log a moment after a command. */
async function reloadUntilVisible(page: Page, locator: Locator, timeout = 60_000): Promise<void> {
  await expect(async () => {
    if (!(await locator.isVisible())) {
      await page.reload();
      await expect(locator).toBeVisible({ timeout: 3000 });
    }
  }).toPass({ timeout, intervals: [1000, 2000] });
}

async function invite(page: Page, email: string, name: string, role: string): Promise<void> {
  const form = page.getByRole('region', { name: 'Invite someone' });
  await form.getByLabel('Email').fill(email);
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Role').selectOption(role);
  await form.getByRole('button', { name: 'Send invitation' }).click();
  await expect(page.getByText(`Invited ${email} as ${role}.`)).toBeVisible();
  await expect(page.locator(`li[data-email="${email}"]`)).toBeVisible();
}

test('a practice from sign-up to an audited, amended answer, and another practice sees none of it', async ({ browser }) => {
  env('CASEBOOK_E2E_LOG');
  const north = {
    admin: address('nora', `northwind-${RUN}`, RUN),
    consultant: address('kim', `northwind-${RUN}`, RUN),
    customer: address('cy', `northwind-${RUN}`, RUN),
    auditor: address('ada', `northwind-${RUN}`, RUN),
  };
  const actors: Actor[] = [];
  const actor = async (email: string, viewport?: { width: number; height: number }) => {
    const a = await newActor(browser, email, PASSWORD, viewport);
    actors.push(a);
    return a;
  };

  const admin = await actor(north.admin);

  await test.step('the landing page loads and becomes usable; its first-load time is recorded', async () => {
    const { page } = admin;
    await page.goto('/');
    const signUp = page.getByRole('button', { name: 'Sign up', exact: true });
    await expect(signUp).toBeEnabled();
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined;
      const mark = performance.getEntriesByName('casebook:signup-interactive')[0];
      const resources = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
      return {
        time_to_interactive_ms: mark ? Math.round(mark.startTime) : null,
        checked_at_ms: Math.round(performance.now()),
        dom_content_loaded_ms: nav ? Math.round(nav.domContentLoadedEventEnd) : null,
        load_event_end_ms: nav ? Math.round(nav.loadEventEnd) : null,
        response_end_ms: nav ? Math.round(nav.responseEnd) : null,
        transferred_bytes: (nav?.transferSize ?? 0) + resources.reduce((n, r) => n + r.transferSize, 0),
        resources: resources.map((r) => ({ name: new URL(r.name).pathname, transfer_bytes: r.transferSize, duration_ms: Math.round(r.duration) })),
      };
    });
    expect(timing.time_to_interactive_ms).not.toBeNull();
    writeFileSync(
      join(RESULTS, 'first-load.json'),
      `${JSON.stringify(
        {
          what: 'landing page, cold cache, local casebook serve: navigation start → the sign-up button enabled (plans loaded), from the performance mark the app sets then',
          url: page.url(),
          ...timing,
        },
        null,
        2,
      )}\n`,
    );
    await shot(page, 'landing');
  });

  await test.step('the public pages: sign-in and forgot password', async () => {
    const visitor = await actor(`visitor-${RUN}`);
    await visitor.page.goto('/signin');
    await expect(visitor.page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
    await shot(visitor.page, 'signin');
    await visitor.page.getByRole('link', { name: 'Forgot your password?' }).click();
    await expect(visitor.page.getByRole('heading', { name: 'Reset your password' })).toBeVisible();
    await shot(visitor.page, 'forgot-password');
    const phone = await actor(`phone-${RUN}`, { width: 390, height: 844 });
    await phone.page.goto('/');
    await expect(phone.page.getByRole('button', { name: 'Sign up', exact: true })).toBeEnabled();
    await shot(phone.page, 'landing-phone');
  });

  await test.step('a practice signs up and its admin signs in for the first time', async () => {
    await signUpPractice(admin.page, `Northwind Advisory ${RUN}`, { name: 'Nora North', email: north.admin }, 'northwind');
    await admin.page.getByRole('link', { name: 'Sign in' }).first().click();
    await firstSignIn(admin, /\/admin\/people/, 'admin');
    await expect(admin.page.getByRole('heading', { name: 'People' })).toBeVisible();
    await expect(admin.page.locator(`li[data-email="${north.admin}"]`)).toBeVisible();
    await shot(admin.page, 'admin-people');
  });

  await test.step('the admin invites a consultant, a customer and an auditor', async () => {
    await invite(admin.page, north.consultant, 'Kim Ode', 'consultant');
    await invite(admin.page, north.customer, 'Cy Customer', 'customer');
    await invite(admin.page, north.auditor, 'Ada Auditor', 'auditor');
    await shot(admin.page, 'admin-people-invited');
    await admin.page.getByRole('link', { name: 'Plan & usage' }).click();
    await expect(admin.page.getByRole('heading', { name: `Northwind Advisory ${RUN}` })).toBeVisible();
    await shot(admin.page, 'admin-practice');
  });

  const consultant = await actor(north.consultant);
  const customer = await actor(north.customer);
  const auditor = await actor(north.auditor);

  await test.step('each signs in for the first time', async () => {
    await firstSignIn(consultant, /\/review$/, 'consultant');
    await shot(consultant.page, 'consultant-queue-empty');
    await firstSignIn(customer, /\/portal$/, 'customer');
    await shot(customer.page, 'customer-portal');
    await firstSignIn(auditor, /\/audit$/);
  });

  let diagnosisUrl = '';
  await test.step('the customer opens a session with an attachment and asks', async () => {
    const { page } = customer;
    await page.getByLabel('What is it about?').fill('Cleaning contract');
    await page.getByLabel('Attach files (optional)').setInputFiles({ name: 'agreement.txt', mimeType: 'text/plain', buffer: Buffer.from(ATTACHMENT) });
    await shot(page, 'customer-open-session');
    await page.getByRole('button', { name: 'Open session' }).click();
    await expect(page).toHaveURL(/\/portal\/sessions\//);
    await expect(page.getByRole('heading', { name: 'Cleaning contract' })).toBeVisible();
    await expect(page.getByText('agreement.txt')).toBeVisible();
    await page.getByLabel('Your question').fill(QUESTION);
    await shot(page, 'customer-session');
    await page.getByRole('button', { name: 'Submit question' }).click();
    await expect(page).toHaveURL(/\/portal\/diagnoses\/[0-9a-f-]{36}/);
    await expect(page.getByText('In review', { exact: true })).toBeVisible({ timeout: 60_000 });
    diagnosisUrl = new URL(page.url()).pathname;
    await shot(page, 'customer-answer-waiting');
  });
  const diagnosisId = diagnosisUrl.split('/').pop() ?? '';

  await test.step('the proposal reaches the consultant’s queue (the local model drafts it)', async () => {
    const { page } = consultant;
    await expect
      .poll(
        async () => {
          await page.goto('/review');
          await page.getByRole('heading', { name: 'Review queue' }).waitFor();
          await page.locator('.status.loading').waitFor({ state: 'detached' });
          return page.locator(`#q-${diagnosisId}`).count();
        },
        { message: 'the diagnosis in the review queue', timeout: 5 * 60_000, intervals: [5000] },
      )
      .toBe(1);
    await shot(page, 'consultant-queue');
  });

  await test.step('the consultant amends the draft and approves it, from the keyboard', async () => {
    const { page } = consultant;
    await page.keyboard.press('o');
    await expect(page).toHaveURL(new RegExp(`/review/${diagnosisId}$`));
    await expect(page.getByRole('heading', { name: 'Proposed diagnosis' })).toBeVisible();
    await expect(page.getByText('Keyboard shortcuts')).toBeVisible();
    await expect(page.getByRole('heading', { name: 'Provenance' })).toBeVisible();
    await shot(page, 'consultant-diagnosis');
    await page.keyboard.press('e');
    const editor = page.getByLabel('Amended diagnosis (released to the customer)');
    await expect(editor).toBeFocused();
    await expect(editor).not.toHaveValue('');
    await editor.fill(AMENDED);
    await shot(page, 'consultant-amend');
    await page.getByRole('button', { name: 'Approve with my amendment' }).click();
    await expect(page.getByText('Amended and approved: your text is released to the customer.')).toBeVisible();
    await shot(page, 'consultant-decided');
    const phone = await actor(`${north.consultant}-phone`, { width: 390, height: 844 });
    // The same consultant at phone width: the signed-in session copied into a new tab.
    const session = await page.evaluate(() => sessionStorage.getItem('casebook.session') ?? '');
    await phone.context.addInitScript((value) => {
      try {
        if (!sessionStorage.getItem('casebook.session')) sessionStorage.setItem('casebook.session', value);
      } catch {
        // about:blank has no storage.
      }
    }, session);
    await phone.page.goto(`/review/${diagnosisId}`);
    await reloadUntilVisible(phone.page, phone.page.getByRole('heading', { name: 'Decision', exact: true }));
    await shot(phone.page, 'consultant-diagnosis-phone');
    await page.getByRole('link', { name: 'Judgments' }).click();
    await expect(page.getByRole('heading', { name: 'Captured judgments' })).toBeVisible();
    // The amended decision became a judgment, linked to the review it came from.
    await reloadUntilVisible(page, page.locator(`.judgments a[href="/review/${diagnosisId}"]`));
    await shot(page, 'consultant-judgments');
  });

  let capturedJudgmentId = '';
  await test.step('the consultant writes, revises and retires judgments, filters them, arrives from a review, searches them and reads a history', async () => {
    const { page } = consultant;
    const cards = page.locator('li[data-judgment]');
    const captured = cards.filter({ has: page.locator(`a[href="/review/${diagnosisId}"]`) });
    capturedJudgmentId = (await captured.getAttribute('data-judgment')) ?? '';
    expect(capturedJudgmentId).toMatch(/^[0-9a-f-]{36}$/);
    await expect(captured.locator('.pill')).toHaveText('Active');

    await writeJudgment(page, LEASE, 'A tenant who does not end an office lease in writing before it ends is held to another year.', 'leases, property');
    await writeJudgment(page, VERBAL, 'A supplier may end a service contract by telling the customer, without anything in writing.', 'contracts, notice');

    // Revise the first: its status becomes "Revised".
    await judgmentCard(page, LEASE).getByRole('button', { name: 'Revise', exact: true }).click();
    const lease = page.locator('li[data-judgment]').filter({ has: page.getByRole('button', { name: 'Save revision' }) });
    await lease.getByLabel('Title', { exact: true }).fill(LEASE_REVISED);
    await lease.getByLabel('Judgment', { exact: true }).fill('An office lease renews for a year unless the tenant ends it in writing at least three months before it ends.');
    await shot(page, 'consultant-judgment-revise');
    await lease.getByRole('button', { name: 'Save revision' }).click();
    await expect(page.getByText(`Revised “${LEASE_REVISED}”.`)).toBeVisible();
    await reloadUntilVisible(page, judgmentCard(page, LEASE_REVISED));
    await expect(judgmentCard(page, LEASE_REVISED).locator('.pill')).toHaveText('Revised');

    // Retire the second, with the reason: no more actions on it but its history.
    await judgmentCard(page, VERBAL).getByRole('button', { name: 'Retire', exact: true }).click();
    await judgmentCard(page, VERBAL).getByLabel('Why it no longer holds (required)').fill(RETIRED_BECAUSE);
    await judgmentCard(page, VERBAL).getByRole('button', { name: 'Retire judgment' }).click();
    await expect(page.getByText(`Retired “${VERBAL}”: it is no longer retrieved.`)).toBeVisible();
    const verbal = judgmentCard(page, VERBAL);
    await reloadUntilVisible(page, verbal.locator('.pill', { hasText: 'Retired' }));
    await expect(verbal).toContainText(RETIRED_BECAUSE);
    await expect(verbal.getByRole('button', { name: 'Revise', exact: true })).toHaveCount(0);
    await expect(verbal.getByRole('button', { name: 'Retire', exact: true })).toHaveCount(0);
    await expect(verbal.getByRole('button', { name: 'History' })).toBeVisible();
    await expect(cards).toHaveCount(3);
    await shot(page, 'consultant-judgments-all');

    // Filters go into the URL: the retired ones only.
    const filters = page.getByRole('form', { name: 'Filters' });
    await filters.getByRole('checkbox', { name: 'Retired' }).check();
    await filters.getByRole('button', { name: 'Apply filters' }).click();
    await expect(page).toHaveURL(/[?&]status=retired(&|$)/);
    await expect(cards).toHaveCount(1);
    await expect(verbal).toBeVisible();
    await shot(page, 'consultant-judgments-retired');

    // Active or revised, written by a consultant, captured today (UTC): the revised lease only.
    const today = new Date().toISOString().slice(0, 10);
    await filters.getByRole('checkbox', { name: 'Retired' }).uncheck();
    await filters.getByRole('checkbox', { name: 'Active' }).check();
    await filters.getByRole('checkbox', { name: 'Revised' }).check();
    await filters.getByLabel('Origin').selectOption('authored');
    await filters.getByLabel('Captured from').fill(today);
    await filters.getByLabel('Captured until').fill(today);
    await filters.getByRole('button', { name: 'Apply filters' }).click();
    await expect(page).toHaveURL(/origin=authored/);
    await expect(cards).toHaveCount(1);
    await expect(judgmentCard(page, LEASE_REVISED)).toBeVisible();
    // The view is bookmarkable: a reload (or a shared link) shows the same.
    await page.reload();
    await expect(filters.getByRole('checkbox', { name: 'Revised' })).toBeChecked();
    await expect(filters.getByRole('checkbox', { name: 'Retired' })).not.toBeChecked();
    await expect(filters.getByLabel('Origin')).toHaveValue('authored');
    await expect(filters.getByLabel('Captured from')).toHaveValue(today);
    await expect(cards).toHaveCount(1);
    await expect(judgmentCard(page, LEASE_REVISED)).toBeVisible();
    await shot(page, 'consultant-judgments-filtered');

    // From the review of the decision to the judgment it captured.
    await page.goto(`/review/${diagnosisId}`);
    await page.getByRole('link', { name: 'The judgment captured from this decision' }).click();
    await expect(page).toHaveURL(new RegExp(`/judgments\\?decision_id=${diagnosisId}$`));
    await expect(filters.getByLabel('Source decision')).toHaveValue(diagnosisId);
    await expect(cards).toHaveCount(1);
    await expect(page.locator(`li[data-judgment="${capturedJudgmentId}"] a[href="/review/${diagnosisId}"]`)).toBeVisible();
    await shot(page, 'consultant-judgments-from-review');
    await filters.getByRole('button', { name: 'Clear filters' }).click();
    await expect(page).toHaveURL(/\/judgments$/);
    await expect(cards).toHaveCount(3);

    // A search by meaning: the amended decision about the cleaning contract comes first. The
    // index follows the log, so search again until it has it and has dropped the retired one.
    const search = page.getByRole('search', { name: 'Search judgments' });
    await search.getByLabel('Search by meaning').fill('How much notice is needed to end the cleaning contract?');
    await search.getByRole('button', { name: 'Search', exact: true }).click();
    await expect(page).toHaveURL(/[?&]q=/);
    const results = page.getByRole('region', { name: 'Search results for “How much notice is needed to end the cleaning contract?”' });
    await expect(results).toBeVisible();
    await expect(async () => {
      await page.reload();
      await expect(results).toContainText('found', { timeout: 5000 });
      await expect(cards.first()).toHaveAttribute('data-judgment', capturedJudgmentId, { timeout: 1000 });
      await expect(verbal).toHaveCount(0, { timeout: 1000 });
    }).toPass({ timeout: 60_000, intervals: [1000, 2000] });
    await expect(cards.first().locator('.score')).toHaveText(/^Similarity [01]\.\d{3}$/);
    await expect(page.getByRole('list', { name: 'Judgments found' })).toBeVisible();
    await shot(page, 'consultant-judgments-search');
    await results.getByRole('button', { name: 'Back to the list' }).click();
    await expect(page).toHaveURL(/\/judgments$/);
    await expect(results).toHaveCount(0);
    await expect(cards).toHaveCount(3);
    await expect(cards.locator('.score')).toHaveCount(0);

    // A history, opened from the keyboard: the capture and the revision, who and when.
    const revised = judgmentCard(page, LEASE_REVISED);
    const toggle = revised.getByRole('button', { name: 'History' });
    await toggle.focus();
    await page.keyboard.press('Enter');
    await expect(toggle).toHaveAttribute('aria-expanded', 'true');
    const leaseHistory = page.getByRole('region', { name: `History of “${LEASE_REVISED}”` });
    const versions = leaseHistory.locator('.versions > li');
    await expect(versions).toHaveCount(2);
    await expect(versions.nth(0)).toContainText('Captured version 1 · by you');
    await expect(versions.nth(0)).toContainText(LEASE);
    await expect(versions.nth(1)).toContainText('Revised version 2 · by you');
    await expect(versions.nth(1)).toContainText('Changed the title and the text.');
    await verbal.getByRole('button', { name: 'History' }).click();
    const verbalHistory = page.getByRole('region', { name: `History of “${VERBAL}”` });
    await expect(verbalHistory.locator('.versions > li')).toHaveCount(2);
    await expect(verbalHistory.locator('.version-retired')).toContainText(`Why: ${RETIRED_BECAUSE}`);
    await shot(page, 'consultant-judgment-history');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, 'consultant-judgments-phone');
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await test.step('the customer reads the amended answer', async () => {
    const { page } = customer;
    await expect
      .poll(
        async () => {
          await page.goto(diagnosisUrl);
          await page.getByRole('heading', { name: 'Your question' }).waitFor();
          return page.getByText(AMENDED).count();
        },
        { message: 'the amended answer released to the customer', timeout: 60_000, intervals: [2000] },
      )
      .toBe(1);
    await expect(page.getByText('Answered', { exact: true })).toBeVisible();
    await expect(page.getByText('Written by a consultant of the practice.')).toBeVisible();
    await shot(page, 'customer-answer');
  });

  await test.step('the auditor sees the trail and the chain verified', async () => {
    const { page } = auditor;
    await expect
      .poll(
        async () => {
          await page.goto('/audit?action=DecisionMade');
          await page.locator('[data-chain]').waitFor({ timeout: 60_000 });
          await page.locator('.status.loading').first().waitFor({ state: 'detached' });
          return page.locator('table.audit tbody tr').count();
        },
        { message: 'the decision in the audit table', timeout: 60_000, intervals: [2000] },
      )
      .toBeGreaterThan(0);
    await expect(page.locator('[data-chain="verified"]')).toContainText('Chain verified by the server');
    await expect(page.locator('table.audit tbody tr').first()).toContainText('amended');
    await shot(page, 'auditor-audit-filtered');
    await page.locator('table.audit tbody tr').first().getByRole('link', { name: 'diagnosis' }).click();
    await expect(page.getByRole('heading', { name: 'Proposed diagnosis' })).toBeVisible();
    await shot(page, 'auditor-diagnosis');
    await page.getByRole('link', { name: 'The session’s whole trail' }).click();
    await expect(page.getByRole('heading', { name: 'Session trail' })).toBeVisible();
    await expect(page.getByText(AMENDED).first()).toBeVisible();
    await expect(page.locator('[data-chain="verified"]')).toBeVisible({ timeout: 60_000 });
    await expect(page.locator('table.audit tbody tr').filter({ hasText: 'SessionOpened' })).toHaveCount(1);
    await expect(page.locator('table.audit tbody tr').filter({ hasText: 'DecisionMade' })).toHaveCount(1);
    await shot(page, 'auditor-session-trail');
    await page.goto('/audit');
    await expect(page.locator('[data-chain="verified"]')).toBeVisible({ timeout: 60_000 });
    await shot(page, 'auditor-audit');
    await page.goto('/audit/events');
    await expect(page.locator('table.events tbody tr').first()).toBeVisible();
    await expect(page.getByText('DecisionMade').first()).toBeVisible();
    await shot(page, 'auditor-events');
  });

  await test.step('a consultant of another practice sees none of it', async () => {
    const south = { admin: address('sam', `southgate-${RUN}`, RUN), consultant: address('lee', `southgate-${RUN}`, RUN) };
    const admin2 = await actor(south.admin);
    await signUpPractice(admin2.page, `Southgate Partners ${RUN}`, { name: 'Sam South', email: south.admin });
    await firstSignIn(admin2, /\/admin\/people/);
    await invite(admin2.page, south.consultant, 'Lee Other', 'consultant');
    const other = await actor(south.consultant);
    await firstSignIn(other, /\/review$/);
    await expect(other.page.getByText('The queue is empty.')).toBeVisible();
    await shot(other.page, 'other-practice-queue');
    await other.page.goto(`/review/${diagnosisId}`);
    await expect(other.page.getByText('Not found: it does not exist, or it is not yours to see.')).toBeVisible();
    await expect(other.page.getByText(QUESTION)).toHaveCount(0);
    await shot(other.page, 'other-practice-diagnosis-404');
    const statusOf = (path: string) =>
      other.page.evaluate(async (url) => {
        const session = JSON.parse(sessionStorage.getItem('casebook.session') ?? '{}') as { idToken?: string };
        const response = await fetch(url, { headers: { Authorization: `Bearer ${session.idToken ?? ''}` } });
        return response.status;
      }, path);
    expect(await statusOf(`/v1/diagnoses/${diagnosisId}`)).toBe(404);
    // Nor its judgments: none listed, none found by a search, and the captured one is not found.
    await other.page.goto('/judgments');
    await expect(other.page.getByText('No judgment captured yet')).toBeVisible();
    await other.page.goto(`/judgments?q=${encodeURIComponent('notice to end the cleaning contract')}`);
    await expect(other.page.getByText('No captured judgment is close to “notice to end the cleaning contract”.')).toBeVisible();
    await shot(other.page, 'other-practice-judgments-search');
    expect(await statusOf(`/v1/judgments/${capturedJudgmentId}`)).toBe(404);
    // The first practice's admin's temporary password is not the second's business either.
    expect(await temporaryPassword(south.admin)).not.toBe(await temporaryPassword(north.admin));
  });

  await test.step('no CSP violation or uncaught error in any page', () => {
    expect(browserProblems).toEqual([]);
    writeFileSync(join(RESULTS, 'screenshots', 'index.json'), `${JSON.stringify(shots, null, 2)}\n`);
  });

  for (const a of actors) await a.context.close();
});
