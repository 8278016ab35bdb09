-- Data retention (issue 11): when the patient data of an evaluation or a page was purged
-- (`[retention] patient_data_days`). A purged row keeps what the quality dashboard counts
-- (service, times, rule-set version, categories, recommendations, consult triggers, card ids)
-- with the patient id replaced by its SHA-256, and loses the snapshot, the values of the
-- assessment, the response and the page payload.
ALTER TABLE evaluation ADD COLUMN patient_data_purged_at timestamptz;
ALTER TABLE consult_page ADD COLUMN patient_data_purged_at timestamptz;
CREATE INDEX evaluation_unpurged ON evaluation (created_at) WHERE patient_data_purged_at IS NULL;
