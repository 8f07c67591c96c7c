// The runtime configuration, fetched once at start from `/config.json` (the same build runs
// locally against the emulator and deployed against the real pool).

export interface RuntimeConfig {
  cognito: {
    endpoint: string;
    region: string;
    clientId: string;
  };
}

/** The configuration in `json`, or an error naming what is missing. */
export function parseConfig(json: unknown): RuntimeConfig {
  const cognito = (json as { cognito?: Record<string, unknown> } | null)?.cognito;
  const endpoint = cognito?.endpoint;
  const clientId = cognito?.clientId;
  const region = cognito?.region;
  // An absolute URL (Cognito, deployed) or a path on this origin (the local server's relay to
  // the AWS emulator, which answers no CORS preflight).
  if (typeof endpoint !== 'string' || !/^(https?:\/\/|\/)/.test(endpoint)) {
    throw new Error('config.json: cognito.endpoint must be an http(s) URL or a path on this origin');
  }
  if (typeof clientId !== 'string' || !clientId) throw new Error('config.json: cognito.clientId is required');
  return { cognito: { endpoint, clientId, region: typeof region === 'string' ? region : '' } };
}

export async function loadConfig(fetchImpl: typeof fetch = (...a) => fetch(...a)): Promise<RuntimeConfig> {
  const response = await fetchImpl('/config.json', { headers: { Accept: 'application/json' }, cache: 'no-store' });
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  return parseConfig(await response.json());
}
