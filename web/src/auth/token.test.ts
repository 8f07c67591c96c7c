import { describe, expect, it } from 'vitest';
import { base64UrlDecode, decodeIdToken, homeFor } from './token';
import { idToken, jwt } from '../test/helpers';

describe('the ID token', () => {
  it('gives the tenant, the roles and the expiry', () => {
    const claims = decodeIdToken(idToken({ 'cognito:groups': ['auditor', 'admin'] }, 1_800_000_000));
    expect(claims).toEqual({
      email: 'kim@northwind.test',
      tenantId: '6f1c2f4e-8a8e-4f53-9d0e-4c1f3b0b8a11',
      roles: ['auditor', 'admin'],
      exp: 1_800_000_000,
      sub: 'user-1',
    });
  });

  it('ignores groups that are not roles and copes with none', () => {
    expect(decodeIdToken(idToken({ 'cognito:groups': ['consultant', 'beta-testers'] })).roles).toEqual(['consultant']);
    expect(decodeIdToken(idToken({ 'cognito:groups': undefined })).roles).toEqual([]);
  });

  it('decodes base64url with non-ASCII text', () => {
    expect(decodeIdToken(jwt({ exp: 1, email: 'zoë@exämple.test' })).email).toBe('zoë@exämple.test');
    expect(base64UrlDecode('aGk_')).toBe('hi?');
  });

  it('refuses what is not a JWT with an expiry', () => {
    expect(() => decodeIdToken('nope')).toThrow();
    expect(() => decodeIdToken(jwt({ email: 'a@b.test' }))).toThrow(/exp/);
  });

  it('sends each role to its own area', () => {
    expect(homeFor(['customer'])).toBe('/portal');
    expect(homeFor(['auditor'])).toBe('/audit');
    expect(homeFor(['admin'])).toBe('/admin/people');
    expect(homeFor(['customer', 'consultant'])).toBe('/review');
    expect(homeFor([])).toBe('/no-role');
  });
});
