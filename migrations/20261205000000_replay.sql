-- lrt-cds: `lrt replay` (issue 10 item 2) and silent-mode validation (item 3).
--
-- A replay run re-evaluates inputs with one rule-set version: stored evaluations' snapshots
-- (filtered by time, patient, the version that evaluated them), or the patients of FHIR bundles
-- at every arterial blood gas. One row per run; one outcome row per input, keyed to its source,
-- so that a run interrupted part-way is resumed by skipping the sources it already holds.
CREATE TABLE replay_run (
    id               uuid        PRIMARY KEY,
    -- `stored` (evaluation snapshots) or `bundle` (FHIR bundles at every blood gas).
    source           text        NOT NULL CHECK (source IN ('stored', 'bundle')),
    -- What was asked: the filters (from, to, patient, source version) or the files and their
    -- SHA-256, as given on the command line. No patient data beyond a filter's patient id.
    parameters       jsonb       NOT NULL,
    ruleset_id       text        NOT NULL,
    ruleset_version  text        NOT NULL,
    ruleset_sha256   text        NOT NULL,
    state            text        NOT NULL DEFAULT 'running'
                                 CHECK (state IN ('running', 'finished', 'failed')),
    -- Inputs planned (once known) and done so far.
    planned          integer     CHECK (planned >= 0),
    done             integer     NOT NULL DEFAULT 0 CHECK (done >= 0),
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    -- Why a run failed (no patient data).
    error            text
);
CREATE INDEX replay_run_started_at ON replay_run (started_at DESC);

CREATE TABLE replay_outcome (
    run_id             uuid        NOT NULL REFERENCES replay_run (id) ON DELETE CASCADE,
    -- The input: a stored evaluation's id (as text), or `<bundle sha256>/<patient>/<time>`.
    source_key         text        NOT NULL,
    -- The stored evaluation replayed (null for bundles). No foreign key: retention may purge
    -- the evaluation and the replay stays readable.
    source_evaluation_id uuid,
    patient_id         text        NOT NULL,
    -- The evaluation time given to the engine (the stored evaluation's, or the blood gas's).
    evaluated_at       timestamptz NOT NULL,
    -- The outcome under the run's rule-set version, in the terms the dashboard compares.
    ecmo_category      text,
    ecmo_urgency       text,
    berlin_category    text,
    pf_ratio           double precision,
    recommendations    text[]      NOT NULL DEFAULT '{}',
    consult_triggers   text[]      NOT NULL DEFAULT '{}',
    -- The source evaluation's own outcome (stored sources), to list what changed.
    source_ruleset_version text,
    source_ecmo_category   text,
    source_ecmo_urgency    text,
    source_consult_triggers text[],
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, source_key)
);
CREATE INDEX replay_outcome_patient ON replay_outcome (run_id, patient_id, evaluated_at);
