// Loading state for one request: loading → ready | error, with reload.

import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export type Resource<T> =
  | { status: 'loading'; data: T | undefined; error: undefined; reload: () => void }
  | { status: 'ready'; data: T; error: undefined; reload: () => void }
  | { status: 'error'; data: T | undefined; error: unknown; reload: () => void };

export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Resource<T> {
  const [state, setState] = useState<{ status: 'loading' | 'ready' | 'error'; data?: T; error?: unknown }>({
    status: 'loading',
  });
  const [nonce, setNonce] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ status: 'loading', data: s.data }));
    loadRef.current(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ status: 'ready', data });
      },
      (error: unknown) => {
        if (!controller.signal.aborted) setState((s) => ({ status: 'error', data: s.data, error }));
      },
    );
    return () => controller.abort();
    // The caller lists the deps, as with useEffect.
  }, [...deps, nonce]);
  const reload = useCallback(() => setNonce((n) => n + 1), []);
  return { ...state, reload } as Resource<T>;
}

/**
 * `load`, tried again while it fails with a 404 for up to `forMs`: a resource just created
 * shows in its read model a moment after the command that created it.
 */
export async function untilFound<T>(load: () => Promise<T>, forMs = 15_000, everyMs = 750, signal?: AbortSignal): Promise<T> {
  const started = Date.now();
  for (;;) {
    try {
      return await load();
    } catch (err) {
      const notFound = typeof err === 'object' && err !== null && 'status' in err && (err).status === 404;
      if (!notFound || Date.now() - started > forMs || signal?.aborted) throw err;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }
}
