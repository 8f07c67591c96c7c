import { describe, expect, it, vi } from 'vitest';
import { CognitoClient, CognitoError, type Tokens } from './cognito';
import { REFRESH_MARGIN_MS, SESSION_KEY, SessionStore } from './session';
import { idToken, memoryStorage } from '../test/helpers';

const NOW = 1_700_000_000_000;

function setup(refresh?: (token: string) => Promise<Tokens>) {
  const storage = memoryStorage();
  let now = NOW;
  const timers: { fn: () => void; ms: number }[] = [];
  const cognito = { refresh: vi.fn(refresh ?? (() => Promise.resolve(tokens(NOW / 1000 + 7200)))) } as unknown as CognitoClient;
  const store = new SessionStore(cognito, {
    storage,
    now: () => now,
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    clearTimer: () => undefined,
  });
  return { store, storage, cognito, timers, advance: (ms: number) => (now += ms) };
}

function tokens(expSeconds: number, refreshToken?: string): Tokens {
  return { idToken: idToken({}, expSeconds), accessToken: 'acc', ...(refreshToken ? { refreshToken } : {}), expiresIn: 3600 };
}

describe('the session', () => {
  it('keeps the tokens in sessionStorage and reads them back in a new page', () => {
    const { store, storage } = setup();
    store.signIn(tokens(NOW / 1000 + 3600, 'ref'));
    expect(JSON.parse(storage.getItem(SESSION_KEY)!)).toMatchObject({ accessToken: 'acc', refreshToken: 'ref', expiresAt: NOW + 3_600_000 });
    const again = new SessionStore(null, { storage, now: () => NOW, setTimer: () => 0, clearTimer: () => undefined });
    expect(again.claims?.email).toBe('kim@northwind.test');
  });

  it('forgets stored junk instead of failing', () => {
    const storage = memoryStorage();
    storage.setItem(SESSION_KEY, '{"idToken": "nope"}');
    const store = new SessionStore(null, { storage, now: () => NOW, setTimer: () => 0, clearTimer: () => undefined });
    expect(store.current).toBeNull();
    expect(storage.getItem(SESSION_KEY)).toBeNull();
  });

  it('schedules a refresh before the token expires', () => {
    const { store, timers } = setup();
    store.signIn(tokens(NOW / 1000 + 3600, 'ref'));
    expect(timers.at(-1)?.ms).toBe(3_600_000 - REFRESH_MARGIN_MS);
  });

  it('hands out the token as is until the margin, then refreshes first', async () => {
    const { store, cognito, advance } = setup();
    const first = store.signIn(tokens(NOW / 1000 + 3600, 'ref'));
    expect(await store.idToken()).toBe(first.idToken);
    expect(cognito.refresh).not.toHaveBeenCalled();
    advance(3_600_000 - REFRESH_MARGIN_MS + 1);
    const refreshed = await store.idToken();
    expect(cognito.refresh).toHaveBeenCalledWith('ref');
    expect(refreshed).not.toBe(first.idToken);
    expect(store.current?.refreshToken).toBe('ref');
  });

  it('shares one refresh among concurrent callers', async () => {
    let resolve!: (t: Tokens) => void;
    const { store, cognito } = setup(() => new Promise((r) => (resolve = r)));
    store.signIn(tokens(NOW / 1000 + 3600, 'ref'));
    const a = store.refresh();
    const b = store.refresh();
    resolve(tokens(NOW / 1000 + 7200));
    expect(await a).toBe(await b);
    expect(cognito.refresh).toHaveBeenCalledTimes(1);
  });

  it('ends as expired when Cognito refuses the refresh token', async () => {
    const { store, storage } = setup(() => Promise.reject(new CognitoError('NotAuthorizedException', 'Refresh Token has been revoked', 400)));
    store.signIn(tokens(NOW / 1000 + 3600, 'ref'));
    const listener = vi.fn();
    store.subscribe(listener);
    expect(await store.refresh()).toBeNull();
    expect(store.current).toBeNull();
    expect(storage.getItem(SESSION_KEY)).toBeNull();
    expect(listener).toHaveBeenCalledWith(null, 'expired');
  });

  it('keeps the session through a network failure', async () => {
    const { store } = setup(() => Promise.reject(new CognitoError('NetworkError', 'offline', 0)));
    store.signIn(tokens(NOW / 1000 + 3600, 'ref'));
    expect(await store.refresh()).toBeNull();
    expect(store.current).not.toBeNull();
  });

  it('tells listeners when the user signs out', () => {
    const { store } = setup();
    store.signIn(tokens(NOW / 1000 + 3600, 'ref'));
    const listener = vi.fn();
    store.subscribe(listener);
    store.end('signed_out');
    expect(listener).toHaveBeenCalledWith(null, 'signed_out');
    expect(store.claims).toBeNull();
  });
});
