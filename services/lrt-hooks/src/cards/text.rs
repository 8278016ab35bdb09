//! The protocol constants of the cards: identifiers that are not clinical text. Every word a
//! clinician reads is rule-set content ([`super::templates`]).

/// The card `extension` key (reverse-domain, checklist A.3).
pub const EXTENSION_KEY: &str = "org.lrt-cds";

/// `card.source.topic` code system.
pub const TOPIC_SYSTEM: &str = "urn:lrt:card-topic";

/// `card.overrideReasons` code system.
pub const OVERRIDE_SYSTEM: &str = "urn:lrt:override-reason";
