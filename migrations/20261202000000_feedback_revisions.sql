-- Feedback that repeats an earlier item's (card, outcome, outcomeTimestamp) and adds or changes
-- its override reason or accepted suggestions updates the row instead of being dropped
-- (issue 8): `revision` counts the versions received, `updated_at` is the latest change.
ALTER TABLE card_feedback
    ADD COLUMN revision   integer     NOT NULL DEFAULT 1,
    ADD COLUMN updated_at timestamptz;
