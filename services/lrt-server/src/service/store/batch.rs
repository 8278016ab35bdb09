//! Several calls' commits at once: the writing half of [`super::group`].
//!
//! The whole batch is one statement ([`MEMBERS`]: the `jti`s, the active and shadow
//! evaluations and the calls' rows, each table's rows as `UNNEST` of one array per column), so a
//! batch of 16 calls costs PostgreSQL one statement and one commit. Without a page to write, the
//! statement is its own transaction, the writer's one round trip (beside the pool's check of the
//! connection); with one, the statement and the pages are one transaction (`BEGIN`, the
//! statement, each page, `COMMIT`). What a call stores, and when it stores nothing, is the same
//! as through [`store_evaluations`] alone:
//! * a `jti` used before (and not expired): nothing of the call is stored ([`Stored::ReplayedJti`]);
//! * a `hookInstance` stored before (a retry, or a concurrent call that committed first): nothing
//!   of the call is stored in the batch; its `jti` insert is undone (by the next statement) and
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
use sqlx::{PgConnection, PgPool, Postgres};
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
    /// Not stored: the batch stored the others of its group, then failed for it.
    Failed(GroupError),
}

/// Stores `commits`, each as [`store_evaluations`] would: the result of each, in order. A call
/// alone is a batch of one: two round trips to PostgreSQL (the pool's check and the statement),
/// against seven or more through [`store_evaluations`]. With PostgreSQL 2.45 ms away (`make
/// load`, 5 December 2026, 1 connection): 39 and 42 calls/s through [`store_evaluations`], 64 and
/// 60 as a batch of one in a transaction, 94 and 82 as one statement; at 16 connections 286 and
/// 290 against 235 and 248 in a transaction. (Traced as the caller's `store.group` span.)
pub async fn store_batch(pool: &PgPool, commits: &[Commit]) -> Vec<Result<Stored, GroupError>> {
    let mut fates: Vec<Fate> = commits.iter().map(|_| Fate::Alone).collect();
    if !commits.is_empty() {
        let members = first_of_their_keys(commits);
        match write(pool, commits, &members).await {
            Ok(written) => {
                for (i, fate) in written {
                    fates[i] = fate;
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
            Fate::Failed(error) => Err(error),
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

/// Writes the batch of `members`: what each member's commit did, except the members whose
/// `hookInstance` was stored before (left to be stored alone).
///
/// A batch without a page to write is its one statement, which PostgreSQL commits on its own: no
/// `BEGIN` and `COMMIT` round trips. Its retries' `jti`s are then forgotten by a statement of its
/// own after it (a retry is stored alone, which records the `jti` again); if that fails, the
/// retries fail with it, and the calls the statement stored are stored. A batch with a page is one
/// transaction: the statement, the `jti` undo and the pages.
async fn write(
    pool: &PgPool,
    commits: &[Commit],
    members: &[usize],
) -> Result<Vec<(usize, Fate)>, sqlx::Error> {
    if members.iter().all(|&i| commits[i].page.is_none()) {
        let mut conn = pool.acquire().await?;
        let step = run_statement(&mut conn, commits, members).await?;
        let undone = delete_jtis(&mut conn, &step.undo(commits)).await;
        let mut written = step.written;
        written.extend(
            step.new
                .iter()
                .map(|&i| (i, Fate::Batched(Stored::New { page: None }))),
        );
        if let Err(error) = undone {
            // The retries are not stored; their answer is the database's failure (their
            // `jti`s stay used: a token is not taken twice).
            let error = Arc::new(error);
            for &i in &step.stored_before {
                written.push((i, Fate::Failed(GroupError::Unavailable(error.clone()))));
            }
        }
        return Ok(written);
    }
    let mut tx = pool.begin().await?;
    let step = run_statement(&mut tx, commits, members).await?;
    delete_jtis(&mut tx, &step.undo(commits)).await?;
    let mut paging: Vec<(usize, &crate::service::paging::PagePlan)> = step
        .new
        .iter()
        .filter_map(|&i| commits[i].page.as_ref().map(|p| (i, p)))
        .collect();
    paging.sort_by(|a, b| a.1.patient_id.cmp(&b.1.patient_id));
    let mut pages = Vec::with_capacity(paging.len());
    for (i, plan) in paging {
        let page = crate::service::paging::outbox::write_page(&mut tx, plan).await?;
        pages.push((i, page));
    }
    tx.commit().await?;
    let mut written = step.written;
    for i in step.new {
        let page = pages
            .iter()
            .find(|(p, _)| *p == i)
            .and_then(|(_, page)| *page);
        written.push((i, Fate::Batched(Stored::New { page })));
    }
    Ok(written)
}

/// What the batch statement did to the members.
struct Step {
    /// The members that store nothing (their `jti` was used before).
    written: Vec<(usize, Fate)>,
    /// The members whose evaluations it inserted, in key order.
    new: Vec<usize>,
    /// The members whose `hookInstance` was stored before: nothing of them is kept (their `jti`
    /// is to be forgotten), they are stored alone after the batch, as retries.
    stored_before: Vec<usize>,
}

impl Step {
    /// The `jti`s to forget: those of the members stored before.
    fn undo<'c>(&self, commits: &'c [Commit]) -> Vec<&'c Jti> {
        self.stored_before
            .iter()
            .filter_map(|&i| commits[i].jti.as_ref())
            .collect()
    }
}

/// Runs the batch statement for `members` on `conn`.
async fn run_statement(
    conn: &mut PgConnection,
    commits: &[Commit],
    members: &[usize],
) -> Result<Step, sqlx::Error> {
    // Rows in key order, in every statement of every group: two groups written at once (by two
    // replicas) that share keys (racing retries) wait for each other in one order, never in a
    // cycle.
    let mut jtis: Vec<&Jti> = members
        .iter()
        .filter_map(|&i| commits[i].jti.as_ref())
        .collect();
    jtis.sort_by(|a, b| (&a.iss, &a.jti).cmp(&(&b.iss, &b.jti)));
    let mut keyed: Vec<usize> = members.to_vec();
    keyed.sort_by(|&a, &b| {
        commits[a]
            .active
            .hook_instance
            .cmp(&commits[b].active.hook_instance)
    });
    let (fresh, inserted) = insert_members(conn, commits, &jtis, &keyed).await?;
    let mut written = Vec::with_capacity(members.len());
    let mut candidates = Vec::with_capacity(members.len());
    for &i in &keyed {
        match &commits[i].jti {
            Some(j) if !fresh.contains(&(j.iss.as_str(), j.jti.as_str())) => {
                written.push((i, Fate::Batched(Stored::ReplayedJti)));
            }
            _ => candidates.push(i),
        }
    }
    let (new, stored_before): (Vec<usize>, Vec<usize>) = candidates
        .into_iter()
        .partition(|&i| inserted.contains(&commits[i].active.hook_instance));
    Ok(Step {
        written,
        new,
        stored_before,
    })
}

/// The columns of an evaluation row and the type of the array each is bound as, in the order
/// [`bind_evaluations`] binds them (the card uuids as array text: see [`uuid_array`]).
const EVALUATION: [(&str, &str); 24] = [
    ("id", "uuid"),
    ("hook_instance", "text"),
    ("role", "text"),
    ("service_id", "text"),
    ("hook", "text"),
    ("patient_id", "text"),
    ("fhir_server", "text"),
    ("client_iss", "text"),
    ("client_sub", "text"),
    ("tenant", "text"),
    ("ruleset_id", "text"),
    ("ruleset_version", "text"),
    ("ruleset_sha256", "text"),
    ("evaluated_at", "timestamptz"),
    ("snapshot", "jsonb"),
    ("assessment", "jsonb"),
    ("prefetch_sources", "jsonb"),
    ("response", "jsonb"),
    ("card_uuids", "text"),
    ("status", "int2"),
    ("latency_ms", "float8"),
    ("ecmo_category", "text"),
    ("berlin_category", "text"),
    ("pf_ratio", "float8"),
];

/// `INSERT INTO evaluation` of the evaluation arrays bound from parameter `$first` on (as
/// `t`), with `extra` arrays (and their column names) after them that `filter` may read.
fn insert_evaluations(first: usize, extra: &[(&str, &str)], filter: &str) -> String {
    let columns: Vec<&str> = EVALUATION.iter().map(|(name, _)| *name).collect();
    let values: Vec<&str> = columns
        .iter()
        .map(|&name| {
            if name == "card_uuids" {
                "card_uuids::uuid[]"
            } else {
                name
            }
        })
        .collect();
    let arrays: Vec<String> = EVALUATION
        .iter()
        .chain(extra)
        .enumerate()
        .map(|(k, (_, ty))| format!("${}::{ty}[]", first + k))
        .collect();
    let names: Vec<&str> = columns
        .iter()
        .copied()
        .chain(extra.iter().map(|(name, _)| *name))
        .collect();
    format!(
        "INSERT INTO evaluation ({}) SELECT {} FROM UNNEST({}) AS t({}) WHERE {filter} \
         ON CONFLICT (hook_instance, role) DO NOTHING",
        columns.join(", "),
        values.join(", "),
        arrays.join(", "),
        names.join(", "),
    )
}

/// The one statement of a batch (issue 9: each statement, and each round trip to PostgreSQL,
/// costs the group's writer time in which the calls wait): it records each `jti` once (as
/// [`super::insert_jti`] does: new, or its earlier use expired), inserts the active evaluation
/// of each call whose `jti` was fresh (or that has none) unless its `hookInstance` was stored
/// before, and, for each active evaluation inserted, the shadow evaluation and the call's row.
/// What it returns: the fresh `jti`s and the `hookInstance`s of the active evaluations
/// inserted. `jtis` and `keyed` (the members) come in key order.
const MEMBERS: &str = "WITH j AS ( \
       INSERT INTO jwt_replay (iss, jti, expires_at) \
       SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) \
       ON CONFLICT (iss, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at \
       WHERE jwt_replay.expires_at < now() \
       RETURNING iss, jti), \
     a AS (@ACTIVE@ RETURNING hook_instance), \
     s AS (@SHADOW@), \
     c AS ( \
       INSERT INTO hook_call (service_id, hook, hook_instance, status, error_code, latency_ms, \
         evaluation_id, client_iss, tenant) \
       SELECT service_id, hook, hook_instance, status, error_code, latency_ms, evaluation_id, \
         client_iss, tenant \
       FROM UNNEST($54::text[], $55::text[], $56::text[], $57::int2[], $58::text[], \
         $59::float8[], $60::uuid[], $61::text[], $62::text[], $63::text[]) \
         AS t(service_id, hook, hook_instance, status, error_code, latency_ms, evaluation_id, \
           client_iss, tenant, member) \
       WHERE t.member IN (SELECT hook_instance FROM a)) \
   SELECT true, iss, jti FROM j UNION ALL SELECT false, hook_instance, NULL FROM a";

/// [`MEMBERS`] with its two evaluation inserts filled in (made once).
fn members_statement() -> &'static str {
    static STATEMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STATEMENT.get_or_init(|| {
        let active = insert_evaluations(
            4,
            &[("jti_iss", "text"), ("jti", "text")],
            "t.jti IS NULL OR EXISTS (SELECT 1 FROM j WHERE j.iss = t.jti_iss AND j.jti = t.jti)",
        );
        let shadow =
            insert_evaluations(30, &[], "t.hook_instance IN (SELECT hook_instance FROM a)");
        MEMBERS
            .replace("@ACTIVE@", &active)
            .replace("@SHADOW@", &shadow)
    })
}

/// The fresh `jti`s and the `hookInstance`s inserted, by [`MEMBERS`].
type Inserted<'j> = (HashSet<(&'j str, &'j str)>, HashSet<String>);

/// Runs [`MEMBERS`] for `keyed` (the batch's members in `hookInstance` order) and `jtis`
/// (theirs, in key order).
async fn insert_members<'j>(
    conn: &mut PgConnection,
    commits: &[Commit],
    jtis: &[&'j Jti],
    keyed: &[usize],
) -> Result<Inserted<'j>, sqlx::Error> {
    let actives: Vec<&NewEvaluation> = keyed.iter().map(|&i| &commits[i].active).collect();
    let shadows: Vec<&NewEvaluation> = keyed
        .iter()
        .filter_map(|&i| commits[i].shadow.as_ref())
        .collect();
    let (calls, callers): (Vec<&CallRecord>, Vec<&str>) = keyed
        .iter()
        .filter_map(|&i| {
            let c = &commits[i];
            c.call
                .as_ref()
                .map(|r| (r, c.active.hook_instance.as_str()))
        })
        .unzip();
    let query = sqlx::query_as(members_statement())
        .bind(jtis.iter().map(|j| j.iss.as_str()).collect::<Vec<_>>())
        .bind(jtis.iter().map(|j| j.jti.as_str()).collect::<Vec<_>>())
        .bind(jtis.iter().map(|j| j.keep_until).collect::<Vec<_>>());
    let query = bind_evaluations(query, &actives)
        .bind(
            keyed
                .iter()
                .map(|&i| commits[i].jti.as_ref().map(|j| j.iss.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            keyed
                .iter()
                .map(|&i| commits[i].jti.as_ref().map(|j| j.jti.as_str()))
                .collect::<Vec<_>>(),
        );
    let query = bind_evaluations(query, &shadows);
    let rows: Vec<(bool, String, Option<String>)> = bind_calls(query, &calls, &callers)
        .fetch_all(&mut *conn)
        .await?;
    let mut fresh = HashSet::new();
    let mut inserted = HashSet::new();
    for (is_jti, key, jti) in rows {
        match (is_jti, jti) {
            (true, Some(jti)) => {
                if let Some(j) = jtis.iter().find(|j| j.iss == key && j.jti == jti) {
                    fresh.insert((j.iss.as_str(), j.jti.as_str()));
                }
            }
            _ => {
                inserted.insert(key);
            }
        }
    }
    Ok((fresh, inserted))
}

type MembersQuery<'q> =
    sqlx::query::QueryAs<'q, Postgres, (bool, String, Option<String>), sqlx::postgres::PgArguments>;

/// One column's array: `f` of each row.
fn column<'a, R, T>(rows: &[&'a R], f: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(|r| f(r)).collect()
}

/// Binds the 24 column arrays of `rows` (see [`EVALUATION`]).
fn bind_evaluations<'q>(query: MembersQuery<'q>, rows: &[&'q NewEvaluation]) -> MembersQuery<'q> {
    query
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
}

/// Binds the calls' `hook_call` arrays, then `callers`: the `hookInstance` of each call's
/// active evaluation (its row is inserted only with it).
fn bind_calls<'q>(
    query: MembersQuery<'q>,
    calls: &[&'q CallRecord],
    callers: &[&'q str],
) -> MembersQuery<'q> {
    query
        .bind(column(calls, |c| c.service_id.as_str()))
        .bind(column(calls, |c| c.hook.as_deref()))
        .bind(column(calls, |c| c.hook_instance.as_deref()))
        .bind(column(calls, |c| c.status))
        .bind(column(calls, |c| c.error_code.as_deref()))
        .bind(column(calls, |c| c.latency_ms))
        .bind(column(calls, |c| c.evaluation_id))
        .bind(column(calls, |c| c.client_iss.as_deref()))
        .bind(column(calls, |c| c.tenant.as_deref()))
        .bind(callers.to_vec())
}

/// Forgets the `jti`s of calls that store nothing in the batch.
async fn delete_jtis(conn: &mut PgConnection, jtis: &[&Jti]) -> Result<(), sqlx::Error> {
    if jtis.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM jwt_replay r USING UNNEST($1::text[], $2::text[]) AS t(iss, jti) \
         WHERE r.iss = t.iss AND r.jti = t.jti",
    )
    .bind(jtis.iter().map(|j| j.iss.as_str()).collect::<Vec<_>>())
    .bind(jtis.iter().map(|j| j.jti.as_str()).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map(|_| ())
}

/// A `uuid[]` as PostgreSQL's array text (an array of arrays cannot be bound: `UNNEST` would
/// flatten it).
fn uuid_array(uuids: &[Uuid]) -> String {
    let items: Vec<String> = uuids.iter().map(|u| u.hyphenated().to_string()).collect();
    format!("{{{}}}", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_statement_numbers_each_bound_array_once() {
        // 3 jti arrays, 24 active columns and the active's jti (2), 24 shadow columns, 9 call
        // columns and the call's member: the order `insert_members` binds them in.
        let statement = members_statement();
        let mut numbers: Vec<usize> = statement
            .split('$')
            .skip(1)
            .map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().expect("a parameter number")
            })
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=63).collect::<Vec<_>>());
        assert!(statement.contains("$4::uuid[], $5::text[]"));
        assert!(statement.contains("$28::text[], $29::text[]) AS t(id,"));
        assert!(statement.contains("$30::uuid[]"));
        assert!(!statement.contains('@'));
    }

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
