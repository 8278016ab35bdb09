//! Several calls' commits in one transaction: the writing half of [`super::group`].
//!
//! Each table gets one statement for the whole batch (`UNNEST` of one array per column), so a
//! batch of 16 calls costs PostgreSQL about as many statements and one commit as a single call
//! did. What a call stores, and when it stores nothing, is the same as through
//! [`store_evaluations`] alone:
//! * a `jti` used before (and not expired): nothing of the call is stored ([`Stored::ReplayedJti`]);
//! * a `hookInstance` stored before (a retry, or a concurrent call that committed first): nothing
//!   of the call is stored in the batch; its `jti` insert is undone in the same transaction and
//!   the call goes through [`store_evaluations`] after the batch, which finds the stored
//!   evaluation ([`Stored::Existing`]);
//! * two calls of one batch with the same `jti` or the same `hookInstance`: the first is in the
//!   batch, the others are stored one by one after it (and meet it as above);
//! * a page is written only for a call whose evaluation is new, patients in order (the per-patient
//!   lock of [`crate::service::paging::outbox::write_page`] is taken in one order by every batch);
//! * when the batch's transaction fails (a row that breaks a constraint), nothing of it is stored
//!   and each of its calls is stored on its own: one bad call fails alone. When it fails because
//!   the database cannot be reached, every call of the group fails with that error at once.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::group::GroupError;
use super::{CallRecord, Commit, Jti, NewEvaluation, Stored, store_evaluations};
use crate::service::error::database_unavailable;

/// What became of one call of a batch.
enum Fate {
    /// Committed with the batch.
    Batched(Stored),
    /// To be stored on its own, after the batch.
    Alone,
}

/// Stores `commits`, each as [`store_evaluations`] would: the result of each, in order. A single
/// call is stored on its own. (Traced as the caller's `store.group` span.)
pub async fn store_batch(pool: &PgPool, commits: &[Commit]) -> Vec<Result<Stored, GroupError>> {
    let mut fates: Vec<Fate> = commits.iter().map(|_| Fate::Alone).collect();
    if commits.len() > 1 {
        let members = first_of_their_keys(commits);
        match write(pool, commits, &members).await {
            Ok(written) => {
                for (i, stored) in written {
                    fates[i] = Fate::Batched(stored);
                }
            }
            Err(error) if database_unavailable(&error) => {
                metrics::counter!("lrt_group_commit_failed_total").increment(1);
                let error = Arc::new(error);
                return commits
                    .iter()
                    .map(|_| Err(GroupError::Unavailable(error.clone())))
                    .collect();
            }
            Err(error) => {
                metrics::counter!("lrt_group_commit_failed_total").increment(1);
                tracing::warn!(
                    calls = members.len(),
                    %error,
                    "a group commit failed: its calls are stored one by one"
                );
            }
        }
    }
    let mut results = Vec::with_capacity(commits.len());
    for (commit, fate) in commits.iter().zip(fates) {
        results.push(match fate {
            Fate::Batched(stored) => Ok(stored),
            Fate::Alone => store_evaluations(pool, commit)
                .await
                .map_err(GroupError::from),
        });
    }
    results
}

/// The indices of the calls that go in the batch: each first of its `hookInstance` and of its
/// `jti` (a later call with either already taken is stored after the batch).
fn first_of_their_keys(commits: &[Commit]) -> Vec<usize> {
    let mut instances = HashSet::new();
    let mut jtis = HashSet::new();
    commits
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let new_instance = instances.insert(c.active.hook_instance.as_str());
            let new_jti = c
                .jti
                .as_ref()
                .is_none_or(|j| jtis.insert((j.iss.as_str(), j.jti.as_str())));
            new_instance && new_jti
        })
        .map(|(i, _)| i)
        .collect()
}

/// Writes the batch of `members` in one transaction: what each member's commit did, except
/// the members whose `hookInstance` was stored before (left to be stored alone).
async fn write(
    pool: &PgPool,
    commits: &[Commit],
    members: &[usize],
) -> Result<Vec<(usize, Stored)>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Rows in key order, in every statement of every group: two groups written at once (by two
    // replicas) that share keys (racing retries) wait for each other in one order, never in a
    // cycle.
    let mut jtis: Vec<&Jti> = members
        .iter()
        .filter_map(|&i| commits[i].jti.as_ref())
        .collect();
    jtis.sort_by(|a, b| (&a.iss, &a.jti).cmp(&(&b.iss, &b.jti)));
    let fresh = insert_jtis(&mut tx, &jtis).await?;
    let mut written = Vec::with_capacity(members.len());
    let mut candidates = Vec::with_capacity(members.len());
    for &i in members {
        match &commits[i].jti {
            Some(j) if !fresh.contains(&(j.iss.as_str(), j.jti.as_str())) => {
                written.push((i, Stored::ReplayedJti));
            }
            _ => candidates.push(i),
        }
    }
    candidates.sort_by(|&a, &b| {
        commits[a]
            .active
            .hook_instance
            .cmp(&commits[b].active.hook_instance)
    });
    let actives: Vec<&NewEvaluation> = candidates.iter().map(|&i| &commits[i].active).collect();
    let inserted = insert_evaluations(&mut tx, &actives).await?;
    let (new, stored_before): (Vec<usize>, Vec<usize>) = candidates
        .into_iter()
        .partition(|&i| inserted.contains(&commits[i].active.hook_instance));
    // A call whose hookInstance was stored before stores nothing here, not even its jti: it is
    // stored alone after the batch, as a retry.
    let undo: Vec<&Jti> = stored_before
        .iter()
        .filter_map(|&i| commits[i].jti.as_ref())
        .collect();
    delete_jtis(&mut tx, &undo).await?;
    let shadows: Vec<&NewEvaluation> = new
        .iter()
        .filter_map(|&i| commits[i].shadow.as_ref())
        .collect();
    insert_evaluations(&mut tx, &shadows).await?;
    let mut paging: Vec<(usize, &crate::service::paging::PagePlan)> = new
        .iter()
        .filter_map(|&i| commits[i].page.as_ref().map(|p| (i, p)))
        .collect();
    paging.sort_by(|a, b| a.1.patient_id.cmp(&b.1.patient_id));
    let mut pages = Vec::with_capacity(paging.len());
    for (i, plan) in paging {
        let page = crate::service::paging::outbox::write_page(&mut tx, plan).await?;
        pages.push((i, page));
    }
    let calls: Vec<&CallRecord> = new
        .iter()
        .filter_map(|&i| commits[i].call.as_ref())
        .collect();
    insert_calls(&mut tx, &calls).await?;
    tx.commit().await?;
    for i in new {
        let page = pages
            .iter()
            .find(|(p, _)| *p == i)
            .and_then(|(_, page)| *page);
        written.push((i, Stored::New { page }));
    }
    Ok(written)
}

/// Records each `jti` once (as [`super::insert_jti`] does): the ones that were new (or whose
/// earlier use had expired).
async fn insert_jtis<'j>(
    tx: &mut Transaction<'_, Postgres>,
    jtis: &[&'j Jti],
) -> Result<HashSet<(&'j str, &'j str)>, sqlx::Error> {
    if jtis.is_empty() {
        return Ok(HashSet::new());
    }
    let fresh: Vec<(String, String)> = sqlx::query_as(
        "INSERT INTO jwt_replay (iss, jti, expires_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) \
         ON CONFLICT (iss, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at \
         WHERE jwt_replay.expires_at < now() \
         RETURNING iss, jti",
    )
    .bind(jtis.iter().map(|j| j.iss.as_str()).collect::<Vec<_>>())
    .bind(jtis.iter().map(|j| j.jti.as_str()).collect::<Vec<_>>())
    .bind(jtis.iter().map(|j| j.keep_until).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    Ok(jtis
        .iter()
        .filter(|j| {
            fresh
                .iter()
                .any(|(iss, jti)| *iss == j.iss && *jti == j.jti)
        })
        .map(|j| (j.iss.as_str(), j.jti.as_str()))
        .collect())
}

/// Forgets the `jti`s of calls that store nothing in the batch.
async fn delete_jtis(tx: &mut Transaction<'_, Postgres>, jtis: &[&Jti]) -> Result<(), sqlx::Error> {
    if jtis.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM jwt_replay r USING UNNEST($1::text[], $2::text[]) AS t(iss, jti) \
         WHERE r.iss = t.iss AND r.jti = t.jti",
    )
    .bind(jtis.iter().map(|j| j.iss.as_str()).collect::<Vec<_>>())
    .bind(jtis.iter().map(|j| j.jti.as_str()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Inserts evaluations (each unique per `hookInstance` and role; one already stored is left as
/// it is): the `hookInstance`s of the rows inserted.
async fn insert_evaluations(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&NewEvaluation],
) -> Result<HashSet<String>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    fn column<'a, T>(rows: &[&'a NewEvaluation], f: impl Fn(&'a NewEvaluation) -> T) -> Vec<T> {
        rows.iter().map(|e| f(e)).collect()
    }
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO evaluation (id, hook_instance, role, service_id, hook, patient_id, fhir_server, \
         client_iss, client_sub, tenant, ruleset_id, ruleset_version, ruleset_sha256, evaluated_at, \
         snapshot, assessment, prefetch_sources, response, card_uuids, status, latency_ms, \
         ecmo_category, berlin_category, pf_ratio) \
         SELECT id, hook_instance, role, service_id, hook, patient_id, fhir_server, client_iss, \
           client_sub, tenant, ruleset_id, ruleset_version, ruleset_sha256, evaluated_at, snapshot, \
           assessment, prefetch_sources, response, card_uuids::uuid[], status, latency_ms, \
           ecmo_category, berlin_category, pf_ratio \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
           $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
           $14::timestamptz[], $15::jsonb[], $16::jsonb[], $17::jsonb[], $18::jsonb[], $19::text[], \
           $20::int2[], $21::float8[], $22::text[], $23::text[], $24::float8[]) \
         AS t(id, hook_instance, role, service_id, hook, patient_id, fhir_server, client_iss, \
           client_sub, tenant, ruleset_id, ruleset_version, ruleset_sha256, evaluated_at, snapshot, \
           assessment, prefetch_sources, response, card_uuids, status, latency_ms, ecmo_category, \
           berlin_category, pf_ratio) \
         ON CONFLICT (hook_instance, role) DO NOTHING \
         RETURNING hook_instance",
    )
    .bind(column(rows, |e| e.id))
    .bind(column(rows, |e| e.hook_instance.as_str()))
    .bind(column(rows, |e| e.role.as_str()))
    .bind(column(rows, |e| e.service_id.as_str()))
    .bind(column(rows, |e| e.hook.as_str()))
    .bind(column(rows, |e| e.patient_id.as_str()))
    .bind(column(rows, |e| e.fhir_server.as_deref()))
    .bind(column(rows, |e| e.client_iss.as_deref()))
    .bind(column(rows, |e| e.client_sub.as_deref()))
    .bind(column(rows, |e| e.tenant.as_deref()))
    .bind(column(rows, |e| e.ruleset_id.as_str()))
    .bind(column(rows, |e| e.ruleset_version.as_str()))
    .bind(column(rows, |e| e.ruleset_sha256.as_str()))
    .bind(column(rows, |e| e.evaluated_at))
    .bind(column(rows, |e| Json(&*e.snapshot)))
    .bind(column(rows, |e| Json(&*e.assessment)))
    .bind(column(rows, |e| Json(&e.prefetch_sources)))
    .bind(column(rows, |e| Json(&e.response)))
    .bind(column(rows, |e| uuid_array(&e.card_uuids)))
    .bind(column(rows, |e| e.status))
    .bind(column(rows, |e| e.latency_ms))
    .bind(column(rows, |e| e.ecmo_category.as_deref()))
    .bind(column(rows, |e| e.berlin_category.as_deref()))
    .bind(column(rows, |e| e.pf_ratio))
    .fetch_all(&mut **tx)
    .await?;
    Ok(inserted.into_iter().collect())
}

/// A `uuid[]` as PostgreSQL's array text (an array of arrays cannot be bound: `UNNEST` would
/// flatten it).
fn uuid_array(uuids: &[Uuid]) -> String {
    let items: Vec<String> = uuids.iter().map(|u| u.hyphenated().to_string()).collect();
    format!("{{{}}}", items.join(","))
}

/// Inserts the calls' `hook_call` rows.
async fn insert_calls(
    tx: &mut Transaction<'_, Postgres>,
    calls: &[&CallRecord],
) -> Result<(), sqlx::Error> {
    if calls.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO hook_call (service_id, hook, hook_instance, status, error_code, latency_ms, \
           evaluation_id, client_iss, tenant) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int2[], $5::text[], \
           $6::float8[], $7::uuid[], $8::text[], $9::text[])",
    )
    .bind(
        calls
            .iter()
            .map(|c| c.service_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(calls.iter().map(|c| c.hook.as_deref()).collect::<Vec<_>>())
    .bind(
        calls
            .iter()
            .map(|c| c.hook_instance.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(calls.iter().map(|c| c.status).collect::<Vec<_>>())
    .bind(
        calls
            .iter()
            .map(|c| c.error_code.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(calls.iter().map(|c| c.latency_ms).collect::<Vec<_>>())
    .bind(calls.iter().map(|c| c.evaluation_id).collect::<Vec<_>>())
    .bind(
        calls
            .iter()
            .map(|c| c.client_iss.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        calls
            .iter()
            .map(|c| c.tenant.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_uuid_list_is_written_as_array_text() {
        assert_eq!(uuid_array(&[]), "{}");
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(
            uuid_array(&[a, b]),
            "{00000000-0000-0000-0000-000000000001,00000000-0000-0000-0000-000000000002}"
        );
    }
}
