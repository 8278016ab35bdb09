//! Draft orders of the order hooks and the order terminology that classifies them.
//!
//! Which order codes mean "ECMO", "inhaled vasodilator" and "PEEP increase", the coding of the
//! consult request and what counts as "reversible physiology not yet addressed" are **rule-set
//! content**: the `order_codes` section of the version (`orders.yaml` in 0.2.0), read by
//! [`OrderCodes::for_rules`]. A version that predates that section (0.1.0) gets the order codes
//! it was used with, `data/order-codes-legacy.yaml` (embedded; [`OrderCodes::builtin`]).
//!
//! `context.draftOrders` is read leniently (checklist §1.O: the spec's own examples have no
//! `Bundle.type`, an object where an array belongs...): only `resourceType`, `id`, the order's
//! codings, the dosage route and a display text are read, and anything unexpected is skipped.
//! Draft orders are never re-read from the FHIR server (checklist §1.M).

use std::collections::BTreeMap;

use lrt_engine::RuleSet;
use serde::Deserialize;
use serde_json::Value;

use crate::model::{Coding, HookRequest};
use crate::services::Hook;

/// The order terminology shipped with the crate.
pub const BUILTIN_YAML: &str = include_str!("../data/order-codes-legacy.yaml");

/// What a draft order is, for the LRT checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OrderConcept {
    /// ECMO, or an ECMO-centre consult.
    Ecmo,
    /// Inhaled nitric oxide, inhaled epoprostenol...
    InhaledVasodilator,
    /// A ventilator order raising PEEP.
    PeepIncrease,
}

impl OrderConcept {
    pub const ALL: [OrderConcept; 3] = [
        OrderConcept::Ecmo,
        OrderConcept::InhaledVasodilator,
        OrderConcept::PeepIncrease,
    ];

    /// The code-set name in the order-codes file.
    pub fn name(self) -> &'static str {
        match self {
            OrderConcept::Ecmo => "ecmo",
            OrderConcept::InhaledVasodilator => "inhaled_vasodilator",
            OrderConcept::PeepIncrease => "peep_increase",
        }
    }

    fn from_name(name: &str) -> Option<OrderConcept> {
        OrderConcept::ALL.into_iter().find(|c| c.name() == name)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    codesets: BTreeMap<String, SetDef>,
    #[serde(default)]
    routes: BTreeMap<String, Vec<CodeDef>>,
    consult_request: ConsultDef,
    reversible_physiology: ReversibleDef,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetDef {
    /// Documentation for the reader of the file.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "documentation in the data file, not used by the checks"
    )]
    description: Option<String>,
    /// Knowledge-base sections.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "documentation in the data file, not used by the checks"
    )]
    cites: Option<String>,
    codes: Vec<CodeDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeDef {
    system: String,
    code: String,
    #[serde(default)]
    display: Option<String>,
    #[serde(default, rename = "match")]
    match_: Option<String>,
    #[serde(default)]
    route: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsultDef {
    text: String,
    codes: Vec<CodeDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReversibleDef {
    #[serde(default)]
    ecmo_reasons: Vec<String>,
    #[serde(default)]
    recommendations: Vec<String>,
}

/// One order code of a code set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderCode {
    pub system: String,
    pub code: String,
    pub prefix: bool,
    /// Matches only with an inhaled route.
    pub inhaled_only: bool,
}

/// The consult request offered by the cards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsultRequest {
    /// `ServiceRequest.code.text`.
    pub text: String,
    /// `ServiceRequest.code.coding`.
    pub codings: Vec<Coding>,
}

/// What counts as reversible physiology not yet addressed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReversiblePhysiology {
    pub ecmo_reasons: Vec<String>,
    pub recommendations: Vec<String>,
}

/// The order terminology (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderCodes {
    pub sets: BTreeMap<OrderConcept, Vec<OrderCode>>,
    /// Codings (system, code) of an inhaled route.
    pub inhaled_routes: Vec<(String, String)>,
    pub consult: ConsultRequest,
    pub reversible: ReversiblePhysiology,
}

/// An order-codes file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order codes: {0}")]
pub struct OrderCodesError(pub String);

impl OrderCodes {
    /// The embedded `data/order-codes.yaml`.
    pub fn builtin() -> Result<OrderCodes, OrderCodesError> {
        OrderCodes::from_yaml(BUILTIN_YAML)
    }

    /// The order codes of a rule-set version: its `order_codes` section, else (a version that
    /// predates the section) [`OrderCodes::builtin`]. Two sections are refused.
    pub fn for_rules(rules: &RuleSet) -> Result<OrderCodes, OrderCodesError> {
        let mut sections = rules
            .presentation
            .iter()
            .filter(|s| s.section == "order_codes");
        match (sections.next(), sections.next()) {
            (None, _) => OrderCodes::builtin(),
            (Some(s), None) => OrderCodes::from_value(&s.value)
                .map_err(|e| OrderCodesError(format!("{}: order_codes: {}", s.file, e.0))),
            (Some(a), Some(b)) => Err(OrderCodesError(format!(
                "order_codes is written twice ({} and {}); keep one",
                a.file, b.file
            ))),
        }
    }

    /// Reads an `order_codes` section given as JSON.
    pub fn from_value(value: &Value) -> Result<OrderCodes, OrderCodesError> {
        let def: FileDef = serde_path_to_error::deserialize(value).map_err(|e| {
            OrderCodesError(format!(
                "at /{}: {}",
                e.path().to_string().replace('.', "/"),
                e.inner()
            ))
        })?;
        OrderCodes::from_def(def)
    }

    /// Reads an order-codes file (same layout as `data/order-codes-legacy.yaml`). Unknown
    /// code-set names, unknown members, an unknown `route` or `match` and empty code sets are
    /// refused.
    pub fn from_yaml(text: &str) -> Result<OrderCodes, OrderCodesError> {
        let options = serde_saphyr::options! { strict_booleans: true };
        let def: FileDef = serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| OrderCodesError(format!("not a valid order-codes file: {e}")))?;
        OrderCodes::from_def(def)
    }

    fn from_def(def: FileDef) -> Result<OrderCodes, OrderCodesError> {
        let mut sets = BTreeMap::new();
        for (name, set) in &def.codesets {
            let concept = OrderConcept::from_name(name).ok_or_else(|| {
                OrderCodesError(format!(
                    "unknown code set {name:?} (known: ecmo, inhaled_vasodilator, peep_increase)"
                ))
            })?;
            if set.codes.is_empty() {
                return Err(OrderCodesError(format!("code set {name} has no codes")));
            }
            let mut codes = Vec::with_capacity(set.codes.len());
            for c in &set.codes {
                let prefix = match c.match_.as_deref() {
                    None | Some("exact") => false,
                    Some("prefix") => true,
                    Some(other) => {
                        return Err(OrderCodesError(format!(
                            "{name}: match {other:?} is not exact or prefix"
                        )));
                    }
                };
                let inhaled_only = match c.route.as_deref() {
                    None => false,
                    Some("inhaled") => true,
                    Some(other) => {
                        return Err(OrderCodesError(format!(
                            "{name}: route {other:?} is not `inhaled`"
                        )));
                    }
                };
                codes.push(OrderCode {
                    system: c.system.clone(),
                    code: c.code.clone(),
                    prefix,
                    inhaled_only,
                });
            }
            sets.insert(concept, codes);
        }
        for concept in OrderConcept::ALL {
            if !sets.contains_key(&concept) {
                return Err(OrderCodesError(format!(
                    "code set {} is missing",
                    concept.name()
                )));
            }
        }
        for name in def.routes.keys() {
            if name != "inhaled" {
                return Err(OrderCodesError(format!(
                    "unknown route list {name:?} (known: inhaled)"
                )));
            }
        }
        let inhaled_routes: Vec<(String, String)> = def
            .routes
            .get("inhaled")
            .map(|l| {
                l.iter()
                    .map(|c| (c.system.clone(), c.code.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let needs_routes = sets.values().flatten().any(|c| c.inhaled_only);
        if needs_routes && inhaled_routes.is_empty() {
            return Err(OrderCodesError(
                "codes with `route: inhaled` need a `routes.inhaled` list".into(),
            ));
        }
        if def.consult_request.codes.is_empty() || def.consult_request.text.trim().is_empty() {
            return Err(OrderCodesError(
                "consult_request needs a text and at least one code".into(),
            ));
        }
        let consult = ConsultRequest {
            text: def.consult_request.text.trim().to_string(),
            codings: def
                .consult_request
                .codes
                .iter()
                .map(|c| Coding {
                    system: c.system.clone(),
                    code: c.code.clone(),
                    display: c.display.clone().filter(|d| !d.trim().is_empty()),
                })
                .collect(),
        };
        Ok(OrderCodes {
            sets,
            inhaled_routes,
            consult,
            reversible: ReversiblePhysiology {
                ecmo_reasons: def.reversible_physiology.ecmo_reasons,
                recommendations: def.reversible_physiology.recommendations,
            },
        })
    }

    /// Cross-checks against a rule set: every listed recommendation exists. Returns the
    /// problems (empty when fine).
    pub fn check(&self, rules: &RuleSet) -> Vec<String> {
        let emitted = rules.emitted_reasons();
        self.reversible
            .recommendations
            .iter()
            .filter(|r| !rules.recommendations.iter().any(|c| &*c.code == r.as_str()))
            .map(|r| {
                format!(
                    "reversible_physiology: {r} is not a recommendation of {}",
                    rules.label()
                )
            })
            .chain(
                self.reversible
                    .ecmo_reasons
                    .iter()
                    .filter(|r| !emitted.iter().any(|e| e.code == r.as_str()))
                    .map(|r| {
                        format!(
                            "reversible_physiology: no rule of {} gives the reason {r}",
                            rules.label()
                        )
                    }),
            )
            .collect()
    }

    /// The concepts an order matches, in [`OrderConcept::ALL`] order.
    pub fn classify(&self, order: &DraftOrder) -> Vec<OrderConcept> {
        let inhaled = order
            .routes
            .iter()
            .any(|r| self.inhaled_routes.iter().any(|x| x == r));
        OrderConcept::ALL
            .into_iter()
            .filter(|c| {
                self.sets.get(c).is_some_and(|codes| {
                    codes.iter().any(|oc| {
                        (!oc.inhaled_only || inhaled)
                            && order.codings.iter().any(|(s, code)| {
                                s == &oc.system
                                    && if oc.prefix {
                                        code.starts_with(&oc.code)
                                    } else {
                                        code == &oc.code
                                    }
                            })
                    })
                })
            })
            .collect()
    }
}

/// One draft order of `context.draftOrders`, as far as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftOrder {
    pub resource_type: String,
    pub id: Option<String>,
    /// What the order says it is (code text, else a coding's display, else the type).
    pub label: String,
    /// (system, code) of the order's codes.
    pub codings: Vec<(String, String)>,
    /// (system, code) of its dosage routes.
    pub routes: Vec<(String, String)>,
}

impl DraftOrder {
    /// `Type/id`, when the order has an id.
    pub fn reference(&self) -> Option<String> {
        self.id
            .as_ref()
            .map(|id| format!("{}/{id}", self.resource_type))
    }
}

fn as_list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

fn codings_of(concept: Option<&Value>) -> Vec<(String, String, Option<String>)> {
    as_list(concept.and_then(|c| c.get("coding")))
        .into_iter()
        .filter_map(|c| {
            Some((
                c.get("system")?.as_str()?.to_string(),
                c.get("code")?.as_str()?.to_string(),
                c.get("display").and_then(Value::as_str).map(str::to_string),
            ))
        })
        .collect()
}

fn text_of(concept: Option<&Value>) -> Option<String> {
    concept
        .and_then(|c| c.get("text"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// Reads one draft-order resource; `None` for types the checks do not read.
fn read_order(r: &Value) -> Option<DraftOrder> {
    let resource_type = r.get("resourceType")?.as_str()?;
    let id = r
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let (concept, routes) = match resource_type {
        "ServiceRequest" => (r.get("code").cloned(), Vec::new()),
        "MedicationRequest" => {
            let mut concept = r.get("medicationCodeableConcept").cloned();
            if concept.is_none() {
                // medicationReference to a contained Medication (`#id`).
                let target = r
                    .get("medicationReference")
                    .and_then(|m| m.get("reference"))
                    .and_then(Value::as_str)
                    .and_then(|s| s.strip_prefix('#'));
                if let Some(target) = target {
                    concept = as_list(r.get("contained"))
                        .into_iter()
                        .find(|c| c.get("id").and_then(Value::as_str) == Some(target))
                        .and_then(|m| m.get("code").cloned());
                }
            }
            let routes = as_list(r.get("dosageInstruction"))
                .into_iter()
                .flat_map(|d| codings_of(d.get("route")))
                .map(|(s, c, _)| (s, c))
                .collect();
            (concept, routes)
        }
        _ => return None,
    };
    let codings = codings_of(concept.as_ref());
    let label = text_of(concept.as_ref())
        .or_else(|| {
            codings
                .iter()
                .find_map(|(_, _, d)| d.clone().filter(|d| !d.trim().is_empty()))
        })
        .unwrap_or_else(|| resource_type.to_string());
    Some(DraftOrder {
        resource_type: resource_type.to_string(),
        id,
        label,
        codings: codings.into_iter().map(|(s, c, _)| (s, c)).collect(),
        routes,
    })
}

fn entries(draft_orders: Option<&Value>) -> Vec<&Value> {
    as_list(draft_orders.and_then(|b| b.get("entry")))
        .into_iter()
        .filter_map(|e| e.get("resource"))
        .collect()
}

/// `Type/id` of every resource of a draftOrders Bundle.
pub fn draft_references(draft_orders: Option<&Value>) -> Vec<String> {
    entries(draft_orders)
        .into_iter()
        .filter_map(|r| {
            Some(format!(
                "{}/{}",
                r.get("resourceType")?.as_str()?,
                r.get("id")?.as_str()?
            ))
        })
        .collect()
}

/// Every ServiceRequest and MedicationRequest of a draftOrders Bundle.
pub fn draft_orders(draft_orders: Option<&Value>) -> Vec<DraftOrder> {
    entries(draft_orders)
        .into_iter()
        .filter_map(read_order)
        .collect()
}

/// The orders a hook call is about: the selected ones for order-select (checklist §1.M,
/// "decision support should focus on the selected orders"), every draft order for order-sign,
/// none for patient-view.
pub fn orders_in_scope(request: &HookRequest, hook: Hook) -> Vec<DraftOrder> {
    let all = draft_orders(request.draft_orders());
    match hook {
        Hook::PatientView => Vec::new(),
        Hook::OrderSign => all,
        Hook::OrderSelect => {
            let selected = request.selections();
            all.into_iter()
                .filter(|o| {
                    o.reference()
                        .is_some_and(|r| selected.contains(&r.as_str()))
                })
                .collect()
        }
    }
}

/// A draft order the LRT has something to say about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelevantOrder {
    pub order: DraftOrder,
    pub concepts: Vec<OrderConcept>,
}

/// The orders in scope that match an order code set. When this is empty the order services
/// answer `{"cards": []}` and the server may skip prefetch resolution and evaluation.
pub fn relevant_orders(
    request: &HookRequest,
    hook: Hook,
    codes: &OrderCodes,
) -> Vec<RelevantOrder> {
    orders_in_scope(request, hook)
        .into_iter()
        .filter_map(|order| {
            let concepts = codes.classify(&order);
            (!concepts.is_empty()).then_some(RelevantOrder { order, concepts })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(codings: &[(&str, &str)], routes: &[(&str, &str)]) -> DraftOrder {
        DraftOrder {
            resource_type: "MedicationRequest".into(),
            id: Some("m1".into()),
            label: "x".into(),
            codings: codings
                .iter()
                .map(|(s, c)| (s.to_string(), c.to_string()))
                .collect(),
            routes: routes
                .iter()
                .map(|(s, c)| (s.to_string(), c.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_builtin_codes_load_and_match() {
        let codes = OrderCodes::builtin().expect("loads");
        let rules = RuleSet::load(&lrt_engine::testing::shipped_version_dir()).expect("rules");
        assert_eq!(codes.check(&rules), Vec::<String>::new());
        assert_eq!(
            codes.classify(&order(&[("http://www.whocc.no/atc", "R07AX01")], &[])),
            [OrderConcept::InhaledVasodilator]
        );
        let epo = [("http://www.whocc.no/atc", "B01AC09")];
        assert!(
            codes.classify(&order(&epo, &[])).is_empty(),
            "intravenous epoprostenol"
        );
        assert_eq!(
            codes.classify(&order(&epo, &[("http://snomed.info/sct", "447694001")])),
            [OrderConcept::InhaledVasodilator]
        );
        assert_eq!(
            codes.classify(&order(&[("http://snomed.info/sct", "233573008")], &[])),
            [OrderConcept::Ecmo]
        );
        assert!(
            codes
                .classify(&order(&[("http://snomed.info/sct", "2335730")], &[]))
                .is_empty()
        );
        assert_eq!(codes.consult.codings[0].code, "54395008");
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let base = BUILTIN_YAML;
        let e = OrderCodes::from_yaml(&base.replace("  peep_increase:", "  peep_up:"))
            .expect_err("unknown set");
        assert!(e.0.contains("peep_up"), "{e}");
        let e = OrderCodes::from_yaml(&base.replace("route: inhaled}", "route: oral}"))
            .expect_err("unknown route");
        assert!(e.0.contains("oral"), "{e}");
        let e = OrderCodes::from_yaml(&base.replace("consult_request:", "consult_requests:"))
            .expect_err("unknown member");
        assert!(e.0.contains("not a valid order-codes file"), "{e}");
        let prefixed = base.replace(
            "code: \"233573008\", display",
            "code: \"2335\", match: prefix, display",
        );
        let codes = OrderCodes::from_yaml(&prefixed).expect("prefix match allowed");
        assert_eq!(
            codes.classify(&order(&[("http://snomed.info/sct", "233573008")], &[])),
            [OrderConcept::Ecmo]
        );
        let mut codes = OrderCodes::builtin().expect("loads");
        codes.reversible.recommendations.push("NOT_A_CODE".into());
        let rules = RuleSet::load(&lrt_engine::testing::shipped_version_dir()).expect("rules");
        assert_eq!(codes.check(&rules).len(), 1);
    }

    #[test]
    fn draft_orders_are_read_leniently() {
        let bundle = serde_json::json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "ServiceRequest", "id": "s1", "code": {"coding": [{"system": "a", "code": "b", "display": "B"}]}}},
            {"resource": {"resourceType": "MedicationRequest", "id": "m1",
                "medicationCodeableConcept": {"coding": {"system": "c", "code": "d"}, "text": "Drug D"},
                "dosageInstruction": {"route": {"coding": [{"system": "r", "code": "i"}]}}}},
            {"resource": {"resourceType": "NutritionOrder", "id": "n1"}},
            {"resource": "garbage"},
            {"fullUrl": "x"}
        ]});
        let orders = draft_orders(Some(&bundle));
        assert_eq!(orders.len(), 2);
        assert_eq!(orders[0].label, "B");
        assert_eq!(orders[0].reference().as_deref(), Some("ServiceRequest/s1"));
        assert_eq!(orders[1].label, "Drug D");
        assert_eq!(orders[1].codings, [("c".to_string(), "d".to_string())]);
        assert_eq!(orders[1].routes, [("r".to_string(), "i".to_string())]);
        assert_eq!(
            draft_references(Some(&bundle)),
            [
                "ServiceRequest/s1",
                "MedicationRequest/m1",
                "NutritionOrder/n1"
            ]
        );
        assert!(draft_orders(None).is_empty());
    }
}
