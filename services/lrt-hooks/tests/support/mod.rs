//! Shared helpers of the lrt-hooks tests: the shipped rule set, request builders, FHIR
//! resources, and a real local FHIR test server (axum on 127.0.0.1, a free port) that records
//! what it was asked.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use lrt_engine::RuleSet;
use lrt_engine::testing::shipped_version_dir;
use lrt_hooks::cards::templates::CardText;
use lrt_hooks::model::HookRequest;
use lrt_hooks::orders::OrderCodes;
use lrt_hooks::prefetch::{AllowList, FhirClients, PrefetchConfig, PrefetchPlan};
use serde_json::{Value, json};

pub const HOOK_INSTANCE: &str = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea";
pub const TOKEN: &str = "secret-token-value-42";

/// The shipped active rule set.
pub fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| RuleSet::load(&shipped_version_dir()).expect("the shipped rule set loads"))
}

/// Rule set 0.1.0 (its cards use the legacy texts, `data/cards-legacy.yaml`).
pub fn rules_0_1_0() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        RuleSet::load(&shared_rules_root().join("lrt-ruleset/0.1.0")).expect("0.1.0 loads")
    })
}

/// Rule set 0.2.0.
pub fn rules_0_2_0() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        RuleSet::load(&shared_rules_root().join("lrt-ruleset/0.2.0")).expect("0.2.0 loads")
    })
}

fn shared_rules_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

/// The card texts of a rule set.
pub fn card_text(rules: &RuleSet) -> CardText {
    CardText::for_rules(rules).expect("the card texts load")
}

pub fn plan() -> PrefetchPlan {
    PrefetchPlan::new(rules())
}

/// The order codes of 0.1.0 (the legacy table).
pub fn codes() -> OrderCodes {
    OrderCodes::for_rules(rules_0_1_0()).expect("the order codes load")
}

/// Reads a request the way the server does.
pub fn request(body: &Value) -> HookRequest {
    HookRequest::from_slice(body.to_string().as_bytes()).expect("a readable request")
}

/// A patient-view request body.
pub fn patient_view(patient: &str, prefetch: Value) -> Value {
    json!({
        "hook": "patient-view",
        "hookInstance": HOOK_INSTANCE,
        "context": {"userId": "Practitioner/u1", "patientId": patient},
        "prefetch": prefetch,
    })
}

/// Adds `fhirServer` and a bearer token.
pub fn with_server(mut body: Value, server: &str) -> Value {
    body["fhirServer"] = json!(server);
    body["fhirAuthorization"] = json!({
        "access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
        "scope": "patient/*.read", "subject": "lrt-cds"
    });
    body
}

pub fn patient(id: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "gender": "male", "birthDate": "1980-01-01"})
}

pub fn observation(id: &str, patient: &str, code: &str, value: f64, unit: &str, at: &str) -> Value {
    json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": at,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    })
}

/// PaO2 and FiO2 of one blood gas (P/F = pao2 / fio2).
pub fn blood_gas(patient: &str, n: usize, pao2: f64, fio2_percent: f64, at: &str) -> Vec<Value> {
    vec![
        observation(&format!("pao2-{n}"), patient, "2703-7", pao2, "mm[Hg]", at),
        observation(
            &format!("fio2-{n}"),
            patient,
            "3150-0",
            fio2_percent,
            "%",
            at,
        ),
    ]
}

pub fn searchset(entries: Vec<Value>, next: Option<&str>) -> Value {
    let mut b = json!({
        "resourceType": "Bundle", "type": "searchset", "total": entries.len(),
        "entry": entries.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>(),
    });
    if let Some(n) = next {
        b["link"] = json!([{"relation": "self", "url": "ignored"}, {"relation": "next", "url": n}]);
    }
    b
}

pub fn outcome(text: &str) -> Value {
    json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception", "diagnostics": text}]})
}

/// One canned answer of the test server.
#[derive(Clone, Debug)]
pub struct Route {
    /// Path below the server root, e.g. `/fhir/Observation`.
    pub path: String,
    /// A substring the query must contain (`None`: any query).
    pub query_contains: Option<String>,
    pub status: u16,
    pub body: Value,
    pub delay: Duration,
}

impl Route {
    pub fn ok(path: &str, body: Value) -> Route {
        Route {
            path: path.into(),
            query_contains: None,
            status: 200,
            body,
            delay: Duration::ZERO,
        }
    }
    pub fn when_query(mut self, contains: &str) -> Route {
        self.query_contains = Some(contains.into());
        self
    }
    pub fn status(mut self, status: u16) -> Route {
        self.status = status;
        self
    }
    pub fn delay(mut self, d: Duration) -> Route {
        self.delay = d;
        self
    }
}

/// A request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
}

#[derive(Clone, Default)]
pub struct FhirServer {
    routes: Arc<Mutex<Vec<Route>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// `http://127.0.0.1:<port>`
    pub root: String,
}

impl FhirServer {
    /// Serves `routes` on a free local port.
    pub async fn start(routes: Vec<Route>) -> FhirServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let root = format!("http://{}", listener.local_addr().expect("its address"));
        let server = FhirServer {
            routes: Arc::new(Mutex::new(routes)),
            seen: Arc::default(),
            root,
        };
        let app = Router::new()
            .fallback(any(handle))
            .with_state(server.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        server
    }

    /// The FHIR base URL (`{root}/fhir`).
    pub fn base(&self) -> String {
        format!("{}/fhir", self.root)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    /// An allow list with this server's base.
    pub fn allow_list(&self) -> AllowList {
        AllowList::new([self.base()]).expect("a valid allow list")
    }

    pub fn config(&self) -> PrefetchConfig {
        PrefetchConfig {
            allow_list: self.allow_list(),
            ..fast_config()
        }
    }
}

/// Short timeouts, so failure cases are fast.
pub fn fast_config() -> PrefetchConfig {
    PrefetchConfig {
        allow_list: AllowList::none(),
        client: lrt_fhir::ClientConfig {
            timeout: Duration::from_millis(500),
            retries: 0,
            backoff: Duration::from_millis(5),
            max_pages: 10,
            ..lrt_fhir::ClientConfig::default()
        },
        key_timeout: Duration::from_millis(800),
        clients: FhirClients::default(),
    }
}

async fn handle(State(s): State<FhirServer>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    s.seen.lock().expect("seen").push(Seen {
        path: path.clone(),
        query: query.clone(),
        authorization,
    });
    let decoded = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let route = s
        .routes
        .lock()
        .expect("routes")
        .iter()
        .find(|r| {
            r.path == path
                && r.query_contains
                    .as_ref()
                    .is_none_or(|q| decoded.contains(q.as_str()))
        })
        .cloned();
    match route {
        Some(r) => {
            if !r.delay.is_zero() {
                tokio::time::sleep(r.delay).await;
            }
            (
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [(header::CONTENT_TYPE, "application/fhir+json")],
                r.body.to_string(),
            )
                .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/fhir+json")],
            outcome("not found").to_string(),
        )
            .into_response(),
    }
}
