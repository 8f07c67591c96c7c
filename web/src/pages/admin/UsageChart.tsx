// Tokens or cost per model per day as stacked bars: a small SVG of our own (no chart library
// in the bundle), with the same numbers as a table for screen readers and copying.

import { useId, useState } from 'preact/hooks';
import type { UsageReport } from '../../api/types';
import { stackUsage, ticks, yScale, type UsageMetric } from '../../lib/chart';
import { formatMicros } from '../../lib/format';

const COLORS = ['#1d4f91', '#d9822b', '#2e8540', '#8e44ad', '#c0392b', '#16a085', '#7f8c8d'];

const METRICS: { value: UsageMetric; label: string }[] = [
  { value: 'tokens', label: 'Tokens' },
  { value: 'cost', label: 'Cost (US$)' },
  { value: 'proposals', label: 'Proposals' },
];

function formatValue(value: number, metric: UsageMetric): string {
  if (metric === 'cost') return formatMicros(Math.round(value * 1_000_000));
  return value >= 10_000 ? `${Math.round(value / 1000)}k` : value.toLocaleString();
}

export function UsageChart({ report }: { report: UsageReport }) {
  const [metric, setMetric] = useState<UsageMetric>('tokens');
  const [showTable, setShowTable] = useState(false);
  const metricId = useId();
  const stacked = stackUsage(report.days, metric, report.from, report.to);
  const width = 720;
  const height = 240;
  const left = 56;
  const bottom = 28;
  const plotW = width - left - 8;
  const plotH = height - bottom - 8;
  const axis = ticks(stacked.max);
  const top = axis[axis.length - 1] ?? 1;
  const y = yScale(top, plotH);
  const slot = plotW / Math.max(1, stacked.days.length);
  const barW = Math.max(2, Math.min(28, slot * 0.7));
  const labelEvery = Math.ceil(stacked.days.length / 8);
  const title = `${METRICS.find((m) => m.value === metric)?.label ?? metric} per day and model, ${report.from} to ${report.to}`;

  return (
    <figure class="chart">
      <div class="chart-controls">
        <label for={metricId}>Show</label>
        <select id={metricId} value={metric} onChange={(e) => setMetric(e.currentTarget.value as UsageMetric)}>
          {METRICS.map((m) => (
            <option key={m.value} value={m.value}>
              {m.label}
            </option>
          ))}
        </select>
        <button type="button" class="link" aria-expanded={showTable} onClick={() => setShowTable((s) => !s)}>
          {showTable ? 'Hide the numbers' : 'Show the numbers'}
        </button>
      </div>
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={title} class="chart-svg">
        <title>{title}</title>
        <g transform={`translate(${left},8)`}>
          {axis.map((t) => (
            <g key={t}>
              <line x1={0} x2={plotW} y1={y(t)} y2={y(t)} class="grid" />
              <text x={-6} y={y(t)} dy="0.32em" text-anchor="end" class="tick">
                {formatValue(t, metric)}
              </text>
            </g>
          ))}
          {stacked.days.map((day, i) => {
            const x = i * slot + (slot - barW) / 2;
            return (
              <g key={day.day}>
                {day.segments
                  .filter((s) => s.value > 0)
                  .map((s) => (
                    <rect key={s.model} x={x} width={barW} y={y(s.y1)} height={Math.max(0, y(s.y0) - y(s.y1))} fill={COLORS[stacked.models.indexOf(s.model) % COLORS.length]}>
                      <title>{`${day.day} · ${s.model}: ${formatValue(s.value, metric)}`}</title>
                    </rect>
                  ))}
                {i % labelEvery === 0 && (
                  <text x={x + barW / 2} y={plotH + 18} text-anchor="middle" class="tick">
                    {day.day.slice(5)}
                  </text>
                )}
              </g>
            );
          })}
          <line x1={0} x2={plotW} y1={plotH} y2={plotH} class="axis" />
        </g>
      </svg>
      <figcaption>
        <ul class="legend">
          {stacked.models.map((model, i) => (
            <li key={model}>
              <span class="swatch" style={{ background: COLORS[i % COLORS.length] }} aria-hidden="true" /> {model}
            </li>
          ))}
        </ul>
      </figcaption>
      {showTable && (
        <div class="table-wrap">
          <table>
            <caption>{title}</caption>
            <thead>
              <tr>
                <th scope="col">Day</th>
                <th scope="col">Model</th>
                <th scope="col">Proposals</th>
                <th scope="col">Tokens in</th>
                <th scope="col">Tokens out</th>
                <th scope="col">Cost</th>
              </tr>
            </thead>
            <tbody>
              {report.days.map((d) => (
                <tr key={`${d.day}-${d.model_id}`}>
                  <td>{d.day}</td>
                  <td>{d.model_id}</td>
                  <td>{d.proposals}</td>
                  <td>{d.input_tokens.toLocaleString()}</td>
                  <td>{d.output_tokens.toLocaleString()}</td>
                  <td>{formatMicros(d.cost_usd_micros)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </figure>
  );
}
