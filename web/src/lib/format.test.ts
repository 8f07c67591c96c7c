import { describe, expect, it } from 'vitest';
import { fileNameOf, formatAge, formatBytes, formatMicros, utcDay } from './format';

describe('formatting', () => {
  it('says how old a proposal is', () => {
    expect([5, 60, 3599, 3600, 3660, 86_400, 90_000].map(formatAge)).toEqual(['5 s', '1 min', '59 min', '1 h', '1 h 1 min', '1 d', '1 d 1 h']);
  });
  it('shows money and sizes', () => {
    expect(formatMicros(12_500_000)).toBe('$12.50');
    expect(formatMicros(1234)).toBe('$0.0012');
    expect(formatMicros(0)).toBe('$0.00');
    expect(formatBytes(2048)).toBe('2.0 KB');
  });
  it('names files and days', () => {
    expect(fileNameOf('t/uploads/u/contract.pdf')).toBe('contract.pdf');
    expect(utcDay(-1, Date.UTC(2025, 0, 1, 12))).toBe('2024-12-31');
  });
});

describe('waiting for a read model', () => {
  it('retries a 404 until found, and gives up on other errors at once', async () => {
    const { untilFound } = await import('./useResource');
    let calls = 0;
    const found = await untilFound(() => (++calls < 3 ? Promise.reject(Object.assign(new Error('nf'), { status: 404 })) : Promise.resolve('yes')), 1000, 1);
    expect([found, calls]).toEqual(['yes', 3]);
    await expect(untilFound(() => Promise.reject(Object.assign(new Error('boom'), { status: 500 })), 1000, 1)).rejects.toThrow('boom');
    await expect(untilFound(() => Promise.reject(Object.assign(new Error('gone'), { status: 404 })), 5, 2)).rejects.toThrow('gone');
  });
});
