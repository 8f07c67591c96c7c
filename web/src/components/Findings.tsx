import type { Finding } from '../api/types';

export function Findings({ findings }: { findings: readonly Finding[] }) {
  if (!findings.length) return <p class="meta">No structured findings.</p>;
  return (
    <ul class="findings">
      {findings.map((f, i) => (
        <li key={i} class={`severity-${f.severity}`}>
          <span class="severity">{f.severity}</span> <strong>{f.summary}</strong>
          {f.detail && <p>{f.detail}</p>}
        </li>
      ))}
    </ul>
  );
}
