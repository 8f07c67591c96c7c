//! The structured answer a model gives: its JSON schema (the Converse tool's input) and its
//! parsing, from a tool's input or from free text. Built with a model provider (`bedrock`,
//! `local-models`): the functions without one never read an answer.

use casebook_domain::diagnosis::Finding;
use casebook_domain::values::{Confidence, DiagnosisText};
use serde::Deserialize;
use serde_json::Value;

#[cfg(feature = "bedrock")]
use serde_json::json;

/// The tool a Converse call offers for the structured answer.
#[cfg(feature = "bedrock")]
pub(crate) const ANSWER_TOOL: &str = "record_diagnosis";
/// The JSON schema of the structured answer (the `record_diagnosis` tool's input).
#[cfg(feature = "bedrock")]
pub(crate) fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "diagnosis": {"type": "string", "description": "The proposed diagnosis, in plain prose."},
            "findings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "summary": {"type": "string"},
                        "detail": {"type": "string"},
                        "severity": {"type": "string", "enum": ["info", "low", "medium", "high"]}
                    },
                    "required": ["summary", "severity"]
                }
            },
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}
        },
        "required": ["diagnosis", "findings", "confidence"]
    })
}

/// A parsed structured answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StructuredAnswer {
    pub(crate) text: DiagnosisText,
    pub(crate) findings: Vec<Finding>,
    pub(crate) confidence: Confidence,
}

#[derive(Deserialize)]
struct RawAnswer {
    diagnosis: String,
    #[serde(default)]
    findings: Vec<Finding>,
    confidence: f64,
}

/// Reads a structured answer from the tool input (or JSON object) `value`; the error says
/// what is wrong, for [`LlmError::MalformedAnswer`](casebook_domain::ports::LlmError::MalformedAnswer).
pub(crate) fn parse_answer(value: Value) -> Result<StructuredAnswer, String> {
    let raw: RawAnswer = serde_json::from_value(value).map_err(|err| err.to_string())?;
    Ok(StructuredAnswer {
        text: DiagnosisText::parse(raw.diagnosis).map_err(|err| err.to_string())?,
        findings: raw.findings,
        confidence: Confidence::new(raw.confidence).map_err(|err| err.to_string())?,
    })
}

/// The first JSON object in `text` that is a structured answer (models often wrap it in
/// prose or a code fence).
pub(crate) fn find_answer_in_text(text: &str) -> Option<StructuredAnswer> {
    text.match_indices('{').find_map(|(start, _)| {
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value @ Value::Object(_))) => parse_answer(value).ok(),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use casebook_domain::diagnosis::Severity;
    use serde_json::json;

    #[test]
    fn an_answer_is_found_inside_prose_and_code_fences() {
        let text = "Sure! ```json\n{\"diagnosis\": \"Faulty valve\", \"findings\": \
                    [{\"summary\": \"Valve leaks\", \"severity\": \"high\"}], \"confidence\": 0.8}\n```";
        let answer = find_answer_in_text(text).expect("an answer");
        assert_eq!(answer.text.as_str(), "Faulty valve");
        assert_eq!(answer.findings[0].severity, Severity::High);
        assert_eq!(answer.findings[0].detail, None);
        assert!((answer.confidence.value() - 0.8).abs() < 1e-9);
        assert!(find_answer_in_text("{not json} and {\"x\": 1}").is_none());
    }

    #[test]
    fn a_confidence_outside_zero_to_one_is_malformed() {
        let err =
            parse_answer(json!({"diagnosis": "x", "findings": [], "confidence": 7})).unwrap_err();
        assert!(err.contains("confidence"), "{err}");
    }
}
