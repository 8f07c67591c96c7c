import type { ComponentType } from 'preact';
import { useEffect } from 'preact/hooks';
import { ErrorBoundary, LocationProvider, Route, Router, lazy, useLocation } from 'preact-iso';
import { Guard, signInUrl } from './components/Guard';
import { homeFor, type Role } from './auth/token';
import { clearAllDrafts } from './lib/drafts';
import { Landing } from './pages/public/Landing';
import { SignIn } from './pages/public/SignIn';
import { NewPassword } from './pages/public/NewPassword';
import { ForgotPassword } from './pages/public/ForgotPassword';
import { ServicesContext, useClaims, useServices, type Services } from './services';

// Each area is its own chunk, loaded when one of its pages is first visited: the first load
// carries the public pages only.
const consultant = () => import('./pages/consultant');
const customer = () => import('./pages/customer');
const auditor = () => import('./pages/auditor');
const admin = () => import('./pages/admin');

const ReviewQueue = lazy(() => consultant().then((m) => m.ReviewQueue));
const DiagnosisReview = lazy(() => consultant().then((m) => m.DiagnosisReview));
const Judgments = lazy(() => consultant().then((m) => m.Judgments));
const Portal = lazy(() => customer().then((m) => m.Portal));
const SessionPage = lazy(() => customer().then((m) => m.SessionPage));
const AnswerPage = lazy(() => customer().then((m) => m.AnswerPage));
const AuditTable = lazy(() => auditor().then((m) => m.AuditTable));
const SessionTrail = lazy(() => auditor().then((m) => m.SessionTrail));
const EventsPage = lazy(() => auditor().then((m) => m.EventsPage));
const People = lazy(() => admin().then((m) => m.People));
const Practice = lazy(() => admin().then((m) => m.Practice));

/** `Page` behind a role guard. Pages read their parameters with `useRoute`. */
function guarded(roles: readonly Role[], Page: ComponentType) {
  const Guarded = () => (
    <Guard roles={roles}>
      <Page />
    </Guard>
  );
  return Guarded;
}

const Pages = {
  ReviewQueue: guarded(['consultant'], ReviewQueue),
  DiagnosisReview: guarded(['consultant', 'auditor'], DiagnosisReview),
  Judgments: guarded(['consultant'], Judgments),
  Portal: guarded(['customer'], Portal),
  SessionPage: guarded(['customer'], SessionPage),
  AnswerPage: guarded(['customer'], AnswerPage),
  AuditTable: guarded(['auditor'], AuditTable),
  SessionTrail: guarded(['auditor'], SessionTrail),
  EventsPage: guarded(['auditor'], EventsPage),
  People: guarded(['admin'], People),
  Practice: guarded(['admin', 'auditor'], Practice),
};

const NAV: { href: string; label: string; roles: readonly Role[] }[] = [
  { href: '/review', label: 'Review desk', roles: ['consultant'] },
  { href: '/judgments', label: 'Judgments', roles: ['consultant'] },
  { href: '/portal', label: 'My sessions', roles: ['customer'] },
  { href: '/audit', label: 'Audit', roles: ['auditor'] },
  { href: '/audit/events', label: 'Events', roles: ['auditor'] },
  { href: '/admin/people', label: 'People', roles: ['admin'] },
  { href: '/admin/practice', label: 'Plan & usage', roles: ['admin', 'auditor'] },
];

function Header() {
  const services = useServices();
  const claims = useClaims();
  const { path, route } = useLocation();
  const signOut = async () => {
    const access = services.session.current?.accessToken;
    try {
      if (access) await (await services.cognito()).signOut(access);
    } catch {
      // Signing out here goes on regardless: the tokens are forgotten below.
    }
    services.session.end('signed_out');
    clearAllDrafts();
    route('/signin');
  };
  const links = claims ? NAV.filter((n) => n.roles.some((r) => claims.roles.includes(r))) : [];
  return (
    <header class="top">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <a class="brand" href={claims ? homeFor(claims.roles) : '/'}>
        Casebook
      </a>
      <nav aria-label="Main">
        <ul>
          {links.map((link) => (
            <li key={link.href}>
              <a href={link.href} aria-current={path === link.href || (link.href !== '/audit' && path.startsWith(`${link.href}/`)) ? 'page' : undefined}>
                {link.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <div class="account">
        {claims ? (
          <>
            <span class="who" title={claims.roles.join(', ')}>
              {claims.email}
            </span>
            <button type="button" class="link" onClick={() => void signOut()}>
              Sign out
            </button>
          </>
        ) : (
          path !== '/signin' && <a href="/signin">Sign in</a>
        )}
      </div>
    </header>
  );
}

/** Sends the user to sign-in when the session expires, keeping where they were. */
function ExpiryRedirect() {
  const { session } = useServices();
  const { url, route } = useLocation();
  useEffect(
    () =>
      session.subscribe((current, reason) => {
        if (!current && reason === 'expired') route(signInUrl(url, true));
      }),
    [session, url, route],
  );
  return null;
}

function NotFound() {
  return (
    <section class="page narrow">
      <h1>Page not found</h1>
      <p>
        <a href="/">Back to the start</a>
      </p>
    </section>
  );
}

function NoRole() {
  const claims = useClaims();
  return (
    <section class="page narrow">
      <h1>No role yet</h1>
      <p>
        {claims?.email ?? 'Your account'} has no role in a practice yet. Ask your practice’s admin to give you one,
        then sign in again.
      </p>
    </section>
  );
}

export function App({ services }: { services: Services }) {
  return (
    <ServicesContext.Provider value={services}>
      <LocationProvider>
        <Header />
        <ExpiryRedirect />
        <main id="main" tabIndex={-1}>
          <ErrorBoundary>
            <Router>
              <Route path="/" component={Landing} />
              <Route path="/signin" component={SignIn} />
              <Route path="/signin/new-password" component={NewPassword} />
              <Route path="/forgot-password" component={ForgotPassword} />
              <Route path="/no-role" component={NoRole} />
              <Route path="/review" component={Pages.ReviewQueue} />
              <Route path="/review/:id" component={Pages.DiagnosisReview} />
              <Route path="/judgments" component={Pages.Judgments} />
              <Route path="/portal" component={Pages.Portal} />
              <Route path="/portal/sessions/:id" component={Pages.SessionPage} />
              <Route path="/portal/diagnoses/:id" component={Pages.AnswerPage} />
              <Route path="/audit" component={Pages.AuditTable} />
              <Route path="/audit/sessions/:id" component={Pages.SessionTrail} />
              <Route path="/audit/events" component={Pages.EventsPage} />
              <Route path="/admin/people" component={Pages.People} />
              <Route path="/admin/practice" component={Pages.Practice} />
              <Route default component={NotFound} />
            </Router>
          </ErrorBoundary>
        </main>
      </LocationProvider>
    </ServicesContext.Provider>
  );
}
