-- lrt-cds: an index for the quality aggregates of `/api/v1/quality/…` (issue 10).
-- A tenant's aggregates read its own active evaluations of a time window: (issuer, tenant,
-- time) instead of the whole window of every tenant.
CREATE INDEX evaluation_tenancy_created_at ON evaluation (client_iss, tenant, created_at);
