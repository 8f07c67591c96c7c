import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { ApiError } from '../../api/client';
import type { CommandAccepted, JudgmentRevision, JudgmentStatus, JudgmentView } from '../../api/types';
import { Field, describedBy } from '../../components/Field';
import { Empty, ErrorMessage, Loading, Notice } from '../../components/Status';
import { formatDateTime } from '../../lib/format';
import { KeyForBody } from '../../lib/idempotency';
import { uuidV4 } from '../../lib/ids';
import {
  JUDGMENT_STATUSES,
  emptyJudgmentFilters,
  hasJudgmentFilters,
  judgmentFiltersFrom,
  judgmentFiltersProblem,
  judgmentPageQuery,
  type JudgmentFilters,
} from '../../lib/query';
import { useResource } from '../../lib/useResource';
import { useClaims, useServices } from '../../services';
import { describeChanges, hashTags, judgmentDetail, judgmentsPage, versionChanges, whenProjected } from './data';

/** `"a, b ,,c"` → `["a", "b", "c"]`. */
export function parseTags(text: string): string[] {
  return [...new Set(text.split(',').map((t) => t.trim()).filter(Boolean))];
}

const STATUS_LABELS: Record<JudgmentStatus, string> = { active: 'Active', revised: 'Revised', retired: 'Retired' };
const STATUS_HINTS: Record<JudgmentStatus, string> = {
  active: 'As captured; retrieved as a precedent',
  revised: 'Its content was revised; still retrieved as a precedent',
  retired: 'No longer retrieved as a precedent',
};
const VERSION_LABELS: Record<JudgmentRevision['kind'], string> = { captured: 'Captured', revised: 'Revised', retired: 'Retired' };

/** The fields of the search and filters an API `validation_failed` can name. */
const FILTER_FIELDS = ['q', 'status', 'origin', 'decision_id', 'from', 'to'] as const;
type FilterField = (typeof FILTER_FIELDS)[number];
type FieldProblem = { field: FilterField; message: string };

/** A `validation_failed` naming one of the page's fields, as that field's problem. */
function fieldProblemOf(error: unknown): FieldProblem | null {
  if (!(error instanceof ApiError) || error.code !== 'validation_failed') return null;
  const field = FILTER_FIELDS.find((f) => f === error.field);
  return field ? { field, message: error.userMessage } : null;
}

/**
 * The practice's captured judgment: every judgment, the most recently changed first, or the
 * ones nearest in meaning to a search; filtered by status, origin, capture date and source
 * decision (all in the page's URL, so a view can be shared). Each shows where it came from and,
 * on demand, its history; write, revise or retire one.
 */
export function Judgments() {
  const { api } = useServices();
  const { query, path, route } = useLocation();
  const applied = judgmentFiltersFrom(query);
  const appliedKey = judgmentPageQuery(applied);
  const searching = applied.q !== '';
  const [items, setItems] = useState<JudgmentView[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [state, setState] = useState<{ status: 'loading' | 'ready' | 'error'; error?: unknown }>({ status: 'loading' });
  const [notice, setNotice] = useState<string | null>(null);
  // Only the latest request may set the list, and it asks for the filters applied now: they
  // can change while a request (or the wait after a command) is on its way.
  const latest = useRef(0);
  const current = useRef(applied);
  current.current = applied;

  const load = async (after: string | null) => {
    const request = ++latest.current;
    setState({ status: 'loading' });
    try {
      const page = await judgmentsPage(api, current.current, after);
      if (request !== latest.current) return;
      setItems((all) => (after ? [...all, ...page.items] : page.items));
      setNext(page.next_cursor);
      setState({ status: 'ready' });
    } catch (error) {
      if (request === latest.current) setState({ status: 'error', error });
    }
  };

  useEffect(() => {
    setItems([]);
    setNext(null);
    void load(null);
  }, [appliedKey]);

  const show = (filters: JudgmentFilters) => route(`${path}${judgmentPageQuery(filters)}`);

  /** After a command: say so, wait for the read model to show it, then reload the page. */
  const changed = async (message: string, judgmentId: string, shows: (judgment: JudgmentView) => boolean) => {
    setNotice(message);
    await whenProjected(api, judgmentId, shows).catch(() => false);
    void load(null);
  };

  const fieldProblem = state.status === 'error' ? fieldProblemOf(state.error) : null;
  const filtered = hasJudgmentFilters(applied);

  return (
    <section class="page wide">
      <h1>Captured judgments</h1>
      <p class="lede">
        What the practice has taught the model: every approved or amended decision, and every judgment written here, is retrieved as a
        precedent for later drafts until it is retired.
      </p>
      {notice && <Notice kind="success">{notice}</Notice>}
      <div class="card finder">
        <SearchForm applied={applied} problem={fieldProblem?.field === 'q' ? fieldProblem.message : null} onSearch={(q) => show({ ...applied, q })} />
        <FilterForm applied={applied} apiProblem={fieldProblem} onApply={(filters) => show({ ...filters, q: applied.q })} onClear={() => show({ ...emptyJudgmentFilters(), q: applied.q })} />
      </div>
      <div class="two-col">
        <div>
          {searching ? (
            <div class="search-results" role="region" aria-labelledby="search-results-title">
              <div>
                <h2 id="search-results-title">Search results for “{applied.q}”</h2>
                <p class="meta">
                  The judgments nearest in meaning, the closest first, with their similarity (1 is identical){filtered ? ', within the filters' : ''}.{' '}
                  <span aria-live="polite">{state.status === 'ready' && `${items.length} found.`}</span>
                </p>
              </div>
              <button type="button" class="secondary" onClick={() => show({ ...applied, q: '' })}>
                Back to the list
              </button>
            </div>
          ) : (
            <p class="count" aria-live="polite">
              {state.status === 'ready' && (
                <>
                  {items.length} {items.length === 1 ? 'judgment' : 'judgments'}
                  {next ? ' shown (more below)' : ''}
                  {filtered ? ' matching the filters' : ''}, the most recently changed first
                </>
              )}
            </p>
          )}
          {state.status === 'error' && !fieldProblem && <ErrorMessage error={state.error} onRetry={() => void load(null)} />}
          {state.status === 'ready' && items.length === 0 && (
            <Empty>
              {searching ? (
                <p>No captured judgment is close to “{applied.q}”{filtered ? ' within these filters' : ''}.</p>
              ) : filtered ? (
                <p>No judgment matches these filters.</p>
              ) : (
                <p>No judgment captured yet: approve or amend a diagnosis on the review desk, or write one.</p>
              )}
            </Empty>
          )}
          {items.length > 0 && (
            <ul class="judgments" aria-label={searching ? 'Judgments found' : 'Judgments'}>
              {items.map((judgment) => (
                <Judgment key={judgment.judgment_id} judgment={judgment} onChanged={(message, shows) => void changed(message, judgment.judgment_id, shows)} />
              ))}
            </ul>
          )}
          {state.status === 'loading' && <Loading label={searching ? 'Searching…' : 'Loading…'} />}
          {next && state.status === 'ready' && (
            <button type="button" class="secondary" onClick={() => void load(next)}>
              Load more
            </button>
          )}
        </div>
        <AuthorJudgment onSaved={(message, judgmentId) => void changed(message, judgmentId, () => true)} />
      </div>
    </section>
  );
}

function SearchForm({ applied, problem, onSearch }: { applied: JudgmentFilters; problem: string | null; onSearch: (q: string) => void }) {
  const [text, setText] = useState(applied.q);
  const id = useId();
  useEffect(() => setText(applied.q), [applied.q]);
  const submit = (event: Event) => {
    event.preventDefault();
    onSearch(text.trim());
  };
  return (
    <form class="search-form" role="search" aria-label="Search judgments" onSubmit={submit}>
      <Field id={id} label="Search by meaning" error={problem}>
        <input
          id={id}
          type="search"
          name="q"
          value={text}
          placeholder="e.g. notice period for ending a contract"
          onInput={(e) => setText(e.currentTarget.value)}
          aria-invalid={problem ? true : undefined}
          aria-describedby={describedBy(id, undefined, problem)}
        />
      </Field>
      <button type="submit" class="primary">
        Search
      </button>
    </form>
  );
}

function FilterForm({
  applied,
  apiProblem,
  onApply,
  onClear,
}: {
  applied: JudgmentFilters;
  apiProblem: FieldProblem | null;
  onApply: (filters: JudgmentFilters) => void;
  onClear: () => void;
}) {
  const [form, setForm] = useState<JudgmentFilters>(applied);
  const [local, setLocal] = useState<FieldProblem | null>(null);
  const ids = { status: useId(), origin: useId(), from: useId(), to: useId(), decision: useId() };
  const appliedKey = judgmentPageQuery(applied);
  useEffect(() => {
    setForm(applied);
    setLocal(null);
  }, [appliedKey]);

  const problem = local ?? apiProblem;
  const errorOf = (field: FilterField) => (problem?.field === field ? problem.message : null);
  const set = (key: 'origin' | 'decision_id' | 'from' | 'to') => (event: Event) => {
    const value = (event.currentTarget as HTMLInputElement | HTMLSelectElement).value;
    setForm((f) => ({ ...f, [key]: value }));
  };
  const toggle = (status: JudgmentStatus) => () =>
    setForm((f) => ({ ...f, status: JUDGMENT_STATUSES.filter((s) => (s === status ? !f.status.includes(s) : f.status.includes(s))) }));
  const apply = (event: Event) => {
    event.preventDefault();
    const filters = { ...form, decision_id: form.decision_id.trim() };
    const found = judgmentFiltersProblem(filters);
    setLocal(found);
    if (!found) onApply(filters);
  };
  const input = (field: 'from' | 'to' | 'decision_id', id: string, props: Record<string, string>) => (
    <input
      id={id}
      name={field}
      value={form[field]}
      onInput={set(field)}
      aria-invalid={errorOf(field) ? true : undefined}
      aria-describedby={describedBy(id, 'hint', errorOf(field))}
      {...props}
    />
  );

  return (
    <form class="filters judgment-filters" aria-label="Filters" onSubmit={apply} noValidate>
      <fieldset class="field statuses" aria-describedby={errorOf('status') ? `${ids.status}-error` : undefined}>
        <legend>Status</legend>
        {JUDGMENT_STATUSES.map((status) => (
          <label key={status} class="check" title={STATUS_HINTS[status]}>
            <input type="checkbox" name="status" value={status} checked={form.status.includes(status)} onChange={toggle(status)} /> {STATUS_LABELS[status]}
          </label>
        ))}
        {errorOf('status') && (
          <p class="field-error" id={`${ids.status}-error`} role="alert">
            {errorOf('status')}
          </p>
        )}
      </fieldset>
      <Field id={ids.origin} label="Origin" error={errorOf('origin')}>
        <select id={ids.origin} name="origin" value={form.origin} onChange={set('origin')}>
          <option value="">Any</option>
          <option value="decision">Captured from a decision</option>
          <option value="authored">Written by a consultant</option>
        </select>
      </Field>
      <Field id={ids.from} label="Captured from" hint="A day (UTC), included." error={errorOf('from')}>
        {input('from', ids.from, { type: 'date' })}
      </Field>
      <Field id={ids.to} label="Captured until" hint="A day (UTC), included." error={errorOf('to')}>
        {input('to', ids.to, { type: 'date' })}
      </Field>
      <Field id={ids.decision} label="Source decision" hint="Its id: the same as its review’s." error={errorOf('decision_id')}>
        {input('decision_id', ids.decision, { spellcheck: 'false', autocomplete: 'off' })}
      </Field>
      <div class="filter-actions">
        <button type="submit" class="primary">
          Apply filters
        </button>
        <button type="button" class="link" onClick={onClear}>
          Clear filters
        </button>
      </div>
    </form>
  );
}

/** Who acted: you, Casebook itself (a capture from a decision), or a consultant by their id. */
function Who({ id }: { id: string }) {
  const claims = useClaims();
  if (claims && id === claims.sub) return <>you</>;
  if (id === 'system') return <>Casebook</>;
  return (
    <>
      consultant <code title={id}>{id.slice(0, 8)}</code>
    </>
  );
}

function Judgment({ judgment, onChanged }: { judgment: JudgmentView; onChanged: (message: string, shows: (judgment: JudgmentView) => boolean) => void }) {
  const { api } = useServices();
  const [mode, setMode] = useState<'view' | 'revise' | 'retire'>('view');
  const [history, setHistory] = useState(false);
  const [title, setTitle] = useState(judgment.title);
  const [body, setBody] = useState(judgment.body);
  const [tags, setTags] = useState(judgment.tags.join(', '));
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const ids = { title: useId(), body: useId(), tags: useId(), reason: useId(), history: useId(), heading: useId() };
  const path = `/v1/judgments/${judgment.judgment_id}`;
  const retired = judgment.status === 'retired';

  const open = (next: 'view' | 'revise' | 'retire') => {
    setError(null);
    if (next === 'revise') {
      setTitle(judgment.title);
      setBody(judgment.body);
      setTags(judgment.tags.join(', '));
    }
    if (next === 'retire') setReason('');
    setMode(next);
  };

  const send = async (event: Event, request: () => Promise<unknown>, message: string, shows: (judgment: JudgmentView) => boolean) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await request();
      setMode('view');
      onChanged(message, shows);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <li class={`card judgment ${judgment.status}`} id={judgment.judgment_id} data-judgment={judgment.judgment_id} aria-labelledby={ids.heading}>
      <div class="judgment-head">
        <h2 class="judgment-title" id={ids.heading}>
          {judgment.title}
        </h2>
        <span class={`pill status-${judgment.status}`} title={STATUS_HINTS[judgment.status]}>
          {STATUS_LABELS[judgment.status]}
        </span>
        {judgment.score !== undefined && (
          <span class="score" title="Similarity of meaning to the search (1 is identical)">
            Similarity {judgment.score.toFixed(3)}
          </span>
        )}
      </div>
      {mode === 'view' && <p class="excerpt">{judgment.body}</p>}
      {retired && (
        <p class="retired-reason">
          <strong>Retired</strong> on {formatDateTime(judgment.updated_at)}
          {judgment.retired_reason ? `: ${judgment.retired_reason}` : ''}
        </p>
      )}
      <p class="meta">
        {judgment.tags.length > 0 && <>{hashTags(judgment.tags)} · </>}
        {judgment.origin === 'decision' ? (
          <>
            Captured from a decision
            {judgment.diagnosis_id && (
              <>
                {' '}
                (<a href={`/review/${judgment.diagnosis_id}`}>the review it came from</a>)
              </>
            )}
          </>
        ) : (
          <>
            Written by <Who id={judgment.captured_by} />
          </>
        )}{' '}
        on {formatDateTime(judgment.captured_at)}
        {judgment.revisions > 0 && (
          <>
            {' '}
            · revised {judgment.revisions === 1 ? 'once' : `${judgment.revisions} times`}
            {!retired && `, last on ${formatDateTime(judgment.updated_at)}`}
          </>
        )}
      </p>
      {mode === 'view' && (
        <div class="actions">
          <button type="button" class="secondary" aria-expanded={history} aria-controls={ids.history} onClick={() => setHistory((h) => !h)}>
            History
          </button>
          {!retired && (
            <>
              <button type="button" class="secondary" onClick={() => open('revise')}>
                Revise
              </button>
              <button type="button" class="link" onClick={() => open('retire')}>
                Retire
              </button>
            </>
          )}
        </div>
      )}
      {history && mode === 'view' && <History id={ids.history} judgment={judgment} />}
      {mode === 'revise' && (
        <form
          onSubmit={(e) =>
            void send(
              e,
              () => api.post<CommandAccepted>(`${path}/revise`, { title: title.trim(), body: body.trim(), tags: parseTags(tags) }),
              `Revised “${title.trim()}”.`,
              (j) => j.revisions > judgment.revisions,
            )
          }
        >
          <Field id={ids.title} label="Title">
            <input id={ids.title} value={title} maxLength={200} onInput={(e) => setTitle(e.currentTarget.value)} />
          </Field>
          <Field id={ids.body} label="Judgment">
            <textarea id={ids.body} rows={6} value={body} onInput={(e) => setBody(e.currentTarget.value)} />
          </Field>
          <Field id={ids.tags} label="Tags" hint="Comma-separated.">
            <input id={ids.tags} value={tags} onInput={(e) => setTags(e.currentTarget.value)} aria-describedby={describedBy(ids.tags, 'hint')} />
          </Field>
          {error !== null && <ErrorMessage error={error} />}
          <div class="actions">
            <button type="submit" class="primary" disabled={busy || !title.trim() || !body.trim()}>
              Save revision
            </button>
            <button type="button" class="link" onClick={() => open('view')}>
              Cancel
            </button>
          </div>
        </form>
      )}
      {mode === 'retire' && (
        <form
          onSubmit={(e) =>
            void send(
              e,
              () => api.post<CommandAccepted>(`${path}/retire`, { reason: reason.trim() }),
              `Retired “${judgment.title}”: it is no longer retrieved.`,
              (j) => j.status === 'retired',
            )
          }
        >
          <Field id={ids.reason} label="Why it no longer holds (required)">
            <textarea id={ids.reason} rows={3} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
          </Field>
          {error !== null && <ErrorMessage error={error} />}
          <div class="actions">
            <button type="submit" class="danger" disabled={busy || !reason.trim()}>
              Retire judgment
            </button>
            <button type="button" class="link" onClick={() => open('view')}>
              Cancel
            </button>
          </div>
        </form>
      )}
    </li>
  );
}

/** Every version of a judgment, oldest first: what changed, who, when, and why it was retired. */
function History({ id, judgment }: { id: string; judgment: JudgmentView }) {
  const { api } = useServices();
  // Read again whenever the judgment changes (a revision or retirement from this page).
  const detail = useResource((signal) => judgmentDetail(api, judgment.judgment_id, signal), [judgment.judgment_id, judgment.updated_at]);
  const versions = detail.data?.history ?? [];
  return (
    <section id={id} class="history" aria-label={`History of “${judgment.title}”`}>
      <h3>History</h3>
      {detail.status === 'loading' && !detail.data && <Loading label="Loading the history…" />}
      {detail.status === 'error' && <ErrorMessage error={detail.error} onRetry={detail.reload} />}
      {detail.data && (
        <ol class="versions">
          {versions.map((version, index) => {
            const changes = versionChanges(versions, index);
            return (
              <li key={version.revision} class={`version version-${version.kind}`}>
                <p class="version-head">
                  <strong>{VERSION_LABELS[version.kind]}</strong>{' '}
                  <span class="meta">
                    version {version.revision} · by <Who id={version.acted_by} /> · {formatDateTime(version.recorded_at)}
                  </span>
                </p>
                {version.kind === 'retired' && <p>Why: {version.reason ?? 'no reason recorded'}</p>}
                {version.kind === 'revised' && <p>{describeChanges(changes)}</p>}
                {version.kind !== 'retired' && (
                  <dl class="facts">
                    {changes.fields.includes('title') && (
                      <div>
                        <dt>Title</dt>
                        <dd>{version.title}</dd>
                      </div>
                    )}
                    {changes.fields.includes('body') && (
                      <div>
                        <dt>Text</dt>
                        <dd class="excerpt">{version.body}</dd>
                      </div>
                    )}
                    {changes.fields.includes('tags') && (
                      <div>
                        <dt>Tags</dt>
                        <dd>{version.tags?.length ? hashTags(version.tags) : 'none'}</dd>
                      </div>
                    )}
                  </dl>
                )}
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}

function AuthorJudgment({ onSaved }: { onSaved: (message: string, judgmentId: string) => void }) {
  const { api } = useServices();
  const [title, setTitle] = useState('');
  const [body, setBody] = useState('');
  const [tags, setTags] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [field, setField] = useState<{ name: string; message: string } | null>(null);
  const judgmentId = useRef(uuidV4());
  const keys = useRef(new KeyForBody());
  const ids = { title: useId(), body: useId(), tags: useId() };

  const submit = async (event: Event) => {
    event.preventDefault();
    const request = { judgment_id: judgmentId.current, title: title.trim(), body: body.trim(), tags: parseTags(tags) };
    setBusy(true);
    setError(null);
    setField(null);
    try {
      await api.post<CommandAccepted>('/v1/judgments', request, { idempotencyKey: keys.current.keyFor(request) });
      onSaved(`Captured “${request.title}”.`, request.judgment_id);
      judgmentId.current = uuidV4();
      keys.current.reset();
      setTitle('');
      setBody('');
      setTags('');
    } catch (err) {
      if (err instanceof ApiError && err.code === 'validation_failed' && err.field && ['title', 'body', 'tag'].includes(err.field)) {
        setField({ name: err.field, message: err.userMessage });
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (name: string) => (field?.name === name ? field.message : null);
  return (
    <section class="card" aria-labelledby="author-title">
      <h2 id="author-title">Write a judgment</h2>
      <p class="meta">A rule of thumb of the practice, retrieved as a precedent like the decisions are.</p>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <Field id={ids.title} label="Title" error={fieldError('title')}>
          <input id={ids.title} value={title} required maxLength={200} onInput={(e) => setTitle(e.currentTarget.value)} aria-describedby={describedBy(ids.title, undefined, fieldError('title'))} />
        </Field>
        <Field id={ids.body} label="Judgment" error={fieldError('body')}>
          <textarea id={ids.body} rows={6} value={body} required onInput={(e) => setBody(e.currentTarget.value)} aria-describedby={describedBy(ids.body, undefined, fieldError('body'))} />
        </Field>
        <Field id={ids.tags} label="Tags" hint="Comma-separated, optional." error={fieldError('tag')}>
          <input id={ids.tags} value={tags} onInput={(e) => setTags(e.currentTarget.value)} aria-describedby={describedBy(ids.tags, 'hint', fieldError('tag'))} />
        </Field>
        {error !== null && <ErrorMessage error={error} />}
        <button type="submit" class="primary" disabled={busy || !title.trim() || !body.trim()}>
          {busy ? 'Saving…' : 'Capture judgment'}
        </button>
      </form>
    </section>
  );
}
