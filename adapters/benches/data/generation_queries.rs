//! The generation benchmark's fixed questions (`generation_queries.json` beside this file),
//! as the prompts the worker would build for them; the local-model tests ask some of them
//! too (`#[path]`-included by both).

use casebook_adapters::ai::prompt::{user_message, DIAGNOSIS_V2};
use casebook_domain::ids::JudgmentId;
use casebook_domain::policy::ModelTier;
use casebook_domain::ports::{DiagnosisPrompt, Precedent};
use casebook_domain::values::{JudgmentBody, JudgmentTitle, QueryText};
use serde::Deserialize;

/// The floor every answer's distinct-4-gram ratio should reach.
pub const DISTINCT_4_FLOOR: f64 = 0.8;

/// One question of the data file, with the precedent the judgment index would find, if any.
#[derive(Deserialize)]
pub struct Query {
    /// The customer's question.
    pub query: String,
    precedent: Option<PrecedentText>,
}

#[derive(Deserialize)]
struct PrecedentText {
    title: String,
    body: String,
}

/// The 20 questions, in the file's order.
pub fn queries() -> Vec<Query> {
    serde_json::from_str(include_str!("generation_queries.json")).expect("generation_queries.json")
}

impl Query {
    /// The system prompt and user turn the worker would send the model: the diagnosis
    /// template, the precedent if any.
    pub fn chat(&self) -> (String, String) {
        let prompt = DiagnosisPrompt {
            system: DIAGNOSIS_V2.text().to_owned(),
            query: QueryText::parse(self.query.as_str()).expect("a valid query"),
            precedents: self
                .precedent
                .iter()
                .map(|precedent| Precedent {
                    judgment_id: JudgmentId::new(),
                    title: JudgmentTitle::parse(precedent.title.as_str()).expect("a title"),
                    body: JudgmentBody::parse(precedent.body.as_str()).expect("a body"),
                    score: 0.8,
                })
                .collect(),
            attachments: vec![],
            tier: ModelTier::OpenWeights,
        };
        let user = user_message(&prompt);
        (prompt.system, user)
    }
}
