// The app's services, made once at start and handed to components through context.

import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import { ApiClient } from './api/client';
import { CognitoClient } from './auth/cognito';
import { SessionStore, type StoredSession } from './auth/session';
import type { Claims } from './auth/token';
import { loadConfig, type RuntimeConfig } from './config';

export interface Services {
  session: SessionStore;
  api: ApiClient;
  /** Resolves once `/config.json` is loaded. */
  cognito: () => Promise<CognitoClient>;
  /** A pending first sign-in: Cognito asked for a new password. */
  challenge: { username: string; session: string } | null;
}

export function createServices(configPromise: Promise<RuntimeConfig> = loadConfig()): Services {
  const session = new SessionStore(null);
  const cognitoPromise = configPromise.then((config) => {
    const client = new CognitoClient(config.cognito);
    session.setCognito(client);
    return client;
  });
  // Surface a broken config where it is used (sign-in), not as an unhandled rejection.
  cognitoPromise.catch(() => undefined);
  return {
    session,
    api: new ApiClient(session),
    cognito: () => cognitoPromise,
    challenge: null,
  };
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (!services) throw new Error('useServices outside ServicesContext');
  return services;
}

/** The signed-in user's claims, re-rendering when the session changes. */
export function useClaims(): Claims | null {
  const { session } = useServices();
  const [, setVersion] = useState<StoredSession | null>(session.current);
  useEffect(() => session.subscribe((s) => setVersion(s)), [session]);
  return session.claims;
}
