import { describe, expect, it } from 'vitest';
import { parseConfig } from './config';

describe('parseConfig', () => {
  it('takes Cognito as deployed, or the local relay on this origin', () => {
    for (const endpoint of ['https://cognito-idp.eu-west-1.amazonaws.com/', '/local/cognito/']) {
      expect(parseConfig({ cognito: { endpoint, region: 'eu-west-1', clientId: 'c1' } })).toEqual({
        cognito: { endpoint, region: 'eu-west-1', clientId: 'c1' },
      });
    }
  });

  it('refuses an endpoint that is neither, and a missing client', () => {
    expect(() => parseConfig({ cognito: { endpoint: 'ftp://x', clientId: 'c1' } })).toThrow(/endpoint/);
    expect(() => parseConfig({ cognito: { endpoint: '/local/cognito/' } })).toThrow(/clientId/);
    expect(() => parseConfig(null)).toThrow(/endpoint/);
  });
});
