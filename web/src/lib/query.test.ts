import { describe, expect, it } from 'vitest';
import {
  auditApiQuery,
  auditFiltersFrom,
  auditPageQuery,
  dateRangeProblem,
  emptyAuditFilters,
  emptyJudgmentFilters,
  hasJudgmentFilters,
  judgmentApiQuery,
  judgmentFiltersFrom,
  judgmentFiltersProblem,
  judgmentPageQuery,
  nextDay,
  toQueryString,
} from './query';

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

describe('the judgments’ search and filters', () => {
  const decision = '3f1c2a9e-0000-4000-8000-000000000001';

  it('reads the page URL, keeping known statuses in order and ignoring the rest', () => {
    expect(judgmentFiltersFrom({})).toEqual(emptyJudgmentFilters());
    expect(judgmentFiltersFrom({ status: 'retired, active,bogus,active', origin: 'authored', q: '  notice period ', junk: 'x' })).toEqual({
      ...emptyJudgmentFilters(),
      q: 'notice period',
      status: ['active', 'retired'],
      origin: 'authored',
    });
    expect(judgmentFiltersFrom({ origin: 'someone', decision_id: ` ${decision} ` })).toEqual({ ...emptyJudgmentFilters(), decision_id: decision });
  });

  it('round-trips the search and the filters through the page URL', () => {
    const filters = { q: 'ending a cleaning contract', status: ['active', 'revised'] as const, origin: 'decision' as const, decision_id: decision, from: '2025-05-01', to: '2025-05-31' };
    const query = judgmentPageQuery({ ...filters, status: [...filters.status] });
    expect(query).toBe(`?q=ending+a+cleaning+contract&status=active%2Crevised&origin=decision&decision_id=${decision}&from=2025-05-01&to=2025-05-31`);
    expect(judgmentFiltersFrom(Object.fromEntries(new URLSearchParams(query)))).toEqual({ ...filters, status: ['active', 'revised'] });
    expect(judgmentPageQuery(emptyJudgmentFilters())).toBe('');
  });

  it('asks the API for a list page by page, days as instants with the last day whole', () => {
    const filters = { ...emptyJudgmentFilters(), status: ['retired' as const], from: '2025-05-01', to: '2025-05-31' };
    expect(judgmentApiQuery(filters, { after: 'c1', limit: 50 })).toBe(
      '?status=retired&from=2025-05-01T00%3A00%3A00Z&to=2025-06-01T00%3A00%3A00Z&after=c1&limit=50',
    );
  });

  it('sends a search as one page, with the filters and no cursor', () => {
    const filters = { ...emptyJudgmentFilters(), q: 'notice', origin: 'authored' as const };
    expect(judgmentApiQuery(filters, { after: 'c1', limit: 20 })).toBe('?q=notice&origin=authored&limit=20');
  });

  it('knows when filters are set besides the search', () => {
    expect(hasJudgmentFilters({ ...emptyJudgmentFilters(), q: 'x' })).toBe(false);
    expect(hasJudgmentFilters({ ...emptyJudgmentFilters(), status: ['active'] })).toBe(true);
    expect(hasJudgmentFilters({ ...emptyJudgmentFilters(), to: '2025-01-01' })).toBe(true);
  });

  it('names the field of a problem before asking the API', () => {
    expect(judgmentFiltersProblem(emptyJudgmentFilters())).toBeNull();
    expect(judgmentFiltersProblem({ ...emptyJudgmentFilters(), decision_id: 'd1' })).toMatchObject({ field: 'decision_id' });
    expect(judgmentFiltersProblem({ ...emptyJudgmentFilters(), decision_id: decision })).toBeNull();
    expect(judgmentFiltersProblem({ ...emptyJudgmentFilters(), from: '2025-05-03', to: '2025-05-01' })).toMatchObject({ field: 'to', message: expect.stringMatching(/not be after/) as unknown });
    expect(judgmentFiltersProblem({ ...emptyJudgmentFilters(), from: 'May 1' })).toMatchObject({ field: 'from' });
  });
});
