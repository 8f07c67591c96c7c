// Keyboard shortcuts of the review desk. Single keys, ignored while typing in a field and when a
// modifier is held (so the browser's own shortcuts keep working).

export type ShortcutAction = 'next' | 'previous' | 'approve' | 'reject' | 'amend' | 'open' | 'help';

export const SHORTCUTS: readonly { key: string; action: ShortcutAction; label: string }[] = [
  { key: 'j', action: 'next', label: 'Next diagnosis' },
  { key: 'k', action: 'previous', label: 'Previous diagnosis' },
  { key: 'a', action: 'approve', label: 'Approve (then Enter to confirm)' },
  { key: 'e', action: 'amend', label: 'Amend: open the editor' },
  { key: 'r', action: 'reject', label: 'Reject: write the reason' },
  { key: 'o', action: 'open', label: 'Open the selected diagnosis (queue)' },
  { key: '?', action: 'help', label: 'Show or hide these shortcuts' },
];

/** The parts of a KeyboardEvent that decide a shortcut. */
export interface KeyLike {
  key: string;
  ctrlKey?: boolean;
  metaKey?: boolean;
  altKey?: boolean;
  target?: EventTarget | null;
  defaultPrevented?: boolean;
  isComposing?: boolean;
}

const TYPING_TAGS = new Set(['INPUT', 'TEXTAREA', 'SELECT']);

/** Whether a key press lands in something the user types into. */
export function isTyping(target: EventTarget | null | undefined): boolean {
  if (!target || typeof target !== 'object') return false;
  const element = target as { tagName?: string; isContentEditable?: boolean; type?: string };
  if (element.isContentEditable) return true;
  if (!element.tagName) return false;
  if (element.tagName === 'INPUT') {
    // Buttons-in-disguise don't take text.
    return !['checkbox', 'radio', 'button', 'submit', 'reset'].includes(element.type ?? 'text');
  }
  return TYPING_TAGS.has(element.tagName);
}

/** The action a key press asks for, or null. */
export function shortcutFor(event: KeyLike): ShortcutAction | null {
  if (event.defaultPrevented || event.isComposing) return null;
  if (event.ctrlKey || event.metaKey || event.altKey) return null;
  if (isTyping(event.target)) return null;
  return SHORTCUTS.find((s) => s.key === event.key)?.action ?? null;
}

/** The index after moving from `index` by `step` in a list of `length`, clamped to its ends. */
export function step(index: number, stepBy: number, length: number): number {
  if (length === 0) return -1;
  return Math.min(length - 1, Math.max(0, index + stepBy));
}
