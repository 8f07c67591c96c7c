// A presigned upload straight to the bucket, with progress: fetch can't report upload progress,
// XMLHttpRequest can.

import type { UploadTicket } from '../api/types';

/** Headers a script may not set (the browser sets them itself, e.g. Content-Length). */
const FORBIDDEN = new Set(['content-length', 'host', 'connection', 'expect', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'accept-encoding']);

/** The ticket's headers the browser lets a script send. */
export function settableHeaders(headers: Record<string, string>): [string, string][] {
  return Object.entries(headers).filter(([name]) => !FORBIDDEN.has(name.toLowerCase()) && !/^(proxy-|sec-)/i.test(name));
}

export class UploadError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'UploadError';
  }
}

type XhrFactory = () => XMLHttpRequest;

/** PUTs `file` as `ticket` says, calling `onProgress` with 0..1. */
export function uploadWithProgress(
  ticket: UploadTicket,
  file: Blob,
  onProgress: (fraction: number) => void,
  makeXhr: XhrFactory = () => new XMLHttpRequest(),
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = makeXhr();
    xhr.open(ticket.method || 'PUT', ticket.url);
    for (const [name, value] of settableHeaders(ticket.headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve();
      } else {
        reject(new UploadError(`The storage refused the file (HTTP ${xhr.status}).`, xhr.status));
      }
    };
    xhr.onerror = () => reject(new UploadError('The upload could not reach the storage. Check your connection and try again.', 0));
    xhr.onabort = () => reject(new UploadError('The upload was cancelled.', 0));
    xhr.send(file);
  });
}

/** The media type to ask for: the browser's guess, or a generic one. */
export function contentTypeOf(file: { type: string; name: string }): string {
  if (file.type && /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+$/.test(file.type)) return file.type;
  if (/\.(txt|md|csv|log)$/i.test(file.name)) return 'text/plain';
  return 'application/octet-stream';
}
