// The practice's monthly token budget in words: the admin's summary, and why a diagnosis waits.

import type { TokenBudget } from '../api/types';
import { formatPercent } from './format';

/** A `YYYY-MM-DD` day as people read it ("1 Jan 2027"), in UTC as the server counts. */
export function formatDay(day: string | null | undefined): string {
  if (!day) return '—';
  const date = new Date(`${day}T00:00:00Z`);
  if (Number.isNaN(date.getTime())) return day;
  return date.toLocaleDateString('en-GB', { timeZone: 'UTC', day: 'numeric', month: 'short', year: 'numeric' });
}

/** The share of the budget used, 0 to 1 (at most 1: diagnoses in flight may overspend it). */
export function budgetShare(budget: TokenBudget): number {
  if (budget.tokens_budget <= 0) return 1;
  return Math.min(1, budget.tokens_used / budget.tokens_budget);
}

/** How close the budget is to spent: at 80 % it is running low, at 100 % spent. */
export function budgetLevel(budget: TokenBudget): 'ok' | 'low' | 'spent' {
  if (budget.tokens_remaining <= 0) return 'spent';
  return budgetShare(budget) >= 0.8 ? 'low' : 'ok';
}

/** "812,000 of 1,000,000 tokens used (81 %); 188,000 left until 1 Jan 2027." */
export function budgetSummary(budget: TokenBudget): string {
  const n = (value: number) => value.toLocaleString('en-US');
  return (
    `${n(budget.tokens_used)} of ${n(budget.tokens_budget)} tokens used (${formatPercent(budgetShare(budget))}); ` +
    `${n(budget.tokens_remaining)} left until ${formatDay(budget.renews_on)}.`
  );
}

/** Why a diagnosis deferred for the budget waits, for its customer or for the practice's staff. */
export function deferralText(reader: 'customer' | 'staff', renewsOn: string | null): string {
  const when = renewsOn ? `on ${formatDay(renewsOn)}` : 'at the start of next month';
  return reader === 'customer'
    ? `The practice’s monthly AI allowance is used up. Your question is kept and will be worked on when the allowance renews ${when}, or sooner if the practice upgrades its plan.`
    : `Deferred: the practice’s monthly token budget is spent. No model was asked; it resumes by itself when the budget renews ${when}, or when the plan is upgraded.`;
}
