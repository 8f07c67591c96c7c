import { useId, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { homeFor } from '../../auth/token';
import { Field } from '../../components/Field';
import { ErrorMessage, Notice } from '../../components/Status';
import { useServices } from '../../services';
import { safeNext } from './nav';

export function SignIn() {
  const services = useServices();
  const { query, route } = useLocation();
  const [email, setEmail] = useState(query.email ?? '');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const emailId = useId();
  const passwordId = useId();
  const next = safeNext(query.next);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const cognito = await services.cognito();
      const result = await cognito.signIn(email.trim(), password);
      if (result.kind === 'new_password_required') {
        services.challenge = { username: result.username, session: result.session };
        route(`/signin/new-password${next ? `?next=${encodeURIComponent(next)}` : ''}`);
        return;
      }
      services.session.signIn(result.tokens);
      route(next ?? homeFor(services.session.claims?.roles ?? []), true);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <section class="page narrow card">
      <h1>Sign in</h1>
      {query.expired === '1' && (
        <Notice kind="warning">Your session expired. Sign in again to carry on where you were; anything you were writing is kept.</Notice>
      )}
      <form onSubmit={(e) => void submit(e)}>
        <Field id={emailId} label="Email">
          <input id={emailId} name="email" type="email" autoComplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </Field>
        <Field id={passwordId} label="Password">
          <input id={passwordId} name="password" type="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </Field>
        {error !== null && <ErrorMessage error={error} />}
        <button type="submit" class="primary" disabled={busy || !email || !password}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p class="aside">
        <a href={`/forgot-password${email ? `?email=${encodeURIComponent(email)}` : ''}`}>Forgot your password?</a> · New practice?{' '}
        <a href="/">Sign up</a>
      </p>
    </section>
  );
}
