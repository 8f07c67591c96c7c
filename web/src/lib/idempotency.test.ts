import { describe, expect, it } from 'vitest';
import { KeyForBody } from './idempotency';

describe('idempotency keys', () => {
  it('reuses the key for the same body and makes a new one for another', () => {
    let n = 0;
    const keys = new KeyForBody(() => `k${++n}`);
    expect(keys.keyFor({ a: 1 })).toBe('k1');
    expect(keys.keyFor({ a: 1 })).toBe('k1');
    expect(keys.keyFor({ a: 2 })).toBe('k2');
    keys.reset();
    expect(keys.keyFor({ a: 2 })).toBe('k3');
  });
});
