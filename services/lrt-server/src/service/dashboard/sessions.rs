//! PostgreSQL rows of the OpenID Connect sign-in (`dashboard_login`, `dashboard_session`): shared
//! by every replica, keyed by SHA-256 digests of the secrets the browser holds. A session row
//! names the person (their email, else the provider's `sub`): expired rows are deleted at every
//! new login and on schedule ([`purge_expired`], by the housekeeping).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::identity::DashboardUser;
use crate::service::auth::Tenancy;

/// A login under way: what the callback needs to finish it.
#[derive(Debug, sqlx::FromRow)]
pub struct PendingLogin {
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
}

/// Records a login under way (and forgets expired ones).
pub async fn start_login(
    pool: &PgPool,
    state_digest: &[u8],
    login: &PendingLogin,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM dashboard_login WHERE expires_at < now()")
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO dashboard_login (state_digest, nonce, pkce_verifier, return_to, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(state_digest)
    .bind(&login.nonce)
    .bind(&login.pkce_verifier)
    .bind(&login.return_to)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes (deletes and returns) the unexpired login of `state_digest`: a callback is used once.
pub async fn take_login(
    pool: &PgPool,
    state_digest: &[u8],
) -> Result<Option<PendingLogin>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        login: PendingLogin,
        fresh: bool,
    }
    let row = sqlx::query_as::<_, Row>(
        "DELETE FROM dashboard_login WHERE state_digest = $1 \
         RETURNING nonce, pkce_verifier, return_to, expires_at > now() AS fresh",
    )
    .bind(state_digest)
    .fetch_optional(pool)
    .await?;
    Ok(row.filter(|r| r.fresh).map(|r| r.login))
}

/// Opens a session for `user` until `expires_at` (and forgets expired ones).
pub async fn open(
    pool: &PgPool,
    id_digest: &[u8],
    user: &DashboardUser,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM dashboard_session WHERE expires_at < now()")
        .execute(pool)
        .await?;
    let (all, iss, tenant) = match &user.tenancy {
        Tenancy::All => (true, None, None),
        Tenancy::Own { iss, tenant } => (false, Some(iss.as_str()), tenant.as_deref()),
    };
    sqlx::query(
        "INSERT INTO dashboard_session \
         (id_digest, display_name, all_tenants, tenant_iss, tenant, csrf_token, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id_digest)
    .bind(&user.name)
    .bind(all)
    .bind(iss)
    .bind(tenant)
    .bind(user.csrf.as_deref().unwrap_or_default())
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The person of an unexpired session.
pub async fn find(pool: &PgPool, id_digest: &[u8]) -> Result<Option<DashboardUser>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        display_name: String,
        all_tenants: bool,
        tenant_iss: Option<String>,
        tenant: Option<String>,
        csrf_token: String,
    }
    let row = sqlx::query_as::<_, Row>(
        "SELECT display_name, all_tenants, tenant_iss, tenant, csrf_token \
         FROM dashboard_session WHERE id_digest = $1 AND expires_at > now()",
    )
    .bind(id_digest)
    .fetch_optional(pool)
    .await?;
    // Fail closed: a row that names neither every tenant nor an issuer grants nothing.
    Ok(row.and_then(|r| {
        let tenancy = match (r.all_tenants, r.tenant_iss) {
            (true, _) => Tenancy::All,
            (false, Some(iss)) => Tenancy::Own {
                iss,
                tenant: r.tenant,
            },
            (false, None) => return None,
        };
        Some(DashboardUser {
            name: r.display_name,
            tenancy,
            csrf: Some(r.csrf_token),
        })
    }))
}

/// What [`purge_expired`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpiredPurged {
    pub sessions: u64,
    pub logins: u64,
}

/// Deletes expired sessions (their rows name the person) and logins never finished; run on
/// schedule by [`crate::service::housekeeping`] as well as at every new login.
pub async fn purge_expired(conn: &mut sqlx::PgConnection) -> Result<ExpiredPurged, sqlx::Error> {
    let sessions = sqlx::query("DELETE FROM dashboard_session WHERE expires_at < now()")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let logins = sqlx::query("DELETE FROM dashboard_login WHERE expires_at < now()")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(ExpiredPurged { sessions, logins })
}

/// Ends a session (logout).
pub async fn close(pool: &PgPool, id_digest: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM dashboard_session WHERE id_digest = $1")
        .bind(id_digest)
        .execute(pool)
        .await?;
    Ok(())
}
