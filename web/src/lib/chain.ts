// The audit chain, verified in the browser from the rows `GET /v1/audit` returns: every row's
// hash is recomputed from its fields in the canonical encoding (projections/src/audit/chain.rs:
// a version tag, then each field as 0x01 + u32 big-endian length + UTF-8, or 0x00 for null;
// `hash = SHA-256(prev_hash ‖ bytes)`), every `prev_hash` must be the previous row's hash, and
// `seq` must run 1, 2, 3, … There is no verification route in the API; this needs only the rows.
// What it cannot check is each row's `event_digest` against the event itself:
// `casebook-replay verify` does that with the database or an export.

import type { AuditRow } from '../api/types';

export const ZERO_HASH = '0'.repeat(64);

const encoder = new TextEncoder();

class Bytes {
  private chunks: Uint8Array[] = [];
  private length = 0;

  put(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  text(text: string): void {
    const utf8 = encoder.encode(text);
    const header = new Uint8Array(5);
    header[0] = 1;
    new DataView(header.buffer).setUint32(1, utf8.length, false);
    this.put(header);
    this.put(utf8);
  }

  opt(value: string | null | undefined): void {
    if (value === null || value === undefined) this.put(new Uint8Array([0]));
    else this.text(value);
  }

  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

/**
 * A float as Rust's `Display` writes it: the shortest digits that round-trip (as JavaScript's)
 * but never in exponent notation.
 */
export function rustFloat(value: number): string {
  const text = String(value);
  const match = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!match) return text;
  const [, sign = '', lead = '', frac = '', exp = '0'] = match;
  const digits = lead + frac;
  const point = 1 + Number(exp);
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** An RFC 3339 instant as `%Y-%m-%dT%H:%M:%S%.6fZ` (microseconds, UTC). */
export function microsecondTime(iso: string): string {
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(iso);
  if (!match) throw new Error(`not an RFC 3339 instant: ${iso}`);
  const [, seconds = '', fraction = '', zone = 'Z'] = match;
  if (zone !== 'Z' && zone !== '+00:00') {
    // The API writes UTC; anything else is normalised through Date (millisecond precision).
    const date = new Date(iso);
    return `${date.toISOString().slice(0, 19)}.${String(date.getUTCMilliseconds()).padStart(3, '0')}000Z`;
  }
  return `${seconds}.${fraction.padEnd(6, '0').slice(0, 6)}Z`;
}

const num = (value: number | null | undefined): string | null =>
  value === null || value === undefined ? null : Number.isInteger(value) ? String(value) : rustFloat(value);

const float = (value: number | null | undefined): string | null =>
  value === null || value === undefined ? null : rustFloat(value);

/** The row's canonical bytes (what its hash covers after `prev_hash`). */
export function canonicalBytes(row: AuditRow): Uint8Array {
  const encoding = row.encoding === 2 || row.encoding === '2' ? 2 : 1;
  const b = new Bytes();
  b.put(encoder.encode(`casebook-audit-v${encoding}`));
  b.text(row.tenant_id);
  b.text(String(row.seq));
  b.text(String(row.global_position));
  b.text(microsecondTime(row.recorded_at));
  b.text(row.actor_id);
  b.text(row.actor_role);
  b.text(row.source);
  b.text(row.action);
  b.text(row.aggregate_type);
  b.text(row.aggregate_id);
  b.text(String(row.event_sequence));
  b.opt(row.session_id);
  b.opt(row.query_id);
  b.opt(row.diagnosis_id);
  b.opt(row.decision_id);
  b.opt(row.judgment_id);
  b.opt(row.outcome);
  b.opt(row.reason);
  b.opt(float(row.threshold));
  b.opt(float(row.confidence));
  b.opt(row.model_id);
  b.opt(row.model_tier);
  b.opt(row.prompt_template_id);
  b.opt(row.prompt_template_hash);
  b.opt(row.retrieved_judgment_ids ? row.retrieved_judgment_ids.join(',') : null);
  b.opt(num(row.input_tokens));
  b.opt(num(row.output_tokens));
  b.opt(num(row.cost_usd_micros));
  b.text(row.request_id);
  b.text(row.correlation_id);
  b.text(row.causation_id);
  if (encoding === 2) b.opt(row.event_digest ?? null);
  return b.concat();
}

export function hexToBytes(hex: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error('a chain hash is 64 hexadecimal digits');
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

export function bytesToHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** `SHA-256(prev_hash ‖ canonical bytes)` of the row, hex. */
export async function computeHash(row: AuditRow): Promise<string> {
  const content = canonicalBytes(row);
  const input = new Uint8Array(32 + content.length);
  input.set(hexToBytes(row.prev_hash), 0);
  input.set(content, 32);
  return bytesToHex(new Uint8Array(await crypto.subtle.digest('SHA-256', input)));
}

export type ChainProblem =
  | { kind: 'sequence'; seq: number; expected: number }
  | { kind: 'link'; seq: number }
  | { kind: 'content'; seq: number };

export interface ChainReport {
  /** Rows checked, from the chain's first. */
  rows: number;
  /** The last row's seq and hash: the chain head the rows reach. */
  head: { seq: number; hash: string } | null;
  /** The first problem, if any: the chain is broken at that row. */
  problem: ChainProblem | null;
}

/** Verifies rows that start at the chain's first row, in chain order. */
export async function verifyChain(rows: readonly AuditRow[]): Promise<ChainReport> {
  let expectedSeq = 1;
  let previous = ZERO_HASH;
  let checked = 0;
  for (const row of rows) {
    if (row.seq !== expectedSeq) {
      return { rows: checked, head: checked ? { seq: expectedSeq - 1, hash: previous } : null, problem: { kind: 'sequence', seq: row.seq, expected: expectedSeq } };
    }
    if (row.prev_hash.toLowerCase() !== previous) {
      return { rows: checked, head: checked ? { seq: expectedSeq - 1, hash: previous } : null, problem: { kind: 'link', seq: row.seq } };
    }
    if ((await computeHash(row)) !== row.hash.toLowerCase()) {
      return { rows: checked, head: checked ? { seq: expectedSeq - 1, hash: previous } : null, problem: { kind: 'content', seq: row.seq } };
    }
    previous = row.hash.toLowerCase();
    expectedSeq += 1;
    checked += 1;
  }
  return { rows: checked, head: checked ? { seq: expectedSeq - 1, hash: previous } : null, problem: null };
}

export function describeChainProblem(problem: ChainProblem): string {
  switch (problem.kind) {
    case 'sequence':
      return `row ${problem.seq} is where row ${problem.expected} should be: a row is missing or out of order`;
    case 'link':
      return `row ${problem.seq} does not link to the row before it`;
    case 'content':
      return `row ${problem.seq}'s fields do not hash to its recorded hash: it was altered`;
  }
}
