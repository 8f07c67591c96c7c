// The auditor's area (one lazily loaded chunk): the audit table with filters and export, the
// chain's verification, a session's whole trail, and the event stream.

import { useEffect, useId, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { ApiError } from '../../api/client';
import type { AuditRow, ChainVerification, DecisionView, EventLine, SessionDetail, StaffDiagnosis } from '../../api/types';
import { Empty, ErrorMessage, Loading, Notice, messageOf } from '../../components/Status';
import { describeChainProblem, verifyChain, type ChainReport } from '../../lib/chain';
import { formatDateTime, formatMicros, shortHash } from '../../lib/format';
import { AUDIT_FILTER_KEYS, auditFiltersFrom, auditPageQuery, dateRangeProblem, emptyAuditFilters, type AuditFilters } from '../../lib/query';
import { useResource } from '../../lib/useResource';
import { useServices } from '../../services';
import { allAuditRows, auditPage, download, eventsPage, toCsv, trailRows } from './data';

const ACTIONS = [
  'SessionOpened', 'QuerySubmitted', 'DiagnosisRequested', 'ContextRetrieved', 'DiagnosisProposed', 'DiagnosisFailed', 'DecisionMade',
  'DiagnosisResolved', 'JudgmentCaptured', 'JudgmentRevised', 'JudgmentRetired', 'SessionClosed', 'TenantSignedUp', 'UserInvited',
  'UserProvisioned', 'UserRoleChanged', 'UserDisabled', 'UserEnabled', 'AutoResolveThresholdSet', 'ModelPolicySet', 'PlanChanged',
  'TenantSuspended', 'TenantReactivated', 'UsageKeyAssigned',
];
const ROLES = ['customer', 'consultant', 'auditor', 'admin', 'system', 'operator'];
const OUTCOMES = ['approved', 'amended', 'rejected', 'auto_approved', 'retryable', 'final'];

const LABELS: Record<keyof AuditFilters, string> = {
  action: 'Action',
  actor: 'Actor (user id)',
  role: 'Role',
  outcome: 'Outcome',
  model: 'Model',
  from: 'From (day, UTC)',
  to: 'To (day, UTC, inclusive)',
};

interface ChainState {
  status: 'loading' | 'ready' | 'error';
  /** The server's verdict (`GET /v1/audit/verification`), rows and event contents; null where the route is missing. */
  server?: ChainVerification | null;
  /** The browser's own rehash of the rows. */
  report?: ChainReport;
  complete?: boolean;
  rows?: AuditRow[];
  error?: unknown;
  reload: () => void;
}

/** The whole chain, verified by the server and again in this browser, once per page visit. */
function useChain(): ChainState {
  const { api } = useServices();
  const chain = useResource(async (signal) => {
    const server = api.get<ChainVerification>('/v1/audit/verification', { signal }).catch((err: unknown) => {
      if (err instanceof ApiError && (err.status === 404 || err.status === 405)) return null;
      throw err;
    });
    const { rows, complete } = await allAuditRows(api, emptyAuditFilters(), undefined, signal);
    return { rows, complete, report: await verifyChain(rows), server: await server };
  }, []);
  return { status: chain.status, ...(chain.data ?? {}), error: chain.error, reload: chain.reload };
}

function ChainStatus({ chain }: { chain: ChainState }) {
  if (chain.status === 'loading' && !chain.report) return <Loading label="Verifying the audit chain…" />;
  if (chain.status === 'error') return <ErrorMessage error={chain.error} onRetry={chain.reload} />;
  const { report, server } = chain;
  if (!report) return null;
  const broken = server?.broken ?? null;
  if (report.problem || (server && !server.verified)) {
    return (
      <div class="chain broken" role="alert" data-chain="broken">
        <strong>Chain broken</strong>:{' '}
        {broken ? `row ${broken.seq} (log position ${broken.global_position}): ${broken.problem}` : report.problem ? describeChainProblem(report.problem) : 'the server found it broken'}.
      </div>
    );
  }
  const browser = (
    <>
      {report.rows} {report.rows === 1 ? 'row' : 'rows'}
      {report.head ? `, seq 1–${report.head.seq}, head ${shortHash(report.head.hash)}` : ''}
      {chain.complete ? '' : ' (the first rows only: the chain is longer)'}, every hash recomputed from the rows the API returned and every link followed
    </>
  );
  return (
    <div class="chain verified" role="status" data-chain="verified">
      {server ? (
        <>
          <p>
            <strong>Chain verified</strong> by the server just now: {server.rows} {server.rows === 1 ? 'row' : 'rows'}, each hash recomputed and linked,{' '}
            {server.content_checked} events’ content matched to their digests.
          </p>
          <p class="meta">Checked again in this browser: {browser}.</p>
        </>
      ) : (
        <>
          <p>
            <strong>Chain verified</strong> in this browser: {browser}.
          </p>
          <p class="meta">
            Each row’s event digest is checked against the event itself by <code>casebook-replay audit verify</code>.
          </p>
        </>
      )}
    </div>
  );
}

export function AuditTable() {
  const { api } = useServices();
  const { query, route, path } = useLocation();
  const applied = auditFiltersFrom(query);
  const [form, setForm] = useState<AuditFilters>(applied);
  const [problem, setProblem] = useState<string | null>(null);
  const [rows, setRows] = useState<AuditRow[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [state, setState] = useState<{ status: 'loading' | 'ready' | 'error'; error?: unknown }>({ status: 'loading' });
  const [exporting, setExporting] = useState(false);
  const chain = useChain();
  const ids = Object.fromEntries(AUDIT_FILTER_KEYS.map((k) => [k, useId()])) as Record<keyof AuditFilters, string>;
  const appliedKey = auditPageQuery(applied);

  const load = async (after: string | null) => {
    setState({ status: 'loading' });
    try {
      const page = await auditPage(api, applied, after);
      setRows((r) => (after ? [...r, ...page.items] : page.items));
      setNext(page.next_cursor);
      setState({ status: 'ready' });
    } catch (error) {
      setState({ status: 'error', error });
    }
  };

  useEffect(() => {
    setForm(applied);
    void load(null);
  }, [appliedKey]);

  const apply = (event: Event) => {
    event.preventDefault();
    const local = dateRangeProblem(form.from, form.to);
    setProblem(local);
    if (!local) route(`${path}${auditPageQuery(form)}`);
  };

  const exportRows = async (format: 'csv' | 'ndjson') => {
    setExporting(true);
    try {
      const { rows: all } = await allAuditRows(api, applied, 100_000);
      const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '');
      if (format === 'csv') download(`casebook-audit-${stamp}.csv`, toCsv(all), 'text/csv');
      else download(`casebook-audit-${stamp}.ndjson`, all.map((r) => JSON.stringify(r)).join('\n') + '\n', 'application/x-ndjson');
    } catch (error) {
      setState({ status: 'error', error });
    } finally {
      setExporting(false);
    }
  };

  const set = (key: keyof AuditFilters) => (event: Event) => {
    const value = (event.currentTarget as HTMLInputElement).value;
    setForm((f) => ({ ...f, [key]: value }));
  };

  return (
    <section class="page wide">
      <div class="page-head">
        <h1>Audit trail</h1>
        <a href="/audit/events">Event stream →</a>
      </div>
      <ChainStatus chain={chain} />
      <form class="filters audit-filters" onSubmit={apply} aria-label="Filters">
        <div class="field">
          <label for={ids.action}>{LABELS.action}</label>
          <input id={ids.action} list="audit-actions" value={form.action} onInput={set('action')} />
          <datalist id="audit-actions">
            {ACTIONS.map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
        </div>
        <div class="field">
          <label for={ids.actor}>{LABELS.actor}</label>
          <input id={ids.actor} value={form.actor} onInput={set('actor')} />
        </div>
        <div class="field">
          <label for={ids.role}>{LABELS.role}</label>
          <select id={ids.role} value={form.role} onChange={set('role')}>
            <option value="">Any</option>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for={ids.outcome}>{LABELS.outcome}</label>
          <select id={ids.outcome} value={form.outcome} onChange={set('outcome')}>
            <option value="">Any</option>
            {OUTCOMES.map((o) => (
              <option key={o} value={o}>
                {o.replace('_', ' ')}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for={ids.model}>{LABELS.model}</label>
          <input id={ids.model} value={form.model} onInput={set('model')} />
        </div>
        <div class="field">
          <label for={ids.from}>{LABELS.from}</label>
          <input id={ids.from} type="date" value={form.from} onInput={set('from')} />
        </div>
        <div class="field">
          <label for={ids.to}>{LABELS.to}</label>
          <input id={ids.to} type="date" value={form.to} onInput={set('to')} />
        </div>
        <div class="filter-actions">
          <button type="submit" class="primary">
            Apply filters
          </button>
          <button type="button" class="link" onClick={() => route(path)}>
            Clear
          </button>
        </div>
        {problem && (
          <p class="field-error" role="alert">
            {problem}
          </p>
        )}
      </form>
      <div class="toolbar">
        <span class="count" aria-live="polite">
          {rows.length} {rows.length === 1 ? 'row' : 'rows'}
          {next ? ' shown (more below)' : ''}
        </span>
        <button type="button" class="secondary" disabled={exporting} onClick={() => void exportRows('csv')}>
          Export CSV
        </button>
        <button type="button" class="secondary" disabled={exporting} onClick={() => void exportRows('ndjson')}>
          Export JSON lines
        </button>
      </div>
      {state.status === 'error' && <ErrorMessage error={state.error} onRetry={() => void load(null)} />}
      {state.status === 'ready' && rows.length === 0 && (
        <Empty>
          <p>No audit row matches these filters.</p>
        </Empty>
      )}
      {rows.length > 0 && <AuditRows rows={rows} />}
      {state.status === 'loading' && <Loading />}
      {next && state.status !== 'loading' && (
        <button type="button" class="secondary" onClick={() => void load(next)}>
          Load more
        </button>
      )}
    </section>
  );
}

function AuditRows({ rows }: { rows: readonly AuditRow[] }) {
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label="Audit rows">
      <table class="audit">
        <thead>
          <tr>
            <th scope="col">Seq</th>
            <th scope="col">When</th>
            <th scope="col">Action</th>
            <th scope="col">Actor</th>
            <th scope="col">Outcome</th>
            <th scope="col">Model</th>
            <th scope="col">Subject</th>
            <th scope="col">Hash</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.seq}>
              <td>{r.seq}</td>
              <td>{formatDateTime(r.recorded_at)}</td>
              <td>{r.action}</td>
              <td>
                <span class="role">{r.actor_role}</span> <code title={r.actor_id}>{r.actor_id.length > 14 ? `${r.actor_id.slice(0, 12)}…` : r.actor_id}</code>
              </td>
              <td>
                {r.outcome ?? ''}
                {r.reason ? <span class="meta"> — {r.reason}</span> : null}
              </td>
              <td>
                {r.model_id ?? ''}
                {r.cost_usd_micros !== null ? <span class="meta"> {formatMicros(r.cost_usd_micros)}</span> : null}
              </td>
              <td>
                {r.session_id && <a href={`/audit/sessions/${r.session_id}`}>session</a>}
                {r.diagnosis_id && (
                  <>
                    {' '}
                    <a href={`/review/${r.diagnosis_id}`}>diagnosis</a>
                  </>
                )}
              </td>
              <td>
                <code title={`prev ${r.prev_hash}\nhash ${r.hash}`}>{shortHash(r.hash)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function SessionTrail() {
  const { api } = useServices();
  const { params } = useRoute();
  const id = params.id ?? '';
  const chain = useChain();
  const trail = useResource(
    async (signal) => {
      const session = await api.get<SessionDetail>(`/v1/sessions/${encodeURIComponent(id)}`, { signal });
      const diagnoses = await Promise.all(
        session.queries.map(async (q) => {
          const diagnosis = await api.get<StaffDiagnosis>(`/v1/diagnoses/${q.diagnosis_id}`, { signal }).catch(() => null);
          const decision = diagnosis?.decision ? await api.get<DecisionView>(`/v1/decisions/${q.diagnosis_id}`, { signal }).catch(() => null) : null;
          return { query: q, diagnosis, decision };
        }),
      );
      return { session, diagnoses };
    },
    [id],
  );
  const diagnosisIds = new Set(trail.data?.session.queries.map((q) => q.diagnosis_id) ?? []);
  const rows = chain.rows ? trailRows(chain.rows, id, diagnosisIds) : [];
  const t = trail.data;
  return (
    <section class="page wide">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href="/audit">← Audit trail</a>
      </nav>
      <h1>Session trail</h1>
      {trail.status === 'loading' && <Loading />}
      {trail.status === 'error' && <ErrorMessage error={trail.error} onRetry={trail.reload} />}
      {t && (
        <>
          <section class="card">
            <h2>{t.session.subject}</h2>
            <p class="meta">
              Opened {formatDateTime(t.session.opened_at)} by <code>{t.session.opened_by}</code> · {t.session.status} · {t.session.attachments.length}{' '}
              attachments
            </p>
            <ol class="trail">
              {t.diagnoses.map(({ query, diagnosis, decision }) => (
                <li key={query.query_id} class="card">
                  <p>
                    <strong>Query</strong> {formatDateTime(query.submitted_at)}: {query.text}
                  </p>
                  {diagnosis?.proposal && (
                    <p>
                      <strong>Proposal</strong> {formatDateTime(diagnosis.proposal.proposed_at)} by {diagnosis.proposal.provenance.model_id} (
                      {diagnosis.proposal.provenance.model_tier}), confidence {Math.round(diagnosis.proposal.confidence * 100)} %, {formatMicros(diagnosis.proposal.provenance.cost_usd_micros)}
                    </p>
                  )}
                  {decision ? (
                    <p>
                      <strong>Decision</strong> {formatDateTime(decision.decided_at)}: {decision.verdict.kind} by <code>{decision.decided_by}</code> ({decision.decided_by_role})
                      {decision.verdict.kind === 'Amended' && <span class="excerpt"> — “{decision.verdict.text}”</span>}
                      {decision.verdict.kind === 'Rejected' && <span> — {decision.verdict.reason}</span>}
                    </p>
                  ) : (
                    <p class="meta">No decision yet{diagnosis ? ` (${diagnosis.status})` : ''}.</p>
                  )}
                  <p>
                    <a href={`/review/${query.diagnosis_id}`}>The whole diagnosis</a>
                  </p>
                </li>
              ))}
            </ol>
          </section>
          <h2>Audit rows of this session</h2>
          <ChainStatus chain={chain} />
          {chain.status === 'ready' && rows.length === 0 && (
            <Empty>
              <p>No audit row for this session yet: the audit projection may be catching up.</p>
            </Empty>
          )}
          {rows.length > 0 && <AuditRows rows={rows} />}
        </>
      )}
    </section>
  );
}

export function EventsPage() {
  const { api } = useServices();
  const [events, setEvents] = useState<EventLine[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const [state, setState] = useState<{ status: 'loading' | 'ready' | 'error'; error?: unknown }>({ status: 'loading' });
  const [exporting, setExporting] = useState<string | null>(null);
  const LIMIT = 100;

  const load = async (after: string | null) => {
    setState({ status: 'loading' });
    try {
      const page = await eventsPage(api, after, LIMIT);
      setEvents((e) => (after ? [...e, ...page.events] : page.events));
      setNext(page.next);
      setDone(page.events.length < LIMIT);
      setState({ status: 'ready' });
    } catch (error) {
      setState({ status: 'error', error });
    }
  };
  useEffect(() => void load(null), []);

  const exportAll = async () => {
    setExporting('Exporting…');
    try {
      const lines: string[] = [];
      let after: string | null = null;
      for (;;) {
        const page: { events: EventLine[]; next: string | null } = await eventsPage(api, after, 1000);
        lines.push(...page.events.map((e) => JSON.stringify(e)));
        setExporting(`Exporting… ${lines.length} events`);
        if (page.events.length < 1000) break;
        after = page.next;
      }
      download(`casebook-events-${new Date().toISOString().slice(0, 10)}.ndjson`, lines.join('\n') + '\n', 'application/x-ndjson');
      setExporting(null);
    } catch (error) {
      setExporting(messageOf(error));
    }
  };

  return (
    <section class="page wide">
      <div class="page-head">
        <h1>Event stream</h1>
        <a href="/audit">← Audit trail</a>
      </div>
      <p class="lede">Every event of the practice’s log, in log order, as recorded.</p>
      <div class="toolbar">
        <button type="button" class="secondary" disabled={!!exporting && exporting.startsWith('Exporting')} onClick={() => void exportAll()}>
          Export all (JSON lines)
        </button>
        {exporting && <span class="meta">{exporting}</span>}
      </div>
      {state.status === 'error' && <ErrorMessage error={state.error} onRetry={() => void load(null)} />}
      {state.status === 'ready' && events.length === 0 && (
        <Empty>
          <p>No events yet.</p>
        </Empty>
      )}
      {events.length > 0 && (
        <div class="table-wrap" tabIndex={0} role="region" aria-label="Events">
          <table class="events">
            <thead>
              <tr>
                <th scope="col">Position</th>
                <th scope="col">When</th>
                <th scope="col">Event</th>
                <th scope="col">Stream</th>
                <th scope="col">Actor</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => {
                const actor = (e.metadata ?? {}) as { actor_id?: string; actor_role?: string };
                return (
                  <tr key={e.global_position}>
                    <td>{e.global_position}</td>
                    <td>{formatDateTime(e.recorded_at)}</td>
                    <td>
                      {e.event_type} <span class="meta">v{e.event_version}</span>
                    </td>
                    <td>
                      {e.aggregate_type} <code>{e.aggregate_id.slice(0, 8)}</code> #{e.sequence}
                    </td>
                    <td>{actor.actor_role ?? ''}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {state.status === 'loading' && <Loading />}
      {!done && next && state.status === 'ready' && (
        <button type="button" class="secondary" onClick={() => void load(next)}>
          Load more
        </button>
      )}
      {done && events.length > 0 && <Notice>That is the whole stream so far.</Notice>}
    </section>
  );
}

