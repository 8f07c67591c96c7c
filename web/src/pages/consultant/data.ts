// Data the review desk shares between its pages: the queue (for j/k across diagnoses), and the
// practice's judgments (the judgments page, and the precedents of a diagnosis).

import { ApiError, type ApiClient } from '../../api/client';
import type { JudgmentDetail, JudgmentRevision, JudgmentView, Page, QueueEntry } from '../../api/types';
import { judgmentApiQuery, type JudgmentFilters } from '../../lib/query';

export const QUEUE_PAGE = 50;

let lastQueue: string[] = [];

/** The ids of the queue as last loaded, oldest first. */
export const queueOrder = (): readonly string[] => lastQueue;

export function rememberQueue(items: readonly QueueEntry[]): void {
  lastQueue = items.map((i) => i.diagnosis_id);
}

export async function loadQueue(api: ApiClient, signal?: AbortSignal): Promise<QueueEntry[]> {
  const items: QueueEntry[] = [];
  let after: string | null = null;
  // The desk shows up to four pages (200 diagnoses); "Load more" is not needed below that.
  for (let i = 0; i < 4; i++) {
    const query: string = `limit=${QUEUE_PAGE}${after ? `&after=${encodeURIComponent(after)}` : ''}`;
    const page: Page<QueueEntry> = await api.get<Page<QueueEntry>>('/v1/review-queue', { query, ...(signal ? { signal } : {}) });
    items.push(...page.items);
    after = page.next_cursor;
    if (!after) break;
  }
  rememberQueue(items);
  return items;
}

/** The diagnosis after (`+1`) or before (`-1`) `id` in the queue, if any. */
export function neighbour(order: readonly string[], id: string, step: 1 | -1): string | null {
  const index = order.indexOf(id);
  if (index === -1) return order[0] ?? null;
  return order[index + step] ?? null;
}

/** Judgments per page of the list, and the most a search returns. */
export const JUDGMENTS_PAGE = 50;
export const SEARCH_RESULTS = 20;

/** A page of the judgments the filters admit, newest change first; with `q`, the search's results, nearest first (one page). */
export function judgmentsPage(api: ApiClient, filters: JudgmentFilters, after: string | null, signal?: AbortSignal): Promise<Page<JudgmentView>> {
  const query = judgmentApiQuery(filters, { after, limit: filters.q ? SEARCH_RESULTS : JUDGMENTS_PAGE });
  return api.get<Page<JudgmentView>>('/v1/judgments', { query, ...(signal ? { signal } : {}) });
}

/** One judgment with its history. */
export function judgmentDetail(api: ApiClient, judgmentId: string, signal?: AbortSignal): Promise<JudgmentDetail> {
  return api.get<JudgmentDetail>(`/v1/judgments/${encodeURIComponent(judgmentId)}`, signal ? { signal } : {});
}

/**
 * Waits until the judgments' read model shows a command's effect (`shows`; a new judgment is
 * a 404 until then), polling for up to `forMs`: it follows the log a moment after the command.
 * Whether it did in time; the caller reloads either way.
 */
export async function whenProjected(api: ApiClient, judgmentId: string, shows: (judgment: JudgmentView) => boolean, forMs = 10_000, everyMs = 500): Promise<boolean> {
  const started = Date.now();
  for (;;) {
    try {
      if (shows(await judgmentDetail(api, judgmentId))) return true;
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    if (Date.now() - started > forMs) return false;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** What one version of a judgment changed, against the content before it. */
export interface VersionChanges {
  /** Its content fields that differ from the previous version's (every field of a capture). */
  fields: ('title' | 'body' | 'tags')[];
  tagsAdded: string[];
  tagsRemoved: string[];
}

/** What `history[index]` changed: a capture sets everything, a retirement no content. */
export function versionChanges(history: readonly JudgmentRevision[], index: number): VersionChanges {
  const version = history[index];
  if (!version || version.kind === 'retired') return { fields: [], tagsAdded: [], tagsRemoved: [] };
  // The content before it: the latest earlier version that set content.
  const before = history.slice(0, index).reverse().find((v) => v.kind !== 'retired');
  const tags = version.tags ?? [];
  const beforeTags = before?.tags ?? [];
  const fields: VersionChanges['fields'] = [];
  if (!before || version.title !== before.title) fields.push('title');
  if (!before || version.body !== before.body) fields.push('body');
  const tagsAdded = tags.filter((t) => !beforeTags.includes(t));
  const tagsRemoved = before ? beforeTags.filter((t) => !tags.includes(t)) : [];
  if (!before || tagsAdded.length || tagsRemoved.length) fields.push('tags');
  return { fields, tagsAdded, tagsRemoved };
}

/** A revision's changes in words: "Changed the title and the text; tags added #a, removed #b." */
export function describeChanges({ fields, tagsAdded, tagsRemoved }: VersionChanges): string {
  const names = fields.filter((f) => f !== 'tags').map((f) => (f === 'title' ? 'the title' : 'the text'));
  const tags = [tagsAdded.length ? `added ${hashTags(tagsAdded)}` : '', tagsRemoved.length ? `removed ${hashTags(tagsRemoved)}` : ''].filter(Boolean);
  if (!names.length && !tags.length) return 'Saved again with the same content.';
  const parts = [names.length ? `Changed ${names.join(' and ')}` : '', tags.length ? `${names.length ? 'tags' : 'Tags'} ${tags.join(', ')}` : ''];
  return `${parts.filter(Boolean).join('; ')}.`;
}

/** `["a", "b"]` → `"#a #b"`. */
export function hashTags(tags: readonly string[]): string {
  return tags.map((t) => `#${t}`).join(' ');
}
