// The usage chart's arithmetic: days × models → stacked bars on a "nice" linear scale.

import type { UsageDay } from '../api/types';

export type UsageMetric = 'tokens' | 'cost' | 'proposals';

/** A value of one usage row in the chosen metric (cost in US dollars). */
export function metricOf(row: UsageDay, metric: UsageMetric): number {
  switch (metric) {
    case 'tokens':
      return row.input_tokens + row.output_tokens;
    case 'cost':
      return row.cost_usd_micros / 1_000_000;
    case 'proposals':
      return row.proposals;
  }
}

/** 1, 2, 2.5 or 5 × 10^n, the smallest at or above `value` (0 → 1). */
export function niceCeil(value: number): number {
  if (!(value > 0) || !Number.isFinite(value)) return 1;
  const exponent = Math.floor(Math.log10(value));
  const base = 10 ** exponent;
  for (const m of [1, 2, 2.5, 5, 10]) {
    const candidate = m * base;
    // Guard against 0.30000000000000004-style drift.
    if (candidate >= value * (1 - 1e-12)) return Number(candidate.toPrecision(12));
  }
  return 10 * base;
}

/** Evenly spaced "nice" ticks from 0 up to the first at or above `max` (about `count` steps). */
export function ticks(max: number, count = 4): number[] {
  const top = max > 0 && Number.isFinite(max) ? max : 1;
  const stepSize = niceCeil(top / count);
  const result: number[] = [0];
  while ((result[result.length - 1] ?? 0) < top * (1 - 1e-12)) {
    result.push(Number((result.length * stepSize).toPrecision(12)));
  }
  return result;
}

/** Maps [0, domainMax] onto [rangeMax, 0] (SVG y grows downwards). */
export function yScale(domainMax: number, height: number): (value: number) => number {
  const top = domainMax > 0 ? domainMax : 1;
  return (value) => height - (Math.max(0, value) / top) * height;
}

export interface StackedDay {
  day: string;
  total: number;
  /** Per model, in `models` order: [start, end] of its segment. */
  segments: { model: string; value: number; y0: number; y1: number }[];
}

export interface StackedUsage {
  days: StackedDay[];
  models: string[];
  max: number;
}

/** Every day of [from, to] (inclusive, `YYYY-MM-DD`). */
export function daysBetween(from: string, to: string): string[] {
  const days: string[] = [];
  const date = new Date(`${from}T00:00:00Z`);
  const end = new Date(`${to}T00:00:00Z`);
  while (date <= end && days.length < 400) {
    days.push(date.toISOString().slice(0, 10));
    date.setUTCDate(date.getUTCDate() + 1);
  }
  return days;
}

/** The report's rows stacked per day (days without usage are zero), models sorted by total. */
export function stackUsage(rows: UsageDay[], metric: UsageMetric, from: string, to: string): StackedUsage {
  const totals = new Map<string, number>();
  const byDay = new Map<string, Map<string, number>>();
  for (const row of rows) {
    const value = metricOf(row, metric);
    totals.set(row.model_id, (totals.get(row.model_id) ?? 0) + value);
    const day = byDay.get(row.day) ?? new Map<string, number>();
    day.set(row.model_id, (day.get(row.model_id) ?? 0) + value);
    byDay.set(row.day, day);
  }
  const models = [...totals.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([m]) => m);
  let max = 0;
  const days = daysBetween(from, to).map((day) => {
    const values = byDay.get(day);
    let y = 0;
    const segments = models.map((model) => {
      const value = values?.get(model) ?? 0;
      const segment = { model, value, y0: y, y1: y + value };
      y += value;
      return segment;
    });
    max = Math.max(max, y);
    return { day, total: y, segments };
  });
  return { days, models, max };
}
