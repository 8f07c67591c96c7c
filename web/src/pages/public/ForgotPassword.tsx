import { useId, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { Field, describedBy } from '../../components/Field';
import { ErrorMessage, Notice } from '../../components/Status';
import { useServices } from '../../services';
import { PASSWORD_RULES, passwordProblem } from './passwords';

export function ForgotPassword() {
  const services = useServices();
  const { query } = useLocation();
  const [step, setStep] = useState<'request' | 'confirm' | 'done'>('request');
  const [email, setEmail] = useState(query.email ?? '');
  const [code, setCode] = useState('');
  const [password, setPassword] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const ids = { email: useId(), code: useId(), password: useId() };

  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const request = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      await (await services.cognito()).forgotPassword(email.trim());
      setStep('confirm');
    });
  };

  const confirm = (event: Event) => {
    event.preventDefault();
    const local = passwordProblem(password);
    setProblem(local);
    if (local) return;
    void run(async () => {
      await (await services.cognito()).confirmForgotPassword(email.trim(), code.trim(), password);
      setStep('done');
    });
  };

  const hint = `Use ${PASSWORD_RULES.map((r) => r.text).join(', ')}.`;
  return (
    <section class="page narrow card">
      <h1>Reset your password</h1>
      {step === 'request' && (
        <form onSubmit={request}>
          <p>We’ll email you a code to set a new password.</p>
          <Field id={ids.email} label="Email">
            <input id={ids.email} name="email" type="email" autoComplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
          </Field>
          {error !== null && <ErrorMessage error={error} />}
          <button type="submit" class="primary" disabled={busy || !email}>
            {busy ? 'Sending…' : 'Email me a code'}
          </button>
        </form>
      )}
      {step === 'confirm' && (
        <form onSubmit={confirm} noValidate>
          <Notice>If {email} has an account, a code is on its way. It is valid for one hour.</Notice>
          <Field id={ids.code} label="Code from the email">
            <input id={ids.code} name="code" inputMode="numeric" autoComplete="one-time-code" required value={code} onInput={(e) => setCode(e.currentTarget.value)} />
          </Field>
          <Field id={ids.password} label="New password" hint={hint} error={problem}>
            <input id={ids.password} name="new-password" type="password" autoComplete="new-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} aria-describedby={describedBy(ids.password, hint, problem)} aria-invalid={!!problem} />
          </Field>
          {error !== null && <ErrorMessage error={error} />}
          <button type="submit" class="primary" disabled={busy || !code}>
            {busy ? 'Saving…' : 'Set the new password'}
          </button>
          <button type="button" class="link" onClick={() => setStep('request')}>
            Send another code
          </button>
        </form>
      )}
      {step === 'done' && (
        <Notice kind="success">
          <p>Your password is set.</p>
          <p>
            <a class="button" href={`/signin?email=${encodeURIComponent(email)}`}>
              Sign in
            </a>
          </p>
        </Notice>
      )}
      <p class="aside">
        <a href="/signin">Back to sign-in</a>
      </p>
    </section>
  );
}
