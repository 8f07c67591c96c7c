// Filters to query strings and back: the auditor's and the consultant's judgments' filters live
// in the page's URL (so a view can be shared and survives a reload) and go to the API as the
// same names.

import type { JudgmentOrigin, JudgmentStatus } from '../api/types';
import { isUuid } from './ids';

/** `?a=1&b=x` from the non-empty values, in the given order; '' when none. */
export function toQueryString(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined) continue;
    const text = String(value).trim();
    if (text !== '') search.set(key, text);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** The audit table's filters as the form holds them (dates as `YYYY-MM-DD`, both inclusive). */
export interface AuditFilters {
  action: string;
  actor: string;
  role: string;
  outcome: string;
  model: string;
  from: string;
  to: string;
}

export const AUDIT_FILTER_KEYS = ['action', 'actor', 'role', 'outcome', 'model', 'from', 'to'] as const;

export const emptyAuditFilters = (): AuditFilters => ({
  action: '',
  actor: '',
  role: '',
  outcome: '',
  model: '',
  from: '',
  to: '',
});

/** The filters a page URL's query names (unknown keys ignored). */
export function auditFiltersFrom(query: Record<string, string | undefined>): AuditFilters {
  const filters = emptyAuditFilters();
  for (const key of AUDIT_FILTER_KEYS) filters[key] = query[key] ?? '';
  return filters;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** The day after `YYYY-MM-DD`, in UTC. */
export function nextDay(day: string): string {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + 1);
  return date.toISOString().slice(0, 10);
}

/** A "from" day as the API's inclusive bound: that (UTC) day's midnight. */
function startOfDay(day: string): string {
  return DAY.test(day) ? `${day}T00:00:00Z` : day;
}

/** A "to" day as the API's exclusive bound: it includes that whole (UTC) day, so the next day's midnight. */
function endOfDay(day: string): string {
  return DAY.test(day) ? `${nextDay(day)}T00:00:00Z` : day;
}

/**
 * The API's query for the filters: `from` is "recorded at or after" and `to` "recorded
 * before", as RFC 3339 instants.
 */
export function auditApiQuery(filters: AuditFilters, page: { after?: string | null; limit?: number } = {}): string {
  return toQueryString({
    action: filters.action,
    actor: filters.actor,
    role: filters.role,
    outcome: filters.outcome,
    model: filters.model,
    from: startOfDay(filters.from),
    to: endOfDay(filters.to),
    after: page.after,
    limit: page.limit,
  });
}

/** The page URL's query for the filters (dates kept as the form shows them). */
export function auditPageQuery(filters: AuditFilters): string {
  return toQueryString({ ...filters });
}

/** A date range problem the form can show before asking the API, or null. */
export function dateRangeProblem(from: string, to: string): string | null {
  if (from && !DAY.test(from)) return 'The first day must be a date.';
  if (to && !DAY.test(to)) return 'The last day must be a date.';
  if (from && to && from > to) return 'The first day must not be after the last.';
  return null;
}

/** The judgments' statuses, in the order the page offers them. */
export const JUDGMENT_STATUSES: readonly JudgmentStatus[] = ['active', 'revised', 'retired'];

/**
 * The consultant's judgments page: a search by meaning (`q`, empty for the list) and the
 * filters, as the form holds them (days as `YYYY-MM-DD`, both inclusive; no status is any).
 */
export interface JudgmentFilters {
  q: string;
  status: JudgmentStatus[];
  origin: JudgmentOrigin | '';
  decision_id: string;
  from: string;
  to: string;
}

export const emptyJudgmentFilters = (): JudgmentFilters => ({ q: '', status: [], origin: '', decision_id: '', from: '', to: '' });

/** The filters a page URL's query names; unknown keys, statuses and origins are ignored. */
export function judgmentFiltersFrom(query: Record<string, string | undefined>): JudgmentFilters {
  const statuses = new Set((query.status ?? '').split(',').map((s) => s.trim()));
  const origin = query.origin?.trim();
  return {
    q: query.q?.trim() ?? '',
    status: JUDGMENT_STATUSES.filter((s) => statuses.has(s)),
    origin: origin === 'decision' || origin === 'authored' ? origin : '',
    decision_id: query.decision_id?.trim() ?? '',
    from: query.from?.trim() ?? '',
    to: query.to?.trim() ?? '',
  };
}

/** The page URL's query for the search and filters (days kept as the form shows them). */
export function judgmentPageQuery(filters: JudgmentFilters): string {
  return toQueryString({
    q: filters.q,
    status: filters.status.join(','),
    origin: filters.origin,
    decision_id: filters.decision_id,
    from: filters.from,
    to: filters.to,
  });
}

/**
 * The API's query (`GET /v1/judgments`): days as instants (`from` captured at or after, `to`
 * before), and a cursor only for a list: a search is one page.
 */
export function judgmentApiQuery(filters: JudgmentFilters, page: { after?: string | null; limit?: number } = {}): string {
  return toQueryString({
    q: filters.q,
    status: filters.status.join(','),
    origin: filters.origin,
    decision_id: filters.decision_id,
    from: startOfDay(filters.from),
    to: endOfDay(filters.to),
    after: filters.q ? null : page.after,
    limit: page.limit,
  });
}

/** Whether any filter (besides the search text) is set. */
export function hasJudgmentFilters(filters: JudgmentFilters): boolean {
  return judgmentPageQuery({ ...filters, q: '' }) !== '';
}

/** A problem with the judgments' filters the form can show next to its field before asking the API, or null. */
export function judgmentFiltersProblem(filters: JudgmentFilters): { field: 'decision_id' | 'from' | 'to'; message: string } | null {
  const range = dateRangeProblem(filters.from, filters.to);
  if (range) return { field: filters.from && !DAY.test(filters.from) ? 'from' : 'to', message: range };
  if (filters.decision_id && !isUuid(filters.decision_id)) return { field: 'decision_id', message: 'A decision id is a UUID, as in the address of its review.' };
  return null;
}
