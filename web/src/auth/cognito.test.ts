import { describe, expect, it } from 'vitest';
import { CognitoClient, CognitoError, errorType } from './cognito';
import { fakeFetch, jsonResponse } from '../test/helpers';

const config = { endpoint: 'http://127.0.0.1:5000/', clientId: 'client-123' };
const tokens = { IdToken: 'id.t.k', AccessToken: 'acc', RefreshToken: 'ref', ExpiresIn: 3600, TokenType: 'Bearer' };

describe('CognitoClient', () => {
  it('signs in with USER_PASSWORD_AUTH as an unsigned JSON call', async () => {
    const { fetch, calls } = fakeFetch(() => jsonResponse(200, { AuthenticationResult: tokens }));
    const result = await new CognitoClient(config, fetch).signIn('nora@northwind.test', 'pw');
    expect(result).toEqual({ kind: 'signed_in', tokens: { idToken: 'id.t.k', accessToken: 'acc', refreshToken: 'ref', expiresIn: 3600 } });
    const call = calls[0]!;
    expect(call.url).toBe('http://127.0.0.1:5000/');
    expect(call.init.method).toBe('POST');
    expect(call.headers['content-type']).toBe('application/x-amz-json-1.1');
    expect(call.headers['x-amz-target']).toBe('AWSCognitoIdentityProviderService.InitiateAuth');
    expect(call.headers.authorization).toBeUndefined();
    expect(call.body).toEqual({ AuthFlow: 'USER_PASSWORD_AUTH', ClientId: 'client-123', AuthParameters: { USERNAME: 'nora@northwind.test', PASSWORD: 'pw' } });
  });

  it('answers NEW_PASSWORD_REQUIRED with the session to respond with', async () => {
    const { fetch } = fakeFetch(() => jsonResponse(200, { ChallengeName: 'NEW_PASSWORD_REQUIRED', Session: 'sess', ChallengeParameters: {} }));
    const result = await new CognitoClient(config, fetch).signIn('nora@northwind.test', 'temp');
    expect(result).toEqual({ kind: 'new_password_required', session: 'sess', username: 'nora@northwind.test' });
  });

  it('completes the first sign-in with RespondToAuthChallenge', async () => {
    const { fetch, calls } = fakeFetch(() => jsonResponse(200, { AuthenticationResult: tokens }));
    const result = await new CognitoClient(config, fetch).completeNewPassword('nora@northwind.test', 'sess', 'Nora-own-pass-1!');
    expect(result.idToken).toBe('id.t.k');
    expect(calls[0]!.headers['x-amz-target']).toBe('AWSCognitoIdentityProviderService.RespondToAuthChallenge');
    expect(calls[0]!.body).toEqual({
      ChallengeName: 'NEW_PASSWORD_REQUIRED',
      ClientId: 'client-123',
      Session: 'sess',
      ChallengeResponses: { USERNAME: 'nora@northwind.test', NEW_PASSWORD: 'Nora-own-pass-1!' },
    });
  });

  it('refuses another challenge than the one it supports', async () => {
    const { fetch } = fakeFetch(() => jsonResponse(200, { ChallengeName: 'SOFTWARE_TOKEN_MFA', Session: 's' }));
    await expect(new CognitoClient(config, fetch).signIn('a@b.test', 'pw')).rejects.toMatchObject({ type: 'UnsupportedChallenge' });
  });

  it('refreshes and keeps the refresh token Cognito does not send again', async () => {
    const { fetch, calls } = fakeFetch(() => jsonResponse(200, { AuthenticationResult: { IdToken: 'new.id.t', AccessToken: 'acc2', ExpiresIn: 3600 } }));
    const result = await new CognitoClient(config, fetch).refresh('ref');
    expect(result).toEqual({ idToken: 'new.id.t', accessToken: 'acc2', refreshToken: 'ref', expiresIn: 3600 });
    expect(calls[0]!.body).toEqual({ AuthFlow: 'REFRESH_TOKEN_AUTH', ClientId: 'client-123', AuthParameters: { REFRESH_TOKEN: 'ref' } });
  });

  it('signs out globally and handles the password reset calls', async () => {
    const { fetch, calls } = fakeFetch(() => jsonResponse(200, {}));
    const client = new CognitoClient(config, fetch);
    await client.signOut('acc');
    await client.forgotPassword('nora@northwind.test');
    await client.confirmForgotPassword('nora@northwind.test', '123456', 'New-pass-123!');
    expect(calls.map((c) => c.headers['x-amz-target'])).toEqual([
      'AWSCognitoIdentityProviderService.GlobalSignOut',
      'AWSCognitoIdentityProviderService.ForgotPassword',
      'AWSCognitoIdentityProviderService.ConfirmForgotPassword',
    ]);
    expect(calls[0]!.body).toEqual({ AccessToken: 'acc' });
    expect(calls[1]!.body).toEqual({ ClientId: 'client-123', Username: 'nora@northwind.test' });
    expect(calls[2]!.body).toEqual({ ClientId: 'client-123', Username: 'nora@northwind.test', ConfirmationCode: '123456', Password: 'New-pass-123!' });
  });

  it('turns an error answer into a CognitoError with its exception name', async () => {
    const { fetch } = fakeFetch(() => jsonResponse(400, { __type: 'NotAuthorizedException', message: 'Incorrect username or password.' }));
    const error = await new CognitoClient(config, fetch).signIn('a@b.test', 'bad').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CognitoError);
    expect(error).toMatchObject({ type: 'NotAuthorizedException', status: 400, message: 'Incorrect username or password.' });
    expect((error as CognitoError).userMessage).toBe('Incorrect email address or password.');
  });

  it('says a disabled account is disabled, not a wrong password', () => {
    expect(new CognitoError('NotAuthorizedException', 'User is disabled.', 400).userMessage).toMatch(/disabled/);
  });

  it('reports a failed connection as a NetworkError', async () => {
    const fetch = (() => Promise.reject(new TypeError('Failed to fetch'))) as typeof globalThis.fetch;
    await expect(new CognitoClient(config, fetch).signIn('a@b.test', 'pw')).rejects.toMatchObject({ type: 'NetworkError', status: 0 });
  });

  it('reads namespaced exception names', () => {
    expect(errorType('com.amazonaws.cognito.identity.idp.model#CodeMismatchException')).toBe('CodeMismatchException');
    expect(errorType('InvalidPasswordException:extra')).toBe('InvalidPasswordException');
    expect(errorType(undefined)).toBeUndefined();
  });
});
