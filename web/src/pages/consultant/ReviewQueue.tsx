import { useEffect, useId, useMemo, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import type { QueueEntry } from '../../api/types';
import { Empty, ErrorMessage, Loading } from '../../components/Status';
import { useShortcuts } from '../../components/useShortcuts';
import { draftIds } from '../../lib/drafts';
import { formatAge, formatPercent } from '../../lib/format';
import { step } from '../../lib/shortcuts';
import { useResource } from '../../lib/useResource';
import { useServices } from '../../services';
import { loadQueue } from './data';
import { ShortcutHelp } from './ShortcutHelp';

/** The entries matching a free-text search (query, proposal, model) and a minimum confidence. */
export function filterQueue(items: readonly QueueEntry[], search: string, minConfidence: number): QueueEntry[] {
  const words = search.toLowerCase().split(/\s+/).filter(Boolean);
  return items.filter((item) => {
    if ((item.proposal?.confidence ?? 0) < minConfidence) return false;
    if (!words.length) return true;
    const text = `${item.query} ${item.proposal?.text ?? ''} ${item.proposal?.provenance.model_id ?? ''}`.toLowerCase();
    return words.every((w) => text.includes(w));
  });
}

export function ReviewQueue() {
  const { api } = useServices();
  const { route } = useLocation();
  const queue = useResource((signal) => loadQueue(api, signal), []);
  const [search, setSearch] = useState('');
  const [minConfidence, setMinConfidence] = useState(0);
  const [selected, setSelected] = useState(0);
  const searchId = useId();
  const confidenceId = useId();
  const drafts = useMemo(() => new Set(draftIds()), [queue.data]);

  // Keep the desk current without a reload: new proposals arrive while a consultant works.
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') queue.reload();
    }, 30_000);
    return () => clearInterval(timer);
  }, []);

  const items = useMemo(() => filterQueue(queue.data ?? [], search, minConfidence), [queue.data, search, minConfidence]);
  const current = items[Math.min(selected, items.length - 1)];

  useShortcuts({
    next: () => setSelected((i) => step(i, 1, items.length)),
    previous: () => setSelected((i) => step(i, -1, items.length)),
    open: () => current && route(`/review/${current.diagnosis_id}`),
  });

  useEffect(() => {
    if (current) document.getElementById(`q-${current.diagnosis_id}`)?.scrollIntoView({ block: 'nearest' });
  }, [current?.diagnosis_id]);

  return (
    <section class="page wide">
      <div class="page-head">
        <h1>Review queue</h1>
        <button type="button" class="secondary" onClick={queue.reload} disabled={queue.status === 'loading'}>
          Refresh
        </button>
      </div>
      <p class="lede">Proposed diagnoses waiting for a decision, oldest first.</p>
      <div class="filters" role="search">
        <div class="field">
          <label for={searchId}>Search</label>
          <input id={searchId} type="search" placeholder="Words in the query or the draft" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for={confidenceId}>Confidence at least</label>
          <select id={confidenceId} value={String(minConfidence)} onChange={(e) => setMinConfidence(Number(e.currentTarget.value))}>
            <option value="0">Any</option>
            <option value="0.5">50 %</option>
            <option value="0.7">70 %</option>
            <option value="0.9">90 %</option>
          </select>
        </div>
      </div>
      {queue.status === 'loading' && !queue.data && <Loading label="Loading the queue…" />}
      {queue.status === 'error' && <ErrorMessage error={queue.error} onRetry={queue.reload} />}
      {queue.data && items.length === 0 && (
        <Empty>
          {queue.data.length === 0 ? (
            <>
              <p>
                <strong>The queue is empty.</strong> Nothing is waiting for review.
              </p>
              <p>New proposals appear here as customers ask; the page refreshes every 30 seconds.</p>
            </>
          ) : (
            <p>No diagnosis in the queue matches these filters.</p>
          )}
        </Empty>
      )}
      {items.length > 0 && (
        <>
          <p class="count" aria-live="polite">
            {items.length} waiting{items.length !== (queue.data?.length ?? 0) ? ` (of ${queue.data?.length ?? 0})` : ''}
          </p>
          <ol class="queue" aria-label="Diagnoses waiting for review">
            {items.map((item) => (
              <li key={item.diagnosis_id} id={`q-${item.diagnosis_id}`} class={item === current ? 'selected' : ''} aria-current={item === current ? 'true' : undefined}>
                <a href={`/review/${item.diagnosis_id}`} class="queue-item">
                  <span class="age" title={`proposed ${formatAge(item.age_seconds)} ago`}>
                    {formatAge(item.age_seconds)}
                  </span>
                  <span class="query">{item.query}</span>
                  <span class="meta">
                    {item.proposal ? `${formatPercent(item.proposal.confidence)} · ${item.proposal.provenance.model_id}` : item.status}
                    {drafts.has(item.diagnosis_id) && <span class="badge">draft</span>}
                  </span>
                </a>
              </li>
            ))}
          </ol>
        </>
      )}
      <ShortcutHelp actions={['next', 'previous', 'open']} />
    </section>
  );
}
