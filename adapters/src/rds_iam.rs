//! IAM database authentication for RDS and RDS Proxy: the password of a connection is a
//! short-lived token, a SigV4-presigned `rds-db:connect` request signed with the function's
//! role, so no database password lives in a Lambda's environment.
//!
//! A token is only checked when a connection is opened and expires after 15 minutes, so a
//! pool re-signs before opening connections once its token is older than [`TOKEN_REFRESH`]
//! (see [`crate::postgres::connect_database`]).

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;

/// How long a token is valid (the longest RDS accepts).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Tokens older than this are replaced before new connections are opened: a third of the
/// lifetime is left for a connection attempt that started just before.
pub const TOKEN_REFRESH: Duration = Duration::from_secs(600);

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum IamAuthError {
    /// The AWS configuration names no region.
    #[error("IAM database authentication needs an AWS region")]
    NoRegion,
    /// The AWS configuration has no credentials provider.
    #[error("IAM database authentication needs AWS credentials")]
    NoCredentials,
    /// The credentials could not be resolved.
    #[error("cannot resolve AWS credentials")]
    Credentials(#[source] aws_credential_types::provider::error::CredentialsError),
    /// Signing failed (an invalid host name, for one).
    #[error("cannot sign the database auth token: {0}")]
    Signing(String),
}

/// Signs `rds-db:connect` tokens for one database user at one endpoint.
#[derive(Clone, Debug)]
pub struct RdsTokenSigner {
    credentials: SharedCredentialsProvider,
    region: String,
    host: String,
    port: u16,
    user: String,
}

impl RdsTokenSigner {
    /// A signer for `user` at `host:port`, with the region and credentials of `aws`.
    pub fn new(aws: &SdkConfig, host: &str, port: u16, user: &str) -> Result<Self, IamAuthError> {
        Ok(Self {
            credentials: aws
                .credentials_provider()
                .ok_or(IamAuthError::NoCredentials)?,
            region: aws.region().ok_or(IamAuthError::NoRegion)?.to_string(),
            host: host.to_owned(),
            port,
            user: user.to_owned(),
        })
    }

    /// A token valid for [`TOKEN_LIFETIME`] from now.
    pub async fn token(&self) -> Result<String, IamAuthError> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(IamAuthError::Credentials)?;
        self.token_at(credentials, SystemTime::now())
    }

    /// The token `credentials` sign at `time`: what `aws rds generate-db-auth-token` prints.
    pub fn token_at(
        &self,
        credentials: Credentials,
        time: SystemTime,
    ) -> Result<String, IamAuthError> {
        let signing_error = |err: &dyn std::fmt::Display| IamAuthError::Signing(err.to_string());
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(TOKEN_LIFETIME);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("rds-db")
            .time(time)
            .settings(settings)
            .build()
            .map_err(|err| signing_error(&err))?
            .into();
        let url = format!(
            "https://{}:{}/?Action=connect&DBUser={}",
            self.host,
            self.port,
            urlencoding(&self.user)
        );
        let request = SignableRequest::new(
            "GET",
            url.as_str(),
            std::iter::empty(),
            SignableBody::empty(),
        )
        .map_err(|err| signing_error(&err))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|err| signing_error(&err))?
            .into_parts();
        let mut signed = http::Request::builder()
            .uri(url.as_str())
            .body(())
            .map_err(|err| signing_error(&err))?;
        instructions.apply_to_request_http1x(&mut signed);
        let uri = signed.uri().to_string();
        Ok(uri.strip_prefix("https://").unwrap_or(&uri).to_owned())
    }
}

/// Percent-encodes a user name for the query string (RDS user names are usually plain, but
/// a quoted identifier may hold anything).
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::Region;

    const HOST: &str = "casebook-dev.proxy-abc.eu-west-1.rds.amazonaws.com";

    fn signer(session_token: Option<&str>) -> (RdsTokenSigner, Credentials) {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "test",
        );
        let aws = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(credentials.clone()))
            .build();
        (
            RdsTokenSigner::new(&aws, HOST, 5432, "casebook").unwrap(),
            credentials,
        )
    }

    fn noon() -> SystemTime {
        // 2026-11-25T12:00:00Z
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_608_000)
    }

    /// The endpoint and the query parameters, in order: the signature covers the parameters,
    /// not their order in the token.
    fn parts(token: &str) -> (&str, Vec<&str>) {
        let (endpoint, query) = token.split_once('?').expect("a query string");
        let mut params: Vec<&str> = query.split('&').collect();
        params.sort_unstable();
        (endpoint, params)
    }

    // Expected tokens were printed by botocore's `generate_db_auth_token` (the AWS CLI's
    // implementation) for the same credentials, region, endpoint, user and time.
    #[test]
    fn a_token_is_what_the_aws_cli_generates_for_the_same_inputs() {
        let (signer, credentials) = signer(None);
        assert_eq!(
            parts(&signer.token_at(credentials, noon()).unwrap()),
            parts(&format!(
                "{HOST}:5432/?Action=connect&DBUser=casebook&X-Amz-Algorithm=AWS4-HMAC-SHA256\
                 &X-Amz-Credential=AKIDEXAMPLE%2F20261125%2Feu-west-1%2Frds-db%2Faws4_request\
                 &X-Amz-Date=20261125T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
                 &X-Amz-Signature=b0209fe68c28186a1c46d64a87d7a67fa2cf949339000f0a4a00dfa315266545"
            ))
        );
    }

    #[test]
    fn a_lambda_roles_session_token_is_signed_into_the_token() {
        let (signer, credentials) = signer(Some("SESSION/TOKEN+with=chars"));
        assert_eq!(
            parts(&signer.token_at(credentials, noon()).unwrap()),
            parts(&format!(
                "{HOST}:5432/?Action=connect&DBUser=casebook&X-Amz-Algorithm=AWS4-HMAC-SHA256\
                 &X-Amz-Credential=AKIDEXAMPLE%2F20261125%2Feu-west-1%2Frds-db%2Faws4_request\
                 &X-Amz-Date=20261125T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
                 &X-Amz-Security-Token=SESSION%2FTOKEN%2Bwith%3Dchars\
                 &X-Amz-Signature=c6f0baf0f483a3fe3d448dbaedad04a1cc78d9294100bef3a36d80311e7d205d"
            ))
        );
    }

    #[test]
    fn a_configuration_without_region_or_credentials_is_refused() {
        let no_region = SdkConfig::builder()
            .credentials_provider(SharedCredentialsProvider::new(signer(None).1))
            .build();
        assert!(matches!(
            RdsTokenSigner::new(&no_region, HOST, 5432, "casebook"),
            Err(IamAuthError::NoRegion)
        ));
        let no_credentials = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .build();
        assert!(matches!(
            RdsTokenSigner::new(&no_credentials, HOST, 5432, "casebook"),
            Err(IamAuthError::NoCredentials)
        ));
    }
}
