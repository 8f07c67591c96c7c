// Filters to query strings and back: the auditor's filters live in the page's URL (so a view
// can be shared and survives a reload) and go to the API as the same names.

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

/**
 * The API's query for the filters: `from` is "recorded at or after" and `to` "recorded
 * before", as RFC 3339 instants. A day picked as "to" includes that whole (UTC) day, so it
 * becomes the next day's midnight.
 */
export function auditApiQuery(filters: AuditFilters, page: { after?: string | null; limit?: number } = {}): string {
  const instant = (day: string) => (DAY.test(day) ? `${day}T00:00:00Z` : day);
  return toQueryString({
    action: filters.action,
    actor: filters.actor,
    role: filters.role,
    outcome: filters.outcome,
    model: filters.model,
    from: filters.from ? instant(filters.from) : '',
    to: filters.to ? (DAY.test(filters.to) ? `${nextDay(filters.to)}T00:00:00Z` : filters.to) : '',
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
