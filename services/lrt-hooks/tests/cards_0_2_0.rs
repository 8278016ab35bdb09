//! Cards of rule set 0.2.0, rendered from its templates (knowledge base §9 D12): no
//! patient-view card when nothing is actionable, the action first within 140 characters, the
//! same urgency in summary and detail, thresholds printed with the patient's value, data quality
//! in words, the eligible wording, order cards that never offer to remove an ECMO order. Plus
//! the template passes of `CardText::for_rules` on mutated copies of the version, and a scan of
//! the card renderer's source for clinical numbers.

mod support;

use chrono::{DateTime, Utc};
use lrt_engine::casefile::{Case, CaseFile};
use lrt_engine::testing::shared_dir;
use lrt_engine::{Assessment, PatientSnapshot, RuleSet};
use lrt_hooks::cards::templates::CardText;
use lrt_hooks::cards::{self, CardInput};
use lrt_hooks::model::HookRequest;
use lrt_hooks::orders::OrderCodes;
use lrt_hooks::services;
use lrt_hooks::validate::validate_response;
use serde_json::{Value, json};
use url::Url;

fn rules() -> &'static RuleSet {
    support::rules_0_2_0()
}

fn cases(file: &std::path::Path) -> Vec<Case> {
    CaseFile::read(file).expect("a case file").cases
}

fn worked_examples() -> Vec<Case> {
    cases(&shared_dir().join("clinical/examples-0.2.0.json"))
}

fn decision(id: &str) -> Case {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../rules/lrt-ruleset/0.2.0/tests/decisions.json");
    cases(&dir)
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("case {id}"))
}

/// The JSON response of `service` (validated), with the assessment.
fn respond(
    service: &str,
    body: &Value,
    snapshot: &PatientSnapshot,
    now: DateTime<Utc>,
) -> (Assessment, Value) {
    let service = services::find(service).expect("a service");
    let request: HookRequest = support::request(body);
    request.validate(service).expect("a valid request");
    let assessment = lrt_engine::evaluate(rules(), snapshot, now);
    let codes = OrderCodes::for_rules(rules()).expect("0.2.0 order codes");
    let text = support::card_text(rules());
    let dashboard = Url::parse("https://lrt.example.org/").expect("a url");
    let input = CardInput {
        service,
        request: &request,
        rules: rules(),
        text: &text,
        snapshot: Some(snapshot),
        evaluation_id: cards::evaluation_id(
            request.hook_instance_uuid().expect("a uuid"),
            service.id,
        ),
        dashboard: &dashboard,
        order_codes: &codes,
    };
    let json = serde_json::to_value(cards::respond(&input, &assessment)).expect("json");
    let violations = validate_response(&json);
    assert!(violations.is_empty(), "{violations:#?}\n{json:#}");
    for c in json["cards"].as_array().expect("cards") {
        let text = format!("{}{}", c["summary"], c["detail"]);
        assert!(
            !text.contains("{param:") && !text.contains("{value:") && !text.contains("{time:"),
            "an unfilled placeholder: {text}"
        );
        assert!(
            !text.contains("unverified:"),
            "a reason code shown raw: {text}"
        );
    }
    (assessment, json)
}

fn patient_view(case: &Case) -> (Assessment, Value) {
    respond(
        "lrt-patient-view",
        &support::patient_view(&case.id, json!({})),
        &case.snapshot,
        case.now,
    )
}

/// The detail of the patient-view card for `a`, with the template set to answer even when
/// nothing is actionable (to read the blocks of a card patient-view would not show).
fn forced_card_detail(snapshot: &PatientSnapshot, a: &Assessment) -> String {
    let mut text = support::card_text(rules());
    text.card_when_not_actionable = true;
    let service = services::find("lrt-patient-view").expect("service");
    let request = support::request(&support::patient_view("p", json!({})));
    let codes = OrderCodes::for_rules(rules()).expect("codes");
    let dashboard = Url::parse("https://lrt.example.org/").expect("url");
    let input = CardInput {
        service,
        request: &request,
        rules: rules(),
        text: &text,
        snapshot: Some(snapshot),
        evaluation_id: uuid::Uuid::nil(),
        dashboard: &dashboard,
        order_codes: &codes,
    };
    cards::respond(&input, a).cards[0]
        .detail
        .clone()
        .expect("a detail")
}

#[test]
fn patient_view_answers_only_when_something_is_actionable() {
    let text = support::card_text(rules());
    let mut shown = 0;
    for case in worked_examples() {
        let (a, json) = patient_view(&case);
        let cards = json["cards"].as_array().expect("cards");
        let category = a.ecmo_category.as_deref().unwrap_or_default();
        let actionable = !["not_indicated", "out_of_scope", "insufficient_data"]
            .contains(&category)
            || a.recommendation_details.iter().any(|r| {
                !text
                    .recommendations
                    .get(&*r.code)
                    .is_some_and(|t| t.data_request)
            });
        assert_eq!(
            cards.len(),
            usize::from(actionable),
            "{}: {json:#}",
            case.id
        );
        shown += cards.len();
        let Some(card) = cards.first() else { continue };
        let summary = card["summary"].as_str().expect("a summary");
        assert!(summary.chars().count() < 140, "{summary}");
        let detail = card["detail"].as_str().expect("a detail");
        assert!(!detail.contains("nothing stands against"), "{detail}");
        if category == "eligible" {
            assert!(summary.starts_with("Call the ECMO centre now"), "{summary}");
            assert_eq!(card["indicator"], "critical");
            assert!(detail.contains("(emergent)"), "{detail}");
            assert!(
                detail.contains("no documented contraindication was found"),
                "{detail}"
            );
            assert!(detail.contains("goals of care, bleeding risk or vascular access"));
        }
    }
    assert!(shown > 0 && shown < worked_examples().len() + 1);
}

#[test]
fn summary_and_detail_give_the_same_urgency() {
    // Borderline because of a relative contraindication with EOLIA met: emergent (§9 D6).
    let (a, json) = patient_view(&decision("D6-eolia-with-relative-ci-emergent"));
    assert_eq!(a.ecmo_category.as_deref(), Some("borderline"));
    let card = &json["cards"][0];
    let summary = card["summary"].as_str().expect("summary");
    let detail = card["detail"].as_str().expect("detail");
    assert!(summary.starts_with("Call the ECMO centre now"), "{summary}");
    assert!(
        detail.starts_with("**Call the ECMO centre now (emergent).**"),
        "{detail}"
    );
    assert_eq!(card["indicator"], "critical");
    assert!(!summary.contains("this shift") && !detail.contains("this shift"));
}

#[test]
fn thresholds_print_with_the_patients_value() {
    let (a, json) = patient_view(&decision("D6-eolia-with-relative-ci-emergent"));
    let age = a
        .explanations
        .iter()
        .flat_map(|e| e.criteria.iter())
        .find(|c| &*c.fact == "age_years")
        .and_then(|c| match c.value {
            lrt_engine::assessment::CriterionValue::Number(x) => Some(x),
            _ => None,
        })
        .expect("the age compared");
    let threshold = rules()
        .param("age_relative_ci")
        .expect("the parameter")
        .value;
    let want = format!(
        "age {} (≥ {})",
        cards::display_number(age),
        cards::display_number(threshold)
    );
    let card = &json["cards"][0];
    let text = format!("{}\n{}", card["summary"], card["detail"]);
    assert!(text.contains(&want), "{want} not in {text}");
}

#[test]
fn a_changed_threshold_changes_the_card_text_with_one_file() {
    // The recipe "change a threshold": parameters.yaml only; the card follows.
    let dir = copy_version();
    let p = version_path(&dir).join("parameters.yaml");
    let text = std::fs::read_to_string(&p).expect("parameters");
    let changed = text.replacen(
        "age_relative_ci: {value: 65",
        "age_relative_ci: {value: 60",
        1,
    );
    assert_ne!(text, changed, "the parameter is written as expected");
    std::fs::write(&p, changed).expect("write");
    let rules = RuleSet::load(&version_path(&dir)).expect("the changed version loads");
    let t = CardText::for_rules(&rules).expect("its texts");
    let short = &t.reasons["relative_ci:age"].short;
    assert!(short.contains("{param:age_relative_ci}"), "{short}");
    assert_eq!(rules.param("age_relative_ci").map(|p| p.value), Some(60.0));
}

#[test]
fn data_quality_is_in_words() {
    let case = decision("D11-abg-without-fio2-document-fio2");
    let (a, json) = respond(
        "lrt-patient-view",
        &support::patient_view(&case.id, json!({})),
        &case.snapshot,
        case.now,
    );
    // A data request alone gives no patient-view card (§9 D12); the words are still rendered
    // for the order hooks and the dashboard: check them through a card forced by a template
    // that always answers.
    assert!(
        json["cards"].as_array().expect("cards").is_empty(),
        "{json:#}"
    );
    assert!(!a.data_quality.is_empty(), "{:?}", a.data_quality);
    let text = support::card_text(rules());
    let detail = forced_card_detail(&case.snapshot, &a);
    let block = detail
        .split("**Data quality**")
        .nth(1)
        .expect("a data-quality block");
    for item in &a.data_quality {
        let code = item.split(':').next().unwrap_or_default();
        assert!(
            !block.contains(&format!("`{item}`")),
            "{item} shown as a code: {block}"
        );
        assert!(text.data_quality.contains_key(code), "{code}");
    }
    // The P/F is missing: its row shows no time.
    let pf_row = detail
        .lines()
        .find(|l| l.starts_with("| P/F |"))
        .expect("a P/F row");
    assert_eq!(pf_row, "| P/F | not available | — |", "{pf_row}");
}

#[test]
fn stale_peep_says_when_it_was_last_charted() {
    let rules = rules();
    let case = cases(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../rules/lrt-ruleset/0.2.0/tests/semantics-windows.json"),
    )
    .into_iter()
    .find(|c| c.id == "S-W04")
    .expect("S-W04");
    let a = lrt_engine::evaluate(rules, &case.snapshot, case.now);
    assert!(
        a.data_quality.iter().any(|d| d == "stale:peep"),
        "{:?}",
        a.data_quality
    );
    let detail = forced_card_detail(&case.snapshot, &a);
    assert!(
        detail.contains("- PEEP last charted ") && detail.contains(" h ago: too old to use"),
        "{detail}"
    );
}

#[test]
fn an_ecmo_order_card_never_offers_to_remove_the_order() {
    let case = decision("D6-gap-peep-lt-10");
    let body = json!({
        "hook": "order-sign",
        "hookInstance": support::HOOK_INSTANCE,
        "context": {"userId": "Practitioner/u1", "patientId": case.id, "draftOrders": {
            "resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
                "resourceType": "ServiceRequest", "id": "ecmo-1", "status": "draft",
                "intent": "order", "subject": {"reference": format!("Patient/{}", case.id)},
                "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "33946"}],
                         "text": "VV-ECMO"}}}]}},
    });
    let (_, json) = respond("lrt-order-sign", &body, &case.snapshot, case.now);
    let cards = json["cards"].as_array().expect("cards");
    assert_eq!(cards.len(), 1, "{json:#}");
    let card = &cards[0];
    assert!(
        card["summary"]
            .as_str()
            .expect("summary")
            .contains("VV-ECMO"),
        "{card:#}"
    );
    for s in card["suggestions"].as_array().expect("suggestions") {
        for action in s["actions"].as_array().expect("actions") {
            assert_ne!(action["type"], "delete", "{card:#}");
        }
    }
}

#[test]
fn an_rxnorm_inhaled_nitric_oxide_order_gets_its_card() {
    // The CDS Hooks sandbox's Rx View sends RxNorm only (§9 D12).
    let case = decision("D6-gap-peep-lt-10");
    let body = json!({
        "hook": "order-select",
        "hookInstance": support::HOOK_INSTANCE,
        "context": {"userId": "Practitioner/u1", "patientId": case.id, "selections": ["MedicationRequest/ino"],
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
                "resourceType": "MedicationRequest", "id": "ino", "status": "draft", "intent": "order",
                "subject": {"reference": format!("Patient/{}", case.id)},
                "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7442"}],
                    "text": "nitric oxide"}}}]}},
    });
    let (_, json) = respond("lrt-order-select", &body, &case.snapshot, case.now);
    let cards = json["cards"].as_array().expect("cards");
    assert_eq!(cards.len(), 1, "{json:#}");
    assert_eq!(
        cards[0]["source"]["topic"]["code"],
        "inhaled-vasodilator-order"
    );
}

// ------------------------------------------------------------------------------------------
// Template passes
// ------------------------------------------------------------------------------------------

/// A copy of 0.2.0 as `<tmp>/lrt-ruleset/0.2.0`.
fn copy_version() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("a temp dir");
    lrt_engine::testing::copy_version(root.path(), "0.2.0");
    root
}

fn version_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("lrt-ruleset/0.2.0")
}

fn errors_after(edit: impl FnOnce(&std::path::Path)) -> String {
    let dir = copy_version();
    edit(&version_path(&dir));
    let rules = RuleSet::load(&version_path(&dir)).expect("the rules still compile");
    CardText::for_rules(&rules)
        .expect_err("the texts are refused")
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn replace_in(dir: &std::path::Path, file: &str, from: &str, to: &str) {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p).expect("read");
    assert!(text.contains(from), "{from} not in {file}");
    std::fs::write(&p, text.replacen(from, to, 1)).expect("write");
}

#[test]
fn a_reason_without_a_catalogue_entry_is_refused() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../rules/lrt-ruleset/0.2.0/ecmo.yaml"),
    )
    .expect("ecmo.yaml");
    let line = text
        .lines()
        .position(|l| l.trim() == "- id: relative_ci_bmi")
        .expect("the rule")
        + 1;
    let e = errors_after(|d| {
        replace_in(
            d,
            "ecmo.yaml",
            "  \"relative_ci:bmi_gt_45\":\n    short:",
            "  \"relative_ci:bmi_over_45\":\n    short:",
        )
    });
    assert!(
        e.contains(&format!(
            "ecmo.yaml:{line}: item relative_ci_bmi: reason `relative_ci:bmi_gt_45` has no entry"
        )),
        "line {line}: {e}"
    );
    assert!(
        e.contains("item relative_ci_bmi: reason `relative_ci:bmi_gt_45` has no entry"),
        "{e}"
    );
    assert!(
        e.contains("item relative_ci:bmi_over_45: no rule gives this reason"),
        "{e}"
    );
    assert!(e.contains("help: "), "{e}");
}

#[test]
fn an_unknown_placeholder_is_refused_with_a_help_line() {
    let e = errors_after(|d| {
        replace_in(
            d,
            "ecmo.yaml",
            "short: \"BMI {value:bmi} (> {param:bmi_relative_ci})\"",
            "short: \"BMI {value:bmi} (> {45}) {param:bmi_relative}\"",
        )
    });
    assert!(e.contains("unknown placeholder `{45}`"), "{e}");
    assert!(e.contains("thresholds are parameters"), "{e}");
    assert!(e.contains("did you mean `{param:bmi_relative_ci}`?"), "{e}");
}

#[test]
fn an_ecmo_order_card_that_removes_the_order_is_refused() {
    let e = errors_after(|d| {
        let p = d.join("cards.yaml");
        let text = std::fs::read_to_string(&p).expect("read");
        let at = text.find("    ecmo_reversible:").expect("ecmo_reversible");
        let (head, tail) = text.split_at(at);
        let tail = tail.replacen("may_remove_order: false", "may_remove_order: true", 1);
        std::fs::write(&p, format!("{head}{tail}")).expect("write");
    });
    assert!(
        e.contains("cards.yaml:") && e.contains(": item ecmo_reversible: "),
        "{e}"
    );
    assert!(e.contains("never offer to remove the order"), "{e}");
}

#[test]
fn the_card_renderer_holds_no_clinical_number() {
    // Thresholds and clinical wording are rule-set content (§9 D12): the renderer's source may
    // not write a number next to a clinical unit or a comparison.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let pattern = fancy_regex::Regex::new(
        r"(\d\s*(mmHg|mm\[Hg\]|cmH2O|mL/kg|kg/m|ppm|/min|%)|[<>≤≥]=?\s*\d+(\.\d+)?\s*(mmHg|cmH2O|h\b|mL|kg|%)|(P/F|PEEP|FiO2|PaO2|PaCO2|pH|BMI|Vt|RR|age)\s*[<>≤≥]=?\s*\d)",
    )
    .expect("a regex");
    let mut found = Vec::new();
    let mut stack = vec![src];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).expect("read_dir") {
            let path = e.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                for (i, line) in text.lines().enumerate() {
                    if pattern.is_match(line).unwrap_or(true) {
                        found.push(format!("{}:{}: {line}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "clinical numbers in Rust:\n{}",
        found.join("\n")
    );
}

/// The README's card table (section "What the cards say") is generated from 0.2.0: the
/// patient-view summary of each worked case. `LRT_UPDATE_README=1` rewrites it.
#[test]
fn readme_card_texts_are_generated_from_0_2_0() {
    let mut table =
        String::from("| case | ECMO category | indicator | summary |\n|---|---|---|---|\n");
    for case in worked_examples() {
        let (a, json) = patient_view(&case);
        let category = a.ecmo_category.as_deref().unwrap_or("none");
        let row = match json["cards"].as_array().and_then(|c| c.first()) {
            Some(card) => format!(
                "| {} | {category} | {} | {} |\n",
                case.id,
                card["indicator"].as_str().unwrap_or_default(),
                card["summary"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('|', "\\|")
            ),
            None => format!("| {} | {category} | | no card |\n", case.id),
        };
        table.push_str(&row);
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let (start, end) = ("<!-- cards:0.2.0 -->\n", "<!-- /cards -->");
    let from = readme.find(start).expect("the start marker") + start.len();
    let to = readme.find(end).expect("the end marker");
    if std::env::var_os("LRT_UPDATE_README").is_some() {
        let updated = format!("{}{table}{}", &readme[..from], &readme[to..]);
        std::fs::write(&path, updated).expect("write README.md");
        return;
    }
    assert_eq!(
        &readme[from..to],
        table,
        "README.md's card table is out of date: run LRT_UPDATE_README=1 cargo test -p lrt-hooks --test cards_0_2_0 readme"
    );
}
