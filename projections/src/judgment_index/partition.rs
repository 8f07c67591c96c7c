//! The index's two generations, their model records and their per-tenant partitions.

use casebook_domain::ids::TenantId;
use casebook_domain::ports::Embedder;
use sqlx::PgConnection;

use super::IndexError;

/// Which generation of the index a statement reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Generation {
    /// `judgment_index`: the one searches read, kept up to date by the live subscription.
    Live,
    /// `judgment_index_green`: a rebuild's, built beside the live one and swapped in for it
    /// ([`IndexRebuild`](super::IndexRebuild)).
    Green,
}

impl Generation {
    /// The partitioned table.
    pub(crate) fn table(self) -> &'static str {
        match self {
            Self::Live => "judgment_index",
            Self::Green => "judgment_index_green",
        }
    }

    /// Its model record.
    pub(crate) fn model_table(self) -> &'static str {
        match self {
            Self::Live => "judgment_index_model",
            Self::Green => "judgment_index_green_model",
        }
    }

    /// The table holding `tenant`'s rows, named as the owner's functions name it.
    pub(crate) fn partition(self, tenant: TenantId) -> String {
        format!("{}_{}", self.table(), tenant.as_uuid().simple())
    }

    /// The owner's function creating a tenant's partition.
    fn ensure_partition_function(self) -> &'static str {
        match self {
            Self::Live => "judgment_index_ensure_partition",
            Self::Green => "judgment_index_green_ensure_partition",
        }
    }
}

/// The model and dimension a generation's vectors were made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedModel {
    /// The embedder's model id.
    pub model: String,
    /// Its vectors' dimension.
    pub dimension: usize,
}

impl IndexedModel {
    /// `embedder`'s.
    pub fn of(embedder: &dyn Embedder) -> Self {
        Self {
            model: embedder.model_id().to_owned(),
            dimension: embedder.dimension(),
        }
    }
}

/// Records `embedder`'s model and dimension as the live index's, or checks they are the ones
/// already recorded ([`IndexError::ModelChanged`] otherwise).
pub async fn ensure_model(
    conn: &mut PgConnection,
    embedder: &dyn Embedder,
) -> Result<(), IndexError> {
    ensure_model_of(conn, Generation::Live, embedder).await
}

/// [`ensure_model`] for `generation`.
pub(crate) async fn ensure_model_of(
    conn: &mut PgConnection,
    generation: Generation,
    embedder: &dyn Embedder,
) -> Result<(), IndexError> {
    let dimension = i32::try_from(embedder.dimension()).unwrap_or(i32::MAX);
    let table = generation.model_table();
    let (model, stored_dimension): (String, i32) = sqlx::query_as(&format!(
        "WITH recorded AS (
             INSERT INTO {table} (embedding_model, embedding_dim) VALUES ($1, $2)
             ON CONFLICT (singleton) DO NOTHING
             RETURNING embedding_model, embedding_dim)
         SELECT embedding_model, embedding_dim FROM recorded
         UNION ALL
         SELECT embedding_model, embedding_dim FROM {table}
         LIMIT 1"
    ))
    .bind(embedder.model_id())
    .bind(dimension)
    .fetch_one(&mut *conn)
    .await?;
    if model == embedder.model_id() && stored_dimension == dimension {
        Ok(())
    } else {
        Err(IndexError::ModelChanged {
            indexed_model: model,
            indexed_dimension: usize::try_from(stored_dimension).unwrap_or(0),
            embedder_model: embedder.model_id().to_owned(),
            embedder_dimension: embedder.dimension(),
        })
    }
}

/// The model `generation` records, if any.
pub(crate) async fn recorded_model(
    conn: &mut PgConnection,
    generation: Generation,
) -> Result<Option<IndexedModel>, IndexError> {
    let row: Option<(String, i32)> = sqlx::query_as(&format!(
        "SELECT embedding_model, embedding_dim FROM {}",
        generation.model_table()
    ))
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(model, dimension)| IndexedModel {
        model,
        dimension: usize::try_from(dimension).unwrap_or(0),
    }))
}

/// Creates `tenant`'s partition and its HNSW index unless they exist (recording the
/// embedder's model first, as [`ensure_model`]); returns whether it created them.
///
/// Creating a partition locks the whole table until the transaction ends, so call it in a
/// short transaction (the projection does, once per tenant).
pub async fn ensure_tenant_partition(
    conn: &mut PgConnection,
    tenant: TenantId,
    embedder: &dyn Embedder,
) -> Result<bool, IndexError> {
    ensure_model(conn, embedder).await?;
    create_partition(conn, Generation::Live, tenant).await
}

/// Creates the partition of `tenant` in `generation` (its model must be recorded); a green
/// partition gets its graph once built ([`IndexRebuild`](super::IndexRebuild)).
pub(super) async fn create_partition(
    conn: &mut PgConnection,
    generation: Generation,
    tenant: TenantId,
) -> Result<bool, IndexError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT {}($1)",
        generation.ensure_partition_function()
    ))
    .bind(tenant.as_uuid())
    .fetch_one(&mut *conn)
    .await?)
}
