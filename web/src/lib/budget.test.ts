import { describe, expect, it } from 'vitest';
import type { TokenBudget } from '../api/types';
import { budgetLevel, budgetShare, budgetSummary, deferralText, formatDay } from './budget';

const budget = (tokens_used: number): TokenBudget => ({
  plan: 'starter',
  month: '2026-12',
  tokens_budget: 1_000_000,
  tokens_used,
  tokens_remaining: Math.max(0, 1_000_000 - tokens_used),
  renews_on: '2027-01-01',
});

describe('token budget', () => {
  it('summarises use, remainder and the renewal day', () => {
    expect(budgetSummary(budget(812_000))).toBe('812,000 of 1,000,000 tokens used (81 %); 188,000 left until 1 Jan 2027.');
  });

  it('is low from 80 % and spent at nothing left, overspending included', () => {
    expect(budgetLevel(budget(799_999))).toBe('ok');
    expect(budgetLevel(budget(800_000))).toBe('low');
    expect(budgetLevel(budget(1_000_000))).toBe('spent');
    expect(budgetLevel(budget(1_250_000))).toBe('spent');
    expect(budgetShare(budget(1_250_000))).toBe(1);
  });

  it('reads days in UTC', () => {
    expect(formatDay('2027-01-01')).toBe('1 Jan 2027');
    expect(formatDay(null)).toBe('—');
  });

  it('tells the customer and the staff why a diagnosis waits and until when', () => {
    expect(deferralText('customer', '2027-01-01')).toContain('renews on 1 Jan 2027');
    expect(deferralText('customer', '2027-01-01')).toContain('Your question is kept');
    expect(deferralText('staff', '2027-01-01')).toContain('token budget is spent');
    expect(deferralText('staff', null)).toContain('at the start of next month');
  });
});
