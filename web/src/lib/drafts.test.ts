import { describe, expect, it } from 'vitest';
import { clearAllDrafts, clearDraft, draftIds, loadDraft, saveDraft } from './drafts';
import { memoryStorage } from '../test/helpers';

describe('drafts', () => {
  it('keeps a half-written amendment per diagnosis', () => {
    const store = memoryStorage();
    saveDraft('d1', { verdict: 'amend', text: 'Corrected text', reason: '' }, store, 42);
    saveDraft('d2', { verdict: 'reject', text: '', reason: 'Out of scope' }, store, 43);
    expect(loadDraft('d1', store)).toEqual({ verdict: 'amend', text: 'Corrected text', reason: '', savedAt: 42 });
    expect(loadDraft('d2', store)?.reason).toBe('Out of scope');
    expect(draftIds(store).sort()).toEqual(['d1', 'd2']);
  });

  it('clears one draft, or all of them at sign-out', () => {
    const store = memoryStorage();
    store.setItem('casebook.session', 'x');
    saveDraft('d1', { verdict: 'amend', text: 'a', reason: '' }, store);
    saveDraft('d2', { verdict: 'amend', text: 'b', reason: '' }, store);
    clearDraft('d1', store);
    expect(loadDraft('d1', store)).toBeNull();
    clearAllDrafts(store);
    expect(draftIds(store)).toEqual([]);
    expect(store.getItem('casebook.session')).toBe('x');
  });

  it('ignores what is not a draft', () => {
    const store = memoryStorage();
    store.setItem('casebook.draft.d1', 'not json');
    store.setItem('casebook.draft.d2', JSON.stringify({ verdict: 'approve' }));
    expect(loadDraft('d1', store)).toBeNull();
    expect(loadDraft('d2', store)).toBeNull();
  });

  it('survives storage that refuses writes', () => {
    const store = memoryStorage();
    store.setItem = () => {
      throw new Error('QuotaExceededError');
    };
    expect(() => saveDraft('d1', { verdict: 'amend', text: 'x', reason: '' }, store)).not.toThrow();
  });
});
