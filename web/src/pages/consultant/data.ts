// Data the review desk shares between its pages: the queue (for j/k across diagnoses) and the
// map from captured judgments to the decisions they came from (for precedent links).

import type { ApiClient } from '../../api/client';
import type { DecisionView, JudgmentView, Page, QueueEntry } from '../../api/types';
import { judgmentIdForDecision } from '../../lib/ids';

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

/** What a captured judgment came from: its decision, read from the decisions list. */
export interface CapturedFrom {
  judgmentId: string;
  decision: DecisionView;
}

let capturedCache: Promise<Map<string, CapturedFrom>> | null = null;

/**
 * The practice's captured judgments, by judgment id: every approved or amended decision (up to
 * 500, newest first) with the judgment id it was captured into (`JudgmentId::for_decision`).
 * Judgments authored directly (`POST /v1/judgments`) can't be listed: the API has no route.
 */
export function capturedJudgments(api: ApiClient, fresh = false): Promise<Map<string, CapturedFrom>> {
  if (capturedCache && !fresh) return capturedCache;
  capturedCache = (async () => {
    const map = new Map<string, CapturedFrom>();
    let after: string | null = null;
    for (let i = 0; i < 5; i++) {
      const query: string = `limit=100${after ? `&after=${encodeURIComponent(after)}` : ''}`;
      const page: Page<DecisionView> = await api.get<Page<DecisionView>>('/v1/decisions', { query });
      for (const decision of page.items) {
        if (decision.verdict.kind === 'Approved' || decision.verdict.kind === 'Amended') {
          const judgmentId = await judgmentIdForDecision(decision.decision_id);
          map.set(judgmentId, { judgmentId, decision });
        }
      }
      after = page.next_cursor;
      if (!after) break;
    }
    return map;
  })();
  capturedCache.catch(() => {
    capturedCache = null;
  });
  return capturedCache;
}

let judgmentsCache: Promise<Map<string, JudgmentView>> | null = null;

/** The practice's active judgments by id (up to 500, most recent first), for precedent titles. */
export function activeJudgments(api: ApiClient, fresh = false): Promise<Map<string, JudgmentView>> {
  if (judgmentsCache && !fresh) return judgmentsCache;
  judgmentsCache = (async () => {
    const map = new Map<string, JudgmentView>();
    let after: string | null = null;
    for (let i = 0; i < 5; i++) {
      const page: Page<JudgmentView> = await judgmentsPage(api, after);
      for (const judgment of page.items) map.set(judgment.judgment_id, judgment);
      after = page.next_cursor;
      if (!after) break;
    }
    return map;
  })();
  judgmentsCache.catch(() => {
    judgmentsCache = null;
  });
  return judgmentsCache;
}

export function judgmentsPage(api: ApiClient, after: string | null, limit = 100): Promise<Page<JudgmentView>> {
  return api.get<Page<JudgmentView>>('/v1/judgments', { query: `limit=${limit}${after ? `&after=${encodeURIComponent(after)}` : ''}` });
}
