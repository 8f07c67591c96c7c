import { uuidV4 } from './ids';

/**
 * Idempotency keys for a form: the same body sent again (a retry after a timeout) reuses its
 * key, so it lands once; a changed body gets a new key (the API refuses a key reused with
 * another body).
 */
export class KeyForBody {
  private last: { body: string; key: string } | null = null;

  constructor(private readonly newKey: () => string = uuidV4) {}

  keyFor(body: unknown): string {
    const text = JSON.stringify(body);
    if (this.last?.body !== text) this.last = { body: text, key: this.newKey() };
    return this.last.key;
  }

  /** After a success: the next submission is a new request even with the same body. */
  reset(): void {
    this.last = null;
  }
}
