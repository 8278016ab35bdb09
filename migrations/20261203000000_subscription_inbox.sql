-- lrt-cds: FHIR Subscription notifications as an inbox (issue 8: no trigger lost).
-- A notification is stored and answered 202 before the EHR is read; a worker (every `lrt serve`
-- replica may run one) claims due rows with FOR UPDATE SKIP LOCKED and a lease, reads the EHR,
-- evaluates, stores and pages (the evaluation's own transaction, idempotent per patient and
-- focus), and records the outcome. Failures that may pass (the EHR's FHIR server or PostgreSQL
-- unavailable) are retried with backoff until the horizon; then, or at once for a notification
-- that can never be evaluated (a focus not found on the EHR), the row is dead: listed by the API,
-- counted in the metrics, retried on request.
-- Only the notification's focus is kept (references, versions, patient and encounter ids), never
-- the resources it carried.

CREATE TABLE subscription_inbox (
    id               uuid        PRIMARY KEY,
    -- SHA-256 of the sorted focus references and versions: the same notification sent twice is
    -- one row.
    dedup_key        text        NOT NULL UNIQUE,
    -- [{reference, version, patient, encounter}]
    focus            jsonb       NOT NULL,
    -- The patients named by the notification itself (id-only foci are resolved by the worker).
    patient_ids      text[]      NOT NULL DEFAULT '{}',
    state            text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- Dead letter when the next attempt would fall after this.
    deadline         timestamptz NOT NULL,
    claimed_until    timestamptz,
    claim_token      uuid,
    claimed_by       text,
    last_error       text,
    -- The evaluations it gave (active role), once done.
    evaluation_ids   uuid[]      NOT NULL DEFAULT '{}',
    received_at      timestamptz NOT NULL DEFAULT now(),
    done_at          timestamptz
);
CREATE INDEX subscription_inbox_due ON subscription_inbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX subscription_inbox_received ON subscription_inbox (received_at DESC);
