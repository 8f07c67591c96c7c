//! The Bedrock adapters against a fake Bedrock: an axum server on `127.0.0.1:0` that records
//! every request and answers from a script, with the SDK's endpoint pointed at it through
//! the same configuration the product reads (`CASEBOOK_BEDROCK_ENDPOINT_URL`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_bedrockruntime::config::{Credentials, SharedCredentialsProvider};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use casebook_adapters::ai::bedrock::{bedrock_client_from, BedrockLlm, TitanEmbedder};
use casebook_adapters::ai::config::{AiConfig, BedrockConfig};
use casebook_adapters::ai::prompt::DIAGNOSIS_V1;
use casebook_domain::diagnosis::Severity;
use casebook_domain::ids::JudgmentId;
use casebook_domain::policy::ModelTier;
use casebook_domain::ports::{
    DiagnosisPrompt, EmbedError, Embedder, Llm, LlmError, Precedent, StopReason,
};
use casebook_domain::values::{JudgmentBody, JudgmentTitle, QueryText};
use serde_json::{json, Value};

/// One request as the fake received it.
#[derive(Debug, Clone)]
struct Received {
    model_id: String,
    operation: String,
    headers: HeaderMap,
    body: Value,
}

/// A scripted answer.
#[derive(Debug, Clone)]
struct Scripted {
    status: StatusCode,
    error_type: Option<&'static str>,
    body: Value,
    delay: Duration,
}

impl Scripted {
    fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            error_type: None,
            body,
            delay: Duration::ZERO,
        }
    }

    fn error(status: StatusCode, error_type: &'static str) -> Self {
        Self {
            status,
            error_type: Some(error_type),
            body: json!({"message": format!("{error_type} (scripted)")}),
            delay: Duration::ZERO,
        }
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct FakeState {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Scripted>>,
}

/// The fake Bedrock runtime endpoint.
struct FakeBedrock {
    addr: SocketAddr,
    state: Arc<FakeState>,
}

impl FakeBedrock {
    async fn start(script: Vec<Scripted>) -> Self {
        let state = Arc::new(FakeState {
            received: Mutex::default(),
            script: Mutex::new(script.into()),
        });
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The product's configuration, pointed at this fake.
    fn config(&self, extra: &[(&str, &str)]) -> BedrockConfig {
        let mut vars: HashMap<String, String> = HashMap::from([
            ("CASEBOOK_AI_PROVIDER".into(), "bedrock".into()),
            ("CASEBOOK_BEDROCK_REGION".into(), "us-east-1".into()),
            (
                "CASEBOOK_BEDROCK_ENDPOINT_URL".into(),
                format!("http://{}", self.addr),
            ),
            ("CASEBOOK_BEDROCK_BACKOFF_BASE_MS".into(), "10".into()),
            ("CASEBOOK_BEDROCK_BACKOFF_MAX_MS".into(), "50".into()),
            ("CASEBOOK_BEDROCK_TIMEOUT_MS".into(), "5000".into()),
        ]);
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        AiConfig::from_lookup(|name| vars.get(name).cloned())
            .expect("valid configuration")
            .bedrock
    }

    fn llm(&self, extra: &[(&str, &str)]) -> BedrockLlm {
        let config = self.config(extra);
        BedrockLlm::new(
            bedrock_client_from(&sdk_config(), &config),
            config.models.clone(),
            config.max_tokens,
            config.call_policy,
            config.prices.clone(),
        )
    }

    fn titan(&self, extra: &[(&str, &str)]) -> TitanEmbedder {
        let config = self.config(extra);
        TitanEmbedder::new(
            bedrock_client_from(&sdk_config(), &config),
            config.embedding_model.clone(),
            config.embedding_dimensions,
            config.call_policy,
            config.prices.clone(),
        )
    }
}

/// Static credentials, so the test never reads the machine's AWS configuration.
fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .build()
}

async fn answer(
    State(state): State<Arc<FakeState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // /model/{modelId}/{invoke|converse}, the id percent-encoded (`:` is `%3A`).
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let (model_id, operation) = match segments.as_slice() {
        ["model", id, operation] => (percent_decode(id), (*operation).to_owned()),
        _ => return (StatusCode::NOT_FOUND, "unknown path").into_response(),
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.received.lock().unwrap().push(Received {
        model_id,
        operation,
        headers,
        body,
    });
    let scripted = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .expect("the fake got more requests than scripted");
    tokio::time::sleep(scripted.delay).await;
    let mut response = (scripted.status, axum::Json(scripted.body)).into_response();
    if let Some(error_type) = scripted.error_type {
        response
            .headers_mut()
            .insert("x-amzn-errortype", error_type.parse().unwrap());
    }
    response
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn titan_response(dimensions: usize, tokens: u32) -> Scripted {
    let value = 1.0 / (dimensions as f32).sqrt();
    Scripted::ok(json!({
        "embedding": vec![value; dimensions],
        "inputTextTokenCount": tokens,
        "embeddingsByType": {"float": vec![value; dimensions]},
    }))
}

fn diagnosis_input() -> Value {
    json!({
        "diagnosis": "The expansion vessel has lost its charge.",
        "findings": [
            {"summary": "Pressure drops overnight", "detail": "From 1.5 to 0.5 bar", "severity": "medium"},
            {"summary": "No visible leak", "severity": "info"}
        ],
        "confidence": 0.82
    })
}

fn converse_tool_use(input: Value) -> Scripted {
    Scripted::ok(json!({
        "output": {"message": {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "tooluse_1", "name": "record_diagnosis", "input": input}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 1234, "outputTokens": 210, "totalTokens": 1444},
        "metrics": {"latencyMs": 812}
    }))
}

fn prompt(tier: ModelTier) -> DiagnosisPrompt {
    DiagnosisPrompt {
        system: DIAGNOSIS_V1.text().to_owned(),
        query: QueryText::parse("Our boiler loses pressure every night.").unwrap(),
        precedents: vec![Precedent {
            judgment_id: JudgmentId::new(),
            title: JudgmentTitle::parse("Pressure loss").unwrap(),
            body: JudgmentBody::parse("Recharge the expansion vessel.").unwrap(),
            score: 0.87,
        }],
        attachments: vec![],
        tier,
    }
}

#[tokio::test]
async fn titan_embeddings_send_one_invoke_model_per_text_with_dimensions_and_normalize() {
    let fake = FakeBedrock::start(vec![titan_response(256, 7), titan_response(256, 4)]).await;
    let titan = fake.titan(&[("CASEBOOK_BEDROCK_EMBEDDING_DIMENSIONS", "256")]);
    assert_eq!(titan.model_id(), "amazon.titan-embed-text-v2:0");
    assert_eq!(titan.dimension(), 256);

    let texts = vec!["boiler pressure drops".to_owned(), "roof leak".to_owned()];
    let vectors = titan.embed(&texts).await.expect("embeddings");
    assert_eq!(vectors.len(), 2);
    assert!(vectors.iter().all(|v| v.len() == 256));

    let received = fake.received();
    assert_eq!(received.len(), 2);
    for (request, text) in received.iter().zip(&texts) {
        assert_eq!(request.model_id, "amazon.titan-embed-text-v2:0");
        assert_eq!(request.operation, "invoke");
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(request.headers["accept"], "application/json");
        assert_eq!(
            request.body,
            json!({"inputText": text, "dimensions": 256, "normalize": true})
        );
        assert!(
            request.headers.contains_key("authorization"),
            "SigV4-signed"
        );
    }
}

#[tokio::test]
async fn titan_vectors_of_the_wrong_length_are_refused() {
    let fake = FakeBedrock::start(vec![titan_response(512, 3)]).await;
    let titan = fake.titan(&[("CASEBOOK_BEDROCK_EMBEDDING_DIMENSIONS", "1024")]);
    let err = titan.embed(&["x".to_owned()]).await.unwrap_err();
    assert!(matches!(
        err,
        EmbedError::WrongDimension {
            expected: 1024,
            actual: 512
        }
    ));
}

#[tokio::test]
async fn converse_asks_the_tiers_model_for_the_tool_and_parses_answer_and_usage() {
    let fake = FakeBedrock::start(vec![converse_tool_use(diagnosis_input())]).await;
    let config = fake.config(&[]);
    let llm = fake.llm(&[]);
    let request = prompt(ModelTier::Standard);

    let answer = llm.diagnose(&request).await.expect("an answer");
    assert_eq!(
        answer.text.as_str(),
        "The expansion vessel has lost its charge."
    );
    assert_eq!(answer.findings.len(), 2);
    assert_eq!(answer.findings[0].severity, Severity::Medium);
    assert_eq!(
        answer.findings[0].detail.as_deref(),
        Some("From 1.5 to 0.5 bar")
    );
    assert_eq!(answer.findings[1].detail, None);
    assert!((answer.confidence.value() - 0.82).abs() < 1e-9);
    assert_eq!((answer.input_tokens, answer.output_tokens), (1234, 210));
    assert_eq!(
        answer.model_id,
        "us.anthropic.claude-sonnet-4-20250514-v1:0"
    );
    assert_eq!(answer.stop_reason, StopReason::EndTurn);
    // Sonnet 4 at $3 / $15 per million tokens: 1234 × 3 + 210 × 15 micro-dollars.
    assert_eq!(
        config
            .prices
            .cost_usd_micros(&answer.model_id, answer.input_tokens, answer.output_tokens),
        Some(1234 * 3 + 210 * 15)
    );

    let received = fake.received();
    assert_eq!(received.len(), 1);
    let request_json = &received[0];
    assert_eq!(request_json.operation, "converse");
    assert_eq!(
        request_json.model_id,
        "us.anthropic.claude-sonnet-4-20250514-v1:0"
    );
    let body = &request_json.body;
    assert_eq!(body["system"], json!([{"text": DIAGNOSIS_V1.text()}]));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"text":
            "Precedents:\n[1] Pressure loss (similarity 0.87)\nRecharge the expansion vessel.\n\n\
             Query:\nOur boiler loses pressure every night."}]}])
    );
    assert_eq!(
        body["inferenceConfig"],
        json!({"maxTokens": 2048, "temperature": 0.0})
    );
    let tool = &body["toolConfig"]["tools"][0]["toolSpec"];
    assert_eq!(tool["name"], "record_diagnosis");
    assert_eq!(
        tool["inputSchema"]["json"]["required"],
        json!(["diagnosis", "findings", "confidence"])
    );
    assert_eq!(
        body["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "record_diagnosis"}})
    );
}

#[tokio::test]
async fn each_tier_calls_its_configured_model() {
    let tiers = [
        (
            ModelTier::Triage,
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        ),
        (
            ModelTier::Strongest,
            "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-opus",
        ),
    ];
    let fake = FakeBedrock::start(vec![
        converse_tool_use(diagnosis_input()),
        converse_tool_use(diagnosis_input()),
    ])
    .await;
    let llm = fake.llm(&[
        ("CASEBOOK_BEDROCK_MODEL_STRONGEST", tiers[1].1),
        (
            "CASEBOOK_BEDROCK_PRICES",
            &format!(r#"{{"{}": {{"input": 15, "output": 75}}}}"#, tiers[1].1),
        ),
    ]);
    for (tier, _) in tiers {
        llm.diagnose(&prompt(tier)).await.expect("an answer");
    }
    let models: Vec<String> = fake.received().into_iter().map(|r| r.model_id).collect();
    assert_eq!(models, vec![tiers[0].1.to_owned(), tiers[1].1.to_owned()]);
}

#[tokio::test]
async fn the_open_weights_model_is_offered_the_tool_and_may_answer_in_json_text() {
    let text = format!(
        "Here is my assessment:\n```json\n{}\n```",
        diagnosis_input()
    );
    let fake = FakeBedrock::start(vec![Scripted::ok(json!({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 900, "outputTokens": 120, "totalTokens": 1020},
        "metrics": {"latencyMs": 400}
    }))])
    .await;
    let answer = fake
        .llm(&[])
        .diagnose(&prompt(ModelTier::OpenWeights))
        .await
        .expect("an answer");
    assert_eq!(answer.model_id, "us.meta.llama3-3-70b-instruct-v1:0");
    assert!((answer.confidence.value() - 0.82).abs() < 1e-9);
    let received = fake.received();
    assert_eq!(received[0].model_id, "us.meta.llama3-3-70b-instruct-v1:0");
    assert_eq!(
        received[0].body["toolConfig"]["toolChoice"],
        json!({"auto": {}})
    );
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_succeeds() {
    let fake = FakeBedrock::start(vec![
        Scripted::error(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
        Scripted::error(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
        converse_tool_use(diagnosis_input()),
    ])
    .await;
    let answer = fake
        .llm(&[])
        .diagnose(&prompt(ModelTier::Triage))
        .await
        .expect("the third attempt succeeds");
    assert_eq!(answer.output_tokens, 210);
    let received = fake.received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[0].body, received[2].body, "the same request again");
}

#[tokio::test]
async fn throttling_that_outlasts_the_attempts_is_a_retryable_failure() {
    let fake = FakeBedrock::start(vec![
        Scripted::error(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
        Scripted::error(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
    ])
    .await;
    let err = fake
        .titan(&[("CASEBOOK_BEDROCK_MAX_ATTEMPTS", "2")])
        .embed(&["x".to_owned()])
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(fake.received().len(), 2);
}

#[tokio::test]
async fn a_timeout_surfaces_as_a_retryable_failure() {
    let fake = FakeBedrock::start(vec![
        converse_tool_use(diagnosis_input()).delayed(Duration::from_secs(3))
    ])
    .await;
    let llm = fake.llm(&[("CASEBOOK_BEDROCK_TIMEOUT_MS", "200")]);
    let started = std::time::Instant::now();
    let err = llm
        .diagnose(&prompt(ModelTier::Standard))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Transient(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up at the timeout"
    );
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("timed out after 200ms"), "{cause}");
}

#[tokio::test]
async fn a_validation_error_is_final_and_not_retried() {
    let fake = FakeBedrock::start(vec![Scripted::error(
        StatusCode::BAD_REQUEST,
        "ValidationException",
    )])
    .await;
    let err = fake
        .llm(&[])
        .diagnose(&prompt(ModelTier::Standard))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Permanent(_)), "{err:?}");
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn a_tool_call_that_breaks_the_schema_is_a_malformed_answer() {
    let fake = FakeBedrock::start(vec![converse_tool_use(
        json!({"diagnosis": "x", "findings": [], "confidence": 1.7}),
    )])
    .await;
    let err = fake
        .llm(&[])
        .diagnose(&prompt(ModelTier::Standard))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::MalformedAnswer(_)), "{err:?}");
    assert!(err.is_retryable(), "another sample may comply");
}
