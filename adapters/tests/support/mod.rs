//! What the adapters' AWS tests share.

use casebook_adapters::aws::{shared_config, SdkConfig};

/// The AWS configuration of the environment (region, credentials) pointed at `endpoint`, a
/// loopback stand-in for one service. Built from parts: a configuration loaded from the
/// environment would let `AWS_ENDPOINT_URL` (the emulator) win over the endpoint set here.
pub async fn aws_config_at(endpoint: String) -> SdkConfig {
    let shared = shared_config().await;
    let mut aws = SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(shared.region().cloned())
        .endpoint_url(endpoint);
    aws.set_credentials_provider(shared.credentials_provider());
    aws.build()
}
