//! The checks of a window's link and fault — `link`, `type`, `stream`,
//! `attributes` (and a refused `toxicity`) — shared by `[[window]]` and
//! `[[random]]`: each value against Toxiproxy's vocabulary and units.

use super::{comma_list, Checker};
use crate::links;
use crate::proxy::toxic::{Stream, Toxic, ToxicKind};
use crate::scenario::model::{Attributes, Str, Val};
use crate::scenario::schedule::Fault;
use crate::scenario::spec::{attributes_of, Entry};

impl Checker<'_> {
    pub(super) fn link(&mut self, entry: &Entry, link: Option<&Str>) -> Option<&'static str> {
        let Some(link) = link else {
            self.problem(entry.offset, format!("{entry}: missing \"link\" (one of: {})", comma_list(links::ALL)));
            return None;
        };
        let found = links::ALL.into_iter().find(|l| l == link.get_ref());
        if found.is_none() {
            self.problem(
                link.span().start,
                format!("{entry}: unknown link \"{}\" (known: {})", link.get_ref(), comma_list(links::ALL)),
            );
        }
        found
    }

    /// A window's fault: `type`, `stream`, `attributes` (and a refused
    /// `toxicity`), shared by `[[window]]` and `[[random]]`.
    pub(super) fn fault(
        &mut self,
        entry: &Entry,
        kind: Option<&Str>,
        stream: Option<&Str>,
        attributes: Option<&Attributes>,
        toxicity: Option<&Val>,
    ) -> Option<Fault> {
        if let Some(t) = toxicity {
            // Toxiproxy draws toxicity from its own unseeded generator, so a
            // run could not be repeated. Seeded [[random]] windows give
            // randomness that a --seed reproduces.
            self.problem(
                t.span().start,
                format!(
                    "{entry}: \"toxicity\" is not supported: a toxic always applies to every connection \
                     (toxicity 1.0) because Toxiproxy's own randomness cannot be seeded; use [[random]] \
                     windows for randomness that --seed reproduces"
                ),
            );
        }
        let known_types = || comma_list(ToxicKind::TYPE_NAMES.into_iter().chain(["down"]));
        let Some(kind) = kind else {
            self.problem(entry.offset, format!("{entry}: missing \"type\" (one of: {})", known_types()));
            return None;
        };
        let type_name = kind.get_ref().as_str();
        if type_name == "down" {
            if let Some(s) = stream {
                self.problem(
                    s.span().start,
                    format!("{entry}: \"down\" disables the proxy in both directions; it takes no \"stream\""),
                );
            }
            if let Some(a) = attributes {
                self.problem(
                    a.span().start,
                    format!("{entry}: \"down\" disables the proxy; it takes no \"attributes\""),
                );
            }
            return Some(Fault::Down);
        }
        let Some(known_attributes) = attributes_of(type_name) else {
            self.problem(
                kind.span().start,
                format!("{entry}: unknown type \"{type_name}\" (known: {})", known_types()),
            );
            return None;
        };
        let stream = match stream.map(|s| (s, s.get_ref().as_str())) {
            None => Stream::Downstream,
            Some((_, "downstream")) => Stream::Downstream,
            Some((_, "upstream")) => Stream::Upstream,
            Some((s, other)) => {
                self.problem(
                    s.span().start,
                    format!("{entry}: unknown stream \"{other}\" (known: upstream, downstream)"),
                );
                return None;
            }
        };
        let mut values = serde_json::Map::new();
        let mut ok = true;
        for (name, value) in attributes.iter().flat_map(|a| a.get_ref()) {
            let Some((_, unit)) = known_attributes.iter().find(|(n, _)| n == name.get_ref()) else {
                self.problem(
                    name.span().start,
                    format!(
                        "{entry}: {type_name} has no attribute \"{}\" (it has: {})",
                        name.get_ref(),
                        comma_list(known_attributes.iter().map(|(n, _)| *n))
                    ),
                );
                ok = false;
                continue;
            };
            match value.get_ref() {
                toml::Value::Integer(n) if *n >= 0 => {
                    values.insert(name.get_ref().clone(), (*n).into());
                }
                other => {
                    self.problem(
                        value.span().start,
                        format!(
                            "{entry}: attribute \"{}\" of {type_name} must be a whole number ≥ 0 ({unit}), not {other}",
                            name.get_ref()
                        ),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        // Missing attributes default to 0, as in Toxiproxy; ToxicKind's serde
        // shape does that for us.
        let json = serde_json::json!({ "type": type_name, "attributes": values });
        let kind: ToxicKind = serde_json::from_value(json)
            .expect("names and values were checked against ATTRIBUTES, which a test matches to ToxicKind");
        Some(Fault::Toxic { toxic: Toxic::new(kind, stream) })
    }
}
