import { useEffect, useId, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { homeFor } from '../../auth/token';
import { Field, describedBy } from '../../components/Field';
import { ErrorMessage } from '../../components/Status';
import { useServices } from '../../services';
import { safeNext } from './nav';
import { PASSWORD_RULES, passwordProblem } from './passwords';

/** The first sign-in: Cognito asked for a password of the user's own (NEW_PASSWORD_REQUIRED). */
export function NewPassword() {
  const services = useServices();
  const { query, route } = useLocation();
  // The challenge as it was when the page opened: it is cleared on success, and the page must
  // not then send the (now signed-in) user back to sign in while the next page loads.
  const [challenge] = useState(() => services.challenge);
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const passwordId = useId();
  const confirmId = useId();
  const next = safeNext(query.next);

  useEffect(() => {
    // A reload loses the challenge (it lives in memory only): start again from sign-in.
    if (!challenge) route('/signin', true);
  }, []);
  if (!challenge) return null;

  const submit = async (event: Event) => {
    event.preventDefault();
    const local = passwordProblem(password, confirm);
    setProblem(local);
    if (local) return;
    setBusy(true);
    setError(null);
    try {
      const tokens = await (await services.cognito()).completeNewPassword(challenge.username, challenge.session, password);
      services.challenge = null;
      services.session.signIn(tokens);
      route(next ?? homeFor(services.session.claims?.roles ?? []), true);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  const hint = `Use ${PASSWORD_RULES.map((r) => r.text).join(', ')}.`;
  return (
    <section class="page narrow card">
      <h1>Choose your password</h1>
      <p>
        Welcome, <strong>{challenge.username}</strong>. You signed in with a temporary password; choose your own to continue.
      </p>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <input type="email" name="username" autoComplete="username" value={challenge.username} hidden readOnly />
        <Field id={passwordId} label="New password" hint={hint} error={problem}>
          <input id={passwordId} name="new-password" type="password" autoComplete="new-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} aria-describedby={describedBy(passwordId, hint, problem)} aria-invalid={!!problem} />
        </Field>
        <Field id={confirmId} label="Repeat the new password">
          <input id={confirmId} name="confirm-password" type="password" autoComplete="new-password" required value={confirm} onInput={(e) => setConfirm(e.currentTarget.value)} />
        </Field>
        {error !== null && <ErrorMessage error={error} />}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Saving…' : 'Set password and continue'}
        </button>
      </form>
    </section>
  );
}
