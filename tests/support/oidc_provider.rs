//! A real local OpenID Connect provider for the dashboard's sign-in tests (axum on 127.0.0.1):
//! the discovery document, `/authorize` (the person "signs in" at once: the browser is sent back
//! to the registered `redirect_uri` with a one-use `code` and the `state`), `/token` (the
//! authorization code grant with PKCE S256 and client authentication, RFC 6749 §4.1.3 and
//! §2.3.1, RFC 7636 §4.6) answering an ID token signed ES256 with its own P-256 key, and `/jwks`.
//!
//! It checks what a strict provider checks and records what the client sent (which client
//! authentication method, which `redirect_uri`), so that a test can assert the client's side;
//! and it can be told to misbehave: an ID token with another `nonce`, `aud` or `iss`, expired,
//! signed by another key, or a token endpoint that fails with a 5xx.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// An ES256 (P-256) signing key with its `kid`.
pub struct Es256Key {
    key: SigningKey,
    pub kid: String,
}

impl Es256Key {
    pub fn new(kid: &str) -> Es256Key {
        Es256Key {
            key: SigningKey::random(&mut rand_core::OsRng),
            kid: kid.to_string(),
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": B64.encode(point.x().expect("an uncompressed point has x")),
            "y": B64.encode(point.y().expect("an uncompressed point has y")),
        })
    }

    /// A JWT of `claims`, header `{"alg": "ES256", "typ": "JWT", "kid"}`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature.to_bytes()))
    }
}

/// How the next ID tokens are spoiled (the test of a client that must refuse them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenFault {
    /// A well-formed, valid ID token.
    None,
    WrongNonce,
    WrongAudience,
    WrongIssuer,
    /// `exp` ten minutes ago (beyond any reasonable clock skew).
    Expired,
    /// Signed by another key with the published key's `kid`.
    OtherKey,
}

/// How the client authenticated at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthUsed {
    /// `client_secret_basic`.
    Basic,
    /// `client_secret_post`.
    Post,
}

/// One request to the token endpoint, as the provider judged it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The method, when the client authenticated (None: it did not, or it used two).
    pub client_auth: Option<ClientAuthUsed>,
    pub status: u16,
    /// The OAuth error answered (`invalid_grant`, …), when refused.
    pub error: Option<String>,
}

/// A code given at `/authorize`, until it is used.
struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    person: Value,
    used: bool,
}

struct Inner {
    key: Es256Key,
    impostor: Es256Key,
    redirect_uri: Option<String>,
    person: Value,
    fault: IdTokenFault,
    token_failure: Option<StatusCode>,
    auth_methods: Vec<&'static str>,
    grants: HashMap<String, Grant>,
    token_requests: Vec<TokenRequest>,
    authorize_requests: Vec<HashMap<String, String>>,
}

/// The provider: its issuer (`http://127.0.0.1:<port>`) and its one registered client.
#[derive(Clone)]
pub struct OidcProvider {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    inner: Arc<Mutex<Inner>>,
}

impl OidcProvider {
    /// Starts the provider for client `client_id` with `client_secret`, offering
    /// `client_secret_basic` and `client_secret_post`.
    pub async fn start(client_id: &str, client_secret: &str) -> OidcProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let kid = format!("op-{}", uuid::Uuid::new_v4().simple());
        let provider = OidcProvider {
            issuer,
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            inner: Arc::new(Mutex::new(Inner {
                key: Es256Key::new(&kid),
                impostor: Es256Key::new(&kid),
                redirect_uri: None,
                person: json!({"sub": "nobody"}),
                fault: IdTokenFault::None,
                token_failure: None,
                auth_methods: vec!["client_secret_basic", "client_secret_post"],
                grants: HashMap::new(),
                token_requests: Vec::new(),
                authorize_requests: Vec::new(),
            })),
        };
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(provider.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        provider
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("the provider's state")
    }

    /// The one redirect URI registered for the client (exact match, as OAuth 2.1 requires).
    pub fn register_redirect_uri(&self, uri: &str) {
        self.inner().redirect_uri = Some(uri.to_string());
    }

    /// The claims of whoever signs in next (`sub`, `email`, `name`, groups, tenant…).
    pub fn sign_in_as(&self, person: Value) {
        self.inner().person = person;
    }

    /// Spoils the next ID tokens (`IdTokenFault::None` to stop).
    pub fn spoil_id_tokens(&self, fault: IdTokenFault) {
        self.inner().fault = fault;
    }

    /// Makes the token endpoint answer `status` (None: work again).
    pub fn fail_token_endpoint(&self, status: Option<StatusCode>) {
        self.inner().token_failure = status;
    }

    /// The client authentication methods the discovery document lists.
    pub fn offer_auth_methods(&self, methods: &[&'static str]) {
        self.inner().auth_methods = methods.to_vec();
    }

    /// Every token request so far.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.inner().token_requests.clone()
    }

    /// The query of every authorization request so far.
    pub fn authorize_requests(&self) -> Vec<HashMap<String, String>> {
        self.inner().authorize_requests.clone()
    }

    pub fn end_session_endpoint(&self) -> String {
        format!("{}/logout", self.issuer)
    }
}

async fn discovery(State(p): State<OidcProvider>) -> Response {
    let methods = p.inner().auth_methods.clone();
    let i = &p.issuer;
    axum::Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "end_session_endpoint": p.end_session_endpoint(),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": methods,
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code"],
        "scopes_supported": ["openid", "email", "profile", "groups"],
    }))
    .into_response()
}

async fn jwks(State(p): State<OidcProvider>) -> Response {
    axum::Json(json!({"keys": [p.inner().key.jwk()]})).into_response()
}

fn bad_request(what: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        format!("authorization request: {what}"),
    )
        .into_response()
}

/// `/authorize`: a request that is not right is answered 400 here (never redirected: the
/// redirect URI itself may be the problem); a right one "signs in" the configured person.
async fn authorize(
    State(p): State<OidcProvider>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = p.inner();
    inner.authorize_requests.push(q.clone());
    let get = |k: &str| q.get(k).map(String::as_str);
    if get("client_id") != Some(p.client_id.as_str()) {
        return bad_request("unknown client_id");
    }
    let Some(redirect_uri) = get("redirect_uri") else {
        return bad_request("no redirect_uri");
    };
    if inner.redirect_uri.as_deref() != Some(redirect_uri) {
        return bad_request("redirect_uri is not registered");
    }
    if get("response_type") != Some("code") {
        return bad_request("response_type must be code");
    }
    if !get("scope").is_some_and(|s| s.split(' ').any(|x| x == "openid")) {
        return bad_request("scope must include openid");
    }
    if get("code_challenge_method") != Some("S256") {
        return bad_request("code_challenge_method must be S256");
    }
    let Some(challenge) = get("code_challenge").filter(|c| c.len() == 43) else {
        return bad_request("code_challenge must be 43 characters (S256)");
    };
    let Some(state) = get("state").filter(|s| !s.is_empty()) else {
        return bad_request("no state");
    };
    let code = B64.encode(uuid::Uuid::new_v4().as_bytes());
    let person = inner.person.clone();
    inner.grants.insert(
        code.clone(),
        Grant {
            redirect_uri: redirect_uri.to_string(),
            challenge: challenge.to_string(),
            nonce: get("nonce").map(str::to_string),
            person,
            used: false,
        },
    );
    let mut back = url::Url::parse(redirect_uri).expect("a registered URI parses");
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state)
        .append_pair("iss", &p.issuer);
    Redirect::to(back.as_str()).into_response()
}

/// One `application/x-www-form-urlencoded` value, decoded.
fn form_decode(text: &str) -> Option<String> {
    let text = format!("v={text}");
    let mut pairs = url::form_urlencoded::parse(text.as_bytes());
    let (_, v) = pairs.next()?;
    pairs.next().is_none().then(|| v.into_owned())
}

fn oauth_error(
    p: &OidcProvider,
    auth: Option<ClientAuthUsed>,
    status: StatusCode,
    error: &str,
) -> Response {
    p.inner().token_requests.push(TokenRequest {
        client_auth: auth,
        status: status.as_u16(),
        error: Some(error.to_string()),
    });
    let mut response = (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(json!({"error": error})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"token\""),
        );
    }
    response
}

/// `/token`: the authorization code grant (RFC 6749 §4.1.3, §5) with PKCE (RFC 7636 §4.6).
async fn token(State(p): State<OidcProvider>, headers: HeaderMap, body: String) -> Response {
    let failure = p.inner().token_failure;
    if let Some(status) = failure {
        p.inner().token_requests.push(TokenRequest {
            client_auth: None,
            status: status.as_u16(),
            error: None,
        });
        return (status, "upstream database at 10.0.0.7:5432 timed out").into_response();
    }
    if !headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
    {
        return oauth_error(&p, None, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let mut form: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
        // RFC 6749 §3.2: a parameter sent twice is an invalid request.
        if form.insert(k.into_owned(), v.into_owned()).is_some() {
            return oauth_error(&p, None, StatusCode::BAD_REQUEST, "invalid_request");
        }
    }
    // Client authentication (RFC 6749 §2.3.1): HTTP Basic of the form-urlencoded id and secret,
    // or the secret in the form; never both.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(|b| {
            STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|text| {
                    let (id, secret) = text.split_once(':')?;
                    Some((form_decode(id)?, form_decode(secret)?))
                })
        });
    let post = form.get("client_secret").cloned();
    let (auth, id, secret) = match (basic, post) {
        (Some(_), Some(_)) => {
            return oauth_error(&p, None, StatusCode::BAD_REQUEST, "invalid_request");
        }
        (Some(None), None) => {
            return oauth_error(&p, None, StatusCode::UNAUTHORIZED, "invalid_client");
        }
        (Some(Some((id, secret))), None) => (ClientAuthUsed::Basic, id, secret),
        (None, Some(secret)) => (
            ClientAuthUsed::Post,
            form.get("client_id").cloned().unwrap_or_default(),
            secret,
        ),
        (None, None) => {
            return oauth_error(&p, None, StatusCode::UNAUTHORIZED, "invalid_client");
        }
    };
    if id != p.client_id
        || secret != p.client_secret
        || form.get("client_id").is_some_and(|c| *c != p.client_id)
    {
        return oauth_error(&p, Some(auth), StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(
            &p,
            Some(auth),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        );
    }
    let invalid_grant =
        |p: &OidcProvider| oauth_error(p, Some(auth), StatusCode::BAD_REQUEST, "invalid_grant");
    let (Some(code), Some(redirect_uri), Some(verifier)) = (
        form.get("code"),
        form.get("redirect_uri"),
        form.get("code_verifier"),
    ) else {
        return oauth_error(&p, Some(auth), StatusCode::BAD_REQUEST, "invalid_request");
    };
    let claims = {
        let mut inner = p.inner();
        let Some(grant) = inner.grants.get_mut(code) else {
            drop(inner);
            return invalid_grant(&p);
        };
        // A code is used once (RFC 6749 §4.1.2), whether this use succeeds or not.
        let reused = std::mem::replace(&mut grant.used, true);
        let verifier_ok = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            && B64.encode(Sha256::digest(verifier.as_bytes())) == grant.challenge;
        if reused || grant.redirect_uri != *redirect_uri || !verifier_ok {
            drop(inner);
            return invalid_grant(&p);
        }
        let (nonce, person) = (grant.nonce.clone(), grant.person.clone());
        id_token_claims(&p, inner.fault, nonce.as_deref(), &person)
    };
    let id_token = {
        let inner = p.inner();
        let key = if inner.fault == IdTokenFault::OtherKey {
            &inner.impostor
        } else {
            &inner.key
        };
        key.sign(&claims)
    };
    p.inner().token_requests.push(TokenRequest {
        client_auth: Some(auth),
        status: 200,
        error: None,
    });
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        axum::Json(json!({
            "access_token": B64.encode(uuid::Uuid::new_v4().as_bytes()),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        })),
    )
        .into_response()
}

/// The ID token's claims for a grant's nonce and person, spoiled as the provider was told.
fn id_token_claims(
    p: &OidcProvider,
    fault: IdTokenFault,
    nonce: Option<&str>,
    person: &Value,
) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": p.issuer,
        "aud": p.client_id,
        "azp": p.client_id,
        "iat": now,
        "exp": now + 300,
        "auth_time": now,
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    for (k, v) in person.as_object().into_iter().flatten() {
        claims[k] = v.clone();
    }
    match fault {
        IdTokenFault::None | IdTokenFault::OtherKey => {}
        IdTokenFault::WrongNonce => claims["nonce"] = json!("a-nonce-of-another-login"),
        IdTokenFault::WrongAudience => {
            claims["aud"] = json!("another-client");
            claims["azp"] = json!("another-client");
        }
        IdTokenFault::WrongIssuer => claims["iss"] = json!(format!("{}/other-realm", p.issuer)),
        IdTokenFault::Expired => {
            claims["iat"] = json!(now - 1200);
            claims["auth_time"] = json!(now - 1200);
            claims["exp"] = json!(now - 600);
        }
    }
    claims
}
