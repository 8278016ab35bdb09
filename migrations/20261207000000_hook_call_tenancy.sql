-- lrt-cds: the caller's issuer and tenant on every hook call row (issue 10), so that an error
-- answer (400, 412, …), which has no evaluation, still belongs to its tenant in the quality
-- aggregates (`/api/v1/quality/alerts`). Rows written before this migration take them from their
-- active evaluation; older error rows stay without (counted for the quality team only).
ALTER TABLE hook_call ADD COLUMN client_iss text, ADD COLUMN tenant text;

UPDATE hook_call c
   SET client_iss = e.client_iss, tenant = e.tenant
  FROM evaluation e
 WHERE e.id = c.evaluation_id AND e.role = 'active';

CREATE INDEX hook_call_tenancy_received_at ON hook_call (client_iss, tenant, received_at);
