//! Value types: validated when they come in, read back as they were stored.
//!
//! Input goes through `parse` (or [`Confidence::new`], or `TryFrom`), which applies today's
//! rules and returns a [`ValidationError`] naming the offending field: commands are built
//! from parsed values only.
//!
//! Decoding (`Deserialize`) goes through `from_stored` instead, which checks only what makes
//! the type meaningful, never a limit. Events, snapshots and read models hold values that
//! passed the rules of the day they were accepted; were decoding to re-apply today's rules,
//! tightening one (a shorter subject, a stricter address) would make that history
//! undecodable and stop every projection and aggregate load on it. So JSON is no way to
//! construct a value from untrusted input: parse its fields as strings instead.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An input that failed validation, naming the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field that was rejected, e.g. `"reason"`.
    pub field: &'static str,
    /// What is wrong with it, e.g. `"must not be empty"`.
    pub message: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Trims `value` and checks it is non-empty, at most `max_chars` characters long and free of
/// NUL characters (which no Postgres text or `jsonb` value can hold).
pub(crate) fn bounded(
    value: String,
    field: &'static str,
    max_chars: usize,
) -> Result<String, ValidationError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if trimmed.contains('\0') {
        return Err(ValidationError::new(
            field,
            "must not contain NUL characters (U+0000)",
        ));
    }
    if trimmed.chars().count() > max_chars {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(if trimmed.len() == value.len() {
        value
    } else {
        trimmed.to_owned()
    })
}

/// Declares a trimmed, non-empty, length-bounded text newtype: bounded when parsed, read
/// back verbatim when decoded.
macro_rules! bounded_text {
    ($(#[$meta:meta])* $name:ident { field: $field:literal, max_chars: $max:expr }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        pub struct $name(String);

        impl $name {
            /// The longest accepted value, in characters.
            pub const MAX_CHARS: usize = $max;

            #[doc = concat!("Trims `value` and checks it is non-empty and at most [`", stringify!($name), "::MAX_CHARS`] characters.")]
            pub fn parse(value: impl Into<String>) -> Result<Self, $crate::values::ValidationError> {
                $crate::values::bounded(value.into(), $field, $max).map(Self)
            }

            /// Text read back from storage (an event, a snapshot, a read model), as it was
            /// stored: neither trimmed nor checked against today's bounds, which it may exceed
            /// if they were tightened since (see the [module docs](crate::values)). Input from
            /// outside goes through `parse`.
            // Not trimmed either: `parse` stored it trimmed already, and decoding must give
            // back exactly what was recorded, whatever the rules were then.
            pub fn from_stored(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(deserializer).map(Self::from_stored)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::values::ValidationError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use bounded_text;

bounded_text! {
    /// Why something was done (a rejection, an amendment, a suspension, a failure): up to 2,000 characters.
    Reason { field: "reason", max_chars: 2_000 }
}
bounded_text! {
    /// A customer's query: up to 20,000 characters.
    QueryText { field: "query", max_chars: 20_000 }
}
bounded_text! {
    /// The subject line of a session: up to 200 characters.
    Subject { field: "subject", max_chars: 200 }
}
bounded_text! {
    /// A tenant's display name: up to 200 characters.
    TenantName { field: "tenant_name", max_chars: 200 }
}
bounded_text! {
    /// The text of a proposed or amended diagnosis: up to 20,000 characters.
    DiagnosisText { field: "diagnosis_text", max_chars: 20_000 }
}
bounded_text! {
    /// The title of a captured judgment: up to 200 characters.
    JudgmentTitle { field: "title", max_chars: 200 }
}
bounded_text! {
    /// The body of a captured judgment: up to 20,000 characters.
    JudgmentBody { field: "body", max_chars: 20_000 }
}
bounded_text! {
    /// A label on a captured judgment: up to 64 characters.
    Tag { field: "tag", max_chars: 64 }
}
bounded_text! {
    /// The object-store key of an uploaded attachment: up to 1,024 characters.
    ///
    /// Keys are laid out as `<tenant_id>/...`; the session checks the prefix against its tenant.
    UploadKey { field: "attachment", max_chars: 1_024 }
}

bounded_text! {
    /// A person's display name (an invited user's): up to 200 characters.
    PersonName { field: "name", max_chars: 200 }
}

/// A person's email address, lowercased: their sign-in name, and who they are inside a tenant.
///
/// Lowercased because Cognito's sign-in names and the platform's one-practice-per-address rule
/// must not tell `Ann@x.com` from `ann@x.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct Email(String);

impl Email {
    /// The longest address SMTP carries (RFC 5321's path limit less the brackets).
    pub const MAX_CHARS: usize = 254;

    /// Trims and lowercases `value` and checks it is one address (`local@domain`, the domain
    /// with a dot), at most [`Email::MAX_CHARS`] characters.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = normalize_address(&value.into());
        if value.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "email",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        let address = email_address::EmailAddress::parse_with_options(
            &value,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        )
        .map_err(|err| ValidationError::new("email", err.to_string()))?;
        // A bare host (`ann@localhost`) is a valid address but no practice's.
        if !address.domain().contains('.') {
            return Err(ValidationError::new("email", "the domain must have a dot"));
        }
        Ok(Self(value))
    }

    /// An address read back from storage (an event, a snapshot, a read model): trimmed and
    /// lowercased like [`Email::parse`], but not checked against today's rules, which it may
    /// break if they were tightened since (see the [module docs](crate::values)).
    // Normalised even so, because an address is a member's identity (the tenant's members are
    // keyed by it): a stored one must compare equal to the same address parsed from a command.
    // For anything `parse` stored this changes nothing.
    pub fn from_stored(value: impl Into<String>) -> Self {
        Self(normalize_address(&value.into()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The form every [`Email`] is kept in, parsed or stored: trimmed and lowercased.
fn normalize_address(value: &str) -> String {
    value.trim().to_lowercase()
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from_stored)
    }
}

impl TryFrom<String> for Email {
    type Error = ValidationError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A model's confidence in its answer, or a threshold on it: a number in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
pub struct Confidence(f64);

impl Confidence {
    /// Checks `value` is in `0.0..=1.0` (which also rules out NaN).
    pub fn new(value: f64) -> Result<Self, ValidationError> {
        // Today a new confidence needs nothing beyond being one. A rule for new values only
        // (say, a lowest threshold) belongs here, never in `from_stored`.
        Self::from_stored(value)
    }

    /// A confidence read back from storage (an event, a snapshot, a read model).
    ///
    /// Unlike the text types' `from_stored`, this one still checks the range: `0.0..=1.0` is
    /// no limit that could tighten but what a confidence is (a probability; NaN is none). Every
    /// confidence ever stored passed it, thresholds are compared against it, and the tenants'
    /// read model checks it too, so a stored value outside it is corruption, which must stop
    /// the reader rather than be clamped into a plausible number.
    pub fn from_stored(value: f64) -> Result<Self, ValidationError> {
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(ValidationError::new(
                "confidence",
                "must be a number between 0 and 1",
            ))
        }
    }

    /// The value, in `0.0..=1.0`.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Confidence {
    type Error = ValidationError;

    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl<'de> Deserialize<'de> for Confidence {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_stored(f64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Characters of an uploaded file's name, the last segment of its key.
pub const MAX_FILE_NAME_CHARS: usize = 200;

/// Whether `name` can be the last segment of an upload's key: 1 to [`MAX_FILE_NAME_CHARS`]
/// characters, one segment, neither `.` nor `..`, no control characters.
pub fn is_file_name(name: &str) -> bool {
    (1..=MAX_FILE_NAME_CHARS).contains(&name.chars().count())
        && !name.contains('/')
        && !matches!(name, "." | "..")
        && !name.chars().any(char::is_control)
}

impl UploadKey {
    /// A fresh key for a file `file_name` that a member of `tenant_id` uploads:
    /// `<tenant_id>/uploads/<uuid>/<file name>`. `None` when the name is not a file name
    /// ([`is_file_name`]).
    pub fn new_upload(tenant_id: crate::ids::TenantId, file_name: &str) -> Option<Self> {
        if !is_file_name(file_name) {
            return None;
        }
        let key = format!("{tenant_id}/uploads/{}/{file_name}", uuid::Uuid::new_v4());
        Self::parse(key).ok()
    }

    /// Whether the key has exactly the form [`UploadKey::new_upload`] makes for `tenant_id`,
    /// the UUID lowercase and hyphenated. Commands check it; keys already in stored events are
    /// read back whatever their form.
    pub fn is_upload_of(&self, tenant_id: crate::ids::TenantId) -> bool {
        let mut segments = self.0.split('/');
        let (Some(tenant), Some("uploads"), Some(id), Some(name), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return false;
        };
        tenant == tenant_id.to_string()
            && uuid::Uuid::parse_str(id).is_ok_and(|uuid| uuid.hyphenated().to_string() == id)
            && is_file_name(name)
    }

    /// The key without its last segment, the uploaded file's name, which is personal data
    /// (decision 0027): what logs may name an upload by.
    pub fn without_file_name(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(prefix, _)| prefix)
    }

    /// Whether the key lies under `<tenant_id>/` (with something after the slash).
    pub fn belongs_to(&self, tenant_id: crate::ids::TenantId) -> bool {
        self.0
            .strip_prefix(&tenant_id.to_string())
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| !rest.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;

    #[test]
    fn emails_are_trimmed_and_lowercased_and_must_be_one_address_with_a_dotted_domain() {
        let email = Email::parse("  Ann.Lee@Example.COM ").expect("an address");
        assert_eq!(email.as_str(), "ann.lee@example.com");
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@localhost",
            "Ann <ann@example.com>",
            "ann@[127.0.0.1]",
            "a b@example.com",
        ] {
            assert_eq!(Email::parse(bad).unwrap_err().field, "email", "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(Email::MAX_CHARS));
        assert!(Email::parse(long).is_err());
    }

    #[test]
    fn a_new_upload_key_is_an_upload_of_its_tenant_only_and_refuses_what_is_not_a_file_name() {
        let (tenant, other) = (TenantId::new(), TenantId::new());
        let key = UploadKey::new_upload(tenant, "contract 2026.pdf").expect("a file name");
        assert!(key.is_upload_of(tenant));
        assert!(!key.is_upload_of(other));
        let too_long = "x".repeat(MAX_FILE_NAME_CHARS + 1);
        for bad in ["", ".", "..", "a/b", "../x", "a\nb", too_long.as_str()] {
            assert_eq!(UploadKey::new_upload(tenant, bad), None, "{bad:?}");
        }
    }
}
