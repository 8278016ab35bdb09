-- The quality dashboard's OpenID Connect sign-in (issue 10, item 5): logins under way (the
-- `state`, `nonce` and PKCE verifier between the redirect to the provider and its callback) and
-- the sessions they open. Shared by every replica. Only SHA-256 digests of the `state` and of
-- the session id (the cookie) are stored; rows past `expires_at` are never used and are deleted
-- when a new login or session is written.

CREATE TABLE dashboard_login (
    state_digest   bytea       PRIMARY KEY,
    nonce          text        NOT NULL,
    pkce_verifier  text        NOT NULL,
    return_to      text        NOT NULL,
    expires_at     timestamptz NOT NULL
);

CREATE TABLE dashboard_session (
    id_digest      bytea       PRIMARY KEY,
    -- What the page shows (email, else the provider's `sub`).
    display_name   text        NOT NULL,
    -- The tenancy granted at sign-in: every tenant, or one CDS client issuer and tenant.
    all_tenants    boolean     NOT NULL,
    tenant_iss     text,
    tenant         text,
    csrf_token     text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    CHECK (all_tenants OR tenant_iss IS NOT NULL)
);

CREATE INDEX dashboard_session_expiry ON dashboard_session (expires_at);
CREATE INDEX dashboard_login_expiry ON dashboard_login (expires_at);
