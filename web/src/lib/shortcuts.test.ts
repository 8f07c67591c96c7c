import { describe, expect, it } from 'vitest';
import { isTyping, shortcutFor, step } from './shortcuts';

const el = (tagName: string, extra: Record<string, unknown> = {}) => ({ tagName, ...extra }) as unknown as EventTarget;

describe('keyboard shortcuts', () => {
  it('maps j/k/a/e/r to the review actions', () => {
    expect(['j', 'k', 'a', 'e', 'r', 'o', '?'].map((key) => shortcutFor({ key, target: el('BODY') }))).toEqual([
      'next', 'previous', 'approve', 'amend', 'reject', 'open', 'help',
    ]);
    expect(shortcutFor({ key: 'x', target: el('BODY') })).toBeNull();
  });

  it('stays out of the way while typing', () => {
    expect(shortcutFor({ key: 'a', target: el('TEXTAREA') })).toBeNull();
    expect(shortcutFor({ key: 'a', target: el('INPUT', { type: 'text' }) })).toBeNull();
    expect(shortcutFor({ key: 'a', target: el('SELECT') })).toBeNull();
    expect(shortcutFor({ key: 'a', target: el('DIV', { isContentEditable: true }) })).toBeNull();
    expect(isTyping(el('INPUT', { type: 'checkbox' }))).toBe(false);
    expect(shortcutFor({ key: 'j', target: el('BUTTON') })).toBe('next');
  });

  it('leaves modified keys and handled events to the browser', () => {
    expect(shortcutFor({ key: 'r', ctrlKey: true, target: el('BODY') })).toBeNull();
    expect(shortcutFor({ key: 'r', metaKey: true, target: el('BODY') })).toBeNull();
    expect(shortcutFor({ key: 'a', altKey: true, target: el('BODY') })).toBeNull();
    expect(shortcutFor({ key: 'a', defaultPrevented: true, target: el('BODY') })).toBeNull();
    expect(shortcutFor({ key: 'a', isComposing: true, target: el('BODY') })).toBeNull();
  });

  it('moves through a list without falling off its ends', () => {
    expect(step(0, 1, 3)).toBe(1);
    expect(step(2, 1, 3)).toBe(2);
    expect(step(0, -1, 3)).toBe(0);
    expect(step(0, 1, 0)).toBe(-1);
  });
});
