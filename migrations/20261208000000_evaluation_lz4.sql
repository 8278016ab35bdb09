-- The evaluation's JSON columns are compressed with lz4 instead of pglz (issue 9). Under `make load`,
-- pglz compressing the snapshot and assessment of each stored evaluation was PostgreSQL's largest
-- single cost: 7 % of the machine's CPU, a quarter of PostgreSQL's. lz4 compresses several times
-- faster for a slightly larger row. Only values written from now on are affected (existing rows keep
-- pglz; both are read transparently). A server built without lz4 (rare: PostgreSQL 14+ packages
-- of Debian, Ubuntu, RHEL and the CloudNativePG images have it) keeps pglz.
DO $$
BEGIN
  EXECUTE 'ALTER TABLE evaluation
             ALTER COLUMN snapshot SET COMPRESSION lz4,
             ALTER COLUMN assessment SET COMPRESSION lz4,
             ALTER COLUMN response SET COMPRESSION lz4,
             ALTER COLUMN prefetch_sources SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported THEN
  RAISE NOTICE 'this PostgreSQL has no lz4: the evaluation''s JSON columns keep pglz';
END
$$;
