import { describe, expect, it } from 'vitest';
import { formatUuid, isUuid, uuidV4 } from './ids';

describe('ids', () => {
  it('makes v4 UUIDs', () => {
    expect(uuidV4()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('formats UUIDs and recognises them', () => {
    const text = formatUuid(Uint8Array.from({ length: 16 }, (_, i) => i * 17));
    expect(text).toBe('00112233-4455-6677-8899-aabbccddeeff');
    expect(isUuid(text)).toBe(true);
    expect(isUuid(text.toUpperCase())).toBe(true);
    expect(isUuid(uuidV4())).toBe(true);
    expect(isUuid('nope')).toBe(false);
    expect(isUuid(text.replace(/-/g, ''))).toBe(false);
    expect(isUuid(` ${text}`)).toBe(false);
  });
});
