import { describe, expect, it } from 'vitest';
import { formatUuid, judgmentIdForDecision, parseUuid, uuidV4, uuidV5 } from './ids';

describe('ids', () => {
  it('makes v4 UUIDs', () => {
    expect(uuidV4()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('makes RFC 9562 v5 UUIDs', async () => {
    // uuid.uuid5(uuid.NAMESPACE_DNS, 'python.org')
    expect(await uuidV5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'python.org')).toBe('886313e1-3b8a-5372-9b90-0c9aee199e5d');
  });

  it('derives a decision’s judgment id as the domain does', async () => {
    const id = await judgmentIdForDecision('00000000-0000-0000-0000-000000000002');
    // uuid.uuid5(UUID('00000000-0000-0000-0000-000000000002'), 'casebook/judgment'), as
    // Uuid::new_v5 in JudgmentId::for_decision.
    expect(id).toBe('fb535df5-e01d-5514-9bdc-784196a7ae3f');
  });

  it('parses and formats UUIDs', () => {
    const text = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';
    expect(formatUuid(parseUuid(text))).toBe(text);
    expect(() => parseUuid('nope')).toThrow();
  });
});
