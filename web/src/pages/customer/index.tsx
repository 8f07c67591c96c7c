// The customer's portal (one lazily loaded chunk): sessions, attachments, queries, answers.

import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { ApiError } from '../../api/client';
import type { CommandAccepted, CustomerDiagnosis, Page, SessionDetail, SessionView, UploadTicket } from '../../api/types';
import { Field, describedBy } from '../../components/Field';
import { Findings } from '../../components/Findings';
import { Empty, ErrorMessage, Loading, Notice, messageOf } from '../../components/Status';
import { deferralText } from '../../lib/budget';
import { fileNameOf, formatBytes, formatDateTime } from '../../lib/format';
import { KeyForBody } from '../../lib/idempotency';
import { uuidV4 } from '../../lib/ids';
import { contentTypeOf, uploadWithProgress } from '../../lib/upload';
import { untilFound, useResource } from '../../lib/useResource';
import { useServices } from '../../services';

const MAX_FILES = 20;
const MAX_BYTES = 25 * 1024 * 1024;

const RELEASE_TEXT: Record<string, string> = {
  in_review: 'In review',
  answered: 'Answered',
  declined: 'Declined',
  failed: 'Could not be answered',
  deferred_budget: 'Waiting for the monthly allowance',
};

/** Why these files can't be attached, or null. */
export function filesProblem(files: readonly { name: string; size: number }[]): string | null {
  if (files.length > MAX_FILES) return `At most ${MAX_FILES} files per session.`;
  const empty = files.find((f) => f.size === 0);
  if (empty) return `${empty.name} is empty.`;
  const big = files.find((f) => f.size > MAX_BYTES);
  if (big) return `${big.name} is larger than 25 MB.`;
  const slash = files.find((f) => f.name.includes('/') || f.name.length > 200);
  if (slash) return `${slash.name}: rename the file (at most 200 characters, no “/”).`;
  return null;
}

export function Portal() {
  const { api } = useServices();
  const sessions = useResource((signal) => api.get<Page<SessionView>>('/v1/sessions', { query: 'limit=50', signal }), []);
  return (
    <section class="page wide">
      <h1>Your sessions</h1>
      <div class="two-col">
        <OpenSession />
        <div>
          <h2>Earlier sessions</h2>
          {sessions.status === 'loading' && <Loading />}
          {sessions.status === 'error' && <ErrorMessage error={sessions.error} onRetry={sessions.reload} />}
          {sessions.data && sessions.data.items.length === 0 && (
            <Empty>
              <p>No session yet. Open one to ask your first question.</p>
            </Empty>
          )}
          {sessions.data && sessions.data.items.length > 0 && (
            <ul class="sessions">
              {sessions.data.items.map((s) => (
                <li key={s.session_id} class="card">
                  <a href={`/portal/sessions/${s.session_id}`}>
                    <strong>{s.subject}</strong>
                  </a>
                  <p class="meta">
                    {s.status === 'open' ? 'Open' : 'Closed'} · {s.query_count} {s.query_count === 1 ? 'question' : 'questions'} · {s.attachments.length}{' '}
                    {s.attachments.length === 1 ? 'file' : 'files'} · last activity {formatDateTime(s.last_activity_at)}
                  </p>
                </li>
              ))}
            </ul>
          )}
        </div>
      </div>
    </section>
  );
}

interface FileState {
  file: File;
  progress: number;
  key?: string;
  error?: string;
}

function OpenSession() {
  const { api } = useServices();
  const { route } = useLocation();
  const [subject, setSubject] = useState('');
  const [files, setFiles] = useState<FileState[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const sessionId = useRef(uuidV4());
  const keys = useRef(new KeyForBody());
  const subjectId = useId();
  const filesId = useId();

  const pick = (event: Event) => {
    const list = Array.from((event.currentTarget as HTMLInputElement).files ?? []);
    setProblem(filesProblem(list));
    setFiles(list.map((file) => ({ file, progress: 0 })));
  };

  const update = (index: number, patch: Partial<FileState>) => setFiles((all) => all.map((f, i) => (i === index ? { ...f, ...patch } : f)));

  const submit = async (event: Event) => {
    event.preventDefault();
    const local = subject.trim() ? filesProblem(files.map((f) => f.file)) : 'Say what the session is about.';
    setProblem(local);
    if (local) return;
    setBusy(true);
    setError(null);
    try {
      // Each file straight to the practice's storage; files already sent are not sent again.
      const uploaded: string[] = [];
      for (const [index, entry] of files.entries()) {
        if (entry.key) {
          uploaded.push(entry.key);
          continue;
        }
        update(index, { error: undefined, progress: 0 });
        try {
          const ticket = await api.post<UploadTicket>('/v1/uploads', {
            file_name: entry.file.name,
            content_type: contentTypeOf(entry.file),
            size_bytes: entry.file.size,
          });
          await uploadWithProgress(ticket, entry.file, (p) => update(index, { progress: p }));
          update(index, { key: ticket.key, progress: 1 });
          uploaded.push(ticket.key);
        } catch (err) {
          update(index, { error: messageOf(err) });
          throw err;
        }
      }
      const body = { session_id: sessionId.current, subject: subject.trim(), attachments: uploaded };
      await api.post<CommandAccepted>('/v1/sessions', body, { idempotencyKey: keys.current.keyFor(body) });
      route(`/portal/sessions/${sessionId.current}?new=1`);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'validation_failed' && err.field === 'subject') setProblem(err.userMessage);
      else setError(err);
      setBusy(false);
    }
  };

  return (
    <section class="card" aria-labelledby="open-title">
      <h2 id="open-title">Open a session</h2>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <Field id={subjectId} label="What is it about?" error={problem && !subject.trim() ? problem : null}>
          <input id={subjectId} name="subject" required maxLength={200} value={subject} onInput={(e) => setSubject(e.currentTarget.value)} aria-describedby={describedBy(subjectId, undefined, problem && !subject.trim() ? problem : null)} />
        </Field>
        <Field id={filesId} label="Attach files (optional)" hint="Up to 20 files, 25 MB each. Text files are read with your question." error={problem && subject.trim() ? problem : null}>
          <input id={filesId} name="files" type="file" multiple onChange={pick} disabled={busy} aria-describedby={describedBy(filesId, 'hint', problem && subject.trim() ? problem : null)} />
        </Field>
        {files.length > 0 && (
          <ul class="uploads" aria-label="Files to attach">
            {files.map((f, i) => (
              <li key={`${f.file.name}-${i}`}>
                <span class="file">{f.file.name}</span> <span class="meta">{formatBytes(f.file.size)}</span>
                <progress max={1} value={f.progress} aria-label={`Upload of ${f.file.name}`}>
                  {Math.round(f.progress * 100)} %
                </progress>
                <span class="meta">{f.error ? f.error : f.key ? 'uploaded' : busy ? `${Math.round(f.progress * 100)} %` : ''}</span>
              </li>
            ))}
          </ul>
        )}
        {error !== null && <ErrorMessage error={error} />}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Opening…' : 'Open session'}
        </button>
      </form>
    </section>
  );
}

export function SessionPage() {
  const { api } = useServices();
  const { params } = useRoute();
  const { query } = useLocation();
  const id = params.id ?? '';
  const session = useResource(
    (signal) => {
      const load = () => api.get<SessionDetail>(`/v1/sessions/${encodeURIComponent(id)}`, { signal });
      // Just opened: the session shows in its read model a moment later.
      return query.new === '1' ? untilFound(load, 15_000, 750, signal) : load();
    },
    [id],
  );
  const diagnoses = useResource((signal) => api.get<Page<CustomerDiagnosis>>('/v1/diagnoses', { query: 'limit=100', signal }), [id]);
  const statusOf = new Map((diagnoses.data?.items ?? []).map((d) => [d.diagnosis_id, d.status]));
  const s = session.data;
  return (
    <section class="page wide">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href="/portal">← Your sessions</a>
      </nav>
      {session.status === 'loading' && !s && <Loading />}
      {session.status === 'error' && <ErrorMessage error={session.error} onRetry={session.reload} />}
      {s && (
        <>
          <div class="page-head">
            <h1>{s.subject}</h1>
            <span class={`pill status-${s.status}`}>{s.status === 'open' ? 'Open' : 'Closed'}</span>
          </div>
          <p class="meta">Opened {formatDateTime(s.opened_at)}</p>
          <div class="two-col">
            <div>
              <section class="card" aria-labelledby="files-title">
                <h2 id="files-title">Files</h2>
                {s.attachments.length === 0 ? (
                  <p class="meta">No files attached.</p>
                ) : (
                  <ul class="attachments">
                    {s.attachments.map((key) => (
                      <li key={key}>{fileNameOf(key)}</li>
                    ))}
                  </ul>
                )}
              </section>
              <section aria-labelledby="questions-title">
                <h2 id="questions-title">Questions</h2>
                {s.queries.length === 0 ? (
                  <Empty>
                    <p>No question yet.</p>
                  </Empty>
                ) : (
                  <ol class="questions">
                    {s.queries.map((q) => (
                      <li key={q.query_id} class="card">
                        <a href={`/portal/diagnoses/${q.diagnosis_id}`}>{q.text}</a>
                        <p class="meta">
                          Asked {formatDateTime(q.submitted_at)} · {RELEASE_TEXT[statusOf.get(q.diagnosis_id) ?? 'in_review']}
                        </p>
                      </li>
                    ))}
                  </ol>
                )}
              </section>
            </div>
            {s.status === 'open' ? <AskQuestion sessionId={s.session_id} onClosed={session.reload} /> : <Notice>This session is closed.</Notice>}
          </div>
        </>
      )}
    </section>
  );
}

function AskQuestion({ sessionId, onClosed }: { sessionId: string; onClosed: () => void }) {
  const { api } = useServices();
  const { route } = useLocation();
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const queryId = useRef(uuidV4());
  const keys = useRef(new KeyForBody());
  const textId = useId();

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!text.trim()) {
      setProblem('Write your question first.');
      return;
    }
    const body = { query_id: queryId.current, text: text.trim() };
    setBusy(true);
    setError(null);
    setProblem(null);
    try {
      const accepted = await api.post<CommandAccepted>(`/v1/sessions/${sessionId}/queries`, body, { idempotencyKey: keys.current.keyFor(body) });
      route(`/portal/diagnoses/${accepted.ids.diagnosis_id ?? queryId.current}?new=1`);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'validation_failed' && err.field === 'query') setProblem(err.userMessage);
      else setError(err);
      setBusy(false);
    }
  };

  const close = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.post<CommandAccepted>(`/v1/sessions/${sessionId}/close`);
      onClosed();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card" aria-labelledby="ask-title">
      <h2 id="ask-title">Ask a question</h2>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <Field id={textId} label="Your question" hint="A consultant reviews every answer before you see it." error={problem}>
          <textarea id={textId} name="question" rows={6} maxLength={20000} value={text} onInput={(e) => setText(e.currentTarget.value)} aria-describedby={describedBy(textId, 'hint', problem)} />
        </Field>
        {error !== null && <ErrorMessage error={error} />}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Sending…' : 'Submit question'}
          </button>
          <button type="button" class="link" onClick={() => void close()} disabled={busy}>
            Close this session
          </button>
        </div>
      </form>
    </section>
  );
}

/** How long to wait before polling again, `elapsedMs` after the page opened. */
export function pollDelay(elapsedMs: number): number {
  if (elapsedMs < 60_000) return 3_000;
  if (elapsedMs < 5 * 60_000) return 10_000;
  return 30_000;
}

export function AnswerPage() {
  const { api } = useServices();
  const { params } = useRoute();
  const { query } = useLocation();
  const id = params.id ?? '';
  const [state, setState] = useState<{ data?: CustomerDiagnosis; error?: unknown; waiting: boolean }>({ waiting: true });
  const [nonce, setNonce] = useState(0);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const started = Date.now();
    const poll = async () => {
      try {
        const data = await api.get<CustomerDiagnosis>(`/v1/diagnoses/${encodeURIComponent(id)}`);
        if (stopped) return;
        const waiting = data.status === 'in_review';
        setState({ data, waiting });
        if (waiting) timer = setTimeout(() => void poll(), pollDelay(Date.now() - started));
      } catch (err) {
        if (stopped) return;
        // Just submitted: the diagnosis may not be readable for a moment yet.
        const settling = query.new === '1' && err instanceof ApiError && err.status === 404 && Date.now() - started < 60_000;
        setState((s) => ({ ...s, error: settling ? undefined : err, waiting: settling }));
        if (settling) timer = setTimeout(() => void poll(), 2_000);
      }
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [id, nonce]);

  const d = state.data;
  return (
    <section class="page narrow">
      <nav class="crumbs" aria-label="Breadcrumb">
        {d ? <a href={`/portal/sessions/${d.session_id}`}>← The session</a> : <a href="/portal">← Your sessions</a>}
      </nav>
      <h1>Your question</h1>
      {!d && !state.error && <Loading label="Sending your question to the practice…" />}
      {state.error !== undefined && <ErrorMessage error={state.error} onRetry={() => setNonce((n) => n + 1)} />}
      {d && (
        <>
          <blockquote class="query-text">{d.query}</blockquote>
          <p class="meta">Asked {formatDateTime(d.requested_at)}</p>
          <p>
            <span class={`pill status-${d.status}`} aria-live="polite">
              {RELEASE_TEXT[d.status]}
            </span>
          </p>
          {d.status === 'in_review' && (
            <Notice>
              <p>The practice is working on it: a consultant reviews every answer before it is released. This page updates by itself.</p>
            </Notice>
          )}
          {d.status === 'answered' && d.answer && (
            <section class="card answer" aria-labelledby="answer-title">
              <h2 id="answer-title">Answer</h2>
              {d.answer.amended && <p class="meta">Written by a consultant of the practice.</p>}
              <div class="proposal-text">{d.answer.text}</div>
              {d.answer.findings.length > 0 && (
                <>
                  <h3>Findings</h3>
                  <Findings findings={d.answer.findings} />
                </>
              )}
              <p class="meta">Released {formatDateTime(d.decided_at)}</p>
            </section>
          )}
          {d.status === 'declined' && (
            <section class="card" aria-labelledby="declined-title">
              <h2 id="declined-title">The practice declined to answer</h2>
              <p>{d.declined_reason}</p>
            </section>
          )}
          {d.status === 'deferred_budget' && (
            <Notice kind="warning">
              <p>{deferralText('customer', d.budget_renews_on)}</p>
            </Notice>
          )}
          {d.status === 'failed' && <ErrorMessage error={new Error('This question could not be answered. Ask it again, or contact the practice.')} />}
        </>
      )}
    </section>
  );
}
