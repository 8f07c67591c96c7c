//! The `Idempotency-Key` records of the API (`idempotency_keys`): a key is claimed by the
//! first request, answered once it completes, released when it failed on the server's side.
//! Keys belong to one caller (tenant, user), in transactions scoped to the tenant.
//!
//! Records are written with `synchronous_commit = off`: a crash can lose the last few records
//! (never the commands, which are durable and whose creations are idempotent by id), and
//! requests don't pay a second WAL flush for them.

use casebook_domain::actor::Actor;
use sqlx::PgPool;

use crate::postgres::{begin_for_tenants, Access};

/// What a key's claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free: it is the caller's now, until completed or released.
    Claimed,
    /// The key was taken, by the request whose hash this is.
    Existing {
        /// The hash of the request that took it.
        request_hash: Vec<u8>,
        /// Its answer (status, body), once it has one.
        response: Option<(u16, Vec<u8>)>,
    },
}

/// The stored keys and answers (`idempotency_keys`).
#[derive(Clone)]
pub struct IdempotencyKeys {
    pool: PgPool,
}

impl IdempotencyKeys {
    /// Keys kept in `pool`'s database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Takes `key` for `caller`'s request hashed `hash`, or tells who has it.
    pub async fn claim(
        &self,
        caller: &Actor,
        key: &str,
        hash: &[u8],
    ) -> Result<Claim, sqlx::Error> {
        let mut tx = begin_for_tenants(
            &self.pool,
            Access::ReadWriteUnflushed,
            &[*caller.tenant_id.as_uuid()],
        )
        .await?;
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, user_id, key, request_hash)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, user_id, key) DO NOTHING",
        )
        .bind(caller.tenant_id.as_uuid())
        .bind(caller.user_id.as_str())
        .bind(key)
        .bind(hash)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let claim = if claimed {
            Claim::Claimed
        } else {
            let (request_hash, status, body): (Vec<u8>, Option<i16>, Option<Vec<u8>>) =
                sqlx::query_as(
                    "SELECT request_hash, status_code, response_body FROM idempotency_keys
                      WHERE tenant_id = $1 AND user_id = $2 AND key = $3",
                )
                .bind(caller.tenant_id.as_uuid())
                .bind(caller.user_id.as_str())
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            Claim::Existing {
                request_hash,
                response: status.map(|status| status as u16).zip(body),
            }
        };
        tx.commit().await?;
        Ok(claim)
    }

    /// Stores the answer to `caller`'s request under `key`.
    pub async fn complete(
        &self,
        caller: &Actor,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), sqlx::Error> {
        self.write(
            "UPDATE idempotency_keys SET status_code = $4, response_body = $5
              WHERE tenant_id = $1 AND user_id = $2 AND key = $3",
            caller,
            key,
            Some((status as i16, body)),
        )
        .await
    }

    /// Frees `key` (the request failed on the server's side: the client may retry).
    pub async fn release(&self, caller: &Actor, key: &str) -> Result<(), sqlx::Error> {
        self.write(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND user_id = $2 AND key = $3",
            caller,
            key,
            None,
        )
        .await
    }

    async fn write(
        &self,
        sql: &str,
        caller: &Actor,
        key: &str,
        response: Option<(i16, &[u8])>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = begin_for_tenants(
            &self.pool,
            Access::ReadWriteUnflushed,
            &[*caller.tenant_id.as_uuid()],
        )
        .await?;
        let query = sqlx::query(sql)
            .bind(caller.tenant_id.as_uuid())
            .bind(caller.user_id.as_str())
            .bind(key);
        let query = match response {
            Some((status, body)) => query.bind(status).bind(body),
            None => query,
        };
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
