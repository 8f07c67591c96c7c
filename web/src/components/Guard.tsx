// Route guards by role, from the ID token's groups. The API enforces the same roles; this only
// keeps people from pages that would answer 403.

import type { ComponentChildren } from 'preact';
import { useEffect } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import type { Role } from '../auth/token';
import { useClaims } from '../services';

export function signInUrl(next: string, expired = false): string {
  const query = new URLSearchParams({ next });
  if (expired) query.set('expired', '1');
  return `/signin?${query.toString()}`;
}

export function Guard({ roles, children }: { roles: readonly Role[]; children: ComponentChildren }) {
  const claims = useClaims();
  const { url, route } = useLocation();
  useEffect(() => {
    if (!claims) route(signInUrl(url), true);
  }, [claims, url, route]);
  if (!claims) return null;
  if (!roles.some((r) => claims.roles.includes(r))) {
    return (
      <section class="page narrow">
        <h1>Not available to your role</h1>
        <p>
          This page is for {roles.join(' or ')} accounts. You are signed in as {claims.email} (
          {claims.roles.join(', ') || 'no role yet'}).
        </p>
        <p>
          <a href="/">Back to the start</a>
        </p>
      </section>
    );
  }
  return <>{children}</>;
}
