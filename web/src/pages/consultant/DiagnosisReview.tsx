import { useEffect, useId, useMemo, useRef, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { ApiError } from '../../api/client';
import type { CommandAccepted, DecisionView, JudgmentView, SessionDetail, StaffDiagnosis } from '../../api/types';
import { Field, describedBy } from '../../components/Field';
import { Empty, ErrorMessage, Loading, Notice, messageOf } from '../../components/Status';
import { useShortcuts } from '../../components/useShortcuts';
import { deferralText } from '../../lib/budget';
import { clearDraft, loadDraft, saveDraft, type DraftVerdict } from '../../lib/drafts';
import { fileNameOf, formatBytes, formatDateTime, formatMicros, formatPercent, shortHash } from '../../lib/format';
import { KeyForBody } from '../../lib/idempotency';
import { useResource } from '../../lib/useResource';
import { useClaims, useServices } from '../../services';
import { judgmentDetail, loadQueue, neighbour, queueOrder } from './data';
import { ShortcutHelp } from './ShortcutHelp';
import { Findings } from '../../components/Findings';

type Mode = 'none' | 'approve' | DraftVerdict;

const STATUS_TEXT: Record<string, string> = {
  requested: 'Waiting for the model',
  context_retrieved: 'Precedents retrieved; the model is drafting',
  proposed: 'Waiting for a decision',
  deferred_budget: 'Deferred: token budget spent',
  failed: 'Failed',
  resolved: 'Decided',
};

/** The body of `POST /v1/diagnoses/{id}/decision` for a verdict. */
export function decisionBody(mode: Exclude<Mode, 'none'>, text: string, reason: string) {
  switch (mode) {
    case 'approve':
      return { verdict: 'approve' };
    case 'amend':
      return reason.trim() ? { verdict: 'amend', amended_text: text, reason: reason.trim() } : { verdict: 'amend', amended_text: text };
    case 'reject':
      return { verdict: 'reject', reason: reason.trim() };
  }
}

/** A problem to show before sending, or null. */
export function decisionProblem(mode: Exclude<Mode, 'none'>, text: string, reason: string): { field: 'text' | 'reason'; message: string } | null {
  if (mode === 'amend' && !text.trim()) return { field: 'text', message: 'The amended diagnosis can’t be empty.' };
  if (mode === 'reject' && !reason.trim()) return { field: 'reason', message: 'Say why: the customer reads this reason.' };
  return null;
}

export function DiagnosisReview() {
  const { api } = useServices();
  const claims = useClaims();
  const { params } = useRoute();
  const { route } = useLocation();
  const id = params.id ?? '';
  const canDecide = !!claims?.roles.includes('consultant');
  const diagnosis = useResource((signal) => api.get<StaffDiagnosis>(`/v1/diagnoses/${encodeURIComponent(id)}`, { signal }), [id]);
  const d = diagnosis.data?.diagnosis_id === id ? diagnosis.data : undefined;

  // The queue order for j/k, loaded once if the desk wasn't visited first.
  useEffect(() => {
    if (canDecide && queueOrder().length === 0) void loadQueue(api).catch(() => undefined);
  }, []);
  const go = (step: 1 | -1) => {
    const target = neighbour(queueOrder(), id, step);
    if (target && target !== id) route(`/review/${target}`);
  };

  return (
    <section class="page wide review">
      <nav class="crumbs" aria-label="Breadcrumb">
        {canDecide ? <a href="/review">← Review queue</a> : <a href="/audit">← Audit</a>}
      </nav>
      {diagnosis.status === 'loading' && !d && <Loading label="Loading the diagnosis…" />}
      {diagnosis.status === 'error' && (
        <ErrorMessage error={diagnosis.error} onRetry={diagnosis.error instanceof ApiError && diagnosis.error.status === 404 ? undefined : diagnosis.reload} />
      )}
      {d && <DiagnosisBody d={d} canDecide={canDecide} reload={diagnosis.reload} go={go} />}
    </section>
  );
}

function DiagnosisBody({ d, canDecide, reload, go }: { d: StaffDiagnosis; canDecide: boolean; reload: () => void; go: (step: 1 | -1) => void }) {
  const proposal = d.proposal;
  return (
    <>
      <div class="page-head">
        <h1>Diagnosis</h1>
        <span class={`pill status-${d.status}`}>{d.status === 'resolved' && d.outcome ? `Decided: ${d.outcome.replace('_', ' ')}` : (STATUS_TEXT[d.status] ?? d.status)}</span>
      </div>
      <div class="review-grid">
        <div class="review-main">
          <section class="card" aria-labelledby="q-title">
            <h2 id="q-title">The customer’s query</h2>
            <blockquote class="query-text">{d.query}</blockquote>
            <p class="meta">
              Asked {formatDateTime(d.requested_at)} · session <code>{d.session_id.slice(0, 8)}</code>
              {!canDecide && (
                <>
                  {' '}
                  · <a href={`/audit/sessions/${d.session_id}`}>The session’s whole trail</a>
                </>
              )}
            </p>
            <Attachments d={d} />
          </section>

          {proposal ? (
            <section class="card" aria-labelledby="p-title">
              <h2 id="p-title">Proposed diagnosis</h2>
              <div class="confidence">
                <span>Confidence {formatPercent(proposal.confidence)}</span>
                <span class="bar" aria-hidden="true">
                  <span style={{ width: `${Math.round(proposal.confidence * 100)}%` }} />
                </span>
              </div>
              <div class="proposal-text scroll" tabIndex={0} role="region" aria-label="Proposed diagnosis text">
                {proposal.text}
              </div>
              <h3>Findings</h3>
              <Findings findings={proposal.findings} />
            </section>
          ) : (
            <Empty>
              {d.status === 'failed' ? (
                <p>
                  The model could not draft this diagnosis{d.failure_reason ? `: ${d.failure_reason}` : ''}.{' '}
                  {d.retryable ? 'It will be retried.' : 'It will not be retried.'}
                </p>
              ) : d.status === 'deferred_budget' ? (
                <p>{deferralText('staff', d.budget_renews_on)}</p>
              ) : (
                <p>No proposal yet: {STATUS_TEXT[d.status] ?? d.status}.</p>
              )}
            </Empty>
          )}

          {d.decision ? <DecisionRecord d={d} canDecide={canDecide} /> : canDecide && proposal && d.status === 'proposed' ? <DecisionPanel d={d} reload={reload} go={go} /> : null}
        </div>
        <aside class="review-side">
          {proposal && <Precedents d={d} canDecide={canDecide} />}
          {proposal && <ProvenancePanel d={d} />}
          {canDecide && <ShortcutHelp actions={['next', 'previous', 'approve', 'amend', 'reject']} />}
        </aside>
      </div>
    </>
  );
}

function Attachments({ d }: { d: StaffDiagnosis }) {
  const { api } = useServices();
  const session = useResource((signal) => api.get<SessionDetail>(`/v1/sessions/${d.session_id}`, { signal }), [d.session_id]);
  const reads = new Map((d.proposal?.provenance.attachments ?? []).map((a) => [a.key, a]));
  const keys = session.data?.attachments ?? [...reads.keys()];
  if (session.status === 'loading' && !keys.length) return <Loading label="Loading attachments…" />;
  if (!keys.length) return <p class="meta">No attachments.</p>;
  return (
    <div>
      <h3>Attachments</h3>
      <ul class="attachments">
        {keys.map((key) => {
          const read = reads.get(key);
          return (
            <li key={key}>
              <span class="file">{fileNameOf(key)}</span>{' '}
              <span class="meta">
                {read?.content_type ?? ''}
                {read?.outcome.status === 'included' && ` · ${formatBytes(read.outcome.bytes)} of text read${read.outcome.truncated ? ' (cut)' : ''}`}
                {read?.outcome.status === 'skipped' && ` · not read: ${read.outcome.reason.replace(/_/g, ' ')}`}
              </span>
            </li>
          );
        })}
      </ul>
      <p class="meta">Files stay in the practice’s storage; the API does not offer a download link to staff.</p>
    </div>
  );
}

/** The judgments retrieved for the draft: consultants see each one's title, status and source (auditors can't read judgments: only their ids). */
function Precedents({ d, canDecide }: { d: StaffDiagnosis; canDecide: boolean }) {
  const { api } = useServices();
  const provenance = d.proposal?.provenance;
  const precedents = provenance?.precedents ?? (provenance?.retrieved_judgment_ids ?? []).map((judgment_id) => ({ judgment_id, score: Number.NaN, source_position: 0 }));
  const known = useResource(
    async (signal) => {
      const found = new Map<string, JudgmentView>();
      if (!canDecide) return found;
      await Promise.all(
        precedents.map(async (p) => {
          try {
            found.set(p.judgment_id, await judgmentDetail(api, p.judgment_id, signal));
          } catch {
            // Shown by its id: a precedent's title is a convenience, the draft stands without it.
          }
        }),
      );
      return found;
    },
    [d.diagnosis_id],
  );
  return (
    <section class="card" aria-labelledby="prec-title">
      <h2 id="prec-title">Precedents</h2>
      {precedents.length === 0 ? (
        <p class="meta">No captured judgment was close enough to this query. Approving it starts one.</p>
      ) : (
        <ol class="precedents">
          {precedents.map((p) => {
            const judgment = known.data?.get(p.judgment_id);
            const name = judgment ? `“${judgment.title}”` : `Judgment ${p.judgment_id.slice(0, 8)}`;
            return (
              <li key={p.judgment_id}>
                <span class="score" title="Similarity to the query (higher is closer)">
                  {Number.isNaN(p.score) ? '—' : p.score.toFixed(3)}
                </span>{' '}
                {!canDecide ? (
                  <span>{name}</span>
                ) : judgment?.diagnosis_id ? (
                  <a href={`/review/${judgment.diagnosis_id}`} title="The review it was captured from">
                    {name}
                  </a>
                ) : (
                  <a href={`/judgments#${p.judgment_id}`}>{name}</a>
                )}
                {judgment && judgment.status !== 'active' && <span class="meta"> ({judgment.status === 'retired' ? 'since retired' : 'revised'})</span>}
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}

function ProvenancePanel({ d }: { d: StaffDiagnosis }) {
  const p = d.proposal?.provenance;
  if (!p) return null;
  const rows: [string, string][] = [
    ['Model', p.model_id],
    ['Tier', p.model_tier.replace(/_/g, ' ')],
    ['Prompt template', `${p.prompt_template_id} (${shortHash(p.prompt_template_hash)})`],
    ['Tokens', `${p.input_tokens.toLocaleString()} in · ${p.output_tokens.toLocaleString()} out`],
    ['Cost', formatMicros(p.cost_usd_micros)],
    ['Stopped', p.stop_reason ? p.stop_reason.replace(/_/g, ' ') : 'not recorded'],
    ['Embedding', p.embedding ? `${p.embedding.model_id} (${p.embedding.dimension} dims)` : 'not recorded'],
    ['Attempt', String(d.attempt)],
    ['Proposed', formatDateTime(d.proposal?.proposed_at)],
  ];
  return (
    <section class="card" aria-labelledby="prov-title">
      <h2 id="prov-title">Provenance</h2>
      <dl class="facts">
        {rows.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

function DecisionRecord({ d, canDecide }: { d: StaffDiagnosis; canDecide: boolean }) {
  const { api } = useServices();
  const decision = useResource((signal) => api.get<DecisionView>(`/v1/decisions/${d.diagnosis_id}`, { signal }), [d.diagnosis_id]);
  const verdict = decision.data?.verdict;
  // An approval or an amendment is captured as a judgment; consultants can open it.
  const captured = canDecide && (verdict?.kind === 'Approved' || verdict?.kind === 'Amended') ? decision.data : undefined;
  return (
    <section class="card decided" aria-labelledby="dec-title">
      <h2 id="dec-title">Decision</h2>
      <p>
        <strong>{d.decision?.outcome.replace('_', ' ')}</strong> by <code>{d.decision?.decided_by}</code> on {formatDateTime(d.decision?.decided_at)}
      </p>
      {verdict?.kind === 'Amended' && (
        <>
          <h3>Released text</h3>
          <div class="proposal-text">{verdict.text}</div>
          {verdict.reason && <p class="meta">Note: {verdict.reason}</p>}
        </>
      )}
      {verdict?.kind === 'Rejected' && <p>Reason given to the customer: {verdict.reason}</p>}
      {verdict?.kind === 'AutoApproved' && (
        <p>
          Approved without review: confidence {formatPercent(verdict.confidence)} ≥ the practice’s threshold {formatPercent(verdict.threshold)}.
        </p>
      )}
      {captured && (
        <p>
          <a href={`/judgments?decision_id=${encodeURIComponent(captured.decision_id)}`}>The judgment captured from this decision</a>
        </p>
      )}
    </section>
  );
}

function DecisionPanel({ d, reload, go }: { d: StaffDiagnosis; reload: () => void; go: (step: 1 | -1) => void }) {
  const { api } = useServices();
  const proposalText = d.proposal?.text ?? '';
  const restored = useMemo(() => loadDraft(d.diagnosis_id), [d.diagnosis_id]);
  const [mode, setMode] = useState<Mode>(restored?.verdict ?? 'none');
  const [text, setText] = useState(restored?.verdict === 'amend' ? restored.text : proposalText);
  const [reason, setReason] = useState(restored?.reason ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [problem, setProblem] = useState<{ field: 'text' | 'reason'; message: string } | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const keys = useRef(new KeyForBody());
  const textRef = useRef<HTMLTextAreaElement>(null);
  const reasonRef = useRef<HTMLTextAreaElement>(null);
  const confirmRef = useRef<HTMLButtonElement>(null);
  const textId = useId();
  const reasonId = useId();

  // Every keystroke is kept: an expired session sends the consultant to sign in and back here.
  useEffect(() => {
    if (mode === 'amend' || mode === 'reject') saveDraft(d.diagnosis_id, { verdict: mode, text, reason });
  }, [mode, text, reason]);

  useEffect(() => {
    if (mode === 'amend') textRef.current?.focus();
    if (mode === 'reject') reasonRef.current?.focus();
    if (mode === 'approve') confirmRef.current?.focus();
  }, [mode]);

  const open = (next: Mode) => {
    setError(null);
    setProblem(null);
    setMode(next);
  };

  const cancel = () => {
    clearDraft(d.diagnosis_id);
    setText(proposalText);
    setReason('');
    open('none');
  };

  useShortcuts({
    next: () => go(1),
    previous: () => go(-1),
    approve: () => !done && open('approve'),
    amend: () => !done && open('amend'),
    reject: () => !done && open('reject'),
  });

  const submit = async (event?: Event) => {
    event?.preventDefault();
    if (mode === 'none') return;
    const local = decisionProblem(mode, text, reason);
    setProblem(local);
    if (local) return;
    const body = decisionBody(mode, text, reason);
    setBusy(true);
    setError(null);
    try {
      await api.post<CommandAccepted>(`/v1/diagnoses/${d.diagnosis_id}/decision`, body, { idempotencyKey: keys.current.keyFor(body) });
      keys.current.reset();
      clearDraft(d.diagnosis_id);
      setDone(mode === 'approve' ? 'Approved: the answer is released to the customer.' : mode === 'amend' ? 'Amended and approved: your text is released to the customer.' : 'Rejected: the customer sees your reason.');
      setMode('none');
    } catch (err) {
      if (err instanceof ApiError && err.code === 'validation_failed' && (err.field === 'diagnosis_text' || err.field === 'reason')) {
        setProblem({ field: err.field === 'reason' ? 'reason' : 'text', message: err.userMessage });
      } else {
        setError(err);
      }
    } finally {
      setBusy(false);
    }
  };

  if (done) {
    const next = neighbour(queueOrder(), d.diagnosis_id, 1);
    return (
      <section class="card" aria-labelledby="dec-title">
        <h2 id="dec-title">Decision</h2>
        <Notice kind="success">
          <p>{done}</p>
          <p>
            {next ? (
              <a class="button" href={`/review/${next}`}>
                Next in queue (j)
              </a>
            ) : (
              <a class="button" href="/review">
                Back to the queue
              </a>
            )}{' '}
            <button type="button" class="secondary" onClick={reload}>
              Show the recorded decision
            </button>
          </p>
        </Notice>
      </section>
    );
  }

  const conflict = error instanceof ApiError && error.status === 409;
  return (
    <section class="card decision" aria-labelledby="dec-title">
      <h2 id="dec-title">Your decision</h2>
      {restored && mode !== 'none' && <Notice>Restored your unsent {restored.verdict === 'amend' ? 'amendment' : 'rejection'} (kept in this tab).</Notice>}
      <div class="decision-buttons" role="group" aria-label="Verdict">
        <button type="button" class={mode === 'approve' ? 'primary' : 'secondary'} aria-pressed={mode === 'approve'} onClick={() => open('approve')}>
          Approve <kbd>a</kbd>
        </button>
        <button type="button" class={mode === 'amend' ? 'primary' : 'secondary'} aria-pressed={mode === 'amend'} onClick={() => open('amend')}>
          Amend <kbd>e</kbd>
        </button>
        <button type="button" class={mode === 'reject' ? 'danger' : 'secondary'} aria-pressed={mode === 'reject'} onClick={() => open('reject')}>
          Reject <kbd>r</kbd>
        </button>
      </div>
      {mode !== 'none' && (
        <form onSubmit={(e) => void submit(e)} noValidate>
          {mode === 'approve' && <p>Release the proposed diagnosis to the customer as it is.</p>}
          {mode === 'amend' && (
            <Field id={textId} label="Amended diagnosis (released to the customer)" error={problem?.field === 'text' ? problem.message : null}>
              <textarea id={textId} ref={textRef} rows={12} value={text} onInput={(e) => setText(e.currentTarget.value)} aria-invalid={problem?.field === 'text'} aria-describedby={describedBy(textId, undefined, problem?.field === 'text' ? problem.message : null)} />
            </Field>
          )}
          {(mode === 'amend' || mode === 'reject') && (
            <Field
              id={reasonId}
              label={mode === 'reject' ? 'Reason (required; the customer reads it)' : 'Note on the amendment (optional; not shown to the customer)'}
              error={problem?.field === 'reason' ? problem.message : null}
            >
              <textarea id={reasonId} ref={reasonRef} rows={3} value={reason} onInput={(e) => setReason(e.currentTarget.value)} aria-invalid={problem?.field === 'reason'} aria-describedby={describedBy(reasonId, undefined, problem?.field === 'reason' ? problem.message : null)} />
            </Field>
          )}
          {error !== null && (
            <div class="status error" role="alert">
              <p>{conflict ? 'Another decision on this diagnosis was recorded first, or it changed meanwhile.' : messageOf(error)}</p>
              {conflict && (
                <p>
                  Your text is still here and kept in this tab.{' '}
                  <button type="button" class="secondary" onClick={reload}>
                    Reload the diagnosis
                  </button>
                </p>
              )}
            </div>
          )}
          <div class="actions">
            <button type="submit" ref={confirmRef} class={mode === 'reject' ? 'danger' : 'primary'} disabled={busy}>
              {busy ? 'Sending…' : mode === 'approve' ? 'Confirm approval' : mode === 'amend' ? 'Approve with my amendment' : 'Reject'}
            </button>
            <button type="button" class="link" onClick={cancel} disabled={busy}>
              Cancel
            </button>
          </div>
        </form>
      )}
    </section>
  );
}
