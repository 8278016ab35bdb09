-- The W3C trace context (`traceparent`) of the request that wrote the page, so that its
-- delivery, made later by whichever replica's dispatcher claims it, joins the same trace.
-- Random identifiers only: no patient data. NULL when tracing was off.
ALTER TABLE consult_page ADD COLUMN trace_context text;
