//! The reading pass before fhirbolt: keeps, of one resource's JSON, exactly the members the
//! snapshot reads, and refuses shapes that cannot be FHIR.
//!
//! fhirbolt-serde 0.4.0 has two faults in its lenient (`Compatibility`) mode, both reachable
//! from any EHR or CDS client: an unknown member holding an array is never consumed, so its
//! reader loops forever (`"fooArr": [1, 2]` in a Patient hangs the thread for good); and an
//! empty array (`"coding": []`) makes it unwrap `None` and panic. The crate has had no release
//! since 2023, so the fix lives here: fhirbolt only ever sees the output of [`project`], in
//! its strict mode, and that output has
//!
//! * no unknown members (every member is named in the tables below, which follow the R4
//!   definitions of the resources and data types read: strict mode proves them on every read);
//! * no empty arrays, no `null`s, no arrays of arrays, no `_primitive` extension members;
//! * a primitive (string, number, boolean) wherever FHIR has a primitive, an object wherever
//!   it has a data type: anything else is refused here with the member's path;
//! * each decimal's number as its digits in a JSON string, which is how fhirbolt's typed read
//!   takes a decimal ([`Decimals`]).
//!
//! The output is JSON text, written into one buffer per resource as the input is parsed.
//!
//! Everything else (extensions, narrative, `meta`, members of resources the snapshot does not
//! read, vendor additions) is dropped without being looked at: the parser skips it (its syntax
//! is checked, no tree is built, and the skipping is iterative, so nesting depth costs no
//! stack). The pass is bounded: the tables have a fixed depth, `contained` resources are read
//! one level deep, and what is read goes through `serde_json`'s recursion limit (128).

use std::fmt::{self, Write as _};
use std::ops::Range;

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value;
use serde_json::value::RawValue;

/// Members of an element: `(name, shape)`.
type Members = &'static [(&'static str, Shape)];

/// What a member holds.
#[derive(Clone, Copy)]
enum Shape {
    /// A FHIR primitive: a JSON string, number or boolean.
    Primitive,
    /// A FHIR `decimal`: a JSON number, given to fhirbolt as its text in a JSON string (see
    /// [`Decimals`]).
    Decimal,
    /// A data type or backbone element: a JSON object with the members of these lists.
    Complex(&'static [Members]),
    /// `contained`: resources, of which only a Medication is read.
    Contained,
}

use Shape::{Complex, Contained, Decimal, Primitive};

/// How a `decimal` is written in the projection.
///
/// fhirbolt reads a resource's own type (`Observation`) straight from JSON, but there it reads
/// a decimal (which it keeps as text, every digit) as a JSON *string*, and refuses the JSON
/// number FHIR writes. Its `Resource` enum reads the number, through a generic element tree of
/// the whole resource first, which cost more than all the rest of reading a resource (issue 9).
/// So the projection checks that a decimal is a number and gives its digits as a string for
/// the typed read. (A resource with contained resources is read through the enum, and has no
/// decimal among the members projected; the tests compare the two reads.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decimals {
    /// `"value": 7.50` as written (for fhirbolt's `Resource` enum: the tests' reference read).
    #[cfg(test)]
    Numbers,
    /// `"value": "7.50"` (for fhirbolt's typed read of a resource).
    Strings,
}

const CODING: Shape = Complex(&[&[
    ("system", Primitive),
    ("version", Primitive),
    ("code", Primitive),
    ("display", Primitive),
]]);
const CODEABLE_CONCEPT: Shape = Complex(&[&[("coding", CODING), ("text", Primitive)]]);
const REFERENCE: Shape = Complex(&[&[
    ("reference", Primitive),
    ("type", Primitive),
    ("display", Primitive),
]]);
const QUANTITY: Shape = Complex(&[&[
    ("value", Decimal),
    ("comparator", Primitive),
    ("unit", Primitive),
    ("system", Primitive),
    ("code", Primitive),
]]);
const PERIOD: Shape = Complex(&[&[("start", Primitive), ("end", Primitive)]]);
const RANGE: Shape = Complex(&[&[("low", QUANTITY), ("high", QUANTITY)]]);
const RATIO: Shape = Complex(&[&[("numerator", QUANTITY), ("denominator", QUANTITY)]]);
const SAMPLED_DATA: Shape = Complex(&[&[
    ("origin", QUANTITY),
    ("period", Decimal),
    ("factor", Decimal),
    ("lowerLimit", Decimal),
    ("upperLimit", Decimal),
    ("dimensions", Primitive),
    ("data", Primitive),
]]);
/// Only the event times; a `repeat` schedule carries no time the snapshot can use.
const TIMING: Shape = Complex(&[&[("event", Primitive)]]);

/// `Observation.value[x]` and `Observation.component.value[x]`.
const OBSERVATION_VALUES: Members = &[
    ("valueQuantity", QUANTITY),
    ("valueCodeableConcept", CODEABLE_CONCEPT),
    ("valueString", Primitive),
    ("valueBoolean", Primitive),
    ("valueInteger", Primitive),
    ("valueRange", RANGE),
    ("valueRatio", RATIO),
    ("valueSampledData", SAMPLED_DATA),
    ("valueTime", Primitive),
    ("valueDateTime", Primitive),
    ("valuePeriod", PERIOD),
];

const OBSERVATION_COMPONENT: Shape = Complex(&[&[("code", CODEABLE_CONCEPT)], OBSERVATION_VALUES]);

const PATIENT: Members = &[
    ("id", Primitive),
    ("gender", Primitive),
    ("birthDate", Primitive),
];

const OBSERVATION: &[Members] = &[
    &[
        ("id", Primitive),
        ("status", Primitive),
        ("code", CODEABLE_CONCEPT),
        ("subject", REFERENCE),
        ("effectiveDateTime", Primitive),
        ("effectivePeriod", PERIOD),
        ("effectiveTiming", TIMING),
        ("effectiveInstant", Primitive),
        ("issued", Primitive),
        ("component", OBSERVATION_COMPONENT),
    ],
    OBSERVATION_VALUES,
];

const CONDITION: Members = &[
    ("id", Primitive),
    ("clinicalStatus", CODEABLE_CONCEPT),
    ("verificationStatus", CODEABLE_CONCEPT),
    ("code", CODEABLE_CONCEPT),
    ("subject", REFERENCE),
    ("onsetDateTime", Primitive),
    ("onsetAge", QUANTITY),
    ("onsetPeriod", PERIOD),
    ("onsetRange", RANGE),
    ("onsetString", Primitive),
    ("recordedDate", Primitive),
];

const PROCEDURE: Members = &[
    ("id", Primitive),
    ("status", Primitive),
    ("code", CODEABLE_CONCEPT),
    ("subject", REFERENCE),
    ("performedDateTime", Primitive),
    ("performedPeriod", PERIOD),
    ("performedString", Primitive),
    ("performedAge", QUANTITY),
    ("performedRange", RANGE),
];

const MEDICATION_ADMINISTRATION: Members = &[
    ("id", Primitive),
    ("contained", Contained),
    ("status", Primitive),
    ("medicationCodeableConcept", CODEABLE_CONCEPT),
    ("medicationReference", REFERENCE),
    ("subject", REFERENCE),
    ("effectiveDateTime", Primitive),
    ("effectivePeriod", PERIOD),
];

const MEDICATION_REQUEST: Members = &[
    ("id", Primitive),
    ("contained", Contained),
    ("status", Primitive),
    ("intent", Primitive),
    ("medicationCodeableConcept", CODEABLE_CONCEPT),
    ("medicationReference", REFERENCE),
    ("subject", REFERENCE),
    ("authoredOn", Primitive),
];

const MEDICATION: Members = &[("id", Primitive), ("code", CODEABLE_CONCEPT)];

const FLAG: Members = &[
    ("id", Primitive),
    ("status", Primitive),
    ("code", CODEABLE_CONCEPT),
    ("subject", REFERENCE),
    ("period", PERIOD),
];

const OPERATION_OUTCOME: Members = &[
    ("id", Primitive),
    (
        "issue",
        Complex(&[&[
            ("severity", Primitive),
            ("code", Primitive),
            ("details", CODEABLE_CONCEPT),
            ("diagnostics", Primitive),
        ]]),
    ),
];

/// The members read of each resource type the snapshot uses; `None` for every other type.
fn resource_members(resource_type: &str) -> Option<&'static [Members]> {
    Some(match resource_type {
        "Patient" => &[PATIENT],
        "Observation" => OBSERVATION,
        "Condition" => &[CONDITION],
        "Procedure" => &[PROCEDURE],
        "MedicationAdministration" => &[MEDICATION_ADMINISTRATION],
        "MedicationRequest" => &[MEDICATION_REQUEST],
        "Medication" => &[MEDICATION],
        "Flag" => &[FLAG],
        "OperationOutcome" => &[OPERATION_OUTCOME],
        _ => return None,
    })
}

/// Whether the snapshot reads resources of this type (others are skipped unread).
pub fn is_read(resource_type: &str) -> bool {
    resource_members(resource_type).is_some()
}

/// Why a resource's JSON cannot be FHIR, with the member's path (`code.coding[0].system`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ShapeError {
    pub path: String,
    pub problem: String,
}

/// The members of `resource` (JSON text) that the snapshot reads, with its `resourceType`,
/// ready for fhirbolt's strict mode. `resource` must be a JSON object whose `resourceType` is
/// read (see [`is_read`]).
pub fn project(resource: &str) -> Result<Value, ShapeError> {
    let refused = |path: &str, problem: String| ShapeError {
        path: path.into(),
        problem,
    };
    match scan(resource, false) {
        Err(e) => Err(refused("", format!("not JSON: {e}"))),
        Ok(Scanned::NotAResource | Scanned::Bundle(_)) => Err(refused(
            "",
            "a resource must be an object with a resourceType".into(),
        )),
        Ok(Scanned::Unread(rt)) => Err(refused(
            "resourceType",
            format!("`{rt}` is not a resource type read here"),
        )),
        Ok(Scanned::Resource { projected, .. }) => {
            let text = projected?;
            serde_json::from_str(&text).map_err(|e| refused("", format!("projected: {e}")))
        }
    }
}

// ------------------------------------------------------------------------------------------
// Reading from the JSON text
//
// A prefetch value or a FHIR server's answer arrives as text and is read once, here, with serde
// visitors: members that are not read are skipped by the parser (`IgnoredAny`: no tree, no
// allocation), the members read are projected as they are parsed. The projection is JSON text
// again (what fhirbolt is given), written into one buffer per resource ([`Scratch`]): a
// primitive is copied as it was written (a number keeps its digits), an object is assembled
// from its members' text once all of them are read. No tree is built (issue 9: a
// `serde_json::Value` per resource cost an allocation per member name and per object).
//
// Exactly as a parsed tree would be read: a member given twice counts with its last value, and
// of several faults in one object the first in the tables' order is reported. The fast path
// streams an object whose first member is `resourceType` (how FHIR JSON is written); any other
// object is read member by member from the text (`Lazy`), so the order of members never changes
// the result.
// ------------------------------------------------------------------------------------------

/// serde_json's marker for a number when its `arbitrary_precision` feature is on (fhirbolt turns
/// it on): the number reaches a visitor as a one-member map under this key, holding its text
/// (where a number is not wanted: primitives are read as raw text).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// A member name, borrowed from the text when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Reads the rest of a map (the value of a key just read, when `pending`).
fn drain<'de, A: MapAccess<'de>>(map: &mut A, pending: bool) -> Result<(), A::Error> {
    if pending {
        map.next_value::<IgnoredAny>()?;
    }
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// What one member becomes: its projection (`None`: dropped), as the range of its JSON text in
/// [`Scratch::text`], or why it cannot be FHIR.
type Projected = Result<Option<Range<usize>>, ShapeError>;

/// The working buffers of one resource's projection.
struct Scratch {
    /// The member being read (`code.coding[0].system`), for messages.
    path: String,
    /// The projected text: each member's, then each object's assembled from them.
    text: String,
    decimals: Decimals,
}

impl Scratch {
    /// For a resource of about `bytes` bytes of text.
    fn new(bytes: usize, decimals: Decimals) -> Scratch {
        Scratch {
            path: String::new(),
            text: String::with_capacity(bytes),
            decimals,
        }
    }

    /// Copies `raw` (JSON text) to the end of the buffer.
    fn push(&mut self, raw: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(raw);
        start..self.text.len()
    }

    /// Writes a JSON number's text as a JSON string, its exponent (if any) as serde_json writes
    /// an arbitrary-precision number for fhirbolt's enum: `e`, then its sign (`1E2` is `1e+2`).
    fn push_decimal(&mut self, number: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push('"');
        match number.split_once(['e', 'E']) {
            None => self.text.push_str(number),
            Some((mantissa, exponent)) => {
                self.text.push_str(mantissa);
                self.text.push('e');
                if !exponent.starts_with(['+', '-']) {
                    self.text.push('+');
                }
                self.text.push_str(exponent);
            }
        }
        self.text.push('"');
        start..self.text.len()
    }

    /// The projected resource at `range`, as its own text.
    fn into_text(self, range: Range<usize>) -> String {
        let mut text = self.text;
        text.truncate(range.end);
        text.replace_range(..range.start, "");
        text
    }
}

/// The members of one object being projected, one slot per member of its tables; a member given
/// twice keeps its last value, as in a parsed tree.
struct Slots {
    members: &'static [Members],
    values: Vec<Option<Projected>>,
}

impl Slots {
    fn new(members: &'static [Members]) -> Slots {
        let n = members.iter().map(|m| m.len()).sum();
        Slots {
            members,
            values: (0..n).map(|_| None).collect(),
        }
    }

    fn find(&self, name: &str) -> Option<(usize, &'static str, Shape)> {
        self.members
            .iter()
            .copied()
            .flatten()
            .enumerate()
            .find(|(_, (n, _))| *n == name)
            .map(|(i, (n, s))| (i, *n, *s))
    }

    /// The projected object, written at the end of `text`: the members in the tables' order
    /// (then `resourceType`, for a resource), or the first fault in that order.
    fn finish(
        self,
        text: &mut String,
        resource_type: Option<&str>,
    ) -> Result<Range<usize>, ShapeError> {
        let start = text.len();
        text.push('{');
        let mut first = true;
        let mut member = |text: &mut String, name: &str| {
            if !std::mem::take(&mut first) {
                text.push(',');
            }
            text.push('"');
            text.push_str(name);
            text.push_str("\":");
        };
        for ((name, _), value) in self.members.iter().copied().flatten().zip(self.values) {
            match value {
                Some(Err(e)) => {
                    text.truncate(start);
                    return Err(e);
                }
                Some(Ok(Some(range))) => {
                    member(text, name);
                    text.extend_from_within(range);
                }
                Some(Ok(None)) | None => {}
            }
        }
        if let Some(rt) = resource_type {
            // A type of the tables (plain ASCII letters): no escaping needed.
            member(text, "resourceType");
            text.push('"');
            text.push_str(rt);
            text.push('"');
        }
        text.push('}');
        Ok(start..text.len())
    }
}

/// Adds `.name` to a path.
fn enter(path: &mut String, name: &str) -> usize {
    let len = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(name);
    len
}

/// Projects one member's value as it is parsed (an array item by item, nulls dropped, an empty
/// array dropped).
struct ShapeSeed<'p> {
    shape: Shape,
    at: &'p mut Scratch,
    allow_contained: bool,
    /// An item of an array (an array here is refused).
    in_array: bool,
}

impl<'de> ShapeSeed<'_> {
    fn fault(&self, problem: impl Into<String>) -> Projected {
        Err(ShapeError {
            path: self.at.path.clone(),
            problem: problem.into(),
        })
    }

    /// A primitive (string, number, boolean) where an object is expected.
    fn not_an_object(&self, found: &'static str) -> Projected {
        self.fault(format!("expected an object, found {found}"))
    }

    /// Projects a value given as text (a member read lazily, or kept for messages).
    fn read_raw(self, raw: &'de RawValue) -> Result<Projected, serde_json::Error> {
        self.deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
    }

    /// A primitive member, read as the text it was written as: copied as it is (a string keeps
    /// its escapes, a number its digits), `null` dropped, an object refused, an array read item
    /// by item. [`Decimals`] says how a decimal's number is written.
    fn primitive(self, raw: &'de RawValue) -> Result<Projected, serde_json::Error> {
        let text = raw.get();
        let first = text.as_bytes().first().copied();
        Ok(match first {
            Some(b'n') => Ok(None),
            Some(b'{') => self.fault("expected a primitive value, found an object"),
            Some(b'[') => {
                return serde_json::Deserializer::from_str(text).deserialize_seq(self);
            }
            // A number's text has nothing to escape. A decimal written as a string (not FHIR
            // JSON, but fhirbolt's enum took it) is given as it is, as is any other primitive.
            Some(b'-' | b'0'..=b'9')
                if matches!(self.shape, Shape::Decimal)
                    && self.at.decimals == Decimals::Strings =>
            {
                Ok(Some(self.at.push_decimal(text)))
            }
            _ => Ok(Some(self.at.push(text))),
        })
    }
}

impl<'de> DeserializeSeed<'de> for ShapeSeed<'_> {
    type Value = Projected;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Projected, D::Error> {
        match self.shape {
            Shape::Primitive | Shape::Decimal => {
                let raw = <&'de RawValue>::deserialize(d)?;
                self.primitive(raw).map_err(D::Error::custom)
            }
            Shape::Complex(_) | Shape::Contained => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for ShapeSeed<'_> {
    type Value = Projected;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Projected, E> {
        Ok(Ok(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<Projected, E> {
        Ok(Ok(None))
    }

    // A primitive reaches these only where an object is expected (a primitive member is read
    // as text: [`ShapeSeed::primitive`]).

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Projected, E> {
        Ok(self.not_an_object("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Projected, E> {
        Ok(self.not_an_object("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Projected, E> {
        Ok(self.not_an_object("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Projected, E> {
        Ok(self.not_an_object("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Projected, E> {
        Ok(self.not_an_object("a string"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Projected, A::Error> {
        if self.in_array {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(self.fault("an array inside an array is not FHIR JSON"));
        }
        let mut kept: Vec<Range<usize>> = Vec::new();
        let mut i = 0usize;
        loop {
            let len = self.at.path.len();
            let _ = write!(self.at.path, "[{i}]");
            let item = seq.next_element_seed(ShapeSeed {
                shape: self.shape,
                at: &mut *self.at,
                allow_contained: self.allow_contained,
                in_array: true,
            })?;
            match item {
                None => {
                    self.at.path.truncate(len);
                    break;
                }
                Some(Ok(Some(v))) => kept.push(v),
                Some(Ok(None)) => {}
                Some(Err(e)) => {
                    self.at.path.truncate(len);
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(Err(e));
                }
            }
            self.at.path.truncate(len);
            i += 1;
        }
        if kept.is_empty() {
            return Ok(Ok(None));
        }
        let text = &mut self.at.text;
        let start = text.len();
        text.push('[');
        for (n, item) in kept.into_iter().enumerate() {
            if n > 0 {
                text.push(',');
            }
            text.extend_from_within(item);
        }
        text.push(']');
        Ok(Ok(Some(start..text.len())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Projected, A::Error> {
        let first = map.next_key::<Key<'de>>()?;
        if first.as_ref().is_some_and(|k| k.as_str() == NUMBER_TOKEN) {
            drain(&mut map, true)?;
            return Ok(self.not_an_object("a number"));
        }
        match self.shape {
            Shape::Primitive | Shape::Decimal => {
                // Not reached: a primitive member is read as text.
                drain(&mut map, first.is_some())?;
                Ok(self.fault("expected a primitive value, found an object"))
            }
            Shape::Complex(members) => {
                let object =
                    stream_object(&mut map, first, members, self.at, self.allow_contained)?;
                Ok(object.map(Some))
            }
            Shape::Contained => {
                if !self.allow_contained {
                    drain(&mut map, first.is_some())?;
                    return Ok(self.fault("a contained resource cannot contain resources"));
                }
                // Only a contained Medication is read (a medication given by `#id` reference);
                // its type may come after its other members: they are kept as text until then.
                let mut members: Vec<(Key<'de>, &'de RawValue)> = Vec::new();
                let mut key = first;
                while let Some(k) = key {
                    members.push((k, map.next_value()?));
                    key = map.next_key()?;
                }
                let lazy = Lazy(members);
                let rt = lazy.string("resourceType").map_err(A::Error::custom)?;
                if rt.as_deref() != Some("Medication") {
                    return Ok(Ok(None));
                }
                let object = lazy
                    .project(&[MEDICATION], self.at, false, Some("Medication"))
                    .map_err(A::Error::custom)?;
                Ok(object.map(Some))
            }
        }
    }
}

/// Projects an object's members as they are parsed (`first`: its first key, already read).
fn stream_object<'de, A: MapAccess<'de>>(
    map: &mut A,
    first: Option<Key<'de>>,
    members: &'static [Members],
    at: &mut Scratch,
    allow_contained: bool,
) -> Result<Result<Range<usize>, ShapeError>, A::Error> {
    let mut slots = Slots::new(members);
    let mut key = first;
    while let Some(k) = key {
        match slots.find(k.as_str()) {
            Some((i, name, shape)) => {
                let len = enter(&mut at.path, name);
                let value = map.next_value_seed(ShapeSeed {
                    shape,
                    at: &mut *at,
                    allow_contained,
                    in_array: false,
                })?;
                at.path.truncate(len);
                slots.values[i] = Some(value);
            }
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        key = map.next_key()?;
    }
    Ok(slots.finish(&mut at.text, None))
}

/// An object's members kept as text, for an object whose type is known only after them.
struct Lazy<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'a> Lazy<'a> {
    /// A member's (last) value, as text.
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| *v)
    }

    /// A member parsed (small members: `resourceType`, `id`, `total`, `link`).
    fn value(&self, name: &str) -> Result<Option<Value>, serde_json::Error> {
        self.get(name)
            .map(|raw| serde_json::from_str(raw.get()))
            .transpose()
    }

    /// A member's string value (`None` when absent or not a string).
    fn string(&self, name: &str) -> Result<Option<String>, serde_json::Error> {
        Ok(self
            .value(name)?
            .and_then(|v| v.as_str().map(str::to_owned)))
    }

    /// The object projected to `members` (with `resource_type` last, for a resource).
    fn project(
        &self,
        members: &'static [Members],
        at: &mut Scratch,
        allow_contained: bool,
        resource_type: Option<&str>,
    ) -> Result<Result<Range<usize>, ShapeError>, serde_json::Error> {
        let mut slots = Slots::new(members);
        for (k, raw) in &self.0 {
            let Some((i, name, shape)) = slots.find(k.as_str()) else {
                continue;
            };
            let len = enter(&mut at.path, name);
            let value = ShapeSeed {
                shape,
                at: &mut *at,
                allow_contained,
                in_array: false,
            }
            .read_raw(raw)?;
            at.path.truncate(len);
            slots.values[i] = Some(value);
        }
        Ok(slots.finish(&mut at.text, resource_type))
    }
}

impl<'de> Deserialize<'de> for Lazy<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LazyVisitor;
        impl<'de> Visitor<'de> for LazyVisitor {
            type Value = Lazy<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lazy<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(k) = map.next_key::<Key<'de>>()? {
                    members.push((k, map.next_value()?));
                }
                Ok(Lazy(members))
            }
        }
        d.deserialize_map(LazyVisitor)
    }
}

/// One JSON object as the reader sees it.
pub(crate) enum Scanned<'a> {
    /// Not an object, or an object without a string `resourceType`.
    NotAResource,
    /// A resource of a type the snapshot does not read, unread.
    Unread(String),
    /// A resource read: its type, its `id` (for messages) and its projection, as JSON text
    /// (`resourceType` last).
    Resource {
        rt: String,
        id: Option<String>,
        projected: Result<String, ShapeError>,
    },
    /// A Bundle (only where a payload may be one): its shell, its entries' resources as text.
    Bundle(Shell<'a>),
}

/// A Bundle's shell.
pub(crate) struct Shell<'a> {
    pub total: Option<u64>,
    /// `link[relation=next].url`.
    pub next: Option<String>,
    /// `None` when `entry` is neither an array nor `null`.
    pub entries: Option<Vec<Entry<'a>>>,
}

/// One `Bundle.entry`.
pub(crate) enum Entry<'a> {
    NotAnObject,
    Object {
        full_url: Option<String>,
        /// `None` when absent or `null`.
        resource: Option<&'a RawValue>,
    },
}

/// `link[relation=next].url` of a Bundle's `link` member.
fn next_link(link: &Value) -> Option<String> {
    link.as_array()
        .into_iter()
        .flatten()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
        .and_then(|l| l.get("url"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Reads one JSON text: a resource (projected) or, when `bundle`, a Bundle's shell. The error is
/// the text's JSON syntax error.
pub(crate) fn scan(text: &str, bundle: bool) -> Result<Scanned<'_>, serde_json::Error> {
    scan_with(text, bundle, Decimals::Strings)
}

/// [`scan`], with decimals written as `decimals` says.
pub(crate) fn scan_with(
    text: &str,
    bundle: bool,
    decimals: Decimals,
) -> Result<Scanned<'_>, serde_json::Error> {
    let start = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if !start.starts_with('{') {
        // Not an object: only its syntax matters (and the message of a syntax error).
        let _: Value = serde_json::from_str(text)?;
        return Ok(Scanned::NotAResource);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let bytes = text.len();
    let streamed = de.deserialize_map(Top {
        bundle,
        bytes,
        decimals,
    })?;
    de.end()?;
    match streamed {
        Some(scanned) => Ok(scanned),
        None => lazy_scan(
            serde_json::from_str(text)?,
            bundle,
            Scratch::new(bytes, decimals),
        ),
    }
}

/// An object whose first member is not its only `resourceType`, member by member.
fn lazy_scan(
    lazy: Lazy<'_>,
    bundle: bool,
    mut at: Scratch,
) -> Result<Scanned<'_>, serde_json::Error> {
    let Some(rt) = lazy.string("resourceType")? else {
        return Ok(Scanned::NotAResource);
    };
    if bundle && rt == "Bundle" {
        let entries = match lazy.get("entry") {
            None => Some(Vec::new()),
            Some(raw) => {
                EntriesSeed.deserialize(&mut serde_json::Deserializer::from_str(raw.get()))?
            }
        };
        return Ok(Scanned::Bundle(Shell {
            total: lazy.value("total")?.and_then(|v| v.as_u64()),
            next: lazy.value("link")?.as_ref().and_then(next_link),
            entries,
        }));
    }
    let Some(members) = resource_members(&rt) else {
        return Ok(Scanned::Unread(rt));
    };
    let id = lazy.string("id")?;
    let projected = lazy
        .project(members, &mut at, true, Some(&rt))?
        .map(|range| at.into_text(range));
    Ok(Scanned::Resource { rt, id, projected })
}

/// The top-level object, streamed when `resourceType` comes first (`None`: read it lazily).
struct Top {
    bundle: bool,
    /// The text's length (the projection's buffer is sized from it).
    bytes: usize,
    decimals: Decimals,
}

impl<'de> Visitor<'de> for Top {
    type Value = Option<Scanned<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(first) = map.next_key::<Key<'de>>()? else {
            return Ok(Some(Scanned::NotAResource));
        };
        if first.as_str() != "resourceType" {
            drain(&mut map, true)?;
            return Ok(None);
        }
        let rt = match map.next_value::<Value>()? {
            Value::String(rt) => rt,
            _ => {
                drain(&mut map, false)?;
                return Ok(None);
            }
        };
        if self.bundle && rt == "Bundle" {
            return stream_bundle(map);
        }
        let Some(members) = resource_members(&rt) else {
            while let Some(k) = map.next_key::<Key<'de>>()? {
                if k.as_str() == "resourceType" {
                    drain(&mut map, true)?;
                    return Ok(None);
                }
                map.next_value::<IgnoredAny>()?;
            }
            return Ok(Some(Scanned::Unread(rt)));
        };
        let mut slots = Slots::new(members);
        let mut id = None;
        let mut at = Scratch::new(self.bytes, self.decimals);
        while let Some(k) = map.next_key::<Key<'de>>()? {
            let name = k.as_str();
            if name == "resourceType" {
                drain(&mut map, true)?;
                return Ok(None);
            }
            let Some((i, name, shape)) = slots.find(name) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            at.path.clear();
            at.path.push_str(name);
            let seed = ShapeSeed {
                shape,
                at: &mut at,
                allow_contained: true,
                in_array: false,
            };
            let value = if name == "id" {
                // Also kept as text for the messages about this resource.
                let raw: &'de RawValue = map.next_value()?;
                id = serde_json::from_str::<String>(raw.get()).ok();
                seed.read_raw(raw).map_err(A::Error::custom)?
            } else {
                map.next_value_seed(seed)?
            };
            slots.values[i] = Some(value);
        }
        let projected = slots
            .finish(&mut at.text, Some(&rt))
            .map(|range| at.into_text(range));
        Ok(Some(Scanned::Resource { rt, id, projected }))
    }
}

fn stream_bundle<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Scanned<'de>>, A::Error> {
    let mut shell = Shell {
        total: None,
        next: None,
        entries: Some(Vec::new()),
    };
    while let Some(k) = map.next_key::<Key<'de>>()? {
        match k.as_str() {
            "resourceType" => {
                drain(&mut map, true)?;
                return Ok(None);
            }
            "total" => shell.total = map.next_value::<Value>()?.as_u64(),
            "link" => shell.next = next_link(&map.next_value::<Value>()?),
            "entry" => shell.entries = map.next_value_seed(EntriesSeed)?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(Some(Scanned::Bundle(shell)))
}

/// `Bundle.entry`: `null` is no entries; anything but an array is `None`.
struct EntriesSeed;

impl<'de> DeserializeSeed<'de> for EntriesSeed {
    type Value = Option<Vec<Entry<'de>>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed {
    type Value = Option<Vec<Entry<'de>>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(Vec::new()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(Vec::new()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        drain(&mut map, false)?;
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(e) = seq.next_element_seed(EntrySeed)? {
            entries.push(e);
        }
        Ok(Some(entries))
    }
}

/// One `Bundle.entry`: its `fullUrl`, its `resource` as text.
struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Entry<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = Entry<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Entry::NotAnObject)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Entry::NotAnObject)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Entry::NotAnObject)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Entry::NotAnObject)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Entry::NotAnObject)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Entry::NotAnObject)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Entry::NotAnObject)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Entry::NotAnObject)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut full_url = None;
        let mut resource = None;
        let mut key = map.next_key::<Key<'de>>()?;
        if key.as_ref().is_some_and(|k| k.as_str() == NUMBER_TOKEN) {
            drain(&mut map, true)?;
            return Ok(Entry::NotAnObject);
        }
        while let Some(k) = key {
            match k.as_str() {
                "fullUrl" => full_url = map.next_value::<Value>()?.as_str().map(str::to_owned),
                "resource" => {
                    let raw: &'de RawValue = map.next_value()?;
                    resource = (raw.get() != "null").then_some(raw);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            key = map.next_key()?;
        }
        Ok(Entry::Object { full_url, resource })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pj(resource: Value) -> Result<Value, ShapeError> {
        project(&resource.to_string())
    }

    #[test]
    fn unknown_members_of_every_type_are_dropped() {
        let p = project(
            r#"{"resourceType": "Patient", "id": "p1", "gender": "male",
            "fooArr": [1, 2], "fooObj": {"a": [[]]}, "fooNum": 1e400, "fooNull": null,
            "name": [], "extension": [{"url": "x", "extension": []}], "_birthDate": {"extension": []}}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            json!({"resourceType": "Patient", "id": "p1", "gender": "male"})
        );
    }

    #[test]
    fn empty_arrays_and_nulls_are_dropped_deep_inside() {
        let p = pj(json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [], "text": "PaO2"},
            "component": [null, {"code": {"coding": [null, {"system": "s", "code": "c"}]}}]
        }))
        .unwrap();
        assert_eq!(
            p,
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "PaO2"},
                   "component": [{"code": {"coding": [{"system": "s", "code": "c"}]}}]})
        );
    }

    #[test]
    fn wrong_shapes_name_the_member() {
        let e = pj(json!({"resourceType": "Observation", "status": {"a": [1]}})).unwrap_err();
        assert_eq!(e.path, "status");
        let e = pj(json!({"resourceType": "Observation", "code": {"coding": [[1]]}})).unwrap_err();
        assert_eq!(e.path, "code.coding[0]");
        let e = pj(json!({"resourceType": "Observation", "code": "x"})).unwrap_err();
        assert!(e.problem.contains("expected an object"), "{e}");
    }

    #[test]
    fn only_a_contained_medication_is_kept_one_level_deep() {
        let p = pj(json!({
            "resourceType": "MedicationAdministration",
            "contained": [
                {"resourceType": "Medication", "id": "m", "code": {"text": "NO"},
                 "contained": [{"resourceType": "Medication"}]},
                {"resourceType": "Patient", "id": "x"}
            ]
        }))
        .unwrap();
        assert_eq!(
            p["contained"],
            json!([{"resourceType": "Medication", "id": "m", "code": {"text": "NO"}}])
        );
    }

    #[test]
    fn types_not_read_are_refused_by_project_and_reported_by_is_read() {
        assert!(!is_read("Encounter"));
        assert!(is_read("Observation"));
        assert!(pj(json!({"resourceType": "Encounter"})).is_err());
        assert!(pj(json!([1])).is_err());
    }

    #[test]
    fn the_order_of_members_does_not_change_the_result() {
        let first = r#"{"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"text": "PaO2", "coding": [{"code": "c", "system": "s"}]},
            "valueQuantity": {"value": 7.50, "code": "kPa"}, "meta": {"x": [[1]]}}"#;
        let last = r#"{"meta": {"x": [[1]]}, "valueQuantity": {"code": "kPa", "value": 7.50},
            "code": {"coding": [{"system": "s", "code": "c"}], "text": "PaO2"},
            "status": "final", "id": "o1", "resourceType": "Observation"}"#;
        let a = project(first).unwrap();
        assert_eq!(a, project(last).unwrap());
        // A decimal's digits as written, as a string for fhirbolt's typed read (`Decimals`).
        assert_eq!(a["valueQuantity"]["value"], "7.50");
        // Members in the tables' order, resourceType last, wherever they were in the text.
        let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["id", "status", "code", "valueQuantity", "resourceType"]
        );
    }

    #[test]
    fn a_member_given_twice_counts_with_its_last_value() {
        let p = project(r#"{"resourceType": "Patient", "gender": {"a": 1}, "gender": "female"}"#)
            .unwrap();
        assert_eq!(p["gender"], "female");
        let e = project(r#"{"resourceType": "Patient", "gender": "female", "gender": {"a": 1}}"#)
            .unwrap_err();
        assert_eq!(e.path, "gender");
        // A second resourceType: the last one is the type, as in a parsed tree.
        let p = project(r#"{"resourceType": "Encounter", "resourceType": "Patient", "id": "p"}"#)
            .unwrap();
        assert_eq!(p["resourceType"], "Patient");
    }

    #[test]
    fn resources_read_through_fhirbolts_enum_hold_no_decimal() {
        // `read::typed_record` gives these to fhirbolt's `Resource` enum, which wants decimals
        // as numbers, with the projection's decimals as strings: they must have none.
        fn has_decimal(members: &[Members]) -> bool {
            members
                .iter()
                .copied()
                .flatten()
                .any(|(_, shape)| match shape {
                    Shape::Decimal => true,
                    Shape::Complex(inner) => has_decimal(inner),
                    Shape::Primitive | Shape::Contained => false,
                })
        }
        for rt in [
            "MedicationAdministration",
            "MedicationRequest",
            "Medication",
        ] {
            assert!(!has_decimal(resource_members(rt).unwrap()), "{rt}");
        }
        assert!(has_decimal(resource_members("Observation").unwrap()));
    }

    #[test]
    fn primitives_are_copied_as_written_and_checked() {
        let p = project(
            r#"{"resourceType": "Observation", "status": "fi\"nal\u00e9",
            "effectiveTiming": {"event": ["2026-01-01", null, "2026-01-02"]},
            "valueQuantity": {"value": -1.250E-3}}"#,
        )
        .unwrap();
        assert_eq!(p["status"], "fi\"nal\u{e9}");
        assert_eq!(
            p["effectiveTiming"]["event"],
            json!(["2026-01-01", "2026-01-02"])
        );
        assert_eq!(p["valueQuantity"]["value"], "-1.250e-3");
        let e = pj(json!({"resourceType": "Observation",
            "effectiveTiming": {"event": ["2026", ["2027"]]}}))
        .unwrap_err();
        assert_eq!(e.path, "effectiveTiming.event[1]");
        assert_eq!(e.problem, "an array inside an array is not FHIR JSON");
        let e = pj(json!({"resourceType": "Observation", "status": {"a": 1}})).unwrap_err();
        assert_eq!(e.problem, "expected a primitive value, found an object");
    }

    #[test]
    fn the_first_fault_in_the_tables_order_is_reported() {
        let e =
            pj(json!({"resourceType": "Observation", "valueQuantity": 1, "code": 2})).unwrap_err();
        assert_eq!(e.path, "code");
        assert_eq!(e.problem, "expected an object, found a number");
        let e = pj(json!({"resourceType": "Observation",
            "component": [{"code": {"text": "a"}}, {"valueQuantity": {"value": {"x": 1}}}, 5]}))
        .unwrap_err();
        assert_eq!(e.path, "component[1].valueQuantity.value");
        assert_eq!(e.problem, "expected a primitive value, found an object");
    }
}
