//! Diagnoses through Bedrock's `Converse` API: the Claude tiers and an open-weights model.
//!
//! The structured answer comes through a tool, `record_diagnosis`, whose input schema is the
//! answer's JSON schema. Claude models are made to call it (`toolChoice: tool`); other models
//! are offered it (`auto`, as not every model on Bedrock can be forced) and an answer they
//! write as JSON text is accepted too. Temperature 0, so answers vary as little as the
//! model allows. Token usage and cost are logged per call; the caller records them in the
//! proposal's provenance ([`PriceTable::cost_usd_micros`]).

use async_trait::async_trait;
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput as ConverseResponse;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message,
    SpecificToolChoice, StopReason as BedrockStopReason, SystemContentBlock, Tool, ToolChoice,
    ToolConfiguration, ToolInputSchema, ToolSpecification,
};
use aws_sdk_bedrockruntime::Client;
use casebook_domain::ports::{DiagnosisPrompt, Llm, LlmAnswer, LlmError, StopReason};

use super::client::{call, classify, CallFailed};
use super::document::{to_document, to_json};
use super::CallPolicy;
use crate::ai::answer::{self, ANSWER_TOOL};
use crate::ai::config::TierModels;
use crate::ai::pricing::PriceTable;
use crate::ai::prompt;

/// Diagnoses with the Bedrock model configured for the prompt's tier.
#[derive(Debug, Clone)]
pub struct BedrockLlm {
    client: Client,
    models: TierModels,
    max_tokens: u32,
    policy: CallPolicy,
    prices: PriceTable,
}

/// A response Bedrock filtered or could not complete.
#[derive(Debug, thiserror::Error)]
#[error("{model_id} stopped without an answer: {reason}")]
struct NoAnswer {
    model_id: String,
    reason: String,
}

impl BedrockLlm {
    /// Calls `models` per tier with at most `max_tokens` output tokens, under `policy`;
    /// `prices` prices the usage it logs.
    pub fn new(
        client: Client,
        models: TierModels,
        max_tokens: u32,
        policy: CallPolicy,
        prices: PriceTable,
    ) -> Self {
        Self {
            client,
            models,
            max_tokens,
            policy,
            prices,
        }
    }

    fn tool_config(model_id: &str) -> Result<ToolConfiguration, LlmError> {
        let build = |err| LlmError::Permanent(Box::new(err));
        let tool = ToolSpecification::builder()
            .name(ANSWER_TOOL)
            .description("Record the proposed diagnosis with its findings and confidence.")
            .input_schema(ToolInputSchema::Json(to_document(&answer::answer_schema())))
            .build()
            .map_err(build)?;
        let choice = if model_id.contains("anthropic.") {
            ToolChoice::Tool(
                SpecificToolChoice::builder()
                    .name(ANSWER_TOOL)
                    .build()
                    .map_err(build)?,
            )
        } else {
            ToolChoice::Auto(aws_sdk_bedrockruntime::types::AutoToolChoice::builder().build())
        };
        ToolConfiguration::builder()
            .tools(Tool::ToolSpec(tool))
            .tool_choice(choice)
            .build()
            .map_err(build)
    }

    fn answer(&self, model_id: &str, response: &ConverseResponse) -> Result<LlmAnswer, LlmError> {
        let stop_reason = match response.stop_reason() {
            BedrockStopReason::MaxTokens => StopReason::MaxTokens,
            BedrockStopReason::ContentFiltered | BedrockStopReason::GuardrailIntervened => {
                StopReason::ContentFiltered
            }
            BedrockStopReason::ModelContextWindowExceeded => {
                return Err(LlmError::Permanent(Box::new(NoAnswer {
                    model_id: model_id.to_owned(),
                    reason: "the prompt exceeds the model's context window".into(),
                })))
            }
            _ => StopReason::EndTurn,
        };
        let content = match response.output() {
            Some(ConverseOutput::Message(message)) => message.content(),
            _ => &[],
        };
        let from_tool = content.iter().find_map(|block| match block {
            ContentBlock::ToolUse(tool_use) if tool_use.name() == ANSWER_TOOL => {
                Some(answer::parse_answer(to_json(tool_use.input())))
            }
            _ => None,
        });
        let structured = match from_tool {
            Some(parsed) => parsed.map_err(LlmError::MalformedAnswer)?,
            None => {
                let text: String = content
                    .iter()
                    .filter_map(|block| block.as_text().ok())
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("\n");
                match answer::find_answer_in_text(&text) {
                    Some(answer) => answer,
                    None if stop_reason == StopReason::ContentFiltered => {
                        return Err(LlmError::Permanent(Box::new(NoAnswer {
                            model_id: model_id.to_owned(),
                            reason: "content filtered".into(),
                        })))
                    }
                    None => {
                        return Err(LlmError::MalformedAnswer(format!(
                            "{model_id} gave no {ANSWER_TOOL} call and no JSON answer"
                        )))
                    }
                }
            }
        };
        let (input_tokens, output_tokens) = response.usage().map_or((0, 0), |usage| {
            (
                u32::try_from(usage.input_tokens()).unwrap_or(0),
                u32::try_from(usage.output_tokens()).unwrap_or(0),
            )
        });
        Ok(LlmAnswer {
            text: structured.text,
            findings: structured.findings,
            confidence: structured.confidence,
            input_tokens,
            output_tokens,
            model_id: model_id.to_owned(),
            stop_reason,
        })
    }
}

#[async_trait]
impl Llm for BedrockLlm {
    async fn diagnose(&self, request: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError> {
        let model_id = self.models.model(request.tier);
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(prompt::user_message(request)))
            .build()
            .map_err(|err| LlmError::Permanent(Box::new(err)))?;
        let tool_config = Self::tool_config(model_id)?;
        let inference = InferenceConfiguration::builder()
            .max_tokens(i32::try_from(self.max_tokens).unwrap_or(i32::MAX))
            .temperature(0.0)
            .build();
        let response = call(&self.policy, "Converse", model_id, || async {
            self.client
                .converse()
                .model_id(model_id)
                .system(SystemContentBlock::Text(request.system.clone()))
                .messages(message.clone())
                .inference_config(inference.clone())
                .tool_config(tool_config.clone())
                .send()
                .await
                .map_err(classify)
        })
        .await;
        let response = match response {
            Ok(response) => response,
            Err(CallFailed { retryable, source }) => {
                return Err(if retryable {
                    LlmError::Transient(source)
                } else {
                    LlmError::Permanent(source)
                })
            }
        };
        let answer = self.answer(model_id, &response)?;
        tracing::info!(
            model_id,
            tier = ?request.tier,
            input_tokens = answer.input_tokens,
            output_tokens = answer.output_tokens,
            cost_usd_micros = self.prices.cost_usd_micros(model_id, answer.input_tokens, answer.output_tokens),
            stop_reason = ?answer.stop_reason,
            "bedrock converse"
        );
        Ok(answer)
    }
}
