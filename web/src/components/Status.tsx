import type { ComponentChildren } from 'preact';
import { ApiError } from '../api/client';
import { CognitoError } from '../auth/cognito';

export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.userMessage;
  if (error instanceof CognitoError) return error.userMessage;
  if (error instanceof Error) return error.message;
  return String(error);
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p class="status loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" /> {label}
    </p>
  );
}

export function ErrorMessage({ error, onRetry, id }: { error: unknown; onRetry?: () => void; id?: string }) {
  return (
    <div class="status error" role="alert" id={id}>
      <p>{messageOf(error)}</p>
      {onRetry && (
        <button type="button" class="secondary" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="status empty">{children}</div>;
}

export function Notice({ children, kind = 'info' }: { children: ComponentChildren; kind?: 'info' | 'success' | 'warning' }) {
  return (
    <div class={`notice ${kind}`} role={kind === 'warning' ? 'alert' : 'status'}>
      {children}
    </div>
  );
}
