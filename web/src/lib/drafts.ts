// Half-written decisions, kept in sessionStorage per diagnosis on every keystroke: a session
// that expires mid-sentence sends the consultant to sign in, and the page they come back to
// restores what they wrote. Cleared when the decision is accepted.

export type DraftVerdict = 'amend' | 'reject';

export interface Draft {
  verdict: DraftVerdict;
  /** The amended text (amend). */
  text: string;
  /** The reason (required to reject, optional to amend). */
  reason: string;
  /** ms since the epoch. */
  savedAt: number;
}

const PREFIX = 'casebook.draft.';

type Store = Pick<Storage, 'getItem' | 'setItem' | 'removeItem' | 'key' | 'length'>;

const defaultStore = (): Store => sessionStorage;

export function draftKey(diagnosisId: string): string {
  return `${PREFIX}${diagnosisId}`;
}

export function saveDraft(diagnosisId: string, draft: Omit<Draft, 'savedAt'>, store: Store = defaultStore(), now = Date.now()): void {
  try {
    store.setItem(draftKey(diagnosisId), JSON.stringify({ ...draft, savedAt: now }));
  } catch {
    // Storage full or refused (private mode): the editor still holds the text.
  }
}

export function loadDraft(diagnosisId: string, store: Store = defaultStore()): Draft | null {
  const raw = store.getItem(draftKey(diagnosisId));
  if (!raw) return null;
  try {
    const draft = JSON.parse(raw) as Partial<Draft>;
    if (draft.verdict !== 'amend' && draft.verdict !== 'reject') return null;
    return {
      verdict: draft.verdict,
      text: typeof draft.text === 'string' ? draft.text : '',
      reason: typeof draft.reason === 'string' ? draft.reason : '',
      savedAt: typeof draft.savedAt === 'number' ? draft.savedAt : 0,
    };
  } catch {
    return null;
  }
}

export function clearDraft(diagnosisId: string, store: Store = defaultStore()): void {
  store.removeItem(draftKey(diagnosisId));
}

/** The ids of every diagnosis with a draft (the queue marks them). */
export function draftIds(store: Store = defaultStore()): string[] {
  const ids: string[] = [];
  for (let i = 0; i < store.length; i++) {
    const key = store.key(i);
    if (key?.startsWith(PREFIX)) ids.push(key.slice(PREFIX.length));
  }
  return ids;
}

/** Forgets every draft: an explicit sign-out, so the next person at this tab sees none. */
export function clearAllDrafts(store: Store = defaultStore()): void {
  for (const id of draftIds(store)) clearDraft(id, store);
}
