// The ID token's claims the app reads. The browser never verifies the signature: the API does,
// on every request. The claims only choose what to show (areas, the user's name).

export const ROLES = ['customer', 'consultant', 'auditor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface Claims {
  email: string;
  tenantId: string;
  roles: Role[];
  /** Seconds since the epoch. */
  exp: number;
  sub: string;
}

/** base64url → UTF-8 text. */
export function base64UrlDecode(input: string): string {
  const base64 = input.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The claims of a JWT's payload; throws on anything that is not a JWT with them. */
export function decodeIdToken(token: string): Claims {
  const parts = token.split('.');
  const payloadPart = parts[1];
  if (parts.length !== 3 || !payloadPart) throw new Error('not a JWT');
  const payload = JSON.parse(base64UrlDecode(payloadPart)) as Record<string, unknown>;
  const groups = payload['cognito:groups'];
  const roles = (Array.isArray(groups) ? groups : [])
    .filter((g): g is Role => typeof g === 'string' && (ROLES as readonly string[]).includes(g));
  const exp = payload.exp;
  if (typeof exp !== 'number') throw new Error('token without exp');
  return {
    email: typeof payload.email === 'string' ? payload.email : '',
    tenantId: typeof payload['custom:tenant_id'] === 'string' ? payload['custom:tenant_id'] : '',
    roles,
    exp,
    sub: typeof payload.sub === 'string' ? payload.sub : '',
  };
}

/** Where a user with `roles` lands after signing in: their main area. */
export function homeFor(roles: readonly Role[]): string {
  if (roles.includes('consultant')) return '/review';
  if (roles.includes('admin')) return '/admin/people';
  if (roles.includes('auditor')) return '/audit';
  if (roles.includes('customer')) return '/portal';
  return '/no-role';
}
