use std::str::FromStr;

use casebook_domain::ids::{DecisionId, DiagnosisId, JudgmentId, TenantId, UserId};
use casebook_domain::values::{Confidence, Email, QueryText, Reason, UploadKey, ValidationError};
use serde_json::json;

use crate::support::{v, OTHER_TENANT, TENANT};

#[test]
fn confidence_is_a_number_between_zero_and_one() {
    assert_eq!(Confidence::new(0.0).map(Confidence::value), Ok(0.0));
    assert_eq!(Confidence::new(1.0).map(Confidence::value), Ok(1.0));
    for bad in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
        let err = Confidence::new(bad).expect_err("out of range");
        assert_eq!(err.field, "confidence");
    }
}

#[test]
fn text_with_a_nul_character_is_refused_as_postgres_cannot_hold_it() {
    let err = QueryText::parse("Is this\0 enforceable?").expect_err("NUL refused");
    assert_eq!(err.field, "query");
    assert!(UserId::parse("user\0").is_err());
    assert!(Reason::parse("because\0").is_err());
}

#[test]
fn decoding_reads_text_back_as_stored_whatever_todays_limits() {
    let blank: Reason = serde_json::from_str(r#""   ""#).expect("decodes");
    assert_eq!(blank.as_str(), "   ");
    let padded: Reason = serde_json::from_str(r#"" too vague ""#).expect("decodes");
    assert_eq!(padded.as_str(), " too vague ");
    let long = "q".repeat(QueryText::MAX_CHARS + 1);
    let query: QueryText = serde_json::from_value(json!(long)).expect("decodes");
    assert_eq!(query, QueryText::from_stored(long.clone()));
    assert!(QueryText::parse(long).is_err());
    assert!(serde_json::from_str::<Reason>("42").is_err());
}

#[test]
fn a_decoded_email_is_normalised_like_a_parsed_one_but_not_checked() {
    let stored: Email = serde_json::from_str(r#"" Ann@LOCALHOST ""#).expect("decodes");
    assert_eq!(stored.as_str(), "ann@localhost");
    assert!(Email::parse("ann@localhost").is_err());
    let parsed = Email::parse(" Ann.Lee@Example.COM").expect("an address");
    assert_eq!(Email::from_stored("ann.lee@example.com "), parsed);
}

#[test]
fn a_decoded_confidence_must_still_be_between_zero_and_one() {
    for edge in [0.0, 1.0] {
        let decoded: Confidence = serde_json::from_value(json!(edge)).expect("decodes");
        assert_eq!(decoded.value(), edge);
    }
    for bad in [json!(1.5), json!(-0.01), json!(null), json!("0.5")] {
        assert!(
            serde_json::from_value::<Confidence>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn a_reason_is_non_empty_and_bounded() {
    assert_eq!(
        Reason::parse(" \n\t"),
        Err(ValidationError::new("reason", "must not be empty"))
    );
    assert_eq!(
        Reason::parse("  why  ").map(|r| r.to_string()),
        Ok("why".to_owned())
    );
    assert!(Reason::parse("é".repeat(Reason::MAX_CHARS)).is_ok());
    let err = Reason::parse("x".repeat(Reason::MAX_CHARS + 1)).expect_err("too long");
    assert_eq!(err.field, "reason");
}

#[test]
fn a_query_is_non_empty_and_at_most_twenty_thousand_characters() {
    assert_eq!(QueryText::MAX_CHARS, 20_000);
    assert_eq!(QueryText::parse("").map_err(|e| e.field), Err("query"));
    assert!(QueryText::parse("q".repeat(20_000)).is_ok());
    assert!(QueryText::parse("q".repeat(20_001)).is_err());
}

#[test]
fn a_user_id_is_at_most_128_characters() {
    assert!(UserId::parse("u".repeat(128)).is_ok());
    assert_eq!(
        UserId::parse("u".repeat(129)).map_err(|e| e.field),
        Err("user_id")
    );
    assert_eq!(UserId::parse("").map_err(|e| e.field), Err("user_id"));
    assert_eq!(UserId::system().as_str(), "casebook:system");
}

#[test]
fn ids_print_as_hyphenated_lowercase_uuids_and_parse_back() {
    let id = DiagnosisId::new();
    let text = id.to_string();
    assert_eq!(text, id.as_uuid().hyphenated().to_string());
    assert_eq!(text, text.to_lowercase());
    assert_eq!(DiagnosisId::from_str(&text), Ok(id));
    assert_eq!(
        serde_json::to_string(&id).expect("serializes"),
        format!("\"{text}\"")
    );
    assert_eq!(
        TenantId::from_str("not-a-uuid").map_err(|e| e.field),
        Err("tenant_id")
    );
}

#[test]
fn a_diagnosis_has_exactly_one_decision_id_and_one_captured_judgment_id() {
    let diagnosis = DiagnosisId::new();
    let decision = DecisionId::for_diagnosis(diagnosis);
    assert_eq!(decision.as_uuid(), diagnosis.as_uuid());
    assert_eq!(
        JudgmentId::for_decision(decision),
        JudgmentId::for_decision(decision)
    );
    assert_ne!(
        JudgmentId::for_decision(decision).as_uuid(),
        decision.as_uuid()
    );
    assert_ne!(
        JudgmentId::for_decision(decision),
        JudgmentId::for_decision(DecisionId::for_diagnosis(DiagnosisId::new()))
    );
}

#[test]
fn an_upload_key_belongs_to_the_tenant_whose_prefix_it_has() {
    let key: UploadKey = v(&format!("{TENANT}/2025/lease.pdf"));
    assert!(key.belongs_to(TENANT));
    assert!(!key.belongs_to(OTHER_TENANT));
    let bare: UploadKey = v(&format!("{TENANT}/"));
    assert!(!bare.belongs_to(TENANT));
    let lookalike: UploadKey = v(&format!("{TENANT}x/lease.pdf"));
    assert!(!lookalike.belongs_to(TENANT));
}
