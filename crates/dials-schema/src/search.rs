//! Search over settings of every service: what `GET /api/v1/search` answers.
//!
//! Matching is case-insensitive substring matching over a setting's key (its pointer, with or
//! without the leading slash, and its name alone), title, description and service name. Results
//! are ranked by how they matched — exact key, key prefix, key substring, title, then
//! description or service — and within a rank by service, then key. A query of several words
//! that matches nowhere as a whole still finds items that contain every word somewhere; they
//! rank last. An empty query matches everything; the filters (service, complexity, type) always
//! apply.
//!
//! [`SearchIndex`] lowercases every field once, so a query costs one pass of substring tests
//! over precomputed strings and a sort of the hits by precomputed order.

use dials_domain::KeyPath;
use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Complexity, Setting};

/// The mask shown in place of a secret value.
pub use dials_domain::SECRET_MASK;

/// One setting of one service, as search shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchItem {
    /// The service the setting belongs to.
    pub service: String,
    /// The setting's key.
    pub key: KeyPath,
    /// Short human name.
    pub title: Option<String>,
    /// One-line explanation.
    pub description: Option<String>,
    /// JSON type, as in [`Setting::type_`].
    #[serde(rename = "type")]
    pub type_: String,
    /// How much a person has to know to change it.
    pub complexity: Complexity,
    /// Whether the value is secret (and so shown masked).
    pub secret: bool,
    /// Whether a change takes effect only after the service restarts.
    pub restart_required: bool,
    /// The current value; [`SECRET_MASK`] for a secret that is set; `None` when the document
    /// has no value and the schema no default.
    pub value: Option<Value>,
    /// Whether `value` is the schema's default (or the key is unset).
    pub is_default: bool,
}

impl SearchItem {
    /// The item for `setting` of `service` whose current value (after defaults) is `value`.
    /// A secret's value is replaced by [`SECRET_MASK`], because search is open to viewers.
    pub fn from_setting(service: &str, setting: &Setting, value: Option<&Value>) -> Self {
        let is_default = match (value, &setting.default) {
            (None, _) => true,
            (Some(v), Some(default)) => v == default,
            (Some(_), None) => false,
        };
        let value = match value {
            Some(v) if setting.secret && !v.is_null() => {
                Some(Value::String(SECRET_MASK.to_owned()))
            }
            Some(v) => Some(v.clone()),
            None => setting.default.clone(),
        };
        Self {
            service: service.to_owned(),
            key: setting.key.clone(),
            title: setting.title.clone(),
            description: setting.description.clone(),
            type_: setting.type_.clone(),
            complexity: setting.complexity,
            secret: setting.secret,
            restart_required: setting.restart_required,
            value,
            is_default,
        }
    }
}

/// What to search for: `GET /api/v1/search?q=&service=&complexity=&type=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    /// Text to find in key, title, description or service name; empty matches all.
    pub q: String,
    /// Only this service.
    pub service: Option<String>,
    /// Only settings of this complexity.
    pub complexity: Option<Complexity>,
    /// Only settings of this JSON type (`string`, `integer`, …).
    #[serde(rename = "type")]
    pub type_: Option<String>,
}

impl SearchQuery {
    /// A query for `q` with no filters.
    pub fn text(q: impl Into<String>) -> Self {
        Self {
            q: q.into(),
            ..Self::default()
        }
    }
}

/// How an item matched, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// The query is the key's name or its pointer.
    ExactKey,
    /// The key's name or pointer starts with the query.
    KeyPrefix,
    /// The key's pointer contains the query.
    KeySubstring,
    /// The title contains the query.
    Title,
    /// The description or the service name contains the query.
    DescriptionOrService,
    /// Every word of a multi-word query appears somewhere.
    AllWords,
}

impl Rank {
    /// How many ranks there are: one result bucket each.
    const COUNT: usize = Rank::AllWords as usize + 1;
}

/// An item's searchable fields, lowercased once.
#[derive(Debug, Clone)]
struct Prepared {
    service: String,
    /// The pointer, e.g. `/mqtt/host`.
    key: String,
    /// The last token, unescaped, e.g. `host`.
    name: String,
    title: String,
    description: String,
    type_: String,
    complexity: Complexity,
}

impl Prepared {
    fn new(item: &SearchItem) -> Self {
        Self {
            service: normalise(&item.service),
            key: normalise(item.key.as_str()),
            name: normalise(&item.key.tokens().last().unwrap_or_default()),
            title: normalise(item.title.as_deref().unwrap_or_default()),
            description: normalise(item.description.as_deref().unwrap_or_default()),
            type_: normalise(&item.type_),
            complexity: item.complexity,
        }
    }

    /// The key without its leading slash, as people type it (`mqtt/host`).
    fn bare_key(&self) -> &str {
        self.key.strip_prefix('/').unwrap_or(&self.key)
    }

    fn passes(&self, filters: &Filters<'_>) -> bool {
        filters.service.is_none_or(|s| self.service == s)
            && filters.complexity.is_none_or(|c| self.complexity == c)
            && filters.type_.is_none_or(|t| self.type_ == t)
    }

    /// How the whole query `q` (non-empty, normalised) matches, if it does; `finder` looks
    /// for `q`.
    fn rank(&self, q: &str, bare_q: &str, finder: &Finder<'_>) -> Option<Rank> {
        let contains = |field: &str| finder.find(field.as_bytes()).is_some();
        if self.name == q || self.bare_key() == bare_q {
            Some(Rank::ExactKey)
        } else if self.name.starts_with(q) || self.bare_key().starts_with(bare_q) {
            Some(Rank::KeyPrefix)
        } else if contains(&self.key) {
            Some(Rank::KeySubstring)
        } else if contains(&self.title) {
            Some(Rank::Title)
        } else if contains(&self.description) || contains(&self.service) {
            Some(Rank::DescriptionOrService)
        } else {
            None
        }
    }
}

/// A query's filters, normalised once.
#[derive(Debug)]
struct Filters<'q> {
    service: Option<&'q str>,
    complexity: Option<Complexity>,
    type_: Option<&'q str>,
}

/// Separates fields and items in the search text, so no match spans two of them.
const SEPARATOR: char = '\0';

/// Items prepared for searching; build once per set of items, query many times.
#[derive(Debug, Clone, Default)]
pub struct SearchIndex {
    items: Vec<SearchItem>,
    prepared: Vec<Prepared>,
    /// Item indices in (service, key) order: the order within a rank.
    by_name: Vec<usize>,
    /// Every item's key, title, description and service, lowercased, in item order, each
    /// field followed by [`SEPARATOR`]. One substring scan of this finds every candidate.
    text: String,
    /// Where each item's fields start in `text`, ascending.
    starts: Vec<usize>,
}

impl SearchIndex {
    /// Prepares `items` for searching.
    pub fn new(items: Vec<SearchItem>) -> Self {
        let prepared: Vec<Prepared> = items.iter().map(Prepared::new).collect();
        let mut by_name: Vec<usize> = (0..items.len()).collect();
        by_name.sort_by(|&a, &b| {
            (&items[a].service, &items[a].key).cmp(&(&items[b].service, &items[b].key))
        });
        let mut text = String::new();
        let mut starts = Vec::with_capacity(items.len());
        for p in &prepared {
            starts.push(text.len());
            for field in [&p.key, &p.title, &p.description, &p.service] {
                text.push_str(field);
                text.push(SEPARATOR);
            }
        }
        Self {
            items,
            prepared,
            by_name,
            text,
            starts,
        }
    }

    /// The items, in the order they were given.
    pub fn items(&self) -> &[SearchItem] {
        &self.items
    }

    /// How many items the index holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the index holds no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items matching `query`, best match first.
    pub fn search(&self, query: &SearchQuery) -> Vec<&SearchItem> {
        self.positions(query)
            .into_iter()
            .map(|i| &self.items[i])
            .collect()
    }

    /// The positions of the items matching `query`, best match first.
    fn positions(&self, query: &SearchQuery) -> Vec<usize> {
        let service = query.service.as_deref().map(normalise);
        let type_ = query.type_.as_deref().map(normalise);
        let filters = Filters {
            service: service.as_deref(),
            complexity: query.complexity,
            type_: type_.as_deref(),
        };
        let passing = self
            .by_name
            .iter()
            .copied()
            .filter(|&i| self.prepared[i].passes(&filters));

        let q = normalise(&query.q);
        let bare_q = q.strip_prefix('/').unwrap_or(&q);
        if bare_q.is_empty() {
            // No text to match (or just "/", which every pointer starts with).
            return passing.collect();
        }

        // Only items whose text contains the query (without a leading slash, which every way
        // of matching implies) can rank; only those containing every word can match by words.
        let whole = self.containing(bare_q);
        let finder = Finder::new(q.as_bytes());
        let words: Vec<&str> = q.split_whitespace().collect();
        let every_word = if words.len() > 1 {
            let mut counts = vec![0_usize; self.items.len()];
            for word in &words {
                for (count, hit) in counts.iter_mut().zip(self.containing(word)) {
                    *count += usize::from(hit);
                }
            }
            counts.into_iter().map(|c| c == words.len()).collect()
        } else {
            Vec::new()
        };

        let mut ranks: [Vec<usize>; Rank::COUNT] = Default::default();
        for i in passing {
            let rank = if whole[i] {
                self.prepared[i].rank(&q, bare_q, &finder)
            } else {
                None
            };
            let rank = rank.or_else(|| {
                every_word
                    .get(i)
                    .copied()
                    .filter(|&all| all)
                    .map(|_| Rank::AllWords)
            });
            if let Some(rank) = rank {
                ranks[rank as usize].push(i);
            }
        }
        ranks.into_iter().flatten().collect()
    }

    /// For each item, whether its text contains `needle`.
    fn containing(&self, needle: &str) -> Vec<bool> {
        let mut hits = vec![false; self.items.len()];
        let finder = Finder::new(needle.as_bytes());
        let text = self.text.as_bytes();
        let mut from = 0;
        while let Some(found) = text.get(from..).and_then(|rest| finder.find(rest)) {
            let item = self.starts.partition_point(|&start| start <= from + found) - 1;
            hits[item] = true;
            // One hit per item is enough: go on from the next item's text.
            match self.starts.get(item + 1) {
                Some(&next) => from = next,
                None => break,
            }
        }
        hits
    }
}

/// Searches `items` once, without keeping an index; build a [`SearchIndex`] to query the same
/// items repeatedly.
pub fn search<'a>(items: &'a [SearchItem], query: &SearchQuery) -> Vec<&'a SearchItem> {
    SearchIndex::new(items.to_vec())
        .positions(query)
        .into_iter()
        .map(|i| &items[i])
        .collect()
}

/// Text as matched: trimmed, lowercased, without the field separator.
fn normalise(text: &str) -> String {
    let lower = text.trim().to_lowercase();
    if lower.contains(SEPARATOR) {
        lower.replace(SEPARATOR, "")
    } else {
        lower
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(service: &str, key: &str, title: &str, description: &str) -> SearchItem {
        SearchItem {
            service: service.to_owned(),
            key: KeyPath::parse(key).expect("test keys are pointers"),
            title: Some(title.to_owned()),
            description: Some(description.to_owned()),
            type_: "string".to_owned(),
            complexity: Complexity::Advanced,
            secret: false,
            restart_required: false,
            value: None,
            is_default: true,
        }
    }

    fn found(index: &SearchIndex, query: &SearchQuery) -> Vec<String> {
        index
            .search(query)
            .iter()
            .map(|i| format!("{}{}", i.service, i.key))
            .collect()
    }

    #[test]
    fn matches_the_pointer_with_or_without_its_slash_and_the_name_alone() {
        let index = SearchIndex::new(vec![item("global", "/mqtt/host", "Broker host", "")]);
        for q in ["/mqtt/host", "mqtt/host", "HOST", "Mqtt"] {
            assert_eq!(
                found(&index, &SearchQuery::text(q)),
                ["global/mqtt/host"],
                "{q}"
            );
        }
        assert!(found(&index, &SearchQuery::text("mqtt/port")).is_empty());
    }

    #[test]
    fn a_match_never_spans_two_fields_or_two_items() {
        let index = SearchIndex::new(vec![
            item("svc", "/ab", "cd", "ef"),
            item("svc", "/gh", "", ""),
        ]);
        for q in ["abcd", "b\0c", "efsvc", "svc/gh"] {
            assert!(found(&index, &SearchQuery::text(q)).is_empty(), "{q}");
        }
    }

    #[test]
    fn a_bare_slash_matches_every_key_like_an_empty_query() {
        let index = SearchIndex::new(vec![item("b", "/x", "", ""), item("a", "/y", "", "")]);
        assert_eq!(found(&index, &SearchQuery::text("/")), ["a/y", "b/x"]);
        assert_eq!(found(&index, &SearchQuery::text("  ")), ["a/y", "b/x"]);
    }

    #[test]
    fn finds_every_item_once_even_when_two_share_a_key() {
        let index = SearchIndex::new(vec![item("a", "/x", "x", "x"), item("a", "/x", "x", "x")]);
        assert_eq!(found(&index, &SearchQuery::text("x")).len(), 2);
    }

    #[test]
    fn finds_items_containing_every_word_of_a_query_last() {
        let index = SearchIndex::new(vec![
            item("router", "/router_wake_window_sec", "Wake window", ""),
            item("router", "/wake_window", "", ""),
            item("router", "/window", "", "how long the wake word counts"),
        ]);
        assert_eq!(
            found(&index, &SearchQuery::text("wake window")),
            [
                "router/router_wake_window_sec",
                "router/wake_window",
                "router/window"
            ]
        );
    }

    #[test]
    fn masks_a_secret_value_and_knows_a_default() {
        let setting = Setting {
            key: KeyPath::parse("/key").expect("pointer"),
            type_: "string".to_owned(),
            nullable: false,
            title: None,
            description: None,
            help: None,
            complexity: Complexity::Simple,
            secret: true,
            restart_required: false,
            env: None,
            global: None,
            required: false,
            default: Some(json!("")),
            enum_values: None,
            minimum: None,
            maximum: None,
            exclusive_minimum: None,
            exclusive_maximum: None,
            min_length: None,
            max_length: None,
            pattern: None,
            format: None,
        };
        let set = SearchItem::from_setting("llm", &setting, Some(&json!("sk-123")));
        assert_eq!(set.value, Some(json!(SECRET_MASK)));
        assert!(!set.is_default);
        let unset = SearchItem::from_setting("llm", &setting, None);
        assert_eq!(unset.value, Some(json!("")));
        assert!(unset.is_default);
    }

    #[test]
    fn reads_a_query_string_shape() {
        let query: SearchQuery =
            serde_json::from_value(json!({"q": "port", "complexity": "simple", "type": "integer"}))
                .expect("deserializes");
        assert_eq!(query.complexity, Some(Complexity::Simple));
        assert_eq!(query.type_.as_deref(), Some("integer"));
        assert_eq!(query.service, None);
    }
}
