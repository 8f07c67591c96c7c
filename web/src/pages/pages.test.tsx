// Pages in jsdom against a fake API: the behaviour the brief asks for, end to end inside the app.
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { App } from '../App';
import { SESSION_KEY } from '../auth/session';
import { loadDraft } from '../lib/drafts';
import { createServices } from '../services';
import { fakeFetch, idToken, jsonResponse, type Call } from '../test/helpers';
import { filterQueue } from './consultant/ReviewQueue';
import { decisionBody, decisionProblem } from './consultant/DiagnosisReview';
import { describeChanges, neighbour, versionChanges } from './consultant/data';
import { parseTags } from './consultant/Judgments';
import { filesProblem, pollDelay } from './customer';
import { signUpField } from './public/Landing';
import { safeNext } from './public/nav';
import { passwordProblem } from './public/passwords';
import { toCsv, parseNdjson, trailRows } from './auditor/data';
import type { AuditRow, JudgmentDetail, JudgmentRevision, JudgmentView, QueueEntry, StaffDiagnosis } from '../api/types';

const config = Promise.resolve({ cognito: { endpoint: 'http://cognito.test/', region: 'us-east-1', clientId: 'c' } });

function signInAs(roles: string[]) {
  const exp = Math.floor(Date.now() / 1000) + 3600;
  sessionStorage.setItem(
    SESSION_KEY,
    JSON.stringify({ idToken: idToken({ 'cognito:groups': roles }, exp), accessToken: 'a', refreshToken: 'r', expiresAt: exp * 1000 }),
  );
}

async function settle(times = 8) {
  for (let i = 0; i < times; i++) {
    await act(async () => {
      await new Promise((r) => setTimeout(r, 0));
    });
  }
}

/** Lets the app run until `ready` holds: a lazily loaded page may need more turns than
 * `settle` gives when the machine is busy. Bounded, so a page that never shows fails. */
async function settleUntil(ready: () => boolean, turns = 200) {
  for (let i = 0; i < turns && !ready(); i++) {
    await settle(1);
  }
}

let root: HTMLElement;

async function mount(path: string, respond: (call: Call, i: number) => Response | Promise<Response>) {
  history.replaceState(null, '', path);
  const fake = fakeFetch(respond);
  vi.stubGlobal('fetch', fake.fetch);
  root = document.createElement('div');
  document.body.append(root);
  await act(() => {
    render(<App services={createServices(config)} />, root);
  });
  await settle();
  return fake;
}

const text = () => root.textContent ?? '';
const button = (label: RegExp) => [...root.querySelectorAll('button')].find((b) => label.test(b.textContent ?? '')) as HTMLButtonElement;
async function type(el: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement, value: string) {
  await act(() => {
    el.value = value;
    el.dispatchEvent(new Event('input', { bubbles: true }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
  });
}

const diagnosis: StaffDiagnosis = {
  diagnosis_id: 'd1',
  session_id: 's1',
  query_id: 'd1',
  query: 'Is the supplier contract’s termination clause enforceable?',
  requested_at: '2025-05-01T10:00:00Z',
  requested_by: 'cust',
  status: 'proposed',
  attempt: 1,
  failure_reason: null,
  budget_renews_on: null,
  proposal: {
    text: 'The clause is enforceable.',
    findings: [{ summary: 'Notice period is 30 days', detail: null, severity: 'medium' }],
    confidence: 0.72,
    proposed_at: '2025-05-01T10:01:00Z',
    provenance: {
      model_id: 'smollm2-135m',
      model_tier: 'open_weights',
      prompt_template_id: 'diagnosis@3',
      prompt_template_hash: 'f'.repeat(64),
      retrieved_judgment_ids: [],
      input_tokens: 812,
      output_tokens: 96,
      cost_usd_micros: 0,
      precedents: [],
      attachments: [],
    },
  },
  decision: null,
  resolved_at: null,
  updated_at: '2025-05-01T10:01:00Z',
  version: 3,
};

beforeEach(() => {
  sessionStorage.clear();
  // jsdom has no scrolling; the router scrolls to the top on navigation.
  window.scrollTo = () => undefined;
});

afterEach(() => {
  render(null, root);
  root.remove();
  vi.unstubAllGlobals();
});

describe('the landing page', () => {
  it('lists the plans and signs a practice up with an idempotency key', async () => {
    const { calls } = await mount('/', (call) => {
      if (call.url === '/v1/plans') return jsonResponse(200, [{ plan: 'starter', requests_per_second: 10, burst: 20 }, { plan: 'professional', requests_per_second: 50, burst: 100 }]);
      if (call.url === '/v1/signup') return jsonResponse(201, { ids: { tenant_id: 't' }, events: [] });
      return jsonResponse(404, { code: 'not_found' });
    });
    expect(text()).toContain('Professional');
    const signUp = button(/^Sign up$/);
    expect(signUp.disabled).toBe(false);
    await type(root.querySelector('input[name=practice]')!, 'Northwind Advisory');
    await type(root.querySelector('input[name=name]')!, 'Nora North');
    await type(root.querySelector('input[name=email]')!, 'nora@northwind.test');
    await act(() => signUp.click());
    await settle();
    const signup = calls.find((c) => c.url === '/v1/signup')!;
    expect(signup.body).toEqual({ practice_name: 'Northwind Advisory', admin_email: 'nora@northwind.test', admin_name: 'Nora North', plan: 'starter' });
    expect(signup.headers['idempotency-key']).toMatch(/^[0-9a-f-]{36}$/);
    expect(signup.headers.authorization).toBeUndefined();
    expect(text()).toContain('Your practice is signed up');
  });

  it('shows a taken address next to the email field', async () => {
    await mount('/', (call) =>
      call.url === '/v1/plans' ? jsonResponse(200, [{ plan: 'starter', requests_per_second: 10, burst: 20 }]) : jsonResponse(409, { code: 'email_taken', status: 409 }),
    );
    await type(root.querySelector('input[name=practice]')!, 'P');
    await type(root.querySelector('input[name=name]')!, 'N');
    await type(root.querySelector('input[name=email]')!, 'taken@x.test');
    await act(() => button(/^Sign up$/).click());
    await settle();
    const email = root.querySelector('input[name=email]')!;
    expect(email.getAttribute('aria-invalid')).toBe('true');
    const described = email.getAttribute('aria-describedby')!.split(' ').map((id) => document.getElementById(id)?.textContent);
    expect(described.join(' ')).toMatch(/already belongs/);
  });
});

describe('signing in', () => {
  it('takes a first sign-in through the new password to the role’s home, and stays there', async () => {
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const tokens = { IdToken: idToken({ email: 'nora@northwind.test', 'cognito:groups': ['admin'] }, exp), AccessToken: 'acc', RefreshToken: 'ref', ExpiresIn: 3600 };
    const { calls } = await mount('/signin?email=nora%40northwind.test', (call) => {
      const target = call.headers['x-amz-target'];
      if (target?.endsWith('InitiateAuth')) return jsonResponse(200, { ChallengeName: 'NEW_PASSWORD_REQUIRED', Session: 'sess' });
      if (target?.endsWith('RespondToAuthChallenge')) return jsonResponse(200, { AuthenticationResult: tokens });
      if (call.url === '/v1/users') return jsonResponse(200, [{ email: 'nora@northwind.test', name: 'Nora', role: 'admin', status: 'active', invited_at: '2025-01-01T00:00:00Z', updated_at: '2025-01-01T00:00:00Z' }]);
      return jsonResponse(404, { code: 'not_found' });
    });
    await type(root.querySelector('input[name=password]')!, 'Tmp-password-1');
    await act(() => button(/^Sign in$/).click());
    await settle();
    expect(location.pathname).toBe('/signin/new-password');
    await type(root.querySelector('input[name=new-password]')!, 'Nora-own-pass-1!');
    await type(root.querySelector('input[name=confirm-password]')!, 'Nora-own-pass-1!');
    await act(() => button(/Set password and continue/).click());
    await settle();
    expect(location.pathname).toBe('/admin/people');
    // The admin's area is a lazy chunk: wait for it to replace the previous page.
    await vi.waitFor(async () => {
      await settle(1);
      expect(root.querySelector('main h1')?.textContent).toBe('People');
    }, { timeout: 5000 });
    expect(location.pathname).toBe('/admin/people');
    expect(calls.find((c) => c.headers['x-amz-target']?.endsWith('RespondToAuthChallenge'))?.body).toMatchObject({
      Session: 'sess',
      ChallengeResponses: { USERNAME: 'nora@northwind.test', NEW_PASSWORD: 'Nora-own-pass-1!' },
    });
  });

  it('shows a wrong password in place', async () => {
    await mount('/signin', () => jsonResponse(400, { __type: 'NotAuthorizedException', message: 'Incorrect username or password.' }));
    await type(root.querySelector('input[name=email]')!, 'a@b.test');
    await type(root.querySelector('input[name=password]')!, 'nope');
    await act(() => button(/^Sign in$/).click());
    await settle();
    expect(root.querySelector('[role=alert]')?.textContent).toContain('Incorrect email address or password.');
  });
});

describe('the review desk', () => {
  const api = (decide: () => Response) => (call: Call) => {
    if (call.url === '/v1/diagnoses/d1') return jsonResponse(200, diagnosis);
    if (call.url === '/v1/sessions/s1') return jsonResponse(200, { session_id: 's1', subject: 'S', attachments: [], queries: [] });
    if (call.url.startsWith('/v1/review-queue')) return jsonResponse(200, { items: [{ ...diagnosis, age_seconds: 65 }], next_cursor: null });
    if (call.url === '/v1/diagnoses/d1/decision') return decide();
    return jsonResponse(404, { code: 'not_found' });
  };

  it('keeps a rejected amendment in place on a concurrent decision, and in the tab', async () => {
    signInAs(['consultant']);
    const { calls } = await mount('/review/d1', api(() => jsonResponse(409, { code: 'concurrent_modification', status: 409 })));
    await settleUntil(() => text().includes('Keyboard shortcuts'));
    expect(text()).toContain('termination clause');
    expect(text()).toContain('smollm2-135m');
    expect(text()).toContain('Keyboard shortcuts');
    await act(() => {
      document.body.dispatchEvent(new KeyboardEvent('keydown', { key: 'e', bubbles: true }));
    });
    await settle(2);
    const editor = root.querySelector('textarea')!;
    expect(editor.value).toBe('The clause is enforceable.');
    await type(editor, 'The clause is enforceable only with 30 days’ notice.');
    expect(loadDraft('d1')?.text).toBe('The clause is enforceable only with 30 days’ notice.');
    await act(() => button(/Approve with my amendment/).click());
    await settle();
    const decision = calls.find((c) => c.url === '/v1/diagnoses/d1/decision')!;
    expect(decision.body).toEqual({ verdict: 'amend', amended_text: 'The clause is enforceable only with 30 days’ notice.' });
    expect(text()).toContain('Another decision on this diagnosis was recorded first');
    expect(root.querySelector('textarea')!.value).toBe('The clause is enforceable only with 30 days’ notice.');
    expect(loadDraft('d1')).not.toBeNull();
  });

  it('restores a draft after signing in again and clears it once decided', async () => {
    signInAs(['consultant']);
    sessionStorage.setItem('casebook.draft.d1', JSON.stringify({ verdict: 'reject', text: '', reason: 'Outside our practice', savedAt: 1 }));
    await mount('/review/d1', api(() => jsonResponse(201, { ids: { diagnosis_id: 'd1' }, events: [] })));
    await settleUntil(() => text().includes('Restored your unsent rejection'));
    expect(text()).toContain('Restored your unsent rejection');
    expect(root.querySelectorAll('textarea')[0]!.value).toBe('Outside our practice');
    await act(() => button(/^Reject$/).click());
    await settle();
    expect(text()).toContain('Rejected: the customer sees your reason.');
    expect(loadDraft('d1')).toBeNull();
  });

  it('sends a signed-out visitor to sign-in, keeping where they were going', async () => {
    await mount('/review/d1', () => jsonResponse(404, {}));
    expect(location.pathname).toBe('/signin');
    expect(new URLSearchParams(location.search).get('next')).toBe('/review/d1');
  });

  it('keeps other roles out', async () => {
    signInAs(['customer']);
    await mount('/review', () => jsonResponse(404, {}));
    expect(text()).toContain('Not available to your role');
  });
});

describe('the captured judgments', () => {
  const DECISION = '0b7d2c1e-5f3a-4c8b-9e21-7a6d4f3c2b10';
  const ME = 'user-1';
  const judgment = (id: string, over: Partial<JudgmentView> = {}): JudgmentView => ({
    judgment_id: id,
    status: 'active',
    origin: 'decision',
    decision_id: DECISION,
    diagnosis_id: DECISION,
    title: `Judgment ${id}`,
    body: `What ${id} says.`,
    tags: ['contracts'],
    revisions: 0,
    retired_reason: null,
    captured_by: 'system',
    captured_at: '2025-05-01T10:00:00Z',
    updated_at: '2025-05-01T10:00:00Z',
    ...over,
  });
  const captured = judgment('j1', { title: 'Notice must be written', tags: ['contracts', 'notice'], revisions: 1, status: 'revised', updated_at: '2025-05-02T09:00:00Z' });
  const authored = judgment('j2', { origin: 'authored', decision_id: null, diagnosis_id: null, captured_by: ME, title: 'Leases renew yearly' });
  const retired = judgment('j3', { status: 'retired', retired_reason: 'Superseded by the 2025 act', title: 'Old rule' });
  const history: JudgmentRevision[] = [
    { revision: 1, kind: 'captured', title: 'Notice', body: 'Thirty days.', tags: ['contracts'], reason: null, acted_by: 'system', recorded_at: '2025-05-01T10:00:00Z' },
    { revision: 2, kind: 'revised', title: 'Notice must be written', body: 'Thirty days.', tags: ['contracts', 'notice'], reason: null, acted_by: ME, recorded_at: '2025-05-02T09:00:00Z' },
  ];

  /** The fake API: the list (or search) answers `list(call)`; details from `details`. */
  const api = (list: (call: Call) => Response, details: Record<string, JudgmentDetail> = {}) => (call: Call) => {
    const url = new URL(call.url, 'http://app.test');
    if (url.pathname === '/v1/judgments' && call.init.method === 'GET') return list(call);
    const detail = /^\/v1\/judgments\/([^/]+)$/.exec(url.pathname);
    if (detail?.[1] && details[detail[1]]) return jsonResponse(200, details[detail[1]]);
    return jsonResponse(404, { code: 'not_found', status: 404 });
  };
  const listCalls = (calls: Call[]) => calls.filter((c) => c.url.startsWith('/v1/judgments?')).map((c) => Object.fromEntries(new URL(c.url, 'http://app.test').searchParams));
  const card = (id: string) => root.querySelector<HTMLElement>(`li[data-judgment="${id}"]`)!;
  const within = (el: HTMLElement, label: RegExp) => [...el.querySelectorAll('button')].find((b) => label.test(b.textContent ?? '')) as HTMLButtonElement;
  /** The control a label names (the test fails on a missing one). */
  const labelled = (label: string) => {
    const el = [...root.querySelectorAll('label')].find((l) => l.textContent?.trim() === label);
    return document.getElementById(el?.getAttribute('for') ?? '') as HTMLInputElement;
  };

  it('lists them as the page URL filters them: status, origin, source and history', async () => {
    signInAs(['consultant']);
    const { calls } = await mount(`/judgments?status=retired,active&decision_id=${DECISION}`, api(() => jsonResponse(200, { items: [captured, authored, retired], next_cursor: null })));
    await settleUntil(() => !!card('j3'));
    expect(listCalls(calls)[0]).toEqual({ status: 'active,retired', decision_id: DECISION, limit: '50' });
    const boxes = [...root.querySelectorAll<HTMLInputElement>('input[name=status]')];
    expect(boxes.map((b) => `${b.value}:${b.checked}`)).toEqual(['active:true', 'revised:false', 'retired:true']);
    expect(labelled('Source decision').value).toBe(DECISION);
    // Each with its status, where it came from, and only the living ones revisable.
    expect(card('j1').querySelector('.pill')?.textContent).toBe('Revised');
    expect(card('j1').querySelector<HTMLAnchorElement>(`a[href="/review/${DECISION}"]`)?.textContent).toBe('the review it came from');
    expect(card('j1').textContent).toContain('#contracts #notice');
    expect(card('j1').textContent).toContain('revised once');
    expect(card('j2').textContent).toContain('Written by you');
    expect(card('j2').querySelector('a[href^="/review/"]')).toBeNull();
    expect(card('j3').querySelector('.pill')?.textContent).toBe('Retired');
    expect(card('j3').textContent).toContain('Superseded by the 2025 act');
    expect(within(card('j1'), /^Revise$/)).toBeDefined();
    expect(within(card('j3'), /^Revise$/)).toBeUndefined();
    expect(within(card('j3'), /^Retire$/)).toBeUndefined();
    expect(within(card('j3'), /^History$/)).toBeDefined();
    expect(text()).toContain('3 judgments matching the filters');
  });

  it('puts the filters in the URL, checking them first', async () => {
    signInAs(['consultant']);
    const { calls } = await mount('/judgments', api(() => jsonResponse(200, { items: [], next_cursor: null })));
    await settleUntil(() => text().includes('No judgment captured yet'));
    const filters = root.querySelector<HTMLFormElement>('form[aria-label=Filters]')!;
    await act(() => root.querySelector<HTMLInputElement>('input[name=status][value=retired]')!.click());
    await type(labelled('Origin'), 'authored');
    await type(labelled('Captured from'), '2025-05-01');
    await type(labelled('Captured until'), '2025-05-31');
    await type(labelled('Source decision'), 'not-an-id');
    await act(() => within(filters, /Apply filters/).click());
    const decision = labelled('Source decision');
    expect(decision.getAttribute('aria-invalid')).toBe('true');
    expect(document.getElementById(decision.getAttribute('aria-describedby')!.split(' ').pop()!)?.textContent).toMatch(/UUID/);
    expect(location.search).toBe('');
    await type(decision, DECISION);
    await act(() => within(filters, /Apply filters/).click());
    await settleUntil(() => text().includes('No judgment matches these filters'));
    expect(Object.fromEntries(new URLSearchParams(location.search))).toEqual({ status: 'retired', origin: 'authored', decision_id: DECISION, from: '2025-05-01', to: '2025-05-31' });
    expect(listCalls(calls).at(-1)).toEqual({ status: 'retired', origin: 'authored', decision_id: DECISION, from: '2025-05-01T00:00:00Z', to: '2025-06-01T00:00:00Z', limit: '50' });
    await act(() => within(filters, /Clear filters/).click());
    await settleUntil(() => text().includes('No judgment captured yet'));
    expect(location.search).toBe('');
    expect(root.querySelector<HTMLInputElement>('input[name=status][value=retired]')!.checked).toBe(false);
  });

  it('searches by meaning, shows each result’s similarity, and goes back to the list', async () => {
    signInAs(['consultant']);
    const { calls } = await mount(
      '/judgments?status=active',
      api((call) =>
        call.url.includes('q=')
          ? jsonResponse(200, { items: [{ ...authored, score: 0.9123 }, { ...captured, score: 0.41 }], next_cursor: null })
          : jsonResponse(200, { items: [captured], next_cursor: 'c2' }),
      ),
    );
    await settleUntil(() => !!card('j1'));
    expect(text()).toContain('shown (more below)');
    const search = root.querySelector<HTMLFormElement>('form[role=search]')!;
    await type(search.querySelector('input[type=search]')!, '  written notice to end a contract ');
    await act(() => within(search, /^Search$/).click());
    await settleUntil(() => !!card('j2'));
    expect(Object.fromEntries(new URLSearchParams(location.search))).toEqual({ q: 'written notice to end a contract', status: 'active' });
    expect(listCalls(calls).at(-1)).toEqual({ q: 'written notice to end a contract', status: 'active', limit: '20' });
    const results = root.querySelector('[role=region][aria-labelledby=search-results-title]')!;
    expect(results.textContent).toContain('Search results for “written notice to end a contract”');
    expect(results.textContent).toContain('2 found');
    expect([...root.querySelectorAll('li[data-judgment]')].map((li) => li.getAttribute('data-judgment'))).toEqual(['j2', 'j1']);
    expect(card('j2').querySelector('.score')?.textContent).toBe('Similarity 0.912');
    await act(() => button(/Back to the list/).click());
    await settleUntil(() => !root.querySelector('[aria-labelledby=search-results-title]') && !!card('j1'));
    expect(location.search).toBe('?status=active');
    expect(card('j1').querySelector('.score')).toBeNull();
  });

  it('shows the API’s refusal of a shared link’s filter next to its field', async () => {
    signInAs(['consultant']);
    await mount('/judgments?from=2025-05-03&to=2025-05-01', api(() => jsonResponse(422, { code: 'validation_failed', status: 422, field: 'to', detail: 'must be after from' })));
    await settleUntil(() => !!root.querySelector('.field-error'));
    const to = labelled('Captured until');
    expect(to.value).toBe('2025-05-01');
    expect(to.getAttribute('aria-invalid')).toBe('true');
    expect(to.getAttribute('aria-describedby')!.split(' ').map((id) => document.getElementById(id)?.textContent)).toEqual(['A day (UTC), included.', 'Check to: must be after from.']);
    expect(root.querySelectorAll('.status.error')).toHaveLength(0);
  });

  it('says when the server has no search, and keeps the list a click away', async () => {
    signInAs(['consultant']);
    await mount('/judgments?q=notice', api(() => jsonResponse(503, { code: 'search_unavailable', status: 503, detail: 'judgment search is not configured in this process' })));
    await settleUntil(() => !!root.querySelector('[role=alert]'));
    expect(root.querySelector('[role=alert]')?.textContent).toContain('Search is not available on this server');
    expect(button(/Back to the list/)).toBeDefined();
  });

  it('opens a judgment’s history: each version, what it changed, who and when', async () => {
    signInAs(['consultant']);
    const { calls } = await mount(
      '/judgments',
      api(() => jsonResponse(200, { items: [captured, retired], next_cursor: null }), {
        j1: { ...captured, history },
        j3: { ...retired, history: [{ ...history[0]!, title: 'Old rule' }, { revision: 2, kind: 'retired', title: null, body: null, tags: null, reason: 'Superseded by the 2025 act', acted_by: 'aaaabbbb-cccc', recorded_at: '2025-05-03T10:00:00Z' }] },
      }),
    );
    await settleUntil(() => !!card('j1'));
    const toggle = within(card('j1'), /^History$/);
    expect(toggle.getAttribute('aria-expanded')).toBe('false');
    await act(() => toggle.click());
    await settleUntil(() => !!card('j1').querySelector('.versions'));
    expect(toggle.getAttribute('aria-expanded')).toBe('true');
    const panel = document.getElementById(toggle.getAttribute('aria-controls')!)!;
    expect(card('j1').contains(panel)).toBe(true);
    const versions = [...panel.querySelectorAll('.versions > li')].map((li) => li.textContent);
    expect(versions).toHaveLength(2);
    expect(versions[0]).toMatch(/^Captured version 1 · by Casebook/);
    expect(versions[0]).toContain('Thirty days.');
    expect(versions[1]).toMatch(/^Revised version 2 · by you/);
    expect(versions[1]).toContain('Changed the title; tags added #notice.');
    expect(versions[1]).not.toContain('Thirty days.');
    expect(calls.filter((c) => c.url === '/v1/judgments/j1')).toHaveLength(1);
    await act(() => within(card('j3'), /^History$/).click());
    await settleUntil(() => !!card('j3').querySelector('.version-retired'));
    expect(card('j3').querySelector('.version-retired')?.textContent).toMatch(/Retired version 2 · by consultant aaaabbbb.*Why: Superseded by the 2025 act/);
    await act(() => toggle.click());
    expect(card('j1').querySelector('.versions')).toBeNull();
  });

  it('revises one and shows it once the read model has it', async () => {
    signInAs(['consultant']);
    let revised = false;
    const after = { ...authored, title: 'Leases renew every year', revisions: 1, status: 'revised' as const };
    const { calls } = await mount('/judgments', (call) => {
      if (call.url === '/v1/judgments/j2/revise') {
        revised = true;
        return jsonResponse(202, { ids: { judgment_id: 'j2' }, events: [] });
      }
      const now = revised ? after : authored;
      if (call.url === '/v1/judgments/j2') return jsonResponse(200, { ...now, history: [] });
      if (call.url.startsWith('/v1/judgments?')) return jsonResponse(200, { items: [now], next_cursor: null });
      return jsonResponse(404, { code: 'not_found' });
    });
    await settleUntil(() => !!card('j2'));
    await act(() => within(card('j2'), /^Revise$/).click());
    const title = labelled('Title');
    expect(title.value).toBe('Leases renew yearly');
    await type(title, 'Leases renew every year');
    await act(() => within(card('j2'), /Save revision/).click());
    await settleUntil(() => card('j2')?.querySelector('h2')?.textContent === 'Leases renew every year');
    expect(calls.find((c) => c.url === '/v1/judgments/j2/revise')?.body).toEqual({ title: 'Leases renew every year', body: 'What j2 says.', tags: ['contracts'] });
    expect(text()).toContain('Revised “Leases renew every year”.');
    expect(card('j2').querySelector('.pill')?.textContent).toBe('Revised');
  });

  it('links a decided diagnosis to its judgment, and precedents to where they came from', async () => {
    signInAs(['consultant']);
    const precedent = { judgment_id: 'j1', score: 0.8766, source_position: 1 };
    const decided = {
      ...diagnosis,
      status: 'resolved',
      decision: { outcome: 'approved', decided_by: 'kim', decided_at: '2025-05-01T11:00:00Z' },
      proposal: { ...diagnosis.proposal!, provenance: { ...diagnosis.proposal!.provenance, precedents: [precedent, { ...precedent, judgment_id: 'j9' }] } },
    };
    await mount('/review/d1', (call) => {
      if (call.url === '/v1/diagnoses/d1') return jsonResponse(200, decided);
      if (call.url === '/v1/decisions/d1') return jsonResponse(200, { decision_id: 'd1', diagnosis_id: 'd1', verdict: { kind: 'Approved' }, decided_by: 'kim', decided_by_role: 'consultant', decided_at: '2025-05-01T11:00:00Z' });
      if (call.url === '/v1/judgments/j1') return jsonResponse(200, { ...captured, history });
      if (call.url === '/v1/sessions/s1') return jsonResponse(200, { session_id: 's1', subject: 'S', attachments: [], queries: [] });
      if (call.url.startsWith('/v1/review-queue')) return jsonResponse(200, { items: [], next_cursor: null });
      return jsonResponse(404, { code: 'not_found' });
    });
    await settleUntil(() => text().includes('The judgment captured from this decision') && text().includes('Notice must be written'));
    expect(root.querySelector('a[href="/judgments?decision_id=d1"]')?.textContent).toBe('The judgment captured from this decision');
    const links = [...root.querySelectorAll('.precedents li')];
    expect(links[0]?.querySelector(`a[href="/review/${DECISION}"]`)?.textContent).toBe('“Notice must be written”');
    expect(links[0]?.textContent).toContain('0.877');
    expect(links[0]?.textContent).toContain('(revised)');
    expect(links[1]?.querySelector('a[href="/judgments#j9"]')?.textContent).toBe('Judgment j9');
  });
});

describe('page logic', () => {
  const entry = (id: string, query: string, confidence: number) => ({ ...diagnosis, diagnosis_id: id, query, age_seconds: 1, proposal: { ...diagnosis.proposal!, confidence } }) as QueueEntry;

  it('filters the queue by words and confidence', () => {
    const items = [entry('a', 'Lease renewal terms', 0.9), entry('b', 'Supplier termination', 0.4)];
    expect(filterQueue(items, 'lease', 0).map((i) => i.diagnosis_id)).toEqual(['a']);
    expect(filterQueue(items, '', 0.5).map((i) => i.diagnosis_id)).toEqual(['a']);
    expect(filterQueue(items, 'smollm2 supplier', 0).map((i) => i.diagnosis_id)).toEqual(['b']);
  });

  it('moves through the queue', () => {
    expect(neighbour(['a', 'b', 'c'], 'b', 1)).toBe('c');
    expect(neighbour(['a', 'b', 'c'], 'a', -1)).toBeNull();
    expect(neighbour(['a', 'b'], 'gone', 1)).toBe('a');
  });

  it('builds decision bodies and refuses a rejection without a reason', () => {
    expect(decisionBody('approve', 'x', 'y')).toEqual({ verdict: 'approve' });
    expect(decisionBody('amend', 'text', ' why ')).toEqual({ verdict: 'amend', amended_text: 'text', reason: 'why' });
    expect(decisionBody('reject', '', ' no ')).toEqual({ verdict: 'reject', reason: 'no' });
    expect(decisionProblem('reject', '', '  ')).toMatchObject({ field: 'reason' });
    expect(decisionProblem('amend', ' ', '')).toMatchObject({ field: 'text' });
    expect(decisionProblem('approve', '', '')).toBeNull();
  });

  it('maps sign-up errors to fields and keeps redirects inside the app', () => {
    expect(signUpField('tenant_name')).toBe('practice');
    expect(signUpField('email')).toBe('email');
    expect(signUpField('body')).toBeNull();
    expect(safeNext('/review/d1')).toBe('/review/d1');
    expect(safeNext('//evil.test')).toBeNull();
    expect(safeNext('https://evil.test')).toBeNull();
    expect(safeNext('/signin')).toBeNull();
  });

  it('checks passwords against the pool policy', () => {
    expect(passwordProblem('short')).toMatch(/12 characters/);
    expect(passwordProblem('Long-enough-pass1')).toBeNull();
    expect(passwordProblem('Long-enough-pass1', 'other')).toMatch(/differ/);
    expect(passwordProblem('long-enough-pass1')).toMatch(/uppercase/);
  });

  it('checks attachments before uploading', () => {
    expect(filesProblem([{ name: 'a.txt', size: 10 }])).toBeNull();
    expect(filesProblem([{ name: 'a.txt', size: 0 }])).toMatch(/empty/);
    expect(filesProblem([{ name: 'big.bin', size: 26 * 1024 * 1024 }])).toMatch(/25 MB/);
    expect(filesProblem(Array.from({ length: 21 }, (_, i) => ({ name: `${i}`, size: 1 })))).toMatch(/20 files/);
  });

  it('polls less often as the wait grows', () => {
    expect([0, 59_000, 60_000, 299_000, 300_000].map(pollDelay)).toEqual([3000, 3000, 10_000, 10_000, 30_000]);
  });

  it('says what each version of a judgment changed', () => {
    const v = (revision: number, kind: JudgmentRevision['kind'], title: string | null, body: string | null, tags: string[] | null): JudgmentRevision => ({
      revision, kind, title, body, tags, reason: kind === 'retired' ? 'old' : null, acted_by: 'system', recorded_at: '2025-05-01T00:00:00Z',
    });
    const history = [v(1, 'captured', 'T', 'B', ['a']), v(2, 'revised', 'T2', 'B', ['a', 'b']), v(3, 'retired', null, null, null), v(4, 'revised', 'T2', 'B2', []), v(5, 'revised', 'T2', 'B2', [])];
    expect(versionChanges(history, 0)).toEqual({ fields: ['title', 'body', 'tags'], tagsAdded: ['a'], tagsRemoved: [] });
    expect(versionChanges(history, 1)).toEqual({ fields: ['title', 'tags'], tagsAdded: ['b'], tagsRemoved: [] });
    expect(versionChanges(history, 2)).toEqual({ fields: [], tagsAdded: [], tagsRemoved: [] });
    // Compared with the content before the retirement.
    expect(versionChanges(history, 3)).toEqual({ fields: ['body', 'tags'], tagsAdded: [], tagsRemoved: ['a', 'b'] });
    expect(describeChanges(versionChanges(history, 1))).toBe('Changed the title; tags added #b.');
    expect(describeChanges(versionChanges(history, 3))).toBe('Changed the text; tags removed #a #b.');
    expect(describeChanges({ fields: ['tags'], tagsAdded: ['x'], tagsRemoved: ['y'] })).toBe('Tags added #x, removed #y.');
    expect(describeChanges({ fields: ['title', 'body'], tagsAdded: [], tagsRemoved: [] })).toBe('Changed the title and the text.');
    expect(describeChanges(versionChanges(history, 4))).toBe('Saved again with the same content.');
  });

  it('parses tags, NDJSON and CSV', () => {
    expect(parseTags(' a, b,,a ,c')).toEqual(['a', 'b', 'c']);
    expect(parseNdjson('{"a":1}\n\n{"a":2}\n')).toEqual([{ a: 1 }, { a: 2 }]);
    const rows = [{ seq: 1, reason: 'said "no", twice', retrieved_judgment_ids: ['x', 'y'], outcome: null }] as unknown as AuditRow[];
    expect(toCsv(rows)).toBe('seq,reason,retrieved_judgment_ids,outcome\r\n1,"said ""no"", twice",x y,\r\n');
  });

  it('picks a session’s rows out of the chain', () => {
    const base = { session_id: null, diagnosis_id: null, decision_id: null, aggregate_id: 'other' };
    const rows = [
      { ...base, seq: 1, session_id: 's1' },
      { ...base, seq: 2, diagnosis_id: 'd1' },
      { ...base, seq: 3, decision_id: 'd1' },
      { ...base, seq: 4, session_id: 's2' },
    ] as unknown as AuditRow[];
    expect(trailRows(rows, 's1', new Set(['d1'])).map((r) => r.seq)).toEqual([1, 2, 3]);
  });
});

describe('a spent token budget', () => {
  const deferred = { status: 'deferred_budget', budget_renews_on: '2027-01-01' } as const;

  it('tells the customer their question waits for the allowance, and until when', async () => {
    signInAs(['customer']);
    await mount('/portal/diagnoses/d1', (call) =>
      call.url === '/v1/diagnoses/d1'
        ? jsonResponse(200, { ...diagnosis, ...deferred, answer: null, declined_reason: null, decided_at: null })
        : jsonResponse(404, {}),
    );
    await settle();
    expect(text()).toContain('Waiting for the monthly allowance');
    expect(text()).toContain('when the allowance renews on 1 Jan 2027');
  });

  it('shows the consultant the deferral instead of a proposal', async () => {
    signInAs(['consultant']);
    await mount('/review/d1', (call) => {
      if (call.url === '/v1/diagnoses/d1') return jsonResponse(200, { ...diagnosis, ...deferred, proposal: null });
      if (call.url === '/v1/sessions/s1') return jsonResponse(200, { session_id: 's1', subject: 'S', attachments: [], queries: [] });
      if (call.url.startsWith('/v1/review-queue')) return jsonResponse(200, { items: [], next_cursor: null });
      return jsonResponse(404, {});
    });
    await settle();
    expect(text()).toContain('Deferred: token budget spent');
    expect(text()).toContain('resumes by itself when the budget renews on 1 Jan 2027');
  });

  it('shows the admin the budget used, left and its renewal', async () => {
    const { BudgetCard } = await import('./admin');
    root = document.createElement('div');
    document.body.append(root);
    const budget = { plan: 'starter', month: '2026-12', tokens_budget: 1_000_000, tokens_used: 1_000_400, tokens_remaining: 0, renews_on: '2027-01-01' };
    await act(() => {
      render(<BudgetCard budget={budget} />, root);
    });
    expect(text()).toContain('Monthly token budget (2026-12, UTC)');
    expect(text()).toContain('1,000,400 of 1,000,000 tokens used (100 %); 0 left until 1 Jan 2027.');
    expect(root.querySelector('[role=alert]')?.textContent).toContain('new questions are deferred until it renews on 1 Jan 2027');
  });
});

describe('admin settings', () => {
  it('sends exactly one setting, the threshold as a fraction or null', async () => {
    const { settingsBody } = await import('./admin');
    expect(settingsBody('threshold', '85')).toEqual({ auto_resolve_threshold: 0.85 });
    expect(settingsBody('threshold', '')).toEqual({ auto_resolve_threshold: null });
    expect(settingsBody('policy', 'open_weights_only')).toEqual({ model_policy: 'open_weights_only' });
  });

  it('reads the practice as active, suspended (with why) or erased', async () => {
    const { tenantStatus } = await import('./admin');
    expect(tenantStatus({ status: 'active', suspended_reason: null })).toBe('Active');
    expect(tenantStatus({ status: 'suspended', suspended_reason: 'Unpaid' })).toBe('Suspended: Unpaid');
    expect(tenantStatus({ status: 'suspended', suspended_reason: null })).toBe('Suspended');
    expect(tenantStatus({ status: 'erased', suspended_reason: null })).toBe('Erased');
  });
});
