import { describe, expect, it } from 'vitest';
import { contentTypeOf, settableHeaders, uploadWithProgress, UploadError } from './upload';
import type { UploadTicket } from '../api/types';

const ticket: UploadTicket = {
  key: 't/uploads/u/notes.txt',
  method: 'PUT',
  url: 'http://127.0.0.1:5000/bucket/t/uploads/u/notes.txt?X-Amz-Signature=abc',
  headers: { 'content-type': 'text/plain', 'content-length': '12', host: 'x' },
  expires_at: '2030-01-01T00:00:00Z',
};

class FakeXhr {
  opened: [string, string] | null = null;
  headers: [string, string][] = [];
  sent: unknown = null;
  status = 0;
  upload: { onprogress: ((e: { lengthComputable: boolean; loaded: number; total: number }) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  open(method: string, url: string) {
    this.opened = [method, url];
  }
  setRequestHeader(name: string, value: string) {
    this.headers.push([name, value]);
  }
  send(body: unknown) {
    this.sent = body;
  }
}

describe('presigned uploads', () => {
  it('sends the signed headers the browser allows, the body, and reports progress', async () => {
    const xhr = new FakeXhr();
    const progress: number[] = [];
    const file = new Blob(['hello, world']);
    const done = uploadWithProgress(ticket, file, (p) => progress.push(p), () => xhr as unknown as XMLHttpRequest);
    expect(xhr.opened).toEqual(['PUT', ticket.url]);
    expect(xhr.headers).toEqual([['content-type', 'text/plain']]);
    expect(xhr.sent).toBe(file);
    xhr.upload.onprogress?.({ lengthComputable: true, loaded: 6, total: 12 });
    xhr.status = 200;
    xhr.onload?.();
    await done;
    expect(progress).toEqual([0.5, 1]);
  });

  it('fails on a refusal or a network error', async () => {
    const refused = new FakeXhr();
    const p1 = uploadWithProgress(ticket, new Blob(['x']), () => undefined, () => refused as unknown as XMLHttpRequest);
    refused.status = 403;
    refused.onload?.();
    await expect(p1).rejects.toMatchObject({ status: 403 });
    const offline = new FakeXhr();
    const p2 = uploadWithProgress(ticket, new Blob(['x']), () => undefined, () => offline as unknown as XMLHttpRequest);
    offline.onerror?.();
    await expect(p2).rejects.toBeInstanceOf(UploadError);
  });

  it('leaves forbidden headers to the browser', () => {
    expect(settableHeaders({ 'Content-Length': '1', 'x-amz-meta-a': 'b', 'Sec-Fetch-Mode': 'x', 'Content-Type': 'a/b' })).toEqual([
      ['x-amz-meta-a', 'b'],
      ['Content-Type', 'a/b'],
    ]);
  });

  it('names a media type for every file', () => {
    expect(contentTypeOf({ type: 'application/pdf', name: 'a.pdf' })).toBe('application/pdf');
    expect(contentTypeOf({ type: '', name: 'notes.txt' })).toBe('text/plain');
    expect(contentTypeOf({ type: '', name: 'blob.bin' })).toBe('application/octet-stream');
  });
});
