import { SHORTCUTS, type ShortcutAction } from '../../lib/shortcuts';

/** The page's keyboard shortcuts, listed where the consultant works. */
export function ShortcutHelp({ actions }: { actions: readonly ShortcutAction[] }) {
  return (
    <aside class="shortcuts" aria-label="Keyboard shortcuts">
      <h2>Keyboard shortcuts</h2>
      <dl>
        {SHORTCUTS.filter((s) => actions.includes(s.action)).map((s) => (
          <div key={s.key}>
            <dt>
              <kbd>{s.key}</kbd>
            </dt>
            <dd>{s.label}</dd>
          </div>
        ))}
      </dl>
    </aside>
  );
}
