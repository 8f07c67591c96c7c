import { describe, expect, it } from 'vitest';
import { daysBetween, metricOf, niceCeil, stackUsage, ticks, yScale } from './chart';
import type { UsageDay } from '../api/types';

const row = (day: string, model_id: string, tokens: number, cost = 0): UsageDay => ({
  day, model_id, proposals: 1, input_tokens: tokens, output_tokens: 0, cost_usd_micros: cost,
});

describe('chart scaling', () => {
  it('rounds maxima up to 1, 2, 2.5 or 5 × 10^n', () => {
    expect([0, 0.7, 1, 1.2, 2.2, 3, 7, 12, 4100, 0.013].map(niceCeil)).toEqual([1, 1, 1, 2, 2.5, 5, 10, 20, 5000, 0.02]);
  });

  it('makes even ticks from zero to the nice maximum', () => {
    expect(ticks(4100)).toEqual([0, 2000, 4000, 6000]);
    expect(ticks(0)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(ticks(0.3)).toEqual([0, 0.1, 0.2, 0.3]);
    expect(ticks(0.45)).toEqual([0, 0.2, 0.4, 0.6]);
    expect(ticks(7)).toEqual([0, 2, 4, 6, 8]);
  });

  it('maps values onto SVG y (downwards), clamping negatives', () => {
    const y = yScale(100, 200);
    expect([y(0), y(50), y(100), y(-5)]).toEqual([200, 100, 0, 200]);
    expect(yScale(0, 200)(0)).toBe(200);
  });

  it('lists every day of the range', () => {
    expect(daysBetween('2025-02-27', '2025-03-02')).toEqual(['2025-02-27', '2025-02-28', '2025-03-01', '2025-03-02']);
    expect(daysBetween('2025-03-02', '2025-03-01')).toEqual([]);
  });

  it('stacks models per day, biggest model first, empty days as zero', () => {
    const rows = [row('2025-03-01', 'small', 10), row('2025-03-01', 'big', 100), row('2025-03-03', 'big', 50)];
    const stacked = stackUsage(rows, 'tokens', '2025-03-01', '2025-03-03');
    expect(stacked.models).toEqual(['big', 'small']);
    expect(stacked.max).toBe(110);
    expect(stacked.days.map((d) => d.total)).toEqual([110, 0, 50]);
    expect(stacked.days[0]!.segments).toEqual([
      { model: 'big', value: 100, y0: 0, y1: 100 },
      { model: 'small', value: 10, y0: 100, y1: 110 },
    ]);
  });

  it('measures cost in dollars and tokens as in plus out', () => {
    expect(metricOf({ ...row('d', 'm', 5, 1_500_000), output_tokens: 7 }, 'cost')).toBe(1.5);
    expect(metricOf({ ...row('d', 'm', 5), output_tokens: 7 }, 'tokens')).toBe(12);
  });
});
