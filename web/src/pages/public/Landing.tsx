import { useEffect, useId, useState } from 'preact/hooks';
import { ApiError } from '../../api/client';
import type { CommandAccepted, Plan } from '../../api/types';
import { Field, describedBy } from '../../components/Field';
import { ErrorMessage, Loading, Notice } from '../../components/Status';
import { uuidV4 } from '../../lib/ids';
import { useResource } from '../../lib/useResource';
import { useServices } from '../../services';

const PLAN_TEXT: Record<string, { name: string; blurb: string }> = {
  starter: { name: 'Starter', blurb: 'For a practice getting started: the full review desk and audit trail.' },
  professional: { name: 'Professional', blurb: 'The standard plan for a busy practice.' },
  enterprise: { name: 'Enterprise', blurb: 'For large practices with many consultants.' },
  cost_sensitive: {
    name: 'Cost-sensitive',
    blurb: 'The lowest cost per query: never routed to the strongest (most expensive) models.',
  },
};

export const planName = (plan: string) => PLAN_TEXT[plan]?.name ?? plan;

interface Form {
  practice: string;
  name: string;
  email: string;
  plan: string;
}

type FieldName = keyof Form;

/** The form field an API validation error names. */
export function signUpField(field: string | undefined): FieldName | null {
  switch (field) {
    case 'tenant_name':
    case 'practice_name':
      return 'practice';
    case 'name':
    case 'admin_name':
      return 'name';
    case 'email':
    case 'admin_email':
      return 'email';
    case 'plan':
      return 'plan';
    default:
      return null;
  }
}

export function Landing() {
  const { api } = useServices();
  const plans = useResource((signal) => api.get<Plan[]>('/v1/plans', { public: true, signal }), []);
  const [form, setForm] = useState<Form>({ practice: '', name: '', email: '', plan: '' });
  // One key per distinct request: a retry of the same form lands once, an edited form is new.
  const [attempt, setAttempt] = useState<{ key: string; body: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [fieldErrors, setFieldErrors] = useState<Partial<Record<FieldName, string>>>({});
  const [done, setDone] = useState<{ email: string } | null>(null);
  const ids = { practice: useId(), name: useId(), email: useId(), plan: useId() };

  const ready = plans.status === 'ready';
  useEffect(() => {
    if (ready) {
      if (!form.plan && plans.data[0]) setForm((f) => ({ ...f, plan: plans.data[0]?.plan ?? '' }));
      // The browser test reads this mark: navigation start → sign-up usable.
      performance.mark('casebook:signup-interactive');
    }
  }, [ready]);

  const set = (name: FieldName) => (event: Event) => {
    const value = (event.currentTarget as HTMLInputElement | HTMLSelectElement).value;
    setForm((f) => ({ ...f, [name]: value }));
    setFieldErrors((e) => ({ ...e, [name]: undefined }));
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    const body = { practice_name: form.practice.trim(), admin_email: form.email.trim(), admin_name: form.name.trim(), plan: form.plan };
    const text = JSON.stringify(body);
    const key = attempt?.body === text ? attempt.key : uuidV4();
    setAttempt({ key, body: text });
    setBusy(true);
    setError(null);
    try {
      await api.post<CommandAccepted>('/v1/signup', body, { public: true, idempotencyKey: key });
      setDone({ email: body.admin_email });
    } catch (err) {
      const field = err instanceof ApiError ? (err.code === 'email_taken' ? 'email' : signUpField(err.field)) : null;
      if (field && err instanceof ApiError) setFieldErrors({ [field]: err.userMessage });
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="landing">
      <section class="hero">
        <h1>Every answer your practice gives, drafted in seconds and signed off by a consultant.</h1>
        <p class="lede">
          Casebook drafts a diagnosis for each customer query, grounded in your practice’s own past judgments. A consultant
          approves, amends or rejects it before the customer sees a word — and every approved answer teaches the next
          draft.
        </p>
        <ul class="features">
          <li>
            <strong>Review desk.</strong> The queue, oldest first, with the draft, its findings, confidence, the precedents it
            drew on and what it cost. Approve, amend or reject from the keyboard.
          </li>
          <li>
            <strong>Customer portal.</strong> Customers open a session, attach files, ask, and read the released answer.
          </li>
          <li>
            <strong>Audit trail.</strong> Every request, decision and approval is an event in an append-only log, hash-chained
            per practice, with a filterable audit table and an export.
          </li>
          <li>
            <strong>Your data, your practice.</strong> Each practice is isolated end to end; a customer sees only what a
            consultant released.
          </li>
        </ul>
      </section>

      <section class="plans" aria-labelledby="plans-title">
        <h2 id="plans-title">Plans</h2>
        {plans.status === 'loading' && <Loading label="Loading plans…" />}
        {plans.status === 'error' && <ErrorMessage error={plans.error} onRetry={plans.reload} />}
        {plans.data && (
          <ul class="plan-list">
            {plans.data.map((plan) => (
              <li key={plan.plan} class={`plan-card${form.plan === plan.plan ? ' chosen' : ''}`}>
                <h3>{planName(plan.plan)}</h3>
                <p>{PLAN_TEXT[plan.plan]?.blurb ?? ''}</p>
                <p class="limits">
                  {plan.requests_per_second} requests/s sustained, bursts of {plan.burst}
                </p>
                <button type="button" class="secondary" aria-pressed={form.plan === plan.plan} onClick={() => setForm((f) => ({ ...f, plan: plan.plan }))}>
                  {form.plan === plan.plan ? 'Chosen' : `Choose ${planName(plan.plan)}`}
                </button>
              </li>
            ))}
          </ul>
        )}
      </section>

      <section class="signup card" aria-labelledby="signup-title">
        <h2 id="signup-title">Sign up your practice</h2>
        {done ? (
          <Notice kind="success">
            <p>
              <strong>Your practice is signed up.</strong> We’ve emailed <strong>{done.email}</strong> a temporary password.
            </p>
            <p>
              <a class="button" href={`/signin?email=${encodeURIComponent(done.email)}`}>
                Sign in
              </a>
            </p>
          </Notice>
        ) : (
          <form onSubmit={(e) => void submit(e)} noValidate>
            <Field id={ids.practice} label="Practice name" error={fieldErrors.practice}>
              <input id={ids.practice} name="practice" required autoComplete="organization" value={form.practice} onInput={set('practice')} aria-invalid={!!fieldErrors.practice} aria-describedby={describedBy(ids.practice, undefined, fieldErrors.practice)} />
            </Field>
            <Field id={ids.name} label="Your name" error={fieldErrors.name}>
              <input id={ids.name} name="name" required autoComplete="name" value={form.name} onInput={set('name')} aria-invalid={!!fieldErrors.name} aria-describedby={describedBy(ids.name, undefined, fieldErrors.name)} />
            </Field>
            <Field id={ids.email} label="Your work email" hint="You’ll sign in with it; you become the practice’s first admin." error={fieldErrors.email}>
              <input id={ids.email} name="email" type="email" required autoComplete="email" value={form.email} onInput={set('email')} aria-invalid={!!fieldErrors.email} aria-describedby={describedBy(ids.email, 'hint', fieldErrors.email)} />
            </Field>
            <Field id={ids.plan} label="Plan" error={fieldErrors.plan}>
              <select id={ids.plan} name="plan" value={form.plan} onChange={set('plan')} disabled={!ready}>
                {(plans.data ?? []).map((plan) => (
                  <option key={plan.plan} value={plan.plan}>
                    {planName(plan.plan)}
                  </option>
                ))}
              </select>
            </Field>
            {error !== null && <ErrorMessage error={error} />}
            <button type="submit" class="primary" disabled={!ready || busy}>
              {busy ? 'Signing up…' : 'Sign up'}
            </button>
            <p class="aside">
              Already with a practice? <a href="/signin">Sign in</a>.
            </p>
          </form>
        )}
      </section>
    </div>
  );
}
