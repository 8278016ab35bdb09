//! Prefetch resolution per the checklist's table (§1.D.15), against a real local FHIR server
//! (axum on 127.0.0.1): full, partial, absent, `null`, empty, OperationOutcome, paged
//! searchsets, failures and timeouts, and a fhirServer that is not allow-listed.

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lrt_hooks::prefetch::{KeySource, PrefetchError, Resolved, resolve};
use serde_json::{Value, json};
use support::{FhirServer, Route, TOKEN, blood_gas, observation, patient, searchset, with_server};

fn now() -> DateTime<Utc> {
    "2025-03-01T12:00:00Z".parse().expect("a time")
}

/// A blood gas at 11:00 (PaO2 60, FiO2 80 % → P/F 75), PEEP 12 at 11:00.
fn observations() -> Vec<Value> {
    let mut o = blood_gas("p1", 1, 60.0, 80.0, "2025-03-01T11:00:00Z");
    o.push(observation(
        "peep-1",
        "p1",
        "76248-4",
        12.0,
        "cm[H2O]",
        "2025-03-01T11:00:00Z",
    ));
    o
}

fn hard_stop_flag() -> Value {
    json!({
        "resourceType": "Flag", "id": "f1", "status": "active",
        "code": {"coding": [{"system": "urn:lrt:local", "code": "refusal-or-limitation-of-care"}]},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2025-02-01T00:00:00Z"}
    })
}

/// Every declared key, satisfied.
fn full_prefetch() -> Value {
    json!({
        "Patient": patient("p1"),
        "Observation": searchset(observations(), None),
        "Condition": searchset(vec![], None),
        "Procedure": searchset(vec![], None),
        "MedicationAdministration": searchset(vec![], None),
        "MedicationRequest": searchset(vec![], None),
        "Flag": searchset(vec![hard_stop_flag()], None),
    })
}

/// A server that answers every key for p1.
fn server_routes() -> Vec<Route> {
    vec![
        Route::ok("/fhir/Patient/p1", patient("p1")),
        // Height and weight: the search without a lower date bound.
        Route::ok(
            "/fhir/Observation",
            searchset(
                vec![observation(
                    "h1",
                    "p1",
                    "8302-2",
                    180.0,
                    "cm",
                    "2024-01-01T00:00:00Z",
                )],
                None,
            ),
        )
        .when_query("8302-2"),
        Route::ok("/fhir/Observation", searchset(observations(), None)),
        Route::ok("/fhir/Condition", searchset(vec![], None)),
        Route::ok("/fhir/Procedure", searchset(vec![], None)),
        Route::ok("/fhir/MedicationAdministration", searchset(vec![], None)),
        Route::ok("/fhir/MedicationRequest", searchset(vec![], None)),
        Route::ok("/fhir/Flag", searchset(vec![hard_stop_flag()], None)),
    ]
}

async fn run(server: &FhirServer, body: Value) -> Result<Resolved, PrefetchError> {
    resolve(
        &support::request(&body),
        &support::plan(),
        &server.config(),
        Some(now()),
    )
    .await
}

fn source<'a>(r: &'a Resolved, key: &str) -> &'a KeySource {
    r.sources
        .get(key)
        .unwrap_or_else(|| panic!("no source for {key}"))
}

#[tokio::test]
async fn full_prefetch_is_used_without_calling_the_server() {
    let server = FhirServer::start(server_routes()).await;
    let body = with_server(support::patient_view("p1", full_prefetch()), &server.base());
    let r = run(&server, body).await.expect("resolved");
    assert!(
        server.seen().is_empty(),
        "nothing fetched: {:?}",
        server.seen()
    );
    assert_eq!(r.sources.len(), 7);
    assert_eq!(
        source(&r, "Observation"),
        &KeySource::Prefetch { resources: 3 }
    );
    assert_eq!(
        source(&r, "Condition"),
        &KeySource::Prefetch { resources: 0 }
    );
    assert_eq!(r.searched, lrt_fhir::Searched::ALL);
    let s = r.snapshot(support::rules(), "p1", now());
    assert_eq!(s.context.hard_stops, ["refusal_or_limitation_of_care"]);
    assert_eq!(
        s.context.immunocompromised,
        Some(false),
        "searched and absent = no"
    );
    let a = lrt_engine::evaluate(support::rules(), &s, now());
    assert_eq!(a.pf_ratio, Some(75.0));
    assert_eq!(a.ecmo_category.as_deref(), Some("ineligible"));
}

/// The client kept for a FHIR server between calls carries each call's own token, and a call
/// without `fhirAuthorization` sends none: a token never outlives its call.
#[tokio::test]
async fn a_kept_client_sends_each_calls_own_token_and_no_other() {
    let server = FhirServer::start(server_routes()).await;
    let config = server.config();
    assert!(config.clients.is_empty());
    let with_token = |token: Option<&str>| {
        let mut body = with_server(support::patient_view("p1", json!({})), &server.base());
        match token {
            Some(t) => body["fhirAuthorization"]["access_token"] = json!(t),
            None => {
                body.as_object_mut()
                    .expect("object")
                    .remove("fhirAuthorization");
            }
        }
        support::request(&body)
    };
    let mut seen_per_call = Vec::new();
    for token in [Some("token-of-call-one"), Some("token-of-call-two"), None] {
        let before = server.seen().len();
        resolve(&with_token(token), &support::plan(), &config, Some(now()))
            .await
            .expect("resolved");
        let sent: Vec<Option<String>> = server.seen()[before..]
            .iter()
            .map(|s| s.authorization.clone())
            .collect();
        assert_eq!(sent.len(), 8, "{sent:?}");
        seen_per_call.push(sent);
    }
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    assert!(
        seen_per_call[0]
            .iter()
            .all(|a| *a == bearer("token-of-call-one"))
    );
    assert!(
        seen_per_call[1]
            .iter()
            .all(|a| *a == bearer("token-of-call-two"))
    );
    assert!(
        seen_per_call[2].iter().all(Option::is_none),
        "{:?}",
        seen_per_call[2]
    );
    assert_eq!(config.clients.len(), 1, "one client for the one server");
}

#[tokio::test]
async fn absent_keys_are_fetched_with_the_token_and_the_date_window() {
    let server = FhirServer::start(server_routes()).await;
    let body = with_server(support::patient_view("p1", json!({})), &server.base());
    let r = run(&server, body).await.expect("resolved");
    let seen = server.seen();
    assert_eq!(
        seen.len(),
        8,
        "Patient read, 2 observation searches, 5 context searches: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}")))
    );
    assert!(seen.iter().any(|s| s.path == "/fhir/Patient/p1"));
    let obs: Vec<String> = seen
        .iter()
        .filter(|s| s.path == "/fhir/Observation")
        .map(|s| {
            url::form_urlencoded::parse(s.query.as_bytes())
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
        .collect();
    assert_eq!(obs.len(), 2);
    let timed = obs
        .iter()
        .find(|q| q.contains("2703-7"))
        .expect("the timed search");
    assert!(timed.contains("patient=p1"), "{timed}");
    assert!(
        timed.contains("date=ge2025-02-26T11:00:00Z&date=le2025-03-01T12:00:00Z"),
        "73 h lookback: {timed}"
    );
    assert!(
        timed.contains("_sort=-date") && timed.contains("_count=200"),
        "{timed}"
    );
    let untimed = obs
        .iter()
        .find(|q| q.contains("8302-2"))
        .expect("height and weight");
    assert!(
        untimed.contains("date=le2025-03-01T12:00:00Z") && !untimed.contains("date=ge"),
        "{untimed}"
    );
    for key in ["Patient", "Observation", "Condition", "Flag"] {
        let KeySource::Fetched { url, .. } = source(&r, key) else {
            panic!("{key}: {:?}", source(&r, key))
        };
        assert!(
            url.starts_with(&server.base()) && !url.contains('?') && !url.contains("p1"),
            "{url}"
        );
    }
    assert_eq!(
        source(&r, "Observation"),
        &KeySource::Fetched {
            url: format!("{}/Observation", server.base()),
            resources: 4
        }
    );
    assert_eq!(r.searched, lrt_fhir::Searched::ALL);
    let s = r.snapshot(support::rules(), "p1", now());
    assert_eq!(s.context.hard_stops, ["refusal_or_limitation_of_care"]);
    let a = lrt_engine::evaluate(support::rules(), &s, now());
    assert_eq!(a.pf_ratio, Some(75.0));
    assert!(
        a.pbw_kg.is_some(),
        "the height from the untimed search is used"
    );
}

#[tokio::test]
async fn partial_prefetch_fetches_only_the_missing_keys() {
    let server = FhirServer::start(server_routes()).await;
    let prefetch =
        json!({"Patient": patient("p1"), "Observation": searchset(observations(), None)});
    let body = with_server(support::patient_view("p1", prefetch), &server.base());
    let r = run(&server, body).await.expect("resolved");
    let mut paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/fhir/Condition",
            "/fhir/Flag",
            "/fhir/MedicationAdministration",
            "/fhir/MedicationRequest",
            "/fhir/Procedure"
        ]
    );
    assert_eq!(source(&r, "Patient"), &KeySource::Prefetch { resources: 1 });
    assert!(matches!(
        source(&r, "Flag"),
        KeySource::Fetched { resources: 1, .. }
    ));
    assert_eq!(
        r.snapshot(support::rules(), "p1", now())
            .context
            .hard_stops
            .len(),
        1
    );
}

#[tokio::test]
async fn null_and_empty_mean_no_data_and_are_never_fetched() {
    let server = FhirServer::start(server_routes()).await;
    let prefetch = json!({
        "Patient": patient("p1"),
        "Observation": null,
        "Condition": null, "Procedure": null, "MedicationAdministration": null,
        "MedicationRequest": searchset(vec![], None),
        "Flag": {"resourceType": "Bundle", "type": "searchset", "total": 0},
    });
    let body = with_server(support::patient_view("p1", prefetch), &server.base());
    let r = run(&server, body)
        .await
        .expect("null is not missing: no 412");
    assert!(server.seen().is_empty(), "{:?}", server.seen());
    assert_eq!(source(&r, "Observation"), &KeySource::Null);
    assert_eq!(source(&r, "Flag"), &KeySource::Prefetch { resources: 0 });
    assert_eq!(
        r.searched,
        lrt_fhir::Searched::ALL,
        "null is a search that ran"
    );
    let a = lrt_engine::evaluate(
        support::rules(),
        &r.snapshot(support::rules(), "p1", now()),
        now(),
    );
    assert_eq!(a.ecmo_category.as_deref(), Some("insufficient_data"));
    // Without any fhirServer, null still resolves.
    let body = support::patient_view("p1", json!({"Patient": null, "Observation": null}));
    let r = resolve(
        &support::request(&body),
        &support::plan(),
        &support::fast_config(),
        Some(now()),
    )
    .await
    .expect("resolved");
    assert_eq!(source(&r, "Patient"), &KeySource::Null);
    assert!(matches!(
        source(&r, "Condition"),
        KeySource::Unavailable { .. }
    ));
    assert!(!r.searched.conditions);
    assert!(
        r.collected
            .warnings
            .iter()
            .any(|w| w.starts_with("fetch_failed:Condition (")),
        "{:?}",
        r.collected.warnings
    );
}

#[tokio::test]
async fn operation_outcome_is_refetched_or_is_a_412() {
    let server = FhirServer::start(server_routes()).await;
    let mut prefetch = full_prefetch();
    prefetch["Observation"] = support::outcome("prefetch timed out");
    prefetch["Condition"] = json!("garbage");
    let body = with_server(
        support::patient_view("p1", prefetch.clone()),
        &server.base(),
    );
    let r = run(&server, body).await.expect("refetched");
    assert!(
        matches!(
            source(&r, "Observation"),
            KeySource::Fetched { resources: 4, .. }
        ),
        "{:?}",
        r.sources
    );
    assert!(
        matches!(source(&r, "Condition"), KeySource::Fetched { .. }),
        "a value that is not FHIR is refetched"
    );
    assert_eq!(
        server.seen().len(),
        3,
        "two observation searches and the condition search"
    );

    // Without fhirServer: unavailable; Observation is required → 412.
    let body = support::patient_view("p1", prefetch);
    let e = resolve(
        &support::request(&body),
        &support::plan(),
        &support::fast_config(),
        Some(now()),
    )
    .await
    .expect_err("412");
    let PrefetchError::Required { keys, sources } = &e;
    assert_eq!(keys, &["Observation"]);
    let KeySource::Unavailable { reason } = &sources["Observation"] else {
        panic!("{sources:?}")
    };
    assert!(
        reason.contains("OperationOutcome") && reason.contains("no fhirServer"),
        "{reason}"
    );
    assert!(
        e.to_string()
            .starts_with("required FHIR data unavailable: Observation ("),
        "{e}"
    );
}

#[tokio::test]
async fn paged_searchsets_follow_next_with_the_token() {
    let server = FhirServer::start({
        let mut r = vec![
            Route::ok(
                "/fhir/Observation",
                searchset(
                    blood_gas("p1", 2, 58.0, 100.0, "2025-03-01T05:00:00Z"),
                    None,
                ),
            )
            .when_query("_page=2"),
        ];
        r.extend(server_routes());
        r
    })
    .await;
    let next = format!("{}/Observation?patient=p1&_page=2", server.base());
    let mut prefetch = full_prefetch();
    prefetch["Observation"] = searchset(observations(), Some(&next));
    let body = with_server(
        support::patient_view("p1", prefetch.clone()),
        &server.base(),
    );
    let r = run(&server, body).await.expect("resolved");
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].query.contains("_page=2"));
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(
        source(&r, "Observation"),
        &KeySource::PrefetchPaged {
            resources: 5,
            url: format!("{}/Observation", server.base())
        }
    );
    let s = r.snapshot(support::rules(), "p1", now());
    assert!(
        s.observations.iter().any(|o| o.id == "pao2-2"),
        "the second page is used"
    );

    // A next link outside fhirServer is never followed: the whole key is fetched again instead.
    let mut foreign = prefetch.clone();
    foreign["Observation"] = searchset(
        observations(),
        Some("http://127.0.0.1:9/evil/Observation?page=2"),
    );
    let body = with_server(support::patient_view("p1", foreign), &server.base());
    let r = run(&server, body).await.expect("resolved");
    assert!(
        matches!(
            source(&r, "Observation"),
            KeySource::Fetched { resources: 4, .. }
        ),
        "{:?}",
        r.sources
    );
    let obs_ids: Vec<&str> = r
        .collected
        .resources
        .iter()
        .filter_map(|x| match &x.record {
            lrt_fhir::read::Record::Observation(o) => o.id.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(
        obs_ids.iter().filter(|i| **i == "pao2-1").count(),
        1,
        "the pages sent are replaced, not doubled"
    );

    // No fhirServer: the page sent is used and flagged incomplete.
    let body = support::patient_view("p1", prefetch);
    let r = resolve(
        &support::request(&body),
        &support::plan(),
        &support::fast_config(),
        Some(now()),
    )
    .await
    .expect("resolved");
    assert!(matches!(
        source(&r, "Observation"),
        KeySource::PrefetchIncomplete { resources: 3, .. }
    ));
    assert!(
        r.collected
            .warnings
            .iter()
            .any(|w| w.starts_with("prefetch_incomplete:Observation"))
    );
    let a = lrt_engine::evaluate(
        support::rules(),
        &r.snapshot(support::rules(), "p1", now()),
        now(),
    );
    assert!(
        a.data_quality
            .iter()
            .any(|d| d.starts_with("prefetch_incomplete:Observation")),
        "{:?}",
        a.data_quality
    );
}

#[tokio::test]
async fn a_server_not_on_the_allow_list_is_never_contacted() {
    let server = FhirServer::start(server_routes()).await;
    let body = with_server(support::patient_view("p1", json!({})), &server.base());
    let config = support::fast_config(); // empty allow list
    let e = resolve(
        &support::request(&body),
        &support::plan(),
        &config,
        Some(now()),
    )
    .await
    .expect_err("412");
    assert!(server.seen().is_empty(), "{:?}", server.seen());
    let PrefetchError::Required { keys, sources } = e;
    assert_eq!(keys, ["Patient", "Observation"]);
    assert!(
        sources.values().all(
            |s| matches!(s, KeySource::Unavailable { reason } if reason.contains("allow list"))
        )
    );
    // A prefix of another server, a sibling path or another port is not allowed either.
    let other = lrt_hooks::prefetch::AllowList::new([format!("{}/fhir-other", server.root)])
        .expect("valid");
    let config = lrt_hooks::prefetch::PrefetchConfig {
        allow_list: other,
        ..support::fast_config()
    };
    assert!(
        resolve(
            &support::request(&body),
            &support::plan(),
            &config,
            Some(now())
        )
        .await
        .is_err()
    );
    assert!(server.seen().is_empty());
}

#[test]
fn allow_list_matches_scheme_host_port_and_path_prefix() {
    use lrt_hooks::prefetch::AllowList;
    let list =
        AllowList::new(["https://ehr.example.org/fhir", "http://127.0.0.1:8090/"]).expect("valid");
    let allows = |u: &str| list.allows(&url::Url::parse(u).expect("a url"));
    assert!(allows("https://ehr.example.org/fhir"));
    assert!(allows("https://ehr.example.org/fhir/"));
    assert!(allows("https://ehr.example.org:443/fhir/R4"));
    assert!(allows("https://EHR.example.org/fhir"));
    assert!(allows("http://127.0.0.1:8090/anything"));
    assert!(!allows("http://ehr.example.org/fhir"), "http is not https");
    assert!(!allows("https://ehr.example.org/fhir-other"));
    assert!(!allows("https://ehr.example.org/"));
    assert!(!allows("https://ehr.example.org.evil.com/fhir"));
    assert!(!allows("https://ehr.example.org:8443/fhir"));
    assert!(!allows("https://u:p@ehr.example.org/fhir"));
    assert!(!allows("http://127.0.0.1:8080/"));
    assert!(AllowList::new(["ftp://x/"]).is_err());
    assert!(AllowList::new(["https://x/?a=1"]).is_err());
    assert!(AllowList::new(["relative/path"]).is_err());
    assert!(
        !AllowList::none().allows(&url::Url::parse("https://ehr.example.org/fhir").expect("a url"))
    );
}

#[tokio::test]
async fn failures_of_optional_keys_degrade_and_of_required_keys_412() {
    let mut routes = vec![Route::ok("/fhir/Condition", support::outcome("boom")).status(500)];
    routes.extend(server_routes());
    let server = FhirServer::start(routes).await;
    let prefetch =
        json!({"Patient": patient("p1"), "Observation": searchset(observations(), None)});
    let body = with_server(support::patient_view("p1", prefetch), &server.base());
    let r = run(&server, body)
        .await
        .expect("an optional key does not 412");
    assert_eq!(
        source(&r, "Condition"),
        &KeySource::Unavailable {
            reason: "HTTP 500".into()
        }
    );
    assert!(!r.searched.conditions && r.searched.flags);
    assert!(
        r.collected
            .warnings
            .contains(&"fetch_failed:Condition (HTTP 500)".to_string())
    );
    let s = r.snapshot(support::rules(), "p1", now());
    assert_eq!(
        s.context.immunocompromised, None,
        "not searched = unknown, never 'no'"
    );

    // The required Patient read fails: 412 naming it.
    let server = FhirServer::start(vec![
        Route::ok("/fhir/Patient/p1", support::outcome("gone")).status(404),
    ])
    .await;
    let body = with_server(
        support::patient_view(
            "p1",
            json!({"Observation": searchset(observations(), None)}),
        ),
        &server.base(),
    );
    let e = run(&server, body).await.expect_err("412");
    let PrefetchError::Required { keys, sources } = &e;
    assert_eq!(keys, &["Patient"]);
    assert_eq!(
        sources["Patient"],
        KeySource::Unavailable {
            reason: "HTTP 404".into()
        }
    );
    assert!(
        !e.to_string().contains(TOKEN) && !e.to_string().contains("p1"),
        "{e}"
    );
}

#[tokio::test]
async fn fetches_run_concurrently_under_a_per_key_timeout() {
    let delay = Duration::from_millis(300);
    let routes: Vec<Route> = server_routes()
        .into_iter()
        .map(|r| r.delay(delay))
        .collect();
    let server = FhirServer::start(routes).await;
    let body = with_server(support::patient_view("p1", json!({})), &server.base());
    let started = Instant::now();
    let r = run(&server, body).await.expect("resolved");
    let took = started.elapsed();
    assert_eq!(server.seen().len(), 8);
    assert!(
        r.sources
            .values()
            .all(|s| matches!(s, KeySource::Fetched { .. }))
    );
    assert!(
        took < Duration::from_millis(1500),
        "8 requests of 300 ms took {took:?}: not concurrent"
    );

    // An Observation server slower than the key timeout: 412 in about the timeout, not later.
    let server = FhirServer::start(vec![
        Route::ok("/fhir/Observation", searchset(observations(), None))
            .delay(Duration::from_secs(5)),
    ])
    .await;
    let body = with_server(
        support::patient_view("p1", json!({"Patient": patient("p1")})),
        &server.base(),
    );
    let mut config = server.config();
    config.client.timeout = Duration::from_secs(10);
    config.key_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = resolve(
        &support::request(&body),
        &support::plan(),
        &config,
        Some(now()),
    )
    .await
    .expect_err("412");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let PrefetchError::Required { keys, sources } = e;
    assert_eq!(keys, ["Observation"]);
    assert_eq!(
        sources["Observation"],
        KeySource::Unavailable {
            reason: "no answer within 300 ms".into()
        }
    );
}

#[tokio::test]
async fn key_sources_serialise_for_the_evaluation_record() {
    let server = FhirServer::start(server_routes()).await;
    let body = with_server(
        support::patient_view("p1", json!({"Patient": patient("p1"), "Observation": null})),
        &server.base(),
    );
    let r = run(&server, body).await.expect("resolved");
    let v = serde_json::to_value(&r.sources).expect("serialisable");
    assert_eq!(v["Patient"], json!({"source": "prefetch", "resources": 1}));
    assert_eq!(v["Observation"], json!({"source": "null"}));
    assert_eq!(v["Flag"]["source"], "fetched");
    assert!(!v.to_string().contains(TOKEN));
}

#[tokio::test]
async fn without_a_window_end_the_template_is_fetched_as_published() {
    let server = FhirServer::start(server_routes()).await;
    let body = with_server(
        support::patient_view("p1", json!({"Patient": patient("p1")})),
        &server.base(),
    );
    let r = resolve(
        &support::request(&body),
        &support::plan(),
        &server.config(),
        None,
    )
    .await
    .expect("resolved");
    let obs: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|s| s.path == "/fhir/Observation")
        .collect();
    assert_eq!(obs.len(), 1, "one search: the template");
    let q: String = url::form_urlencoded::parse(obs[0].query.as_bytes())
        .map(|(k, v)| format!("{k}={v}&"))
        .collect();
    assert!(!q.contains("date="), "{q}");
    assert!(
        q.contains("patient=p1&") && q.contains("_sort=-date&"),
        "{q}"
    );
    assert!(
        q.contains("2703-7") && q.contains("8302-2"),
        "every observation code: {q}"
    );
    assert!(matches!(
        source(&r, "Observation"),
        KeySource::Fetched { .. }
    ));
}
