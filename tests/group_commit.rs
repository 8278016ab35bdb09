//! Group commit (issue 9): calls committed together in one transaction store exactly what each
//! would have stored alone. A replayed `jti`, a `hookInstance` stored before, two calls of one
//! group with the same `jti` or `hookInstance`, and a call whose row breaks a constraint are each
//! answered as alone, and the others of the group are not affected. On a database of its own.

use chrono::{Duration, Utc};
use lrt_e2e::service::TestDb;
use lrt_server::service::store::batch::store_batch;
use lrt_server::service::store::group::{GroupCommit, GroupError};
use lrt_server::service::store::{
    self, CallRecord, Commit, Jti, NewEvaluation, Role, Stored, store_evaluations,
};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

async fn migrated(db: &TestDb) -> PgPool {
    let pool = PgPool::connect(&db.url).await.unwrap();
    store::MIGRATOR.run(&pool).await.unwrap();
    pool
}

fn evaluation(hook_instance: &str, role: Role) -> NewEvaluation {
    NewEvaluation {
        id: Uuid::new_v4(),
        hook_instance: hook_instance.to_string(),
        role,
        service_id: "lrt-patient-view".into(),
        hook: "patient-view".into(),
        patient_id: format!("patient-of-{hook_instance}"),
        fhir_server: Some("https://ehr.example/fhir".into()),
        client_iss: Some("https://ehr.example".into()),
        client_sub: None,
        tenant: Some("north".into()),
        ruleset_id: "lrt".into(),
        ruleset_version: "0.2.0".into(),
        ruleset_sha256: "00".repeat(32),
        evaluated_at: Utc::now(),
        snapshot: serde_json::value::to_raw_value(&json!({"observations": [{"code": "2703-7"}]}))
            .unwrap(),
        assessment: serde_json::value::to_raw_value(&json!({"pf_ratio": 88.5})).unwrap(),
        prefetch_sources: json!({"observations": "prefetch"}),
        response: json!({"cards": [{"summary": hook_instance}]}),
        card_uuids: vec![Uuid::new_v4(), Uuid::new_v4()],
        status: 200,
        latency_ms: 1.5,
        ecmo_category: None,
        berlin_category: Some("severe".into()),
        pf_ratio: Some(88.5),
    }
}

/// A call's commit: its evaluation (and a shadow one), its row, and its token's `jti` if any.
fn call(hook_instance: &str, jti: Option<&str>) -> Commit {
    let active = evaluation(hook_instance, Role::Active);
    let call = CallRecord {
        hook: Some("patient-view".into()),
        hook_instance: Some(hook_instance.to_string()),
        evaluation_id: Some(active.id),
        ..CallRecord::answered("lrt-patient-view", None, 200, std::time::Instant::now())
    };
    Commit {
        jti: jti.map(|j| Jti {
            iss: "https://ehr.example".into(),
            jti: j.to_string(),
            keep_until: Utc::now() + Duration::minutes(10),
        }),
        active,
        shadow: Some(evaluation(hook_instance, Role::Shadow)),
        page: None,
        call: Some(call),
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn outcome<E: std::fmt::Display>(r: &Result<Stored, E>) -> String {
    match r {
        Ok(Stored::New { .. }) => "new".into(),
        Ok(Stored::Existing(s)) => format!("existing {}", s.id),
        Ok(Stored::ReplayedJti) => "replayed jti".into(),
        Err(e) => format!("error: {e}"),
    }
}

#[tokio::test]
async fn a_group_stores_what_each_call_would_have_stored_alone() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    // Before the group: a stored call ("d") and a spent token ("spent").
    let before = call("d", Some("jd0"));
    let stored_before = before.active.id;
    assert_eq!(outcome(&store_evaluations(&pool, &before).await), "new");
    let spent = call("x", Some("spent"));
    assert_eq!(outcome(&store_evaluations(&pool, &spent).await), "new");

    let a = call("a", Some("j1"));
    let group = vec![
        a.clone(),
        call("b", Some("j1")),    // the token of "a", in the same group
        call("a", Some("j3")),    // the hookInstance of "a", in the same group (a retry)
        call("d", Some("jd")),    // a hookInstance stored before the group (a retry)
        call("e", Some("spent")), // a token spent before the group
        call("f", None),          // no token (authentication off)
    ];
    let results = store_batch(&pool, &group).await;
    let got: Vec<String> = results.iter().map(outcome).collect();
    assert_eq!(
        got,
        [
            "new".to_string(),
            "replayed jti".into(),
            format!("existing {}", a.active.id),
            format!("existing {stored_before}"),
            "replayed jti".into(),
            "new".into(),
        ]
    );
    // Evaluations: d and x before; a and f now, each active and shadow.
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT hook_instance, role FROM evaluation ORDER BY hook_instance, role")
            .fetch_all(&pool)
            .await
            .unwrap();
    let rows: Vec<String> = rows.iter().map(|(h, r)| format!("{h} {r}")).collect();
    assert_eq!(
        rows,
        [
            "a active", "a shadow", "d active", "d shadow", "f active", "f shadow", "x active",
            "x shadow"
        ]
    );
    // A call that stores nothing records nothing: not its row, not its jti (the retries' rows
    // and jtis are the caller's to record, as for a call alone).
    let calls: Vec<String> =
        sqlx::query_scalar("SELECT hook_instance FROM hook_call ORDER BY hook_instance")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(calls, ["a", "d", "f", "x"]);
    let jtis: Vec<String> = sqlx::query_scalar("SELECT jti FROM jwt_replay ORDER BY jti")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(jtis, ["j1", "jd0", "spent"]);
    // What a group writes reads back as written.
    let (sources, response, cards): (serde_json::Value, serde_json::Value, Vec<Uuid>) =
        sqlx::query_as(
            "SELECT prefetch_sources, response, card_uuids FROM evaluation \
             WHERE hook_instance = 'a' AND role = 'active'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sources, a.active.prefetch_sources);
    assert_eq!(response, a.active.response);
    assert_eq!(cards, a.active.card_uuids);
}

#[tokio::test]
async fn a_call_that_breaks_a_constraint_fails_alone() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    let mut bad = call("bad", Some("jbad"));
    bad.active.latency_ms = -1.0; // the table's CHECK refuses it
    let group = vec![call("g1", Some("jg1")), bad, call("g2", Some("jg2"))];
    let results = store_batch(&pool, &group).await;
    let got: Vec<String> = results.iter().map(outcome).collect();
    assert_eq!(got[0], "new");
    assert!(got[1].starts_with("error: "), "{got:?}");
    assert_eq!(got[2], "new");
    assert_eq!(count(&pool, "SELECT count(*) FROM evaluation").await, 4);
    assert_eq!(count(&pool, "SELECT count(*) FROM hook_call").await, 2);
    // The failed call's jti is not spent: its transaction was rolled back.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM jwt_replay WHERE jti = 'jbad'").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_commits_and_a_caller_that_goes_away_is_still_stored() {
    let db = TestDb::create().await;
    let pool = migrated(&db).await;
    let commits = GroupCommit::new(&pool, None).unwrap();
    let calls: Vec<_> = (0..48)
        .map(|i| {
            let commits = commits.clone();
            tokio::spawn(async move {
                let c = call(&format!("c{i}"), Some(&format!("jc{i}")));
                commits
                    .commit(c)
                    .await
                    .map(|s| matches!(s, Stored::New { .. }))
            })
        })
        .collect();
    for c in calls {
        assert!(c.await.unwrap().unwrap(), "each call is new");
    }
    // A caller polled once (its call handed over) and then dropped, as when a client goes away.
    {
        let gone = commits.commit(call("gone", Some("jgone")));
        tokio::pin!(gone);
        let polled = futures_poll_once(gone.as_mut()).await;
        assert!(polled.is_none(), "the commit is not done after one poll");
    }
    commits.flushed().await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM evaluation").await,
        49 * 2
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM hook_call").await, 49);
    assert_eq!(count(&pool, "SELECT count(*) FROM jwt_replay").await, 49);
}

/// Polls `f` once.
async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
    let mut f = f;
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test]
async fn a_group_that_cannot_reach_the_database_fails_at_once_as_unavailable() {
    // Nothing listens on port 1: each connection attempt is refused until the pool gives up.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let group = vec![call("u1", Some("ju1")), call("u2", None), call("u1", None)];
    let results = store_batch(&pool, &group).await;
    // Every call of the group, the one that would have been stored alone included, gets the
    // group's error: none is tried again on its own (each would wait for the pool's timeout).
    assert_eq!(results.len(), 3);
    for r in &results {
        assert!(
            matches!(r, Err(GroupError::Unavailable(_))),
            "{}",
            outcome(r)
        );
    }
}
