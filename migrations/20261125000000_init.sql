-- lrt-cds: evaluation records, CDS Hooks call log, card feedback, JWT replay store.
-- Forward-only. Applied by `lrt migrate` or by `lrt serve` at start (under sqlx's advisory lock).
-- No JWT, access token or FHIR payload other than the snapshot is ever stored.

-- Every CDS Hooks call as answered: status and latency, also for 400/401/412 answers.
CREATE TABLE hook_call (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    service_id      text        NOT NULL,
    hook            text,
    hook_instance   text,
    status          smallint    NOT NULL CHECK (status BETWEEN 100 AND 599),
    -- A short machine code for non-200 answers (e.g. `prefetch_unavailable`, `bad_request`).
    error_code      text,
    latency_ms      double precision NOT NULL CHECK (latency_ms >= 0),
    -- The evaluation it produced or replayed (null for errors).
    evaluation_id   uuid
);
CREATE INDEX hook_call_received_at ON hook_call (received_at);

-- One evaluation per (hookInstance, role): `active` is what the clinician saw, `shadow` the
-- configured shadow rule-set version, stored and never shown. A retried hookInstance returns the
-- stored response and stores nothing twice.
CREATE TABLE evaluation (
    id               uuid        PRIMARY KEY,
    hook_instance    text        NOT NULL,
    role             text        NOT NULL CHECK (role IN ('active', 'shadow')),
    service_id       text        NOT NULL,
    hook             text        NOT NULL,
    -- The patient's FHIR id and the FHIR server it came from (no other identifier is stored).
    patient_id       text        NOT NULL,
    fhir_server      text,
    -- Who called: the JWT's `iss`, `sub` and `tenant` (never the token itself).
    client_iss       text,
    client_sub       text,
    tenant           text,
    ruleset_id       text        NOT NULL,
    ruleset_version  text        NOT NULL,
    ruleset_sha256   text        NOT NULL,
    -- The evaluation time given to the engine (the newest observation or the call time).
    evaluated_at     timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    snapshot         jsonb       NOT NULL,
    assessment       jsonb       NOT NULL,
    -- Where each prefetch key's data came from: prefetch, null, fetched or unavailable.
    prefetch_sources jsonb       NOT NULL,
    -- The CDS Hooks response sent (active) or that would have been sent (shadow).
    response         jsonb       NOT NULL,
    card_uuids       uuid[]      NOT NULL DEFAULT '{}',
    status           smallint    NOT NULL,
    latency_ms       double precision NOT NULL CHECK (latency_ms >= 0),
    -- Denormalised for the quality dashboard.
    ecmo_category    text,
    berlin_category  text,
    pf_ratio         double precision,
    UNIQUE (hook_instance, role)
);
CREATE INDEX evaluation_patient ON evaluation (patient_id, created_at DESC);
CREATE INDEX evaluation_created_at ON evaluation (created_at);
CREATE INDEX evaluation_card_uuids ON evaluation USING gin (card_uuids);

-- Card feedback (CDS Hooks 2.0 §feedback). Idempotent on (card, outcome, outcomeTimestamp).
CREATE TABLE card_feedback (
    card_uuid            uuid        NOT NULL,
    outcome              text        NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
    outcome_timestamp    timestamptz NOT NULL,
    service_id           text        NOT NULL,
    evaluation_id        uuid        REFERENCES evaluation (id),
    accepted_suggestions jsonb,
    override_reason      jsonb,
    received_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (card_uuid, outcome, outcome_timestamp)
);

-- JWT `jti` replay store: a (iss, jti) pair is accepted once, until its `exp`.
CREATE TABLE jwt_replay (
    iss        text        NOT NULL,
    jti        text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (iss, jti)
);
CREATE INDEX jwt_replay_expires_at ON jwt_replay (expires_at);
