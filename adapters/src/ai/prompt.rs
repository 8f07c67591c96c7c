//! Versioned, hashed prompt templates and the user message built from a [`DiagnosisPrompt`]
//! (the structured answer the models give back is parsed in `answer`).
//!
//! A template's id names its version (`diagnosis/v2`); its SHA-256 (of the exact text) goes
//! into the proposal's provenance, so an auditor can tell which words the model was given.
//! Changing a template's text — or the layout of the user message it describes — means a new
//! id. Superseded templates stay (in `templates/` and as constants), so the hash a past
//! proposal recorded can still be checked against its text.

use casebook_domain::ports::DiagnosisPrompt;
use sha2::{Digest, Sha256};

/// A named, versioned system prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptTemplate {
    id: &'static str,
    text: &'static str,
}

impl PromptTemplate {
    /// The template `id` (name and version, e.g. `diagnosis/v1`) with its `text`.
    pub const fn new(id: &'static str, text: &'static str) -> Self {
        Self { id, text }
    }

    /// Name and version, for provenance.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The text, used as the system prompt ([`DiagnosisPrompt::system`]).
    pub fn text(&self) -> &'static str {
        self.text
    }

    /// Lowercase hex SHA-256 of [`text`](Self::text), for provenance.
    pub fn sha256_hex(&self) -> String {
        format!("{:x}", Sha256::digest(self.text.as_bytes()))
    }
}

/// The first diagnosis prompt: answer from the practice's precedents, as JSON or through the
/// `record_diagnosis` tool. Superseded by [`DIAGNOSIS_V2`]; proposals recorded before it name
/// this one.
impl From<&PromptTemplate> for casebook_application::diagnosis::SystemPrompt {
    fn from(template: &PromptTemplate) -> Self {
        Self {
            id: template.id().to_owned(),
            text: template.text().to_owned(),
            sha256_hex: template.sha256_hex(),
        }
    }
}

pub const DIAGNOSIS_V1: PromptTemplate =
    PromptTemplate::new("diagnosis/v1", include_str!("templates/diagnosis_v1.txt"));

/// The diagnosis prompt the worker uses: [`DIAGNOSIS_V1`] plus the customer's attachments,
/// headed `[A1]`, `[A2]`, … after the precedents, as material rather than instructions.
pub const DIAGNOSIS_V2: PromptTemplate =
    PromptTemplate::new("diagnosis/v2", include_str!("templates/diagnosis_v2.txt"));

/// The user turn: the precedents, numbered best first, the attachments' text (when there is
/// any), then the query.
pub fn user_message(prompt: &DiagnosisPrompt) -> String {
    let mut message = String::new();
    if prompt.precedents.is_empty() {
        message.push_str("Precedents: none of the practice's judgments is close to this query.\n");
    } else {
        message.push_str("Precedents:\n");
        for (number, precedent) in prompt.precedents.iter().enumerate() {
            message.push_str(&format!(
                "[{}] {} (similarity {:.2})\n{}\n\n",
                number + 1,
                precedent.title,
                precedent.score,
                precedent.body
            ));
        }
    }
    if !prompt.attachments.is_empty() {
        message.push_str("Attachments:\n");
        for (number, attachment) in prompt.attachments.iter().enumerate() {
            message.push_str(&format!(
                "[A{}] {}\n{}\n\n",
                number + 1,
                attachment.file_name(),
                attachment.text
            ));
        }
    }
    message.push_str("Query:\n");
    message.push_str(prompt.query.as_str());
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use casebook_domain::diagnosis::AttachmentText;
    use casebook_domain::ids::{JudgmentId, TenantId};
    use casebook_domain::policy::ModelTier;
    use casebook_domain::ports::Precedent;
    use casebook_domain::values::{JudgmentBody, JudgmentTitle, QueryText, UploadKey};

    #[test]
    fn the_template_hash_is_the_sha256_of_its_text() {
        let template = PromptTemplate::new("t/v1", "abc");
        assert_eq!(
            template.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(DIAGNOSIS_V1.id(), "diagnosis/v1");
        assert_eq!(DIAGNOSIS_V2.id(), "diagnosis/v2");
        assert_eq!(DIAGNOSIS_V2.sha256_hex().len(), 64);
        assert_ne!(DIAGNOSIS_V1.sha256_hex(), DIAGNOSIS_V2.sha256_hex());
    }

    #[test]
    fn a_superseded_template_keeps_the_text_its_recorded_hash_names() {
        // The hash proposals recorded with diagnosis/v1 before v2 replaced it.
        assert_eq!(
            DIAGNOSIS_V1.sha256_hex(),
            "2e1f8081f23c908d045c3a5fb40576957e906ab2fdd4d517de9cfd564db05859"
        );
    }

    #[test]
    fn the_user_message_numbers_precedents_best_first_then_the_query() {
        let prompt = DiagnosisPrompt {
            system: DIAGNOSIS_V2.text().to_owned(),
            query: QueryText::parse("The boiler loses pressure.").unwrap(),
            precedents: vec![Precedent {
                judgment_id: JudgmentId::new(),
                title: JudgmentTitle::parse("Pressure loss").unwrap(),
                body: JudgmentBody::parse("Check the expansion vessel.").unwrap(),
                score: 0.91,
            }],
            attachments: vec![],
            tier: ModelTier::Standard,
        };
        assert_eq!(
            user_message(&prompt),
            "Precedents:\n[1] Pressure loss (similarity 0.91)\nCheck the expansion vessel.\n\n\
             Query:\nThe boiler loses pressure."
        );
    }

    #[test]
    fn attachments_follow_the_precedents_under_their_file_names() {
        let tenant = TenantId::new();
        let attachment = |name: &str, text: &str| AttachmentText {
            key: UploadKey::parse(format!("{tenant}/uploads/9/{name}")).unwrap(),
            text: text.to_owned(),
        };
        let prompt = DiagnosisPrompt {
            system: DIAGNOSIS_V2.text().to_owned(),
            query: QueryText::parse("The boiler loses pressure.").unwrap(),
            precedents: vec![],
            attachments: vec![
                attachment("log.txt", "Pressure 1.5 bar at 8:00, 0.4 bar at 20:00."),
                attachment("readings.json", "{\"bar\": [1.5, 0.4]}"),
            ],
            tier: ModelTier::Standard,
        };
        assert_eq!(
            user_message(&prompt),
            "Precedents: none of the practice's judgments is close to this query.\n\
             Attachments:\n[A1] log.txt\nPressure 1.5 bar at 8:00, 0.4 bar at 20:00.\n\n\
             [A2] readings.json\n{\"bar\": [1.5, 0.4]}\n\n\
             Query:\nThe boiler loses pressure."
        );
    }
}
