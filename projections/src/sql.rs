//! SQL building blocks shared by the projections and the read functions: set-based
//! statements over `UNNEST` of per-column arrays, and text mappings of the domain's enums.

use std::collections::{HashMap, HashSet};

use casebook_domain::ids::UserId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, PgConnection, Row};
use uuid::Uuid;

use crate::error::ApplyError;

/// A column of a projection's table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub name: &'static str,
    /// The column's SQL type. `jsonb` columns travel as `text` and are cast in SQL (arrays
    /// of JSON text bind cheaper than arrays of JSON values).
    pub ty: &'static str,
}

/// Shorthand for a [`Column`].
pub(crate) const fn col(name: &'static str, ty: &'static str) -> Column {
    Column { name, ty }
}

fn names(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns as a select list, with `jsonb` read back as text.
pub(crate) fn select_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| {
            if c.ty == "jsonb" {
                format!("{0}::text AS {0}", c.name)
            } else {
                c.name.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT INTO table (…) SELECT unnest($1::t1[]), unnest($2::t2[]), …`: one row per array
/// index, every column bound as one array. The `unnest` calls sit in the select list, where
/// they advance in lockstep: `FROM UNNEST($1, $2, …)` would first copy each array into a
/// tuplestore of its own, which made inserts about 2.7 times slower here.
pub(crate) fn insert_unnest(table: &str, columns: &[Column]) -> String {
    let values = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if c.ty == "jsonb" {
                format!("unnest(${}::text[])::jsonb", i + 1)
            } else {
                format!("unnest(${}::{}[])", i + 1, c.ty)
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO {table} ({}) SELECT {values}", names(columns))
}

/// Arguments with room for about `bytes` of encoded values: a batch's column arrays run to
/// megabytes, and growing the buffer by doubling copies them over and over.
pub(crate) fn reserved(bytes: usize) -> PgArguments {
    let mut arguments = PgArguments::default();
    arguments.reserve(0, bytes);
    arguments
}

/// [`insert_unnest`] that replaces every non-key column of an existing row.
pub(crate) fn upsert_unnest(table: &str, columns: &[Column], key: &[&str]) -> String {
    let set = columns
        .iter()
        .filter(|c| !key.contains(&c.name))
        .map(|c| format!("{0} = EXCLUDED.{0}", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} ON CONFLICT ({}) DO UPDATE SET {set}",
        insert_unnest(table, columns),
        key.join(", ")
    )
}

/// The rows whose single-column `key` is in the array `$1`.
pub(crate) fn load_by_key(table: &str, columns: &[Column], key: &str, key_ty: &str) -> String {
    format!(
        "SELECT {} FROM {table} WHERE {key} = ANY($1::{key_ty}[])",
        select_list(columns)
    )
}

/// A failure to map a stored value back into a typed one.
pub(crate) fn decode_error(
    column: &str,
    err: impl std::error::Error + Send + Sync + 'static,
) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(err),
    }
}

/// The text form of a unit enum variant, as serde writes it (the domain's snake_case names).
pub(crate) fn enum_text<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    match serde_json::to_value(value)? {
        Value::String(text) => Ok(text),
        other => Err(serde::ser::Error::custom(format!(
            "expected a unit variant, got {other}"
        ))),
    }
}

/// Parses [`enum_text`] back.
pub(crate) fn parse_enum<T: DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    serde_json::from_value(Value::String(text.to_owned()))
}

/// A stored enum (see [`enum_text`]).
pub(crate) fn get_enum<T: DeserializeOwned>(row: &PgRow, column: &str) -> Result<T, sqlx::Error> {
    let text: String = row.try_get(column)?;
    parse_enum(&text).map_err(|err| decode_error(column, err))
}

/// A nullable stored enum.
pub(crate) fn get_opt_enum<T: DeserializeOwned>(
    row: &PgRow,
    column: &str,
) -> Result<Option<T>, sqlx::Error> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| parse_enum(&text).map_err(|err| decode_error(column, err)))
        .transpose()
}

/// A stored user id.
pub(crate) fn get_user(row: &PgRow, column: &str) -> Result<UserId, sqlx::Error> {
    // As stored: read models decode what history holds, whatever today's limits say.
    Ok(UserId::from_stored(row.try_get::<String, _>(column)?))
}

/// A nullable stored user id.
pub(crate) fn get_opt_user(row: &PgRow, column: &str) -> Result<Option<UserId>, sqlx::Error> {
    Ok(row
        .try_get::<Option<String>, _>(column)?
        .map(UserId::from_stored))
}

/// A `jsonb` column read as text (see [`select_list`]).
pub(crate) fn get_json<T: DeserializeOwned>(row: &PgRow, column: &str) -> Result<T, sqlx::Error> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|err| decode_error(column, err))
}

/// A nullable `jsonb` column read as text.
pub(crate) fn get_opt_json<T: DeserializeOwned>(
    row: &PgRow,
    column: &str,
) -> Result<Option<T>, sqlx::Error> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| serde_json::from_str(&text).map_err(|err| decode_error(column, err)))
        .transpose()
}

/// JSON text of a value bound for a `jsonb` column.
pub(crate) fn json_text<T: Serialize>(value: &T) -> Result<String, ApplyError> {
    serde_json::to_string(value).map_err(|err| ApplyError::permanent_from("cannot encode", err))
}

/// [`enum_text`] for the write path.
pub(crate) fn enum_value<T: Serialize>(value: &T) -> Result<String, ApplyError> {
    enum_text(value).map_err(|err| ApplyError::permanent_from("cannot encode", err))
}

/// An unsigned count as `bigint`.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, ApplyError> {
    i64::try_from(value).map_err(|err| ApplyError::permanent_from(format!("{what} overflows"), err))
}

/// The rows a batch touches, split into those it creates and those to load first.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    seen: HashSet<Uuid>,
    to_load: Vec<Uuid>,
}

impl Touched {
    /// Records that an event touches row `id`; `creates` when that event creates it. A row
    /// the batch creates before anything else touches it needs no load.
    pub fn touch(&mut self, id: Uuid, creates: bool) {
        if self.seen.insert(id) && !creates {
            self.to_load.push(id);
        }
    }

    /// Whether nothing was touched.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Loads the touched rows that exist, keyed by id, with `sql` (see [`load_by_key`]).
    pub async fn load<T>(
        &self,
        conn: &mut PgConnection,
        sql: &str,
        key: &str,
        from_row: fn(&PgRow) -> Result<T, sqlx::Error>,
    ) -> Result<HashMap<Uuid, T>, ApplyError> {
        let mut rows = HashMap::with_capacity(self.seen.len());
        if self.to_load.is_empty() {
            return Ok(rows);
        }
        for row in sqlx::query(sql)
            .bind(&self.to_load)
            .fetch_all(&mut *conn)
            .await?
        {
            let id: Uuid = row.try_get(key)?;
            let value = from_row(&row).map_err(|err| {
                ApplyError::permanent_from(format!("cannot read back row {id}"), err)
            })?;
            rows.insert(id, value);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use casebook_domain::policy::PlanTier;

    use super::*;

    #[test]
    fn enums_map_to_their_serde_names_and_back() {
        let text = enum_text(&PlanTier::CostSensitive).unwrap();
        assert_eq!(text, "cost_sensitive");
        assert_eq!(
            parse_enum::<PlanTier>(&text).unwrap(),
            PlanTier::CostSensitive
        );
    }

    #[test]
    fn an_upsert_replaces_every_column_but_the_key() {
        let sql = upsert_unnest(
            "t",
            &[col("id", "uuid"), col("doc", "jsonb"), col("n", "bigint")],
            &["id"],
        );
        assert_eq!(
            sql,
            "INSERT INTO t (id, doc, n) \
             SELECT unnest($1::uuid[]), unnest($2::text[])::jsonb, unnest($3::bigint[]) \
             ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, n = EXCLUDED.n"
        );
    }
}
