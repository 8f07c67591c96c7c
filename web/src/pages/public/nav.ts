/** A same-app path to go to after signing in; anything else (another origin, `//x`) is dropped. */
export function safeNext(next: string | undefined): string | null {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return null;
  if (next.startsWith('/signin')) return null;
  return next;
}
