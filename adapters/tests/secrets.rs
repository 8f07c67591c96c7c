//! Secrets Manager against the AWS emulator: a secret's string comes back as stored; a
//! secret that does not exist is a failed call, not an empty key.

use casebook_adapters::aws::secrets::{aws_sdk_secretsmanager::Client, secret_string};
use casebook_adapters::aws::{shared_config, AwsError};

#[tokio::test]
async fn a_secret_reads_back_as_stored_and_a_missing_one_is_an_error() {
    let aws = shared_config().await;
    let name = format!("casebook-test/log-key-{}", uuid::Uuid::new_v4().simple());
    let value = "PRIVATE+KEY+casebook.test+01234567+AQ==";
    Client::new(&aws)
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .expect("the emulator stores the secret");

    assert_eq!(secret_string(&aws, &name).await.unwrap(), value);
    let missing = secret_string(&aws, &format!("{name}-missing")).await;
    assert!(
        matches!(
            missing,
            Err(AwsError::Call {
                operation: "GetSecretValue",
                ..
            })
        ),
        "{missing:?}"
    );
}
