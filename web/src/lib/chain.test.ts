import { describe, expect, it } from 'vitest';
import { canonicalBytes, computeHash, microsecondTime, rustFloat, verifyChain, ZERO_HASH } from './chain';
import type { AuditRow } from '../api/types';

function row(overrides: Partial<AuditRow> = {}): AuditRow {
  return {
    tenant_id: '00000000-0000-0000-0000-000000000001',
    seq: 1,
    global_position: 42,
    recorded_at: '2025-11-24T16:00:00.123456Z',
    actor_id: 'user-1',
    actor_role: 'consultant',
    source: 'api',
    action: 'DecisionMade',
    aggregate_type: 'Decision',
    aggregate_id: 'd1',
    event_sequence: 1,
    session_id: null,
    query_id: null,
    diagnosis_id: '00000000-0000-0000-0000-000000000002',
    decision_id: '00000000-0000-0000-0000-000000000002',
    judgment_id: null,
    outcome: 'approved',
    reason: null,
    threshold: null,
    confidence: 0.85,
    model_id: 'm',
    model_tier: 'standard',
    prompt_template_id: 't@1',
    prompt_template_hash: 'abc',
    retrieved_judgment_ids: ['00000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-000000000004'],
    input_tokens: 10,
    output_tokens: 20,
    cost_usd_micros: 30,
    request_id: 'r',
    correlation_id: 'c',
    causation_id: 'k',
    event_digest: 'ab'.repeat(32),
    encoding: 2,
    prev_hash: ZERO_HASH,
    hash: '',
    ...overrides,
  };
}

async function chain(n: number): Promise<AuditRow[]> {
  const rows: AuditRow[] = [];
  let prev = ZERO_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const r = row({ seq, global_position: 100 + seq, prev_hash: prev });
    r.hash = await computeHash(r);
    prev = r.hash;
    rows.push(r);
  }
  return rows;
}

describe('the audit chain in the browser', () => {
  it('lays the canonical bytes out as chain.rs documents', () => {
    const bytes = canonicalBytes(row({ encoding: 1 }));
    const text = new TextDecoder().decode(bytes);
    expect(text.startsWith('casebook-audit-v1')).toBe(true);
    expect(Array.from(bytes.slice(17, 22))).toEqual([1, 0, 0, 0, 36]);
    expect(text.slice(22, 58)).toBe('00000000-0000-0000-0000-000000000001');
    expect(text).toContain('2025-11-24T16:00:00.123456Z');
    expect(text).toContain('0.85');
  });

  it('hashes a row as an independent implementation of the layout does', async () => {
    // From a Python implementation of projections/src/audit/chain.rs's encoding.
    expect(await computeHash(row())).toBe('3849431d0101c65bccfdff81c16806fd4ee916c25205f2c92470270a8b1c91b0');
    expect(await computeHash(row({ encoding: 1 }))).toBe('c2a49134abe64717464875d3fd32f68577b0c7a4751d9666e6ad292828d32e03');
  });

  it('writes floats and times as Rust does', () => {
    expect(rustFloat(0.85)).toBe('0.85');
    expect(rustFloat(1)).toBe('1');
    expect(rustFloat(1e-7)).toBe('0.0000001');
    expect(rustFloat(1.5e-7)).toBe('0.00000015');
    expect(rustFloat(1e21)).toBe('1000000000000000000000');
    expect(microsecondTime('2025-11-24T16:00:00Z')).toBe('2025-11-24T16:00:00.000000Z');
    expect(microsecondTime('2025-11-24T16:00:00.12Z')).toBe('2025-11-24T16:00:00.120000Z');
    expect(microsecondTime('2025-11-24T16:00:00.123456789Z')).toBe('2025-11-24T16:00:00.123456Z');
  });

  it('verifies an intact chain and names its head', async () => {
    const rows = await chain(3);
    expect(await verifyChain(rows)).toEqual({ rows: 3, head: { seq: 3, hash: rows[2]!.hash }, problem: null });
    expect(await verifyChain([])).toEqual({ rows: 0, head: null, problem: null });
  });

  it('finds an altered row', async () => {
    const rows = await chain(3);
    rows[1] = { ...rows[1]!, outcome: 'rejected' };
    expect((await verifyChain(rows)).problem).toEqual({ kind: 'content', seq: 2 });
  });

  it('finds a missing row', async () => {
    const rows = await chain(3);
    expect((await verifyChain([rows[0]!, rows[2]!])).problem).toEqual({ kind: 'sequence', seq: 3, expected: 2 });
  });

  it('finds a rehashed row by its broken link to the next', async () => {
    const rows = await chain(3);
    const altered = { ...rows[1]!, reason: 'rewritten' };
    altered.hash = await computeHash(altered);
    rows[1] = altered;
    expect((await verifyChain(rows)).problem).toEqual({ kind: 'link', seq: 3 });
  });
});
