import type { ApiClient } from '../../api/client';
import type { AuditRow, EventLine, Page } from '../../api/types';
import { auditApiQuery, emptyAuditFilters, type AuditFilters } from '../../lib/query';

/** At most this many rows are read for the chain check and the session trails. */
export const MAX_CHAIN_ROWS = 10_000;

export async function auditPage(api: ApiClient, filters: AuditFilters, after: string | null, limit = 100, signal?: AbortSignal): Promise<Page<AuditRow>> {
  return api.get<Page<AuditRow>>('/v1/audit', { query: auditApiQuery(filters, { after, limit }), ...(signal ? { signal } : {}) });
}

/** Every row matching `filters` in chain order, up to `max` (`complete` says whether all fit). */
export async function allAuditRows(api: ApiClient, filters: AuditFilters = emptyAuditFilters(), max = MAX_CHAIN_ROWS, signal?: AbortSignal): Promise<{ rows: AuditRow[]; complete: boolean }> {
  const rows: AuditRow[] = [];
  let after: string | null = null;
  do {
    const page: Page<AuditRow> = await auditPage(api, filters, after, 100, signal);
    rows.push(...page.items);
    after = page.next_cursor;
  } while (after && rows.length < max);
  return { rows, complete: !after };
}

/** The rows of one session's trail: the session itself and its queries, diagnoses and decisions. */
export function trailRows(rows: readonly AuditRow[], sessionId: string, diagnosisIds: ReadonlySet<string>): AuditRow[] {
  return rows.filter(
    (r) =>
      r.session_id === sessionId ||
      (r.diagnosis_id !== null && diagnosisIds.has(r.diagnosis_id)) ||
      (r.decision_id !== null && diagnosisIds.has(r.decision_id)) ||
      (r.aggregate_id === sessionId),
  );
}

/** Parses an NDJSON body into its lines (blank lines skipped). */
export function parseNdjson<T = EventLine>(text: string): T[] {
  return text
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as T);
}

/** One page of the event stream and the cursor after it. */
export async function eventsPage(api: ApiClient, after: string | null, limit = 100): Promise<{ events: EventLine[]; next: string | null }> {
  const query = new URLSearchParams({ limit: String(limit) });
  if (after) query.set('after', after);
  const response = await api.raw('GET', '/v1/events', { query: query.toString() });
  const events = parseNdjson(await response.text());
  return { events, next: response.headers.get('casebook-next-cursor') };
}

/** Offers `text` as a file download (a blob URL: nothing leaves the browser). */
export function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Rows as CSV (RFC 4180 quoting), the columns of the audit table in order. */
export function toCsv(rows: readonly AuditRow[]): string {
  const first = rows[0];
  if (!first) return '';
  const columns = Object.keys(first) as (keyof AuditRow)[];
  const cell = (value: unknown): string => {
    let text: string;
    if (value === null || value === undefined) text = '';
    else if (Array.isArray(value)) text = value.join(' ');
    else if (typeof value === 'string') text = value;
    else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
    else text = JSON.stringify(value);
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };

  return [columns.join(','), ...rows.map((r) => columns.map((c) => cell(r[c])).join(','))].join('\r\n') + '\r\n';
}
