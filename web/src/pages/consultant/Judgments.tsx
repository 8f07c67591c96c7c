import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { ApiError } from '../../api/client';
import type { CommandAccepted, JudgmentView } from '../../api/types';
import { Field, describedBy } from '../../components/Field';
import { Empty, ErrorMessage, Loading, Notice } from '../../components/Status';
import { formatDateTime } from '../../lib/format';
import { KeyForBody } from '../../lib/idempotency';
import { uuidV4 } from '../../lib/ids';
import { useResource } from '../../lib/useResource';
import { useServices } from '../../services';
import { activeJudgments, capturedJudgments, judgmentsPage, type CapturedFrom } from './data';

/** `"a, b ,,c"` → `["a", "b", "c"]`. */
export function parseTags(text: string): string[] {
  return [...new Set(text.split(',').map((t) => t.trim()).filter(Boolean))];
}

/**
 * The practice's captured judgment: its active judgments (`GET /v1/judgments`), most recent
 * first, each linked to the review it was captured from when it came from a decision; write,
 * revise or retire one.
 */
export function Judgments() {
  const { api } = useServices();
  const [items, setItems] = useState<JudgmentView[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [state, setState] = useState<{ status: 'loading' | 'ready' | 'error' | 'no_route'; error?: unknown }>({ status: 'loading' });
  const captured = useResource(() => capturedJudgments(api, true), []);
  const [notice, setNotice] = useState<string | null>(null);

  const load = async (after: string | null) => {
    setState({ status: 'loading' });
    try {
      const page = await judgmentsPage(api, after, 50);
      setItems((all) => (after ? [...all, ...page.items] : page.items));
      setNext(page.next_cursor);
      setState({ status: 'ready' });
    } catch (error) {
      // A server without the list route (before `GET /v1/judgments`): show what the decisions say.
      setState(error instanceof ApiError && (error.status === 404 || error.status === 405) && !after ? { status: 'no_route' } : { status: 'error', error });
    }
  };
  useEffect(() => void load(null), []);
  const changed = (message: string) => {
    setNotice(message);
    void activeJudgments(api, true).catch(() => undefined);
    void load(null);
  };

  return (
    <section class="page wide">
      <h1>Captured judgments</h1>
      <p class="lede">
        What the practice has taught the model: every approved or amended decision, and every judgment written here, is retrieved as a
        precedent for later drafts.
      </p>
      {notice && <Notice kind="success">{notice}</Notice>}
      <div class="two-col">
        <div>
          {state.status === 'error' && <ErrorMessage error={state.error} onRetry={() => void load(null)} />}
          {state.status === 'ready' && items.length === 0 && (
            <Empty>
              <p>No judgment captured yet: approve or amend a diagnosis on the review desk, or write one.</p>
            </Empty>
          )}
          {items.length > 0 && (
            <ul class="judgments" aria-label="Active judgments">
              {items.map((judgment) => (
                <Judgment key={judgment.judgment_id} judgment={judgment} from={captured.data?.get(judgment.judgment_id)} onChanged={changed} />
              ))}
            </ul>
          )}
          {state.status === 'no_route' && <FromDecisions captured={captured.data} loading={captured.status === 'loading'} />}
          {state.status === 'loading' && <Loading />}
          {next && state.status === 'ready' && (
            <button type="button" class="secondary" onClick={() => void load(next)}>
              Load more
            </button>
          )}
        </div>
        <AuthorJudgment onSaved={changed} />
      </div>
    </section>
  );
}

/** The judgments captured from decisions, when the server can't list judgments. */
function FromDecisions({ captured, loading }: { captured: Map<string, CapturedFrom> | undefined; loading: boolean }) {
  if (loading && !captured) return <Loading />;
  const items = [...(captured?.values() ?? [])];
  if (!items.length) {
    return (
      <Empty>
        <p>No judgment captured yet: approve or amend a diagnosis on the review desk.</p>
      </Empty>
    );
  }
  return (
    <ul class="judgments" aria-label="Judgments captured from decisions">
      {items.map(({ judgmentId, decision }) => (
        <li key={judgmentId} id={judgmentId} class="card">
          <p>
            <strong>{decision.verdict.kind === 'Amended' ? 'Amended' : 'Approved'}</strong> on {formatDateTime(decision.decided_at)}
          </p>
          {decision.verdict.kind === 'Amended' && <p class="excerpt">{decision.verdict.text}</p>}
          <p class="meta">
            Judgment <code>{judgmentId}</code> · <a href={`/review/${decision.diagnosis_id}`}>review</a>
          </p>
        </li>
      ))}
    </ul>
  );
}

function Judgment({ judgment, from, onChanged }: { judgment: JudgmentView; from: CapturedFrom | undefined; onChanged: (message: string) => void }) {
  const { api } = useServices();
  const [mode, setMode] = useState<'view' | 'revise' | 'retire'>('view');
  const [title, setTitle] = useState(judgment.title);
  const [body, setBody] = useState(judgment.body);
  const [tags, setTags] = useState(judgment.tags.join(', '));
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const ids = { title: useId(), body: useId(), tags: useId(), reason: useId() };
  const path = `/v1/judgments/${judgment.judgment_id}`;

  const send = async (event: Event, request: () => Promise<unknown>, message: string) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await request();
      setMode('view');
      onChanged(message);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <li class="card" id={judgment.judgment_id} data-judgment={judgment.judgment_id}>
      <h2 class="judgment-title">{judgment.title}</h2>
      {mode === 'view' && <p class="excerpt">{judgment.body}</p>}
      <p class="meta">
        {judgment.tags.length > 0 && <>{judgment.tags.map((t) => `#${t}`).join(' ')} · </>}
        indexed {formatDateTime(judgment.indexed_at)}
        {from && (
          <>
            {' '}
            · from the {from.decision.verdict.kind === 'Amended' ? 'amended' : 'approved'} <a href={`/review/${from.decision.diagnosis_id}`}>review</a> of{' '}
            {formatDateTime(from.decision.decided_at)}
          </>
        )}
      </p>
      {mode === 'view' && (
        <div class="actions">
          <button type="button" class="secondary" onClick={() => setMode('revise')}>
            Revise
          </button>
          <button type="button" class="link" onClick={() => setMode('retire')}>
            Retire
          </button>
        </div>
      )}
      {mode === 'revise' && (
        <form onSubmit={(e) => void send(e, () => api.post<CommandAccepted>(`${path}/revise`, { title: title.trim(), body: body.trim(), tags: parseTags(tags) }), `Revised “${title.trim()}”.`)}>
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
            <button type="button" class="link" onClick={() => setMode('view')}>
              Cancel
            </button>
          </div>
        </form>
      )}
      {mode === 'retire' && (
        <form onSubmit={(e) => void send(e, () => api.post<CommandAccepted>(`${path}/retire`, { reason: reason.trim() }), `Retired “${judgment.title}”: it is no longer retrieved.`)}>
          <Field id={ids.reason} label="Why it no longer holds (required)">
            <textarea id={ids.reason} rows={3} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
          </Field>
          {error !== null && <ErrorMessage error={error} />}
          <div class="actions">
            <button type="submit" class="danger" disabled={busy || !reason.trim()}>
              Retire judgment
            </button>
            <button type="button" class="link" onClick={() => setMode('view')}>
              Cancel
            </button>
          </div>
        </form>
      )}
    </li>
  );
}

function AuthorJudgment({ onSaved }: { onSaved: (message: string) => void }) {
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
      onSaved(`Captured “${request.title}”.`);
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
