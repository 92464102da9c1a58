//! `SearchStore`: full-text indexes with filters, facets and ranked,
//! keyset-paged hits.
//!
//! A search store holds derived copies of records, one index per entity
//! route (named by a [`SearchIndex`]): the text of some string fields, and
//! typed values of the fields that may be filtered on or counted as facets.
//! Records themselves stay in the entity's primary store; a search returns
//! keys with scores, and the router hydrates them from the primary store.
//!
//! Text queries use the web-search syntax of PostgreSQL's
//! `websearch_to_tsquery`, parsed by [`TextQuery::parse`] for stores that
//! need it: words are all required, `"quoted words"` are phrases, `-word`
//! or `-"a phrase"` excludes, and `OR` between two terms makes either one
//! enough. An empty text matches every document (score 0).

use std::fmt;

use async_trait::async_trait;

use crate::entity::{FieldKind, Schema};
use crate::query::Filter;
use crate::{FilterCaps, Key, KeyKind, Record, Result, Value};

/// The text-search languages both search backends know: stemming and, on
/// PostgreSQL, the text search configuration of the same name.
pub const LANGUAGES: &[&str] = &[
    "simple",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "hungarian",
    "italian",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "spanish",
    "swedish",
    "turkish",
];

/// One search index: which entity it holds, which fields are full text,
/// which are filterable and which are counted as facets.
///
/// Analogous to [`EntityInfo`](super::EntityInfo): every call carries it, so
/// one store serves many indexes.
///
/// ```
/// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema, store::search::SearchIndex};
/// # static F: [FieldDef; 2] = [FieldDef::required("id", FieldKind::String), FieldDef::required("name", FieldKind::String)];
/// # static S: Schema = Schema { name: "product", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
/// let idx = SearchIndex::new(&S, &["name"]);
/// assert_eq!(idx.name, "product");
/// assert_eq!(idx.kind_of("name"), Some(FieldKind::String));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SearchIndex {
    /// The index name, unique within the store (default: the entity's table).
    pub name: String,
    /// The search store's name, for error messages.
    pub store: String,
    /// The entity's schema (field kinds, key kind).
    pub schema: &'static Schema,
    /// Full-text fields (strings), in order.
    pub fields: Vec<String>,
    /// Fields that filters may use.
    pub filters: Vec<String>,
    /// String fields whose values can be counted (facets).
    pub facets: Vec<String>,
    /// Text-search language (one of [`LANGUAGES`]; default `english`).
    pub language: String,
}

impl SearchIndex {
    /// An index named after the entity, over these text fields, no
    /// filters or facets, English stemming.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema, store::search::SearchIndex};
    /// # static F: [FieldDef; 1] = [FieldDef::required("id", FieldKind::String)];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// assert_eq!(SearchIndex::new(&S, &[]).language, "english");
    /// ```
    pub fn new(schema: &'static Schema, fields: &[&str]) -> Self {
        SearchIndex {
            name: schema.name.to_string(),
            store: String::new(),
            schema,
            fields: fields.iter().map(|f| f.to_string()).collect(),
            filters: Vec::new(),
            facets: Vec::new(),
            language: "english".into(),
        }
    }

    /// The entity name.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema, store::search::SearchIndex};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// assert_eq!(SearchIndex::new(&S, &[]).entity(), "t");
    /// ```
    pub fn entity(&self) -> &'static str {
        self.schema.name
    }

    /// A field's logical kind (the key field's from the key kind).
    ///
    /// ```
    /// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema, store::search::SearchIndex};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Int, partition_key: None, version: None, fields: &F };
    /// assert_eq!(SearchIndex::new(&S, &[]).kind_of("id"), Some(FieldKind::Int));
    /// ```
    pub fn kind_of(&self, field: &str) -> Option<FieldKind> {
        if field == self.schema.key {
            return Some(match self.schema.key_kind {
                KeyKind::Str => FieldKind::String,
                KeyKind::Int => FieldKind::Int,
                KeyKind::Uuid => FieldKind::Uuid,
            });
        }
        self.schema.field(field).map(|f| f.ty.kind)
    }

    /// Every field whose value the index keeps typed: filters, then the
    /// facets that are not filters too.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema, store::search::SearchIndex};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let mut i = SearchIndex::new(&S, &[]);
    /// i.filters = vec!["a".into()];
    /// i.facets = vec!["a".into(), "b".into()];
    /// assert_eq!(i.value_fields(), vec!["a", "b"]);
    /// ```
    pub fn value_fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.filters.iter().map(String::as_str).collect();
        for f in &self.facets {
            if !out.contains(&f.as_str()) {
                out.push(f);
            }
        }
        out
    }

    /// The document this index keeps of `record`: its key and only the
    /// fields the index uses (text fields, then filter and facet values).
    /// What a write through the router and the search projection both index.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, FieldKind, KeyKind, Key, Record, Schema, Value, store::search::SearchIndex};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let i = SearchIndex::new(&S, &["name"]);
    /// let mut r = Record::new(Key::from("a"));
    /// r.set("name", Value::from("Ada"));
    /// r.set("secret", Value::from("x"));
    /// let d = i.document(&r);
    /// assert_eq!(d.fields.len(), 1);
    /// assert_eq!(d.key, Key::from("a"));
    /// ```
    pub fn document(&self, record: &Record) -> Record {
        let values = self.value_fields();
        let mut doc = Record::new(record.key.clone());
        doc.fields = record
            .fields
            .iter()
            .filter(|(n, _)| {
                self.fields.iter().any(|f| f == n.as_ref()) || values.contains(&n.as_ref())
            })
            .cloned()
            .collect();
        doc
    }
}

/// A position in a ranked hit list: hits come in descending score, ties in
/// ascending key order; the next page holds the hits after this one.
///
/// ```
/// let c = polyrouter::store::search::SearchCursor { score: 1.5, key: "a".into() };
/// assert_eq!(c.key, polyrouter::Key::from("a"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SearchCursor {
    /// The last hit's score.
    pub score: f32,
    /// The last hit's key.
    pub key: Key,
}

/// A search as a store receives it: the filter already checked against the
/// index's filter fields and the store's [`SearchStore::filter_caps`].
///
/// ```
/// let r = polyrouter::store::search::SearchRequest::new("red shoes", 10);
/// assert_eq!(r.limit, 10);
/// assert!(r.after.is_none());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Web-search syntax text; empty matches everything.
    pub text: String,
    /// Filter over the index's filter fields.
    pub filter: Option<Filter>,
    /// Facet fields to count over all matching documents.
    pub facets: Vec<String>,
    /// At most this many values per facet (the most frequent).
    pub facet_limit: usize,
    /// At most this many hits.
    pub limit: usize,
    /// Only hits after this position.
    pub after: Option<SearchCursor>,
}

impl SearchRequest {
    /// A request for the first `limit` hits of `text`.
    ///
    /// ```
    /// let r = polyrouter::store::search::SearchRequest::new("", 5);
    /// assert_eq!(r.facet_limit, 100);
    /// ```
    pub fn new(text: impl Into<String>, limit: usize) -> Self {
        SearchRequest {
            text: text.into(),
            filter: None,
            facets: Vec::new(),
            facet_limit: 100,
            limit,
            after: None,
        }
    }
}

/// One hit: a key and its score (higher is better).
///
/// ```
/// let h = polyrouter::store::search::Hit { key: 7i64.into(), score: 0.5 };
/// assert_eq!(h.key, polyrouter::Key::Int(7));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The record's key.
    pub key: Key,
    /// Relevance; only comparable within one search.
    pub score: f32,
}

/// Counts of one facet field's values over every matching document, the
/// most frequent first (ties by value). Documents without a value are not
/// counted.
///
/// ```
/// let f = polyrouter::store::search::FacetCounts { field: "color".into(), counts: vec![("red".into(), 3)] };
/// assert_eq!(f.count("red"), 3);
/// assert_eq!(f.count("blue"), 0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FacetCounts {
    /// The facet field.
    pub field: String,
    /// `(value, documents)`, most frequent first.
    pub counts: Vec<(String, u64)>,
}

impl FacetCounts {
    /// The count of one value (0 when absent).
    ///
    /// ```
    /// let f = polyrouter::store::search::FacetCounts { field: "c".into(), counts: vec![] };
    /// assert_eq!(f.count("x"), 0);
    /// ```
    pub fn count(&self, value: &str) -> u64 {
        self.counts
            .iter()
            .find(|(v, _)| v == value)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }

    /// Sorts most frequent first, ties by value, and keeps `limit` values.
    ///
    /// ```
    /// let mut f = polyrouter::store::search::FacetCounts { field: "c".into(), counts: vec![("b".into(), 1), ("a".into(), 1), ("c".into(), 2)] };
    /// f.sort_and_truncate(2);
    /// assert_eq!(f.counts, vec![("c".to_string(), 2), ("a".to_string(), 1)]);
    /// ```
    pub fn sort_and_truncate(&mut self, limit: usize) {
        self.counts
            .sort_by(|(va, na), (vb, nb)| nb.cmp(na).then_with(|| va.cmp(vb)));
        self.counts.truncate(limit);
    }
}

/// What a store answers to a search.
///
/// ```
/// let r = polyrouter::store::search::SearchResults::default();
/// assert_eq!(r.total, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchResults {
    /// Hits in rank order: score descending, then key ascending.
    pub hits: Vec<Hit>,
    /// Documents matching text and filter (all pages).
    pub total: u64,
    /// One entry per requested facet, in request order.
    pub facets: Vec<FacetCounts>,
}

/// A store that keeps full-text indexes: reached with
/// [`Store::as_search`](super::Store::as_search) on stores whose
/// capabilities have `search`.
///
/// Writes become searchable within the store's documented refresh interval;
/// [`flush`](SearchStore::flush) makes everything written so far
/// searchable now.
#[async_trait]
pub trait SearchStore: Send + Sync {
    /// Creates the index or checks that an existing one has this layout.
    /// Idempotent.
    async fn ensure_index(&self, index: &SearchIndex) -> Result<()>;

    /// Adds or replaces documents (by key), taking the index's fields from
    /// each record; missing fields are null.
    async fn index(&self, index: &SearchIndex, docs: &[Record]) -> Result<()>;

    /// Removes documents by key; absent keys are fine.
    async fn remove(&self, index: &SearchIndex, keys: &[Key]) -> Result<()>;

    /// Removes every document of the index (a full re-index starts here).
    async fn clear(&self, index: &SearchIndex) -> Result<()>;

    /// Makes every write so far searchable.
    async fn flush(&self, index: &SearchIndex) -> Result<()>;

    /// Ranked hits, total count and facet counts.
    async fn search(&self, index: &SearchIndex, request: &SearchRequest) -> Result<SearchResults>;

    /// The filter operators searches may use.
    fn filter_caps(&self) -> FilterCaps;
}

/// One term of a text query: a word, or a phrase of several, maybe excluded.
///
/// ```
/// let q = polyrouter::store::search::TextQuery::parse("-\"big red\"");
/// assert_eq!(q.groups[0][0].words, vec!["big", "red"]);
/// assert!(q.groups[0][0].negated);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextTerm {
    /// The words (more than one: a phrase).
    pub words: Vec<String>,
    /// Excluded (`-word`).
    pub negated: bool,
}

/// A parsed web-search query: every group must match; a group matches when
/// any of its terms (joined by `OR`) does.
///
/// ```
/// use polyrouter::store::search::TextQuery;
/// let q = TextQuery::parse("shoes red OR blue -used");
/// assert_eq!(q.groups.len(), 3);
/// assert_eq!(q.groups[1].len(), 2);
/// assert!(q.groups[2][0].negated);
/// assert!(TextQuery::parse("   ").groups.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextQuery {
    /// AND of groups; each group an OR of terms.
    pub groups: Vec<Vec<TextTerm>>,
}

enum Tok {
    Term(TextTerm),
    Or,
}

impl TextQuery {
    /// Parses web-search syntax, like PostgreSQL's `websearch_to_tsquery`:
    /// words, `"phrases"`, `-exclusion`, `OR`. Never fails: stray quotes
    /// and operators are read as plain text.
    ///
    /// ```
    /// let q = polyrouter::store::search::TextQuery::parse("\"unclosed phrase");
    /// assert_eq!(q.groups[0][0].words, vec!["unclosed", "phrase"]);
    /// ```
    pub fn parse(text: &str) -> TextQuery {
        let mut toks = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            let negated = c == '-' && i + 1 < chars.len() && !chars[i + 1].is_whitespace();
            if negated {
                i += 1;
            }
            if chars[i] == '"' {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '"' {
                    end += 1;
                }
                let phrase: String = chars[start..end].iter().collect();
                let words: Vec<String> = phrase.split_whitespace().map(str::to_string).collect();
                if !words.is_empty() {
                    toks.push(Tok::Term(TextTerm { words, negated }));
                }
                i = end + 1;
                continue;
            }
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '"' {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word == "OR" && !negated {
                toks.push(Tok::Or);
            } else if !word.is_empty() {
                toks.push(Tok::Term(TextTerm {
                    words: vec![word],
                    negated,
                }));
            }
        }
        let mut groups: Vec<Vec<TextTerm>> = Vec::new();
        let mut join = false;
        for t in toks {
            match t {
                Tok::Or => join = !groups.is_empty(),
                Tok::Term(term) => {
                    match groups.last_mut() {
                        Some(g) if join => g.push(term),
                        _ => groups.push(vec![term]),
                    }
                    join = false;
                }
            }
        }
        TextQuery { groups }
    }
}

impl fmt::Display for TextTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negated {
            f.write_str("-")?;
        }
        if self.words.len() > 1 {
            write!(f, "\"{}\"", self.words.join(" "))
        } else {
            f.write_str(&self.words.join(" "))
        }
    }
}

/// The key as text, as search indexes that key documents by string keep it.
///
/// ```
/// use polyrouter::store::search::{key_from_text, key_text};
/// use polyrouter::{Key, KeyKind};
/// assert_eq!(key_text(&Key::Int(-4)), "-4");
/// assert_eq!(key_from_text("-4", KeyKind::Int), Some(Key::Int(-4)));
/// ```
pub fn key_text(key: &Key) -> String {
    match key {
        Key::Str(s) => s.clone(),
        Key::Int(i) => i.to_string(),
        Key::Uuid(u) => u.hyphenated().to_string(),
    }
}

/// Reads a key back from [`key_text`], given the entity's key kind.
///
/// ```
/// use polyrouter::{store::search::key_from_text, KeyKind};
/// assert_eq!(key_from_text("x", KeyKind::Int), None);
/// ```
pub fn key_from_text(text: &str, kind: KeyKind) -> Option<Key> {
    match kind {
        KeyKind::Str => Some(Key::Str(text.to_string())),
        KeyKind::Int => text.parse().ok().map(Key::Int),
        KeyKind::Uuid => text.parse().ok().map(Key::Uuid),
    }
}

/// The value of a document's field as the index keeps it, checked against
/// the field's kind: `None` for null or absent.
///
/// ```
/// use polyrouter::{store::search::string_value, Record, Value, Key};
/// let mut r = Record::new(Key::from("a"));
/// r.set("name", Value::from("x"));
/// assert_eq!(string_value(&r, "name"), Some("x"));
/// assert_eq!(string_value(&r, "other"), None);
/// ```
pub fn string_value<'a>(doc: &'a Record, field: &str) -> Option<&'a str> {
    match doc.get(field) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}
