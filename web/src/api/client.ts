// The API client: same-origin `/v1/*`, the ID token as a bearer, problem documents turned into
// typed errors with their stable `code`. A 401 saying the token expired or was revoked gets one
// refresh and one retry; if that fails the session ends as expired and the app sends the user to
// sign-in (drafts stay in sessionStorage: see drafts.ts).

import type { SessionStore } from '../auth/session';

/** Codes the API answers with 401 that a refreshed token may cure. */
export const REFRESHABLE_CODES: ReadonlySet<string> = new Set([
  'token_expired',
  'token_revoked',
  'invalid_token',
  'missing_token',
]);

/** An error response, as the API's problem document states it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    /** The stable code (`not_found`, `validation_failed`, …), or `network_error`. */
    readonly code: string,
    readonly detail: string | undefined,
    readonly field: string | undefined,
    readonly retryAfter: number | undefined,
  ) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = 'ApiError';
  }

  /** Someone else decided or changed it first: reload and look again. */
  get isConflict(): boolean {
    return this.status === 409;
  }

  /** What to tell the user. */
  get userMessage(): string {
    return describeProblem(this);
  }
}

/** Plain words for the codes a person can meet; the detail where the API gives one. */
export function describeProblem(err: Pick<ApiError, 'code' | 'detail' | 'field' | 'retryAfter' | 'status'>): string {
  const detail = err.detail ? ` (${err.detail})` : '';
  switch (err.code) {
    case 'validation_failed':
      return err.field ? `Check ${fieldLabel(err.field)}: ${err.detail ?? 'not valid'}.` : `Not valid${detail}.`;
    case 'not_found':
      return 'Not found: it does not exist, or it is not yours to see.';
    case 'forbidden':
      return 'Your role may not do this.';
    case 'concurrent_modification':
      return 'Someone else changed this at the same moment. Reload to see the latest, then try again.';
    case 'state_conflict':
      return `This can no longer be done${detail}. Reload to see where it stands.`;
    case 'rate_limited':
      return `Too many requests: try again in ${err.retryAfter ?? 1} s.`;
    case 'email_taken':
      return 'That email address already belongs to a user of a practice.';
    case 'user_exists':
      return 'That person is already a member of this practice.';
    case 'last_admin':
      return 'The practice must keep at least one enabled admin.';
    case 'role_unchanged':
      return 'They already have that role.';
    case 'idempotency_key_reused':
      return 'This form was already sent with other values. Reload the page and try again.';
    case 'uploads_unavailable':
      return 'Attachments are not available on this server.';
    case 'search_unavailable':
      return 'Search is not available on this server: the list and its filters still work.';
    case 'network_error':
      return 'The server could not be reached. Check your connection and try again.';
    case 'token_expired':
    case 'token_revoked':
      return 'Your session has ended. Sign in again.';
    default:
      return err.detail ?? `Something went wrong (${err.code}, HTTP ${err.status}).`;
  }
}

function fieldLabel(field: string): string {
  return field.replace(/_/g, ' ');
}

/** Turns a non-2xx response into an ApiError, reading the problem document if there is one. */
export async function problemOf(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let detail: string | undefined;
  let field: string | undefined;
  const type = response.headers.get('content-type') ?? '';
  if (type.includes('json')) {
    try {
      const body = (await response.json()) as { code?: unknown; detail?: unknown; field?: unknown };
      if (typeof body.code === 'string') code = body.code;
      if (typeof body.detail === 'string') detail = body.detail;
      if (typeof body.field === 'string') field = body.field;
    } catch {
      // A body that isn't JSON after all: keep the status' code.
    }
  }
  const retry = Number(response.headers.get('retry-after'));
  return new ApiError(response.status, code, detail, field, Number.isFinite(retry) && retry > 0 ? retry : undefined);
}

export interface RequestOptions {
  body?: unknown;
  query?: string;
  idempotencyKey?: string;
  /** Public routes (`/v1/plans`, `/v1/signup`) send no token. */
  public?: boolean;
  signal?: AbortSignal;
}

type Fetch = typeof fetch;

export class ApiClient {
  private readonly fetch: Fetch;

  constructor(
    private readonly session: SessionStore,
    fetchImpl: Fetch = (...args) => globalThis.fetch(...args),
  ) {
    this.fetch = fetchImpl;
  }

  get<T>(path: string, options: RequestOptions = {}): Promise<T> {
    return this.json<T>('GET', path, options);
  }

  post<T>(path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    return this.json<T>('POST', path, { ...options, body });
  }

  put<T>(path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    return this.json<T>('PUT', path, { ...options, body });
  }

  /** The raw response of a successful request (for NDJSON and headers). */
  async raw(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    let response = await this.send(method, path, options);
    if (response.status === 401 && !options.public) {
      const first = await problemOf(response);
      if (!REFRESHABLE_CODES.has(first.code)) throw first;
      const refreshed = await this.session.refresh();
      if (!refreshed) {
        this.session.end('expired');
        throw first;
      }
      response = await this.send(method, path, options);
      if (response.status === 401) {
        const second = await problemOf(response);
        this.session.end('expired');
        throw second;
      }
    }
    if (!response.ok) throw await problemOf(response);
    return response;
  }

  private async json<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const response = await this.raw(method, path, options);
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  private async send(method: string, path: string, options: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;
    if (!options.public) {
      const token = await this.session.idToken();
      if (!token) throw new ApiError(401, 'missing_token', 'not signed in', undefined, undefined);
      headers.Authorization = `Bearer ${token}`;
    }
    const url = options.query ? `${path}${options.query.startsWith('?') ? '' : '?'}${options.query}` : path;
    try {
      return await this.fetch(url, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') throw err;
      throw new ApiError(0, 'network_error', err instanceof Error ? err.message : undefined, undefined, undefined);
    }
  }
}
