//! Pass 4: the catalogues rules emit into (hard stops, mechanisms, recommendations, consult
//! triggers), the data-quality codes rules emit, and the code sets.

use std::sync::Arc;

use super::super::codesets::{self, CodeSet, UnmappedCode};
use super::super::files::CatalogEntry;
use super::super::schema::ParsedFile;
use super::Ctx;
use super::concepts::Concepts;

/// At most this many hard stops: the engine keeps the documented ones as the bits of one `u64`
/// (`FactValue::Set`).
const MAX_HARD_STOPS: usize = 64;

/// The catalogues, each code once, in the order the files list them.
pub(super) struct Catalogues {
    pub(super) hard_stops: Vec<CatalogEntry>,
    pub(super) mechanisms: Vec<CatalogEntry>,
    pub(super) recommendations: Vec<CatalogEntry>,
    pub(super) consult_triggers: Vec<CatalogEntry>,
    /// Data-quality items are not a catalogue: the codes rules emit, each once.
    pub(super) data_quality: Vec<Arc<str>>,
    pub(super) codesets: Vec<CodeSet>,
    pub(super) unmapped_codes: Vec<UnmappedCode>,
}

impl Catalogues {
    pub(super) fn compile(files: &[ParsedFile], concepts: &Concepts, ctx: &mut Ctx) -> Self {
        let hard_stops = catalogue(files, ctx, "hard_stops", |f| &f.file.hard_stops);
        let mechanisms = catalogue(files, ctx, "mechanisms", |f| &f.file.mechanisms);
        let recommendations = catalogue(files, ctx, "recommendations", |f| &f.file.recommendations);
        let consult_triggers =
            catalogue(files, ctx, "consult_triggers", |f| &f.file.consult_triggers);
        let mut data_quality: Vec<Arc<str>> = Vec::new();
        for r in files.iter().flat_map(|f| &f.file.rules) {
            if let Some(code) = r.emits.as_ref().and_then(|e| e.data_quality.as_deref())
                && !data_quality.iter().any(|c| &**c == code)
            {
                data_quality.push(Arc::from(code));
            }
        }
        let (codesets, unmapped_codes) = codesets::compile(
            files,
            &hard_stops,
            &|system, code| concepts.maps(system, code),
            ctx,
        );
        if hard_stops.len() > MAX_HARD_STOPS {
            ctx.errors.push(
                &ctx.dir,
                "",
                format!("at most {MAX_HARD_STOPS} hard-stop codes are supported"),
            );
        }
        Catalogues {
            hard_stops,
            mechanisms,
            recommendations,
            consult_triggers,
            data_quality,
            codesets,
            unmapped_codes,
        }
    }
}

/// One catalogue section (`section`) of every file, each entry cited and its code listed once.
fn catalogue(
    files: &[ParsedFile],
    ctx: &mut Ctx,
    section: &str,
    pick: fn(&ParsedFile) -> &Vec<CatalogEntry>,
) -> Vec<CatalogEntry> {
    let mut out: Vec<CatalogEntry> = Vec::new();
    for f in files {
        for (i, e) in pick(f).iter().enumerate() {
            let ptr = format!("/{section}/{i}");
            ctx.cites(&f.display, &ptr, &e.cites);
            if out.iter().any(|o| o.code == e.code) {
                ctx.errors.push(
                    &f.display,
                    format!("{ptr}/code"),
                    format!("{} is listed twice", e.code),
                );
            } else {
                out.push(e.clone());
            }
        }
    }
    out
}
