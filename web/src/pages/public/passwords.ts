// The pool's password policy (infra/template.yaml, the local pool alike), checked before asking
// Cognito so the form can say what is missing; Cognito's own answer stays the authority.

export const PASSWORD_RULES: readonly { test: (p: string) => boolean; text: string }[] = [
  { test: (p) => p.length >= 12, text: 'at least 12 characters' },
  { test: (p) => /[a-z]/.test(p), text: 'a lowercase letter' },
  { test: (p) => /[A-Z]/.test(p), text: 'an uppercase letter' },
  { test: (p) => /\d/.test(p), text: 'a number' },
  { test: (p) => /[^A-Za-z0-9]/.test(p), text: 'a symbol' },
];

/** What the password still lacks, or null when it meets the policy. */
export function passwordProblem(password: string, confirm?: string): string | null {
  const missing = PASSWORD_RULES.filter((r) => !r.test(password)).map((r) => r.text);
  if (missing.length) return `The password needs ${missing.join(', ')}.`;
  if (confirm !== undefined && confirm !== password) return 'The two passwords differ.';
  return null;
}
