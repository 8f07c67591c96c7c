// Test helpers: fake fetch, JWTs, in-memory storage.
import { vi } from 'vitest';

export function base64url(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

/** An unsigned JWT with `claims` (the browser never checks signatures). */
export function jwt(claims: Record<string, unknown>): string {
  return `${base64url(JSON.stringify({ alg: 'RS256', kid: 'dummy' }))}.${base64url(JSON.stringify(claims))}.sig`;
}

export function idToken(overrides: Record<string, unknown> = {}, expSeconds = 1_700_003_600): string {
  return jwt({
    sub: 'user-1',
    email: 'kim@northwind.test',
    'custom:tenant_id': '6f1c2f4e-8a8e-4f53-9d0e-4c1f3b0b8a11',
    'cognito:groups': ['consultant'],
    exp: expSeconds,
    token_use: 'id',
    ...overrides,
  });
}

export function memoryStorage(): Storage {
  const map = new Map<string, string>();
  return {
    get length() {
      return map.size;
    },
    key: (i: number) => [...map.keys()][i] ?? null,
    getItem: (k: string) => map.get(k) ?? null,
    setItem: (k: string, v: string) => void map.set(k, v),
    removeItem: (k: string) => void map.delete(k),
    clear: () => map.clear(),
  };
}

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json', ...headers },
  });
}

export interface Call {
  url: string;
  init: RequestInit;
  body: unknown;
  headers: Record<string, string>;
}

/** A fetch that answers from `respond` and records every call. */
export function fakeFetch(respond: (call: Call, index: number) => Response | Promise<Response>) {
  const calls: Call[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const headers = Object.fromEntries(Object.entries((init.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]));
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const call: Call = { url, init, headers, body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined };
    calls.push(call);
    return respond(call, calls.length - 1);
  });
  return { fetch: fn as unknown as typeof fetch, calls };
}
