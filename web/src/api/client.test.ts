import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError, describeProblem, problemOf } from './client';
import type { SessionStore, StoredSession } from '../auth/session';
import { fakeFetch, jsonResponse } from '../test/helpers';

function session(overrides: Partial<Record<'idToken' | 'refresh' | 'end', unknown>> = {}) {
  let token = 'token-1';
  const store = {
    idToken: vi.fn(() => Promise.resolve(token)),
    refresh: vi.fn(() => {
      token = 'token-2';
      return Promise.resolve({ idToken: token } as StoredSession);
    }),
    end: vi.fn(),
    ...overrides,
  };
  return store as unknown as SessionStore & typeof store;
}

const problem = (status: number, code: string, extra: Record<string, unknown> = {}) => jsonResponse(status, { type: 'about:blank', title: 't', status, code, ...extra });

describe('the API client', () => {
  it('sends the ID token, JSON and the idempotency key', async () => {
    const { fetch, calls } = fakeFetch(() => jsonResponse(201, { ids: { session_id: 's' }, events: [] }));
    const api = new ApiClient(session(), fetch);
    const answer = await api.post('/v1/sessions', { subject: 'x' }, { idempotencyKey: 'key-1' });
    expect(answer).toEqual({ ids: { session_id: 's' }, events: [] });
    expect(calls[0]!.headers).toMatchObject({ authorization: 'Bearer token-1', 'content-type': 'application/json', 'idempotency-key': 'key-1' });
    expect(calls[0]!.body).toEqual({ subject: 'x' });
  });

  it('sends no token on public routes', async () => {
    const store = session();
    const { fetch, calls } = fakeFetch(() => jsonResponse(200, []));
    await new ApiClient(store, fetch).get('/v1/plans', { public: true });
    expect(calls[0]!.headers.authorization).toBeUndefined();
    expect(store.idToken).not.toHaveBeenCalled();
  });

  it('appends the query string', async () => {
    const { fetch, calls } = fakeFetch(() => jsonResponse(200, { items: [], next_cursor: null }));
    await new ApiClient(session(), fetch).get('/v1/audit', { query: '?action=DecisionMade' });
    await new ApiClient(session(), fetch).get('/v1/audit', { query: 'limit=5' });
    expect(calls.map((c) => c.url)).toEqual(['/v1/audit?action=DecisionMade', '/v1/audit?limit=5']);
  });

  it('maps a problem document to its code, detail and field', async () => {
    const { fetch } = fakeFetch(() => problem(422, 'validation_failed', { detail: 'must not be empty', field: 'reason' }));
    const error = (await new ApiClient(session(), fetch).post('/v1/diagnoses/d/decision', {}).catch((e: unknown) => e)) as ApiError;
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 422, code: 'validation_failed', detail: 'must not be empty', field: 'reason' });
    expect(error.userMessage).toBe('Check reason: must not be empty.');
  });

  it('maps a concurrent decision to a conflict', async () => {
    const { fetch } = fakeFetch(() => problem(409, 'concurrent_modification'));
    const error = (await new ApiClient(session(), fetch).post('/v1/x', {}).catch((e: unknown) => e)) as ApiError;
    expect(error.isConflict).toBe(true);
    expect(error.userMessage).toMatch(/Someone else/);
  });

  it('reads Retry-After on 429', async () => {
    const { fetch } = fakeFetch(() => problem(429, 'rate_limited', {}) && jsonResponse(429, { code: 'rate_limited' }, { 'retry-after': '7' }));
    const error = (await new ApiClient(session(), fetch).get('/v1/x').catch((e: unknown) => e)) as ApiError;
    expect(error).toMatchObject({ code: 'rate_limited', retryAfter: 7 });
    expect(error.userMessage).toBe('Too many requests: try again in 7 s.');
  });

  it('gives a code to errors that are not problem documents', async () => {
    const { fetch } = fakeFetch(() => new Response('<html>bad gateway</html>', { status: 502, headers: { 'content-type': 'text/html' } }));
    const error = (await new ApiClient(session(), fetch).get('/v1/x').catch((e: unknown) => e)) as ApiError;
    expect(error).toMatchObject({ status: 502, code: 'http_502' });
  });

  it('reports a failed connection as network_error', async () => {
    const fetch = (() => Promise.reject(new TypeError('Failed to fetch'))) as typeof globalThis.fetch;
    await expect(new ApiClient(session(), fetch).get('/v1/x')).rejects.toMatchObject({ code: 'network_error', status: 0 });
  });

  it('refreshes once on token_expired and retries with the new token', async () => {
    const store = session();
    const { fetch, calls } = fakeFetch((_, i) => (i === 0 ? problem(401, 'token_expired') : jsonResponse(200, { ok: true })));
    expect(await new ApiClient(store, fetch).get('/v1/review-queue')).toEqual({ ok: true });
    expect(store.refresh).toHaveBeenCalledTimes(1);
    expect(calls.map((c) => c.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);
    expect(store.end).not.toHaveBeenCalled();
  });

  it('ends the session as expired when the refresh fails', async () => {
    const store = session({ refresh: vi.fn(() => Promise.resolve(null)) });
    const { fetch, calls } = fakeFetch(() => problem(401, 'token_revoked'));
    await expect(new ApiClient(store, fetch).get('/v1/x')).rejects.toMatchObject({ code: 'token_revoked' });
    expect(calls).toHaveLength(1);
    expect(store.end).toHaveBeenCalledWith('expired');
  });

  it('ends the session when the retried request is refused again', async () => {
    const store = session();
    const { fetch, calls } = fakeFetch(() => problem(401, 'token_revoked'));
    await expect(new ApiClient(store, fetch).get('/v1/x')).rejects.toMatchObject({ status: 401 });
    expect(calls).toHaveLength(2);
    expect(store.end).toHaveBeenCalledWith('expired');
  });

  it('does not refresh for a 403', async () => {
    const store = session();
    const { fetch } = fakeFetch(() => problem(403, 'forbidden'));
    await expect(new ApiClient(store, fetch).get('/v1/x')).rejects.toMatchObject({ code: 'forbidden' });
    expect(store.refresh).not.toHaveBeenCalled();
  });

  it('refuses to call a private route when signed out', async () => {
    const store = session({ idToken: vi.fn(() => Promise.resolve(null)) });
    const { fetch, calls } = fakeFetch(() => jsonResponse(200, {}));
    await expect(new ApiClient(store, fetch).get('/v1/x')).rejects.toMatchObject({ code: 'missing_token' });
    expect(calls).toHaveLength(0);
  });

  it('words the codes people meet', async () => {
    expect(describeProblem({ status: 404, code: 'not_found', detail: undefined, field: undefined, retryAfter: undefined })).toMatch(/not yours/);
    expect(describeProblem({ status: 409, code: 'email_taken', detail: undefined, field: undefined, retryAfter: undefined })).toMatch(/already belongs/);
    expect(describeProblem({ status: 503, code: 'search_unavailable', detail: 'not configured', field: undefined, retryAfter: undefined })).toMatch(/Search is not available/);
    expect(describeProblem({ status: 409, code: 'some_new_code', detail: 'as the API says', field: undefined, retryAfter: undefined })).toBe('as the API says');
    expect((await problemOf(new Response('not json', { status: 500, headers: { 'content-type': 'application/json' } }))).code).toBe('http_500');
  });
});
