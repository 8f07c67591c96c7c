import { useEffect, useRef } from 'preact/hooks';
import { shortcutFor, type ShortcutAction } from '../lib/shortcuts';

/** Calls `handlers[action]` for the page's keyboard shortcuts while the component is mounted. */
export function useShortcuts(handlers: Partial<Record<ShortcutAction, () => void>>): void {
  const ref = useRef(handlers);
  ref.current = handlers;
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const action = shortcutFor(event);
      const handler = action ? ref.current[action] : undefined;
      if (handler) {
        event.preventDefault();
        handler();
      }
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);
}
