import { describe, expect, it } from 'vitest';
import { auditApiQuery, auditFiltersFrom, auditPageQuery, dateRangeProblem, emptyAuditFilters, nextDay, toQueryString } from './query';

describe('filters to query strings', () => {
  it('drops empty values and encodes the rest', () => {
    expect(toQueryString({ a: '', b: null, c: undefined, d: '  ', e: 'x y', f: 0 })).toBe('?e=x+y&f=0');
    expect(toQueryString({})).toBe('');
  });

  it('sends the audit filters as the API names them, days as instants', () => {
    const filters = { ...emptyAuditFilters(), action: 'DecisionMade', role: 'consultant', outcome: 'amended', from: '2025-05-01', to: '2025-05-03' };
    expect(auditApiQuery(filters, { limit: 100 })).toBe(
      '?action=DecisionMade&role=consultant&outcome=amended&from=2025-05-01T00%3A00%3A00Z&to=2025-05-04T00%3A00%3A00Z&limit=100',
    );
  });

  it('passes the cursor and the actor and model through', () => {
    const filters = { ...emptyAuditFilters(), actor: 'user/1', model: 'anthropic.claude' };
    expect(auditApiQuery(filters, { after: 'abc=' })).toBe('?actor=user%2F1&model=anthropic.claude&after=abc%3D');
  });

  it('round-trips the filters through the page URL', () => {
    const filters = { ...emptyAuditFilters(), action: 'UserInvited', from: '2025-01-31' };
    const query = Object.fromEntries(new URLSearchParams(auditPageQuery(filters)));
    expect(auditFiltersFrom(query)).toEqual(filters);
    expect(auditFiltersFrom({ junk: 'x' })).toEqual(emptyAuditFilters());
  });

  it('counts days across month and year ends', () => {
    expect(nextDay('2025-01-31')).toBe('2025-02-01');
    expect(nextDay('2024-12-31')).toBe('2025-01-01');
    expect(nextDay('2024-02-28')).toBe('2024-02-29');
  });

  it('refuses a range that runs backwards', () => {
    expect(dateRangeProblem('2025-05-03', '2025-05-01')).toMatch(/not be after/);
    expect(dateRangeProblem('2025-05-01', '2025-05-01')).toBeNull();
    expect(dateRangeProblem('', '')).toBeNull();
    expect(dateRangeProblem('May 1', '')).toMatch(/date/);
  });
});
