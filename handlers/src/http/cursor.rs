//! Opaque list cursors: a list's keyset position, encoded so clients pass it back unread.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::problem::ApiError;

const PREFIX: &str = "c1.";

/// The cursor of the position `after`.
pub fn encode(after: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}{after}"))
}

/// The position a cursor made by [`encode`] holds; 422 on `after` for anything else,
/// negative positions included (no list issues them).
pub fn decode(cursor: &str) -> Result<i64, ApiError> {
    let invalid = || ApiError::Invalid {
        field: "after".into(),
        message: "not a cursor this API issued".into(),
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.strip_prefix(PREFIX))
        .and_then(|position| position.parse().ok())
        .filter(|position: &i64| *position >= 0)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_refused() {
        for position in [0, 1, i64::MAX] {
            assert_eq!(decode(&encode(position)).unwrap(), position);
        }
        for junk in [
            "",
            "!!",
            "MTIz",
            &URL_SAFE_NO_PAD.encode("c1.x"),
            &encode(-5),
            &encode(i64::MIN),
        ] {
            assert_eq!(decode(junk).unwrap_err().code(), "validation_failed");
        }
    }
}
