-- lrt-cds: LRT consult pages as a transactional outbox.
-- A page is written in the same transaction as the evaluation that caused it (so no evaluation
-- that should page is stored without its page, and no page exists without its evaluation); one
-- delivery row per configured channel is the outbox that dispatchers (any number of `lrt serve`
-- replicas) claim with FOR UPDATE SKIP LOCKED. Only the minimum to act is stored in `payload`.

-- Evaluations that do not come from a CDS Hooks call (FHIR Subscription notification, API)
-- reuse `evaluation`; `hook_instance` then holds the idempotency key of that source.

CREATE TABLE consult_page (
    id               uuid        PRIMARY KEY,
    evaluation_id    uuid        NOT NULL UNIQUE REFERENCES evaluation (id),
    patient_id       text        NOT NULL,
    fhir_server      text,
    -- The highest urgency of `triggers`, and its rank (routine 1, urgent 2, emergent 3).
    urgency          text        NOT NULL CHECK (urgency IN ('routine', 'urgent', 'emergent')),
    -- Every consult trigger of the assessment: [{code, display, urgency, rules}].
    triggers         jsonb       NOT NULL,
    -- The triggers that made this page go (new for the patient, or escalated); the others were
    -- paged inside the repeat window already.
    new_reasons      text[]      NOT NULL,
    ruleset_version  text        NOT NULL,
    -- What the channels send (the configured fields only).
    payload          jsonb       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text
);
CREATE INDEX consult_page_patient ON consult_page (patient_id, created_at DESC);
CREATE INDEX consult_page_created_at ON consult_page (created_at DESC);

CREATE TABLE page_delivery (
    id               uuid        PRIMARY KEY,
    page_id          uuid        NOT NULL REFERENCES consult_page (id),
    channel          text        NOT NULL CHECK (channel IN ('webhook', 'fhir')),
    state            text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- Give up (dead letter) when the next attempt would fall after this.
    deadline         timestamptz NOT NULL,
    -- The current claim: a dispatcher owns the row until `claimed_until`; after that (the
    -- dispatcher died) any other may claim it again. `claim_token` guards the outcome update.
    claimed_until    timestamptz,
    claim_token      uuid,
    claimed_by       text,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (page_id, channel)
);
CREATE INDEX page_delivery_due ON page_delivery (next_attempt_at) WHERE state = 'pending';

-- Every delivery attempt and its outcome.
CREATE TABLE page_attempt (
    id               bigserial   PRIMARY KEY,
    delivery_id      uuid        NOT NULL REFERENCES page_delivery (id),
    attempt          integer     NOT NULL,
    worker           text        NOT NULL,
    started_at       timestamptz NOT NULL,
    duration_ms      double precision NOT NULL CHECK (duration_ms >= 0),
    outcome          text        NOT NULL CHECK (outcome IN ('delivered', 'failed')),
    http_status      smallint,
    error            text
);
CREATE INDEX page_attempt_delivery ON page_attempt (delivery_id, attempt);
