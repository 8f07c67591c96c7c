//! The index's model record and its per-tenant partitions.

use casebook_domain::ids::TenantId;
use casebook_domain::ports::Embedder;
use sqlx::PgConnection;

use super::IndexError;

/// Records `embedder`'s model and dimension as the index's, or checks they are the ones
/// already recorded ([`IndexError::ModelChanged`] otherwise).
pub async fn ensure_model(
    conn: &mut PgConnection,
    embedder: &dyn Embedder,
) -> Result<(), IndexError> {
    let dimension = i32::try_from(embedder.dimension()).unwrap_or(i32::MAX);
    let (model, stored_dimension): (String, i32) = sqlx::query_as(
        "WITH recorded AS (
             INSERT INTO judgment_index_model (embedding_model, embedding_dim) VALUES ($1, $2)
             ON CONFLICT (singleton) DO NOTHING
             RETURNING embedding_model, embedding_dim)
         SELECT embedding_model, embedding_dim FROM recorded
         UNION ALL
         SELECT embedding_model, embedding_dim FROM judgment_index_model
         LIMIT 1",
    )
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
    create_partition(conn, tenant).await
}

/// Creates the partition of `tenant` (the model must be recorded).
pub(super) async fn create_partition(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<bool, IndexError> {
    Ok(
        sqlx::query_scalar("SELECT judgment_index_ensure_partition($1)")
            .bind(tenant.as_uuid())
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// The table holding `tenant`'s rows, named as `judgment_index_ensure_partition` names it.
pub(super) fn partition_name(tenant: TenantId) -> String {
    format!("judgment_index_{}", tenant.as_uuid().simple())
}

/// Empties the index for a rebuild: drops every tenant's partition and forgets the model.
pub async fn reset(conn: &mut PgConnection) -> Result<(), IndexError> {
    sqlx::query("SELECT judgment_index_reset()")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
