// Ids the client chooses: new resources' UUIDs and idempotency keys (v4), and the judgment a
// decision captured (v5 of the decision's id, as domain/src/ids.rs derives it), so a
// precedent can link to the review it came from.

export function uuidV4(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  return formatUuid(bytes);
}

export function parseUuid(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

export function formatUuid(bytes: Uint8Array): string {
  const hex = Array.from(bytes.slice(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** RFC 9562 UUIDv5 (SHA-1) of `name` in `namespace`. */
export async function uuidV5(namespace: string, name: Uint8Array | string): Promise<string> {
  const nameBytes = typeof name === 'string' ? new TextEncoder().encode(name) : name;
  const input = new Uint8Array(16 + nameBytes.length);
  input.set(parseUuid(namespace), 0);
  input.set(nameBytes, 16);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-1', input));
  digest[6] = ((digest[6] ?? 0) & 0x0f) | 0x50;
  digest[8] = ((digest[8] ?? 0) & 0x3f) | 0x80;
  return formatUuid(digest);
}

/** The judgment a decision captured: `JudgmentId::for_decision`. */
export function judgmentIdForDecision(decisionId: string): Promise<string> {
  return uuidV5(decisionId, 'casebook/judgment');
}
