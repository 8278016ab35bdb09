//! The FHIR REST client against real local HTTP servers (axum on 127.0.0.1, a free port).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use lrt_fhir::read::Record;
use lrt_fhir::{ClientConfig, FhirClient, FhirError, Payload};
use serde_json::{Value, json};

/// Small timeouts and backoffs so the suite is fast.
fn fast() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_millis(200),
        retries: 2,
        backoff: Duration::from_millis(5),
        max_pages: 50,
        max_resources: 20_000,
    }
}

/// What a test server saw.
#[derive(Clone, Default)]
struct Seen {
    hits: Arc<AtomicUsize>,
    queries: Arc<Mutex<Vec<Option<String>>>>,
    headers: Arc<Mutex<Vec<(Method, HeaderMap)>>>,
    base: Arc<Mutex<String>>,
}

impl Seen {
    fn hit(&self) -> usize {
        self.hits.fetch_add(1, Ordering::SeqCst)
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    fn base(&self) -> String {
        self.base.lock().map(|b| b.clone()).unwrap_or_default()
    }
    fn record(&self, method: Method, headers: HeaderMap, query: Option<String>) {
        if let Ok(mut h) = self.headers.lock() {
            h.push((method, headers));
        }
        if let Ok(mut q) = self.queries.lock() {
            q.push(query);
        }
    }
}

/// Serves `router` on a free local port; returns the server's root (`http://127.0.0.1:<port>`).
async fn serve(router: Router<Seen>, seen: &Seen) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let root = format!("http://{}", listener.local_addr().expect("its address"));
    *seen.base.lock().expect("the base lock") = format!("{root}/fhir");
    let app = router.with_state(seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    root
}

/// A port nothing listens on.
/// A port nothing listens on. Port 1 (tcpmux) is privileged and unused on loopback: a free
/// port found by binding and releasing could be taken at once by another test's server (seen in
/// CI: this test once reached another test's FHIR server and got its 404).
fn closed_port() -> u16 {
    1
}

fn fhir(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

fn observation(id: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2703-7"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-10-01T08:00:00Z",
        "valueQuantity": {"value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}
    })
}

fn patient(id: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "gender": "female", "birthDate": "1950-01-01"})
}

fn outcome(code: &str, text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}]
    })
}

fn searchset(total: Option<u64>, entries: Vec<Value>, next: Option<String>) -> Value {
    let mut b = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": entries.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>(),
    });
    if let Some(t) = total {
        b["total"] = json!(t);
    }
    if let Some(n) = next {
        b["link"] = json!([{"relation": "self", "url": "ignored"}, {"relation": "next", "url": n}]);
    }
    b
}

/// The ids of a payload's resources, in order.
fn ids(p: &Payload) -> Vec<String> {
    p.resources
        .iter()
        .map(|r| match &r.record {
            Record::Observation(o) => o.id.clone().unwrap_or_default(),
            Record::Patient(p) => p.id.clone().unwrap_or_default(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn client(root: &str, token: Option<&str>, config: ClientConfig) -> FhirClient {
    FhirClient::new(
        &format!("{root}/fhir"),
        token.map(|t| secrecy::SecretString::from(t.to_string())),
        config,
    )
    .expect("a client for the test server")
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn search_follows_absolute_and_relative_next_links() {
    async fn pages(
        State(seen): State<Seen>,
        headers: HeaderMap,
        RawQuery(q): RawQuery,
    ) -> Response {
        seen.hit();
        seen.record(Method::GET, headers, q.clone());
        let q = q.unwrap_or_default();
        if q == "page=2" {
            // Relative: resolves against the base (…/fhir/).
            fhir(
                StatusCode::OK,
                searchset(
                    Some(999),
                    vec![observation("o3"), observation("o4")],
                    Some("Observation?page=3".into()),
                ),
            )
        } else if q == "page=3" {
            fhir(
                StatusCode::OK,
                searchset(None, vec![observation("o5")], None),
            )
        } else {
            let next = format!("{}/Observation?page=2", seen.base());
            fhir(
                StatusCode::OK,
                searchset(
                    Some(5),
                    vec![observation("o1"), observation("o2")],
                    Some(next),
                ),
            )
        }
    }
    let seen = Seen::default();
    let root = serve(Router::new().route("/fhir/Observation", get(pages)), &seen).await;
    let c = client(&root, None, fast());
    let asked = params(&[
        ("patient", "Patient/p1"),
        ("code", "http://loinc.org|2703-7,http://loinc.org|19994-3"),
        ("date", "ge2026-10-01T00:00:00+02:00"),
        ("_count", "2"),
    ]);
    let p = c.search("Observation", &asked).await.expect("three pages");
    assert_eq!(ids(&p), ["o1", "o2", "o3", "o4", "o5"]);
    assert_eq!(p.total, Some(5), "total from the first page");
    assert_eq!(p.next, None);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(seen.hits(), 3);

    let queries = seen.queries.lock().expect("queries").clone();
    let first = queries[0].clone().expect("a query on page 1");
    assert!(first.contains("%7C") && first.contains("%2C"), "{first}");
    assert!(
        !first.contains('|') && !first.contains(',') && !first.contains("+02"),
        "{first}"
    );
    let decoded: Vec<(String, String)> = url::form_urlencoded::parse(first.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(decoded, asked);
    assert_eq!(queries[1].as_deref(), Some("page=2"));
    assert_eq!(queries[2].as_deref(), Some("page=3"));
}

#[tokio::test]
async fn a_500_then_a_200_succeeds_after_one_retry() {
    async fn flaky(State(seen): State<Seen>) -> Response {
        if seen.hit() == 0 {
            fhir(
                StatusCode::INTERNAL_SERVER_ERROR,
                outcome("exception", "boom"),
            )
        } else {
            fhir(StatusCode::OK, patient("p1"))
        }
    }
    let seen = Seen::default();
    let root = serve(Router::new().route("/fhir/Patient/p1", get(flaky)), &seen).await;
    let p = client(&root, None, fast())
        .read("Patient", "p1")
        .await
        .expect("the retry succeeds");
    assert_eq!(ids(&p), ["p1"]);
    assert_eq!(seen.hits(), 2);
}

#[tokio::test]
async fn a_503_on_every_attempt_fails_after_all_retries() {
    async fn down(State(seen): State<Seen>) -> Response {
        seen.hit();
        fhir(
            StatusCode::SERVICE_UNAVAILABLE,
            outcome("transient", "maintenance"),
        )
    }
    let seen = Seen::default();
    let root = serve(Router::new().route("/fhir/Observation", get(down)), &seen).await;
    let e = client(&root, None, fast())
        .search("Observation", &params(&[("patient", "x")]))
        .await
        .expect_err("always 503");
    assert!(matches!(e, FhirError::Status { status: 503, .. }), "{e:?}");
    assert_eq!(e.status(), Some(503));
    assert_eq!(seen.hits(), 3, "1 + 2 retries");
    assert_eq!(
        e.to_string(),
        format!("GET {root}/fhir/Observation?patient=x: HTTP 503 (error transient: maintenance)")
    );

    // No retries configured: one attempt.
    let seen = Seen::default();
    let root = serve(Router::new().route("/fhir/Observation", get(down)), &seen).await;
    let e = client(
        &root,
        None,
        ClientConfig {
            retries: 0,
            ..fast()
        },
    )
    .search("Observation", &[])
    .await
    .expect_err("503");
    assert_eq!(e.status(), Some(503));
    assert_eq!(seen.hits(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    async fn busy(State(seen): State<Seen>) -> Response {
        if seen.hit() == 0 {
            let mut r = fhir(
                StatusCode::TOO_MANY_REQUESTS,
                outcome("throttled", "slow down"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        } else {
            fhir(StatusCode::OK, patient("p1"))
        }
    }
    let seen = Seen::default();
    let root = serve(Router::new().route("/fhir/Patient/p1", get(busy)), &seen).await;
    let start = Instant::now();
    let p = client(&root, None, fast())
        .read("Patient", "p1")
        .await
        .expect("after the wait");
    assert_eq!(ids(&p), ["p1"]);
    assert_eq!(seen.hits(), 2);
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_slow_server_times_out_without_retry() {
    async fn slow(State(seen): State<Seen>) -> Response {
        seen.hit();
        tokio::time::sleep(Duration::from_secs(2)).await;
        fhir(StatusCode::OK, patient("p1"))
    }
    let seen = Seen::default();
    let root = serve(Router::new().route("/fhir/Patient/p1", get(slow)), &seen).await;
    let start = Instant::now();
    let e = client(&root, None, fast())
        .read("Patient", "p1")
        .await
        .expect_err("too slow");
    assert!(
        matches!(
            e,
            FhirError::Timeout {
                timeout_ms: 200,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("GET {root}/fhir/Patient/p1: no answer within 200 ms")
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(seen.hits(), 1, "timeouts are not retried");
}

#[tokio::test]
async fn a_bad_token_is_unauthorized_and_never_shown() {
    async fn guarded(State(seen): State<Seen>, headers: HeaderMap) -> Response {
        seen.hit();
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if auth == Some("Bearer good") {
            fhir(
                StatusCode::OK,
                searchset(Some(1), vec![observation("o1")], None),
            )
        } else {
            fhir(
                StatusCode::UNAUTHORIZED,
                outcome("login", "invalid access token"),
            )
        }
    }
    let seen = Seen::default();
    let root = serve(
        Router::new().route("/fhir/Observation", get(guarded)),
        &seen,
    )
    .await;
    let secret = "s3cr3t-wrong-token";
    let bad = client(&root, Some(secret), fast());
    assert!(!format!("{bad:?}").contains(secret), "{bad:?}");
    let e = bad.search("Observation", &[]).await.expect_err("401");
    assert!(e.is_unauthorized(), "{e:?}");
    assert_eq!(e.status(), Some(401));
    assert_eq!(seen.hits(), 1, "a 401 is not retried");
    let message = e.to_string();
    assert!(
        message.contains("error login: invalid access token"),
        "{message}"
    );
    assert!(
        !message.contains(secret) && !format!("{e:?}").contains(secret),
        "{message}"
    );

    let good = client(&root, Some("good"), fast());
    let p = good.search("Observation", &[]).await.expect("authorized");
    assert_eq!(ids(&p), ["o1"]);
    assert_eq!(seen.hits(), 2);

    let anonymous = client(&root, None, fast());
    assert!(
        anonymous
            .search("Observation", &[])
            .await
            .expect_err("401")
            .is_unauthorized()
    );
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let root = format!("http://127.0.0.1:{}", closed_port());
    let config = ClientConfig {
        backoff: Duration::from_millis(50),
        ..fast()
    };
    let start = Instant::now();
    let e = client(&root, Some("tok"), config)
        .read("Patient", "p1")
        .await
        .expect_err("nothing listens");
    let elapsed = start.elapsed();
    assert!(matches!(e, FhirError::Connection { .. }), "{e:?}");
    assert_eq!(e.status(), None);
    assert!(!e.is_unauthorized());
    // Two waits of at least 50 ms and 100 ms: the retries happened.
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("GET {root}/fhir/Patient/p1: connection failed")),
        "{message}"
    );
}

#[tokio::test]
async fn next_links_to_another_origin_are_not_followed() {
    async fn foreign(State(seen): State<Seen>, RawQuery(q): RawQuery) -> Response {
        seen.hit();
        let next = match q.as_deref() {
            Some("case=port") => "http://127.0.0.1:1/fhir/Observation?page=2".to_string(),
            Some("case=scheme") => {
                seen.base().replacen("http://", "https://", 1) + "/Observation?page=2"
            }
            _ => "http://evil.example/fhir/Observation?page=2".to_string(),
        };
        fhir(
            StatusCode::OK,
            searchset(Some(2), vec![observation("o1")], Some(next)),
        )
    }
    let seen = Seen::default();
    let root = serve(
        Router::new().route("/fhir/Observation", get(foreign)),
        &seen,
    )
    .await;
    let c = client(&root, Some("tok"), fast());
    for q in ["host", "port", "scheme"] {
        let e = c
            .search("Observation", &params(&[("case", q)]))
            .await
            .expect_err("foreign");
        let FhirError::ForeignNextLink { next, .. } = &e else {
            panic!("{q}: {e:?}")
        };
        assert!(next.contains("page=2"), "{next}");
    }
    assert_eq!(
        seen.hits(),
        3,
        "one page each, the foreign link never fetched"
    );
}

#[tokio::test]
async fn endless_paging_stops_at_max_pages() {
    async fn endless(State(seen): State<Seen>, RawQuery(q): RawQuery) -> Response {
        let n = seen.hit();
        let _ = q;
        let next = format!("Observation?page={}", n + 2);
        fhir(
            StatusCode::OK,
            searchset(None, vec![observation(&format!("o{n}"))], Some(next)),
        )
    }
    let seen = Seen::default();
    let root = serve(
        Router::new().route("/fhir/Observation", get(endless)),
        &seen,
    )
    .await;
    let c = client(
        &root,
        None,
        ClientConfig {
            max_pages: 3,
            ..fast()
        },
    );
    let e = c
        .search("Observation", &params(&[("patient", "p1")]))
        .await
        .expect_err("endless");
    assert!(matches!(e, FhirError::TooManyPages { max: 3, .. }), "{e:?}");
    assert_eq!(seen.hits(), 3);
    assert!(e.to_string().contains("more than 3 pages"), "{e}");
}

/// Issue 8: a patient with 100,000 Observations made the fallback read them all (6.7 s, 65 ->
/// 342 MB). A search keeps at most `max_resources` (newest first) and says that it was cut.
#[tokio::test]
async fn a_search_stops_at_max_resources_and_says_so() {
    async fn many(State(seen): State<Seen>, RawQuery(q): RawQuery) -> Response {
        let n = seen.hit();
        let _ = q;
        let page: Vec<Value> = (0..10).map(|i| observation(&format!("o{n}-{i}"))).collect();
        fhir(
            StatusCode::OK,
            searchset(
                Some(100_000),
                page,
                Some(format!("Observation?page={}", n + 2)),
            ),
        )
    }
    let seen = Seen::default();
    let root = serve(Router::new().route("/fhir/Observation", get(many)), &seen).await;
    let c = client(
        &root,
        None,
        ClientConfig {
            max_resources: 25,
            ..fast()
        },
    );
    let p = c
        .search("Observation", &params(&[("patient", "p1")]))
        .await
        .expect("a truncated payload, not an error");
    assert_eq!(seen.hits(), 3, "pages of 10: the third reaches 25");
    assert_eq!(p.resources.len(), 30);
    assert_eq!(
        p.warnings,
        vec!["truncated:Observation (the first 30 of 100000; no further page read)"]
    );
}

#[tokio::test]
async fn a_non_json_200_is_a_payload_error() {
    async fn html(State(seen): State<Seen>) -> Response {
        seen.hit();
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html>login</html>",
        )
            .into_response()
    }
    let seen = Seen::default();
    let root = serve(Router::new().route("/fhir/Patient/p1", get(html)), &seen).await;
    let e = client(&root, None, fast())
        .read("Patient", "p1")
        .await
        .expect_err("html");
    assert!(matches!(e, FhirError::Payload { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("GET {root}/fhir/Patient/p1: not JSON")),
        "{e}"
    );
    assert_eq!(seen.hits(), 1);
}

#[tokio::test]
async fn an_unreadable_entry_is_a_warning_and_the_rest_is_kept() {
    async fn mixed(State(seen): State<Seen>, RawQuery(q): RawQuery) -> Response {
        seen.hit();
        if q.as_deref() == Some("page=2") {
            fhir(
                StatusCode::OK,
                searchset(None, vec![observation("o3")], None),
            )
        } else {
            let mut bad = observation("o2");
            bad["status"] = json!(5);
            fhir(
                StatusCode::OK,
                searchset(
                    Some(3),
                    vec![observation("o1"), bad],
                    Some("Observation?page=2".into()),
                ),
            )
        }
    }
    let seen = Seen::default();
    let root = serve(Router::new().route("/fhir/Observation", get(mixed)), &seen).await;
    let p = client(&root, None, fast())
        .search("Observation", &[])
        .await
        .expect("two pages");
    assert_eq!(ids(&p), ["o1", "o3"]);
    assert_eq!(p.warnings, ["unreadable:Observation/o2"]);
    assert_eq!(p.total, Some(3));
}

#[tokio::test]
async fn errors_with_an_outcome_and_2xx_outcomes() {
    async fn missing(State(seen): State<Seen>) -> Response {
        seen.hit();
        fhir(
            StatusCode::NOT_FOUND,
            outcome("not-found", "Patient/zz is not known"),
        )
    }
    async fn informational() -> Response {
        fhir(
            StatusCode::OK,
            json!({"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational", "diagnostics": "nothing"}]}),
        )
    }
    let seen = Seen::default();
    let root = serve(
        Router::new()
            .route("/fhir/Patient/{id}", get(missing))
            .route("/fhir/Observation/{id}", get(informational)),
        &seen,
    )
    .await;
    let c = client(&root, None, fast());
    let e = c.read("Patient", "zz").await.expect_err("404");
    assert_eq!(e.status(), Some(404));
    assert!(!e.is_unauthorized());
    assert_eq!(seen.hits(), 1, "a 404 is not retried");
    assert_eq!(
        e.to_string(),
        format!("GET {root}/fhir/Patient/zz: HTTP 404 (error not-found: Patient/zz is not known)")
    );
    let p = c
        .read("Observation", "o1")
        .await
        .expect("a 2xx OperationOutcome is data");
    assert_eq!(
        p.outcome,
        Some(vec!["information informational: nothing".to_string()])
    );
    assert!(p.resources.is_empty());
}

#[tokio::test]
async fn read_ids_are_one_encoded_path_segment() {
    async fn echo(State(seen): State<Seen>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
        seen.hit();
        seen.record(Method::GET, headers, q);
        fhir(StatusCode::OK, patient("p1"))
    }
    let seen = Seen::default();
    let root = serve(Router::new().route("/fhir/Patient/{id}", get(echo)), &seen).await;
    let c = client(&root, None, fast());
    c.read("Patient", "a/b?c").await.expect("one segment");
    assert_eq!(
        seen.queries.lock().expect("queries")[0],
        None,
        "the ? is not a query"
    );
    assert_eq!(seen.hits(), 1);
}

/// Issue 8: a redirect out of the base path (same host) was followed with the caller's token,
/// and a `..` reference reached the server's root with the system token. Neither is requested.
#[tokio::test]
async fn redirects_and_dot_segments_never_leave_the_base_with_the_token() {
    async fn redirect(State(seen): State<Seen>) -> Response {
        seen.hit();
        (
            StatusCode::FOUND,
            [(axum::http::header::LOCATION, "/admin/secret")],
        )
            .into_response()
    }
    async fn outside(State(seen): State<Seen>, headers: HeaderMap) -> Response {
        seen.record(Method::GET, headers, Some("outside".into()));
        fhir(StatusCode::OK, patient("p1"))
    }
    let seen = Seen::default();
    let root = serve(
        Router::new()
            .route("/fhir/Patient/{id}", get(redirect))
            .route("/admin/secret", get(outside))
            .route("/", get(outside))
            .route("/Patient", get(outside)),
        &seen,
    )
    .await;
    let c = client(&root, Some("tok"), fast());
    let e = c.read("Patient", "p1").await.expect_err("not followed");
    assert!(matches!(e, FhirError::Status { status: 302, .. }), "{e:?}");
    for id in ["..", ".", "...", "%2E%2E"] {
        let e = c.read("Patient", id).await;
        if id == "%2E%2E" {
            // An id with a percent sign is one encoded segment (`%252E%252E`), not a dot segment.
            continue;
        }
        assert!(
            matches!(e, Err(FhirError::OutsideBase { .. })),
            "{id}: {e:?}"
        );
    }
    let e = c.read("../..", "x").await;
    assert!(matches!(e, Err(FhirError::OutsideBase { .. })), "{e:?}");
    assert_eq!(
        seen.hits(),
        2,
        "only `p1` and the literal `%2E%2E` id reached the server, both under /fhir/"
    );
    assert!(
        seen.queries.lock().expect("queries").is_empty(),
        "nothing outside /fhir/ was requested"
    );
}

#[tokio::test]
async fn fhir_json_headers_and_transaction() {
    async fn root_handler(
        State(seen): State<Seen>,
        method: Method,
        headers: HeaderMap,
        body: String,
    ) -> Response {
        seen.hit();
        seen.record(method.clone(), headers, None);
        if method != Method::POST {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        let Ok(bundle) = serde_json::from_str::<Value>(&body) else {
            return fhir(StatusCode::BAD_REQUEST, outcome("structure", "not JSON"));
        };
        if bundle["type"] == "transaction" {
            fhir(
                StatusCode::OK,
                json!({"resourceType": "Bundle", "type": "transaction-response"}),
            )
        } else {
            fhir(
                StatusCode::BAD_REQUEST,
                outcome("invalid", "expected a transaction"),
            )
        }
    }
    async fn read_handler(State(seen): State<Seen>, headers: HeaderMap) -> Response {
        seen.record(Method::GET, headers, None);
        fhir(StatusCode::OK, patient("p1"))
    }
    let seen = Seen::default();
    let root = serve(
        Router::new()
            .route("/fhir/", any(root_handler))
            .route("/fhir/Patient/p1", get(read_handler)),
        &seen,
    )
    .await;
    let c = client(&root, Some("tok"), fast());
    assert_eq!(c.base().as_str(), format!("{root}/fhir/"));
    c.read("Patient", "p1").await.expect("read");
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient("p1"), "request": {"method": "PUT", "url": "Patient/p1"}}
    ]});
    c.transaction(&tx.to_string())
        .await
        .expect("transaction accepted");
    let e = c
        .transaction(&json!({"resourceType": "Bundle", "type": "collection"}).to_string())
        .await
        .expect_err("refused");
    assert_eq!(e.status(), Some(400));
    assert!(
        e.to_string()
            .starts_with(&format!("POST {root}/fhir/: HTTP 400 (error invalid")),
        "{e}"
    );
    assert_eq!(seen.hits(), 2, "a 400 is not retried");

    let seen_headers = seen.headers.lock().expect("headers").clone();
    assert_eq!(seen_headers.len(), 3);
    for (method, h) in &seen_headers {
        assert_eq!(
            h.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
            Some("application/fhir+json"),
            "{method}"
        );
        assert_eq!(
            h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
            Some("Bearer tok"),
            "{method}"
        );
    }
    let (get_method, get_headers) = &seen_headers[0];
    assert_eq!(get_method, Method::GET);
    assert!(get_headers.get(header::CONTENT_TYPE).is_none());
    let (post_method, post_headers) = &seen_headers[1];
    assert_eq!(post_method, Method::POST);
    assert_eq!(
        post_headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/fhir+json")
    );
}

#[tokio::test]
async fn base_urls_are_checked() {
    for bad in [
        "ftp://h/fhir",
        "not a url",
        "http://user:pw@h/fhir",
        "http://h/fhir?x=1",
        "mailto:a@b",
    ] {
        let e = FhirClient::new(bad, None, ClientConfig::default()).expect_err(bad);
        assert!(
            matches!(e, FhirError::InvalidBaseUrl { .. }),
            "{bad}: {e:?}"
        );
        assert!(!e.to_string().contains(":pw@"), "{e}");
    }
    let c =
        FhirClient::new("https://ehr.example/r4", None, ClientConfig::default()).expect("https");
    assert_eq!(c.base().as_str(), "https://ehr.example/r4/");
    let d = ClientConfig::default();
    assert_eq!(
        (d.timeout, d.retries, d.backoff, d.max_pages),
        (Duration::from_secs(5), 2, Duration::from_millis(100), 50)
    );
}

#[tokio::test]
async fn redirects_to_another_origin_are_not_followed() {
    async fn redirect(State(seen): State<Seen>) -> Response {
        seen.hit();
        Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, "http://127.0.0.1:1/steal")
            .body(Body::empty())
            .unwrap_or_default()
    }
    let seen = Seen::default();
    let root = serve(
        Router::new().route("/fhir/Patient/p1", get(redirect)),
        &seen,
    )
    .await;
    let e = client(&root, Some("tok"), fast())
        .read("Patient", "p1")
        .await
        .expect_err("not followed");
    assert_eq!(e.status(), Some(302), "{e:?}");
}
