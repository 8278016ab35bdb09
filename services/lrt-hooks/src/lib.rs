//! # lrt-hooks
//!
//! The CDS Hooks 2.0 layer of the LRT service, without HTTP server and without database (the
//! server, `services/lrt-server`, calls this API):
//!
//! * [`model`]: hand-written serde types (request, discovery, response, cards, feedback) and
//!   [`model::HookRequest::validate`], the 400 cases;
//! * [`services`]: the three services (`lrt-patient-view`, `lrt-order-select`,
//!   `lrt-order-sign`), discovery, prefetch templates from the rule set's search plan, token
//!   filling;
//! * [`prefetch`]: prefetch resolution per the checklist's table (absent, `null`, empty,
//!   OperationOutcome, paged), concurrent FHIR fallback to allow-listed servers only, 412 on a
//!   required key;
//! * [`orders`]: draft orders of the order hooks and the rule set's order terminology;
//! * [`cards`]: cards from an assessment, rendered from the rule set's card templates
//!   ([`cards::templates`]);
//! * [`validate`]: a response and discovery validator on the serialized JSON.
//!
//! One call, as the server makes it:
//!
//! ```no_run
//! # async fn call(body: &[u8], id: &str, rules: &lrt_engine::RuleSet, plan: &lrt_hooks::prefetch::PrefetchPlan,
//! #   config: &lrt_hooks::prefetch::PrefetchConfig, codes: &lrt_hooks::orders::OrderCodes,
//! #   text: &lrt_hooks::cards::templates::CardText, dashboard: &url::Url)
//! #   -> Result<(), Box<dyn std::error::Error>> {
//! use lrt_hooks::{cards, model::HookRequest, prefetch, services};
//! let service = services::find(id).ok_or("404")?;                 // unknown id: 404
//! let request = HookRequest::from_slice(body)?;                     // 400
//! request.validate(service)?;                                      // 400
//! let now: chrono::DateTime<chrono::Utc> = std::time::SystemTime::now().into();
//! let resolved = prefetch::resolve(&request, plan, config, Some(now)).await?; // 412
//! let patient = request.patient_id().unwrap_or_default();
//! let snapshot = resolved.snapshot(rules, patient, now);
//! let assessment = lrt_engine::evaluate(rules, &snapshot, now);
//! let evaluation_id = cards::evaluation_id(request.hook_instance_uuid().unwrap_or_default(), service.id);
//! let response = cards::respond(&cards::CardInput {
//!     service, request: &request, rules, text, snapshot: Some(&snapshot), evaluation_id, dashboard, order_codes: codes,
//! }, &assessment);
//! debug_assert!(lrt_hooks::validate::validate_response(&serde_json::to_value(&response)?).is_empty());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod cards;
pub mod model;
pub mod orders;
pub mod prefetch;
pub mod services;
pub mod validate;
