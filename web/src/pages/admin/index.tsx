// The admin's area (one lazily loaded chunk): the practice's people, its plan and usage.

import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { ApiError } from '../../api/client';
import type { CommandAccepted, TenantView, TokenBudget, UsageReport, UserView } from '../../api/types';
import { ROLES } from '../../auth/token';
import { Field, describedBy } from '../../components/Field';
import { Empty, ErrorMessage, Loading, Notice } from '../../components/Status';
import { budgetLevel, budgetShare, budgetSummary, formatDay } from '../../lib/budget';
import { formatDateTime, formatMicros, utcDay } from '../../lib/format';
import { KeyForBody } from '../../lib/idempotency';
import { dateRangeProblem, toQueryString } from '../../lib/query';
import { useResource } from '../../lib/useResource';
import { useClaims, useServices } from '../../services';
import { UsageChart } from './UsageChart';

const STATUS_TEXT: Record<string, string> = {
  pending: 'Invited (account being created)',
  active: 'Active',
  disabled: 'Disabled',
};

export function People() {
  const { api } = useServices();
  const users = useResource((signal) => api.get<UserView[]>('/v1/users', { signal }), []);
  const [notice, setNotice] = useState<string | null>(null);
  // The list is a read model that follows the commands a moment later: after a change, reload
  // until it shows (at most ten times, a second apart).
  const [awaiting, setAwaiting] = useState<{ until: (users: UserView[]) => boolean; tries: number } | null>(null);
  useEffect(() => {
    if (!awaiting || users.status !== 'ready') return;
    if (awaiting.until(users.data) || awaiting.tries >= 10) {
      setAwaiting(null);
      return;
    }
    const timer = setTimeout(() => {
      setAwaiting((a) => (a ? { ...a, tries: a.tries + 1 } : a));
      users.reload();
    }, 1000);
    return () => clearTimeout(timer);
  }, [awaiting, users.status, users.data]);
  const changed = (message: string, until: (users: UserView[]) => boolean) => {
    setNotice(message);
    setAwaiting({ until, tries: 0 });
    users.reload();
  };
  return (
    <section class="page wide">
      <h1>People</h1>
      <p class="lede">Everyone in the practice, with their role. Invitations email a temporary password; the first sign-in chooses their own.</p>
      {notice && <Notice kind="success">{notice}</Notice>}
      <div class="two-col">
        <div>
          {users.status === 'loading' && !users.data && <Loading />}
          {users.status === 'error' && <ErrorMessage error={users.error} onRetry={users.reload} />}
          {users.data && users.data.length === 0 && (
            <Empty>
              <p>No one yet.</p>
            </Empty>
          )}
          {users.data && users.data.length > 0 && (
            <ul class="people" aria-label="Members">
              {users.data.map((user) => (
                <Member key={user.email} user={user} onChanged={changed} />
              ))}
            </ul>
          )}
        </div>
        <Invite onInvited={changed} />
      </div>
    </section>
  );
}

function Member({ user, onChanged }: { user: UserView; onChanged: (message: string, until: (users: UserView[]) => boolean) => void }) {
  const { api } = useServices();
  const claims = useClaims();
  const [role, setRole] = useState(user.role);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const roleId = useId();
  const path = `/v1/users/${encodeURIComponent(user.email)}`;
  const self = claims?.email === user.email;

  const act = async (action: () => Promise<unknown>, message: string, until: (u: UserView) => boolean) => {
    setBusy(true);
    setError(null);
    try {
      await action();
      onChanged(message, (users) => users.some((u) => u.email === user.email && until(u)));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <li class={`card member status-${user.status}`} data-email={user.email}>
      <div class="member-head">
        <strong>{user.name}</strong> <span class="meta">{user.email}</span>
        {self && <span class="badge">you</span>}
      </div>
      <p class="meta">
        {STATUS_TEXT[user.status] ?? user.status} · invited {formatDateTime(user.invited_at)}
      </p>
      <div class="member-actions">
        <label for={roleId}>Role</label>
        <select id={roleId} value={role} disabled={busy} onChange={(e) => setRole(e.currentTarget.value)}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
        <button type="button" class="secondary" disabled={busy || role === user.role} onClick={() => void act(() => api.put<CommandAccepted>(`${path}/role`, { role }), `${user.email} is now ${role}. Their earlier tokens stop working.`, (u) => u.role === role)}>
          Change role
        </button>
        {user.status === 'disabled' ? (
          <button type="button" class="secondary" disabled={busy} onClick={() => void act(() => api.post<CommandAccepted>(`${path}/enable`), `${user.email} can sign in again.`, (u) => u.status !== 'disabled')}>
            Enable
          </button>
        ) : (
          <button type="button" class="danger" disabled={busy || self} title={self ? 'You can’t disable yourself' : undefined} onClick={() => void act(() => api.post<CommandAccepted>(`${path}/disable`), `${user.email} is disabled and signed out everywhere.`, (u) => u.status === 'disabled')}>
            Disable
          </button>
        )}
      </div>
      {error !== null && <ErrorMessage error={error} />}
    </li>
  );
}

function Invite({ onInvited }: { onInvited: (message: string, until: (users: UserView[]) => boolean) => void }) {
  const { api } = useServices();
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [role, setRole] = useState('customer');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [field, setField] = useState<{ name: string; message: string } | null>(null);
  const keys = useRef(new KeyForBody());
  const ids = { email: useId(), name: useId(), role: useId() };

  const submit = async (event: Event) => {
    event.preventDefault();
    const body = { email: email.trim(), name: name.trim(), role };
    setBusy(true);
    setError(null);
    setField(null);
    try {
      await api.post<CommandAccepted>('/v1/users', body, { idempotencyKey: keys.current.keyFor(body) });
      keys.current.reset();
      setEmail('');
      setName('');
      onInvited(`Invited ${body.email} as ${role}. They’ll get an email with a temporary password.`, (users) =>
        users.some((u) => u.email.toLowerCase() === body.email.toLowerCase()),
      );
    } catch (err) {
      if (err instanceof ApiError && (err.code === 'user_exists' || err.code === 'email_taken')) setField({ name: 'email', message: err.userMessage });
      else if (err instanceof ApiError && err.code === 'validation_failed' && err.field && ['email', 'name', 'role'].includes(err.field)) setField({ name: err.field, message: err.userMessage });
      else setError(err);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (n: string) => (field?.name === n ? field.message : null);
  return (
    <section class="card" aria-labelledby="invite-title">
      <h2 id="invite-title">Invite someone</h2>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <Field id={ids.email} label="Email" error={fieldError('email')}>
          <input id={ids.email} name="email" type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} aria-describedby={describedBy(ids.email, undefined, fieldError('email'))} />
        </Field>
        <Field id={ids.name} label="Name" error={fieldError('name')}>
          <input id={ids.name} name="name" required value={name} onInput={(e) => setName(e.currentTarget.value)} aria-describedby={describedBy(ids.name, undefined, fieldError('name'))} />
        </Field>
        <Field id={ids.role} label="Role" error={fieldError('role')}>
          <select id={ids.role} name="role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </Field>
        {error !== null && <ErrorMessage error={error} />}
        <button type="submit" class="primary" disabled={busy || !email.trim() || !name.trim()}>
          {busy ? 'Inviting…' : 'Send invitation'}
        </button>
      </form>
    </section>
  );
}

/** The body of `POST /v1/tenant/settings`: exactly one setting. */
/** How the practice's standing reads on its settings page. */
export function tenantStatus(tenant: Pick<TenantView, 'status' | 'suspended_reason'>): string {
  switch (tenant.status) {
    case 'active':
      return 'Active';
    case 'suspended':
      return tenant.suspended_reason ? `Suspended: ${tenant.suspended_reason}` : 'Suspended';
    case 'erased':
      return 'Erased';
  }
}

export function settingsBody(setting: 'threshold' | 'policy', value: string): Record<string, unknown> {
  if (setting === 'policy') return { model_policy: value };
  return { auto_resolve_threshold: value === '' ? null : Number(value) / 100 };
}

function Settings({ tenant, onChanged }: { tenant: TenantView; onChanged: () => void }) {
  const { api } = useServices();
  const [threshold, setThreshold] = useState(tenant.auto_resolve_threshold === null ? '' : String(Math.round(tenant.auto_resolve_threshold * 100)));
  const [policy, setPolicy] = useState(tenant.model_policy);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const ids = { threshold: useId(), policy: useId() };

  const save = async (setting: 'threshold' | 'policy') => {
    setBusy(true);
    setError(null);
    setSaved(null);
    try {
      await api.post<CommandAccepted>('/v1/tenant/settings', settingsBody(setting, setting === 'policy' ? policy : threshold));
      setSaved(setting === 'policy' ? 'Model policy saved.' : 'Auto-approval saved.');
      onChanged();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="settings">
      <h3>Settings</h3>
      {saved && <Notice kind="success">{saved}</Notice>}
      <div class="filters">
        <div class="field">
          <label for={ids.threshold}>Approve without review at confidence (%)</label>
          <input id={ids.threshold} type="number" min={0} max={100} step={1} placeholder="Never" value={threshold} onInput={(e) => setThreshold(e.currentTarget.value)} />
        </div>
        <div class="filter-actions">
          <button type="button" class="secondary" disabled={busy} onClick={() => void save('threshold')}>
            Save
          </button>
        </div>
        <div class="field">
          <label for={ids.policy}>Models allowed</label>
          <select id={ids.policy} value={policy} onChange={(e) => setPolicy(e.currentTarget.value)}>
            <option value="by_plan">By plan</option>
            <option value="open_weights_only">Open-weights models only</option>
          </select>
        </div>
        <div class="filter-actions">
          <button type="button" class="secondary" disabled={busy} onClick={() => void save('policy')}>
            Save
          </button>
        </div>
      </div>
      {error !== null && <ErrorMessage error={error} />}
    </div>
  );
}

/** This month's token budget: used, left, and when it renews; a warning from 80 %. */
export function BudgetCard({ budget }: { budget: TokenBudget }) {
  const level = budgetLevel(budget);
  return (
    <section class="card" aria-labelledby="budget-title">
      <h2 id="budget-title">Monthly token budget ({budget.month}, UTC)</h2>
      <progress max={1} value={budgetShare(budget)} aria-label="Share of the budget used" />
      <p>{budgetSummary(budget)}</p>
      {level === 'low' && (
        <Notice kind="warning">
          <p>Over 80 % of this month’s budget is used. When it is spent, new questions wait until {formatDay(budget.renews_on)} or a plan upgrade.</p>
        </Notice>
      )}
      {level === 'spent' && (
        <Notice kind="warning">
          <p>This month’s budget is spent: new questions are deferred until it renews on {formatDay(budget.renews_on)}, or until the plan is upgraded.</p>
        </Notice>
      )}
    </section>
  );
}

export function Practice() {
  const { api } = useServices();
  const isAdmin = !!useClaims()?.roles.includes('admin');
  const tenant = useResource((signal) => api.get<TenantView>('/v1/tenant', { signal }), []);
  const [range, setRange] = useState({ from: utcDay(-29), to: utcDay(0) });
  const [form, setForm] = useState(range);
  const [problem, setProblem] = useState<string | null>(null);
  const usage = useResource((signal) => api.get<UsageReport>('/v1/usage', { query: toQueryString(range), signal }), [range.from, range.to]);
  const ids = { from: useId(), to: useId() };
  const t = tenant.data;

  const apply = (event: Event) => {
    event.preventDefault();
    const local = dateRangeProblem(form.from, form.to);
    setProblem(local);
    if (!local) setRange(form);
  };

  return (
    <section class="page wide">
      <h1>Plan and usage</h1>
      {tenant.status === 'loading' && <Loading />}
      {tenant.status === 'error' && <ErrorMessage error={tenant.error} onRetry={tenant.reload} />}
      {t && (
        <section class="card" aria-labelledby="tenant-title">
          <h2 id="tenant-title">{t.name}</h2>
          <dl class="facts">
            <div>
              <dt>Plan</dt>
              <dd>{t.plan.charAt(0).toUpperCase() + t.plan.slice(1).replace('_', '-')}</dd>
            </div>
            <div>
              <dt>Status</dt>
              <dd>{tenantStatus(t)}</dd>
            </div>
            <div>
              <dt>Models allowed</dt>
              <dd>{t.model_policy === 'open_weights_only' ? 'Open-weights models only' : 'By plan'}</dd>
            </div>
            <div>
              <dt>Auto-approval</dt>
              <dd>{t.auto_resolve_threshold === null ? 'Never: every proposal is reviewed' : `At or above ${Math.round(t.auto_resolve_threshold * 100)} % confidence`}</dd>
            </div>
            <div>
              <dt>Since</dt>
              <dd>{formatDateTime(t.onboarded_at)}</dd>
            </div>
          </dl>
          <p class="meta">Plan changes go through Casebook’s operators.</p>
          {isAdmin && <Settings tenant={t} onChanged={tenant.reload} />}
        </section>
      )}
      {usage.data?.budget && <BudgetCard budget={usage.data.budget} />}
      <section class="card" aria-labelledby="usage-title">
        <h2 id="usage-title">Usage</h2>
        <form class="filters" onSubmit={apply} aria-label="Usage period">
          <div class="field">
            <label for={ids.from}>From (UTC)</label>
            <input id={ids.from} type="date" value={form.from} onInput={(e) => setForm((f) => ({ ...f, from: e.currentTarget.value }))} aria-describedby={describedBy(ids.from, undefined, problem)} />
          </div>
          <div class="field">
            <label for={ids.to}>To (UTC, inclusive)</label>
            <input id={ids.to} type="date" value={form.to} onInput={(e) => setForm((f) => ({ ...f, to: e.currentTarget.value }))} />
          </div>
          <div class="filter-actions">
            <button type="submit" class="secondary">
              Show
            </button>
          </div>
          {problem && (
            <p class="field-error" id={`${ids.from}-error`} role="alert">
              {problem}
            </p>
          )}
        </form>
        {usage.status === 'loading' && !usage.data && <Loading />}
        {usage.status === 'error' && <ErrorMessage error={usage.error} onRetry={usage.reload} />}
        {usage.data && (
          <>
            <p>
              <strong>{usage.data.total_proposals}</strong> proposals, <strong>{formatMicros(usage.data.total_cost_usd_micros)}</strong> from {usage.data.from} to{' '}
              {usage.data.to}.
            </p>
            {usage.data.days.length === 0 ? (
              <Empty>
                <p>No model usage in this period.</p>
              </Empty>
            ) : (
              <UsageChart report={usage.data} />
            )}
          </>
        )}
      </section>
    </section>
  );
}
