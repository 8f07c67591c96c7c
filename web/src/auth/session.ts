// The signed-in session: tokens in memory and in sessionStorage (so a reload or a new page of
// the same tab stays signed in, and closing the tab forgets them), refreshed before they
// expire, and at most one refresh in flight however many requests need it.

import { CognitoError, type CognitoClient, type Tokens } from './cognito';
import { decodeIdToken, type Claims } from './token';

export const SESSION_KEY = 'casebook.session';

/** Refresh this long before the ID token expires. */
export const REFRESH_MARGIN_MS = 2 * 60 * 1000;

export interface StoredSession {
  idToken: string;
  accessToken: string;
  refreshToken: string;
  /** ms since the epoch, from the ID token's `exp`. */
  expiresAt: number;
}

/** Why the session ended: the UI says "signed out" or "your session expired". */
export type EndReason = 'signed_out' | 'expired';

type Listener = (session: StoredSession | null, reason?: EndReason) => void;

export interface SessionDeps {
  storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;
  now: () => number;
  setTimer: (fn: () => void, ms: number) => unknown;
  clearTimer: (handle: unknown) => void;
}

const browserDeps = (): SessionDeps => ({
  storage: sessionStorage,
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
});

export class SessionStore {
  private session: StoredSession | null;
  private claimsCache: { token: string; claims: Claims } | null = null;
  private refreshing: Promise<StoredSession | null> | null = null;
  private timer: unknown = null;
  private readonly listeners = new Set<Listener>();
  private readonly deps: SessionDeps;

  constructor(
    private cognito: CognitoClient | null,
    deps: Partial<SessionDeps> = {},
  ) {
    this.deps = { ...browserDeps(), ...deps };
    this.session = this.load();
    this.schedule();
  }

  /** The client refreshes go through (set once the runtime config is loaded). */
  setCognito(cognito: CognitoClient): void {
    this.cognito = cognito;
    this.schedule();
  }

  get current(): StoredSession | null {
    return this.session;
  }

  get claims(): Claims | null {
    if (!this.session) return null;
    if (this.claimsCache?.token !== this.session.idToken) {
      this.claimsCache = { token: this.session.idToken, claims: decodeIdToken(this.session.idToken) };
    }
    return this.claimsCache.claims;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts (or continues, after a refresh) the session with `tokens`. */
  signIn(tokens: Tokens): StoredSession {
    const refreshToken = tokens.refreshToken ?? this.session?.refreshToken;
    if (!refreshToken) throw new Error('no refresh token');
    const claims = decodeIdToken(tokens.idToken);
    const session: StoredSession = {
      idToken: tokens.idToken,
      accessToken: tokens.accessToken,
      refreshToken,
      // The token's own expiry, or the answer's ExpiresIn if that is sooner.
      expiresAt: Math.min(claims.exp * 1000, this.deps.now() + tokens.expiresIn * 1000),
    };
    this.session = session;
    this.deps.storage.setItem(SESSION_KEY, JSON.stringify(session));
    this.schedule();
    this.emit();
    return session;
  }

  /** Ends the session (drafts are not touched: see `drafts.ts`). */
  end(reason: EndReason): void {
    this.session = null;
    this.deps.storage.removeItem(SESSION_KEY);
    if (this.timer !== null) this.deps.clearTimer(this.timer);
    this.timer = null;
    this.emit(reason);
  }

  /** Whether the ID token is within the refresh margin of its expiry (or past it). */
  needsRefresh(): boolean {
    return !!this.session && this.deps.now() >= this.session.expiresAt - REFRESH_MARGIN_MS;
  }

  /** An ID token good for a request: refreshed first when it is about to expire. */
  async idToken(): Promise<string | null> {
    if (!this.session) return null;
    if (this.needsRefresh()) {
      const refreshed = await this.refresh();
      return refreshed?.idToken ?? null;
    }
    return this.session.idToken;
  }

  /**
   * Refreshes the tokens; concurrent callers share one refresh. Resolves null (and ends the
   * session as expired) when Cognito refuses the refresh token.
   */
  refresh(): Promise<StoredSession | null> {
    if (this.refreshing) return this.refreshing;
    const session = this.session;
    const cognito = this.cognito;
    if (!session || !cognito) return Promise.resolve(null);
    this.refreshing = cognito
      .refresh(session.refreshToken)
      .then((tokens) => this.signIn(tokens))
      .catch((err: unknown) => {
        // A network failure keeps the session (the next request tries again); a refusal ends it.
        if (err instanceof CognitoError && err.type === 'NetworkError') return null;
        this.end('expired');
        return null;
      })
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  private load(): StoredSession | null {
    const raw = this.deps.storage.getItem(SESSION_KEY);
    if (!raw) return null;
    try {
      const parsed = JSON.parse(raw) as StoredSession;
      decodeIdToken(parsed.idToken);
      if (!parsed.refreshToken || typeof parsed.expiresAt !== 'number') return null;
      return parsed;
    } catch {
      this.deps.storage.removeItem(SESSION_KEY);
      return null;
    }
  }

  private schedule(): void {
    if (this.timer !== null) this.deps.clearTimer(this.timer);
    this.timer = null;
    if (!this.session || !this.cognito) return;
    const wait = Math.max(0, this.session.expiresAt - REFRESH_MARGIN_MS - this.deps.now());
    this.timer = this.deps.setTimer(() => void this.refresh(), wait);
  }

  private emit(reason?: EndReason): void {
    for (const listener of this.listeners) listener(this.session, reason);
  }
}
