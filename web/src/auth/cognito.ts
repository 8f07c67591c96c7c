// Cognito's JSON API, called straight from the browser with the public app client (no secret,
// unsigned): `POST <endpoint>` with `X-Amz-Target: AWSCognitoIdentityProviderService.<Op>`.
// Deployed, the endpoint is `https://cognito-idp.<region>.amazonaws.com/`; locally, the AWS
// emulator's URL. The flows are the README's "Signing in" table.

/** The tokens of a signed-in user. */
export interface Tokens {
  idToken: string;
  accessToken: string;
  /** Absent from a refresh's answer: the one used to refresh stays valid. */
  refreshToken?: string;
  /** Seconds the ID and access tokens live. */
  expiresIn: number;
}

/** What a password sign-in answers: tokens, or Cognito's demand for a new password. */
export type SignInResult =
  | { kind: 'signed_in'; tokens: Tokens }
  | { kind: 'new_password_required'; session: string; username: string };

/** A refusal by Cognito, with its exception name (`NotAuthorizedException`, …). */
export class CognitoError extends Error {
  constructor(
    /** The `__type` without any namespace prefix, or `NetworkError`/`UnexpectedResponse`. */
    readonly type: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'CognitoError';
  }

  /** What to tell the person signing in. */
  get userMessage(): string {
    switch (this.type) {
      case 'NotAuthorizedException':
        return /disabled/i.test(this.message)
          ? 'This account is disabled. Ask your practice’s admin.'
          : /expired/i.test(this.message)
            ? 'Your temporary password has expired. Ask your practice’s admin to invite you again.'
            : 'Incorrect email address or password.';
      case 'UserNotFoundException':
        return 'Incorrect email address or password.';
      case 'InvalidPasswordException':
        return `That password doesn’t meet the policy: ${this.message}`;
      case 'CodeMismatchException':
        return 'That code is not right. Check the latest email.';
      case 'ExpiredCodeException':
        return 'That code has expired. Ask for a new one.';
      case 'LimitExceededException':
      case 'TooManyRequestsException':
      case 'TooManyFailedAttemptsException':
        return 'Too many attempts. Wait a few minutes and try again.';
      case 'PasswordResetRequiredException':
        return 'You must reset your password: use “Forgot password”.';
      case 'InvalidParameterException':
        return this.message || 'Something in the form is not valid.';
      case 'NetworkError':
        return 'The sign-in service could not be reached. Check your connection and try again.';
      default:
        return this.message || 'Sign-in failed.';
    }
  }
}

/** What the client needs to know about the pool. */
export interface CognitoConfig {
  endpoint: string;
  clientId: string;
}

type Fetch = typeof fetch;

interface AuthenticationResult {
  IdToken?: string;
  AccessToken?: string;
  RefreshToken?: string;
  ExpiresIn?: number;
}

interface AuthAnswer {
  AuthenticationResult?: AuthenticationResult;
  ChallengeName?: string;
  Session?: string;
}

/** A small typed client of the Cognito user pool operations the app uses. */
export class CognitoClient {
  private readonly fetch: Fetch;

  constructor(
    private readonly config: CognitoConfig,
    fetchImpl: Fetch = (...args) => globalThis.fetch(...args),
  ) {
    this.fetch = fetchImpl;
  }

  /** `InitiateAuth` with `USER_PASSWORD_AUTH`. */
  async signIn(username: string, password: string): Promise<SignInResult> {
    const answer = await this.call<AuthAnswer>('InitiateAuth', {
      AuthFlow: 'USER_PASSWORD_AUTH',
      ClientId: this.config.clientId,
      AuthParameters: { USERNAME: username, PASSWORD: password },
    });
    return this.signInResult(answer, username);
  }

  /** `RespondToAuthChallenge` `NEW_PASSWORD_REQUIRED`: the first sign-in sets a password. */
  async completeNewPassword(
    username: string,
    session: string,
    newPassword: string,
  ): Promise<Tokens> {
    const answer = await this.call<AuthAnswer>('RespondToAuthChallenge', {
      ChallengeName: 'NEW_PASSWORD_REQUIRED',
      ClientId: this.config.clientId,
      Session: session,
      ChallengeResponses: { USERNAME: username, NEW_PASSWORD: newPassword },
    });
    const result = this.signInResult(answer, username);
    if (result.kind !== 'signed_in') {
      throw new CognitoError('UnexpectedResponse', 'Cognito asked for another challenge', 200);
    }
    return result.tokens;
  }

  /** `InitiateAuth` with `REFRESH_TOKEN_AUTH`: fresh ID and access tokens. */
  async refresh(refreshToken: string): Promise<Tokens> {
    const answer = await this.call<AuthAnswer>('InitiateAuth', {
      AuthFlow: 'REFRESH_TOKEN_AUTH',
      ClientId: this.config.clientId,
      AuthParameters: { REFRESH_TOKEN: refreshToken },
    });
    const tokens = tokensOf(answer.AuthenticationResult);
    return { ...tokens, refreshToken: tokens.refreshToken ?? refreshToken };
  }

  /** `GlobalSignOut`: revokes every refresh token of the user. */
  async signOut(accessToken: string): Promise<void> {
    await this.call('GlobalSignOut', { AccessToken: accessToken });
  }

  /** `ForgotPassword`: Cognito mails a code (locally the emulator answers it in a header). */
  async forgotPassword(username: string): Promise<void> {
    await this.call('ForgotPassword', { ClientId: this.config.clientId, Username: username });
  }

  /** `ConfirmForgotPassword`: sets the new password with the mailed code. */
  async confirmForgotPassword(username: string, code: string, password: string): Promise<void> {
    await this.call('ConfirmForgotPassword', {
      ClientId: this.config.clientId,
      Username: username,
      ConfirmationCode: code,
      Password: password,
    });
  }

  private signInResult(answer: AuthAnswer, username: string): SignInResult {
    if (answer.ChallengeName === 'NEW_PASSWORD_REQUIRED') {
      if (!answer.Session) {
        throw new CognitoError('UnexpectedResponse', 'challenge without a session', 200);
      }
      return { kind: 'new_password_required', session: answer.Session, username };
    }
    if (answer.ChallengeName) {
      throw new CognitoError(
        'UnsupportedChallenge',
        `This account needs ${answer.ChallengeName}, which this app does not support yet.`,
        200,
      );
    }
    return { kind: 'signed_in', tokens: tokensOf(answer.AuthenticationResult) };
  }

  private async call<T>(operation: string, body: unknown): Promise<T> {
    let response: Response;
    try {
      response = await this.fetch(this.config.endpoint, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-amz-json-1.1',
          'X-Amz-Target': `AWSCognitoIdentityProviderService.${operation}`,
        },
        body: JSON.stringify(body),
      });
    } catch (err) {
      throw new CognitoError('NetworkError', err instanceof Error ? err.message : String(err), 0);
    }
    const text = await response.text();
    let json: unknown = {};
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        throw new CognitoError('UnexpectedResponse', `not JSON (HTTP ${response.status})`, response.status);
      }
    }
    if (!response.ok) {
      const { __type, message, Message } = (json ?? {}) as {
        __type?: string;
        message?: string;
        Message?: string;
      };
      throw new CognitoError(
        errorType(__type) ?? `HTTP${response.status}`,
        message ?? Message ?? '',
        response.status,
      );
    }
    return json as T;
  }
}

/** `com.amazonaws.cognito…#NotAuthorizedException` (or `…Exception:<detail>`) → the bare name. */
export function errorType(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  const afterHash = raw.slice(raw.lastIndexOf('#') + 1);
  return afterHash.split(':')[0] || undefined;
}

function tokensOf(result: AuthenticationResult | undefined): Tokens {
  if (!result?.IdToken || !result.AccessToken) {
    throw new CognitoError('UnexpectedResponse', 'no tokens in the answer', 200);
  }
  return {
    idToken: result.IdToken,
    accessToken: result.AccessToken,
    ...(result.RefreshToken ? { refreshToken: result.RefreshToken } : {}),
    expiresIn: result.ExpiresIn ?? 3600,
  };
}
