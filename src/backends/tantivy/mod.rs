//! `tantivy`: an embedded full-text search index in a directory; a
//! search-only store.
//!
//! ```toml
//! [stores.search]
//! kind = "tantivy"
//! path = "data/search"
//! commit_interval = "1s"
//! ```
#![doc = include_str!("docs.md")]

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::tantivy::collector::Count;
use ::tantivy::directory::MmapDirectory;
use ::tantivy::query::{BooleanQuery, Occur, Query};
use ::tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, INDEXED, IndexRecordOption, STRING, Schema,
    TextFieldIndexing, TextOptions,
};
use ::tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};
use ::tantivy::{DateTime, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use async_trait::async_trait;
use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};

use crate::config::StoreSpec;
use crate::query::Filter;
use crate::store::search::{
    FacetCounts, Hit, SearchIndex, SearchRequest, SearchResults, SearchStore, key_from_text,
    key_text,
};
use crate::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Error, FieldKind, FilterCaps, Key, Record, Result, Store, Value};

mod collect;
mod config;
mod query;
#[cfg(test)]
mod tests;

pub use config::TantivyConfig;

use collect::{Facets, Ranked, TopAfter};
use query::{FilterError, ValueField};

/// The key column of every index.
pub(crate) const KEY_FIELD: &str = "pr_key";

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let cfg: TantivyConfig = spec.parse()?;
        if let Err((key, msg)) = cfg.validate() {
            return Err(spec.error(&[key], msg));
        }
        let store =
            TantivyStore::open_inner(&spec.name, cfg).map_err(|m| spec.error(&["path"], m))?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    })
}

/// A search-only store: one tantivy index per entity search route, in
/// sub-directories of `path`. See the [module documentation](self).
pub struct TantivyStore {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    cfg: TantivyConfig,
    caps: Capabilities,
    indexes: RwLock<HashMap<String, Arc<Idx>>>,
    opening: Mutex<()>,
    committer: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = self.committer.get_mut().take() {
            t.abort();
        }
    }
}

/// One open index.
struct Idx {
    layout: SearchIndex,
    writer: RwLock<IndexWriter>,
    reader: IndexReader,
    analyzer: TextAnalyzer,
    key: Field,
    text: Vec<(String, Field)>,
    values: Vec<ValueField>,
    /// Writes not yet committed.
    pending: AtomicUsize,
}

impl fmt::Debug for TantivyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TantivyStore")
            .field("name", &self.inner.name)
            .field("path", &self.inner.cfg.path)
            .finish_non_exhaustive()
    }
}

/// The tantivy tokenizer name for a language.
fn tokenizer_name(language: &str) -> String {
    format!("pr_{language}")
}

fn analyzer(language: &str) -> Option<TextAnalyzer> {
    let lang = match language {
        "simple" => None,
        "danish" => Some(Language::Danish),
        "dutch" => Some(Language::Dutch),
        "english" => Some(Language::English),
        "finnish" => Some(Language::Finnish),
        "french" => Some(Language::French),
        "german" => Some(Language::German),
        "hungarian" => Some(Language::Hungarian),
        "italian" => Some(Language::Italian),
        "norwegian" => Some(Language::Norwegian),
        "portuguese" => Some(Language::Portuguese),
        "romanian" => Some(Language::Romanian),
        "russian" => Some(Language::Russian),
        "spanish" => Some(Language::Spanish),
        "swedish" => Some(Language::Swedish),
        "turkish" => Some(Language::Turkish),
        _ => return None,
    };
    let base = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser);
    Some(match lang {
        Some(l) => base.filter(Stemmer::new(l)).build(),
        None => base.build(),
    })
}

/// Whether two layouts build the same index (the schemas may be different
/// objects: the Rust type's, or one built from the configuration).
fn same_layout(a: &SearchIndex, b: &SearchIndex) -> bool {
    let kinds = |l: &SearchIndex| -> Vec<Option<FieldKind>> {
        l.value_fields().into_iter().map(|f| l.kind_of(f)).collect()
    };
    a.name == b.name
        && a.fields == b.fields
        && a.filters == b.filters
        && a.facets == b.facets
        && a.language == b.language
        && a.schema.key_kind == b.schema.key_kind
        && kinds(a) == kinds(b)
}

/// A safe directory name: letters, digits, `_` and `-`.
fn check_index_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty()
        || name.len() > 200
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "index name {name:?} cannot be a directory name: use letters, digits, `_` and `-` (set the entity's `table`)"
        ));
    }
    Ok(())
}

/// The tantivy schema of a layout, and its fields.
fn build_schema(layout: &SearchIndex) -> std::result::Result<Schema, String> {
    let mut b = Schema::builder();
    b.add_text_field(KEY_FIELD, STRING | FAST);
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(&tokenizer_name(&layout.language))
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    for f in &layout.fields {
        b.add_text_field(
            &format!("t_{f}"),
            TextOptions::default().set_indexing_options(indexing.clone()),
        );
    }
    for f in layout.value_fields() {
        let name = format!("f_{f}");
        match layout.kind_of(f) {
            Some(FieldKind::String | FieldKind::Uuid) => {
                b.add_text_field(&name, STRING | FAST);
            }
            Some(FieldKind::Int) => {
                b.add_i64_field(&name, INDEXED | FAST);
            }
            Some(FieldKind::Float) => {
                b.add_f64_field(&name, INDEXED | FAST);
            }
            Some(FieldKind::Bool) => {
                b.add_bool_field(&name, INDEXED | FAST);
            }
            Some(FieldKind::Timestamp) => {
                b.add_date_field(
                    &name,
                    DateOptions::default()
                        .set_indexed()
                        .set_fast()
                        .set_precision(DateTimePrecision::Microseconds),
                );
            }
            Some(k) => {
                return Err(format!(
                    "field `{f}` is a {} field; search filters and facets take string, int, float, bool, timestamp or uuid fields",
                    k.name()
                ));
            }
            None => return Err(format!("field `{f}` is not in the entity's schema")),
        }
    }
    Ok(b.build())
}

impl TantivyStore {
    /// Opens (creating the directory when missing) a store from options.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::backends::tantivy::{TantivyConfig, TantivyStore};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = TantivyStore::open("search", TantivyConfig::new(dir.path())).unwrap();
    /// assert!(polyrouter::Store::as_search(&store).is_some());
    /// # });
    /// ```
    pub fn open(name: &str, config: TantivyConfig) -> Result<TantivyStore> {
        if let Err((key, msg)) = config.validate() {
            return Err(Error::config(
                "<code>",
                &format!("stores.{name}.{key}"),
                msg,
            ));
        }
        Self::open_inner(name, config)
            .map_err(|m| Error::config("<code>", &format!("stores.{name}.path"), m))
    }

    fn open_inner(name: &str, cfg: TantivyConfig) -> std::result::Result<TantivyStore, String> {
        std::fs::create_dir_all(&cfg.path).map_err(|e| {
            format!(
                "cannot create the index directory {}: {e}",
                cfg.path.display()
            )
        })?;
        let every = cfg.commit_interval.0;
        let inner = Arc::new(Inner {
            name: name.into(),
            cfg,
            caps: crate::backends::kind_caps::tantivy(),
            indexes: RwLock::new(HashMap::new()),
            opening: Mutex::new(()),
            committer: Mutex::new(None),
        });
        // The commit policy's clock: runs only inside a tokio runtime.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let task = rt.spawn(commit_loop(Arc::downgrade(&inner), every));
            *inner.committer.lock() = Some(task.abort_handle());
        }
        Ok(TantivyStore { inner })
    }

    /// The directory of one index.
    fn dir(&self, index: &str) -> PathBuf {
        self.inner.cfg.path.join(index)
    }

    fn unsupported_records(&self, entity: &str) -> Error {
        Error::unsupported(
            &self.inner.name,
            entity,
            "entity records (a tantivy store only holds search indexes: route the entity's `store` to a record store and name this one in `search.store`)",
        )
    }

    fn err(&self, index: &SearchIndex, e: impl fmt::Display) -> Error {
        Error::backend(
            &self.inner.name,
            index.entity(),
            format!("tantivy index `{}`: {e}", index.name),
        )
    }

    /// The open index for a layout, opening or creating it on first use.
    fn idx(&self, layout: &SearchIndex) -> Result<Arc<Idx>> {
        if let Some(i) = self.inner.indexes.read().get(&layout.name) {
            if same_layout(&i.layout, layout) {
                return Ok(i.clone());
            }
            return Err(Error::invalid_input(
                &self.inner.name,
                layout.entity(),
                format!(
                    "index `{}` is already open with another layout (fields, filters, facets or language)",
                    layout.name
                ),
            ));
        }
        let _g = self.inner.opening.lock();
        if let Some(i) = self.inner.indexes.read().get(&layout.name) {
            return Ok(i.clone());
        }
        let idx = Arc::new(self.open_index(layout)?);
        self.inner
            .indexes
            .write()
            .insert(layout.name.clone(), idx.clone());
        Ok(idx)
    }

    fn open_index(&self, layout: &SearchIndex) -> Result<Idx> {
        let cfg_err = |m: String| {
            Error::config(
                "",
                &format!("entities.{}.search", layout.entity()),
                format!("store `{}`: {m}", self.inner.name),
            )
        };
        check_index_name(&layout.name).map_err(cfg_err)?;
        let mut analyzer = analyzer(&layout.language).ok_or_else(|| {
            cfg_err(format!(
                "unknown language `{}`; known: {}",
                layout.language,
                crate::store::search::LANGUAGES.join(", ")
            ))
        })?;
        let schema = build_schema(layout).map_err(cfg_err)?;
        let dir = self.dir(&layout.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| self.err(layout, format!("cannot create {}: {e}", dir.display())))?;
        let mmap = MmapDirectory::open(&dir).map_err(|e| self.err(layout, e))?;
        let exists = Index::exists(&mmap).map_err(|e| self.err(layout, e))?;
        let index = if exists {
            let index = Index::open(mmap).map_err(|e| self.err(layout, e))?;
            if index.schema() != schema {
                return Err(cfg_err(format!(
                    "the index in {} was built with another layout (fields, filters, facets or language); delete that directory and run `polyrouter reindex {}`",
                    dir.display(),
                    layout.entity()
                )));
            }
            index
        } else {
            Index::create(mmap, schema.clone(), Default::default())
                .map_err(|e| self.err(layout, e))?
        };
        index
            .tokenizers()
            .register(&tokenizer_name(&layout.language), analyzer.clone());
        let writer: IndexWriter = index
            .writer_with_num_threads(1, self.inner.cfg.writer_memory_mb * 1_000_000)
            .map_err(|e| match e {
                ::tantivy::TantivyError::LockFailure(..) => Error::unavailable(
                    &self.inner.name,
                    layout.entity(),
                    format!(
                        "the index in {} is open for writing elsewhere (another process or store on the same path); one writer at a time",
                        dir.display()
                    ),
                ),
                e => self.err(layout, e),
            })?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| self.err(layout, e))?;
        let field = |n: &str| schema.get_field(n).map_err(|e| self.err(layout, e));
        let text = layout
            .fields
            .iter()
            .map(|f| Ok((f.clone(), field(&format!("t_{f}"))?)))
            .collect::<Result<Vec<_>>>()?;
        let values = layout
            .value_fields()
            .into_iter()
            .map(|f| {
                let tantivy_name = format!("f_{f}");
                Ok(ValueField {
                    name: f.to_string(),
                    kind: layout.kind_of(f).unwrap_or(FieldKind::String),
                    field: field(&tantivy_name)?,
                    tantivy_name,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Warm the analyzer once so a broken tokenizer fails here.
        let _ = analyzer.token_stream("warm up");
        Ok(Idx {
            layout: layout.clone(),
            writer: RwLock::new(writer),
            reader,
            analyzer,
            key: field(KEY_FIELD)?,
            text,
            values,
            pending: AtomicUsize::new(0),
        })
    }

    /// The document for a record; `Err` says which field does not fit.
    fn document(idx: &Idx, rec: &Record) -> std::result::Result<TantivyDocument, String> {
        let mut d = TantivyDocument::new();
        d.add_text(idx.key, key_text(&rec.key));
        for (name, f) in &idx.text {
            match rec.get(name) {
                Some(Value::String(s)) => d.add_text(*f, s),
                None | Some(Value::Null) => {}
                Some(v) => {
                    return Err(format!(
                        "text field `{name}` holds a {} value",
                        v.type_name()
                    ));
                }
            }
        }
        for vf in &idx.values {
            let v = rec.get(&vf.name).unwrap_or(&Value::Null);
            match (vf.kind, v) {
                (_, Value::Null) => {}
                (FieldKind::String, Value::String(s)) => d.add_text(vf.field, s),
                (FieldKind::Uuid, Value::Uuid(u)) => {
                    d.add_text(vf.field, u.hyphenated().to_string())
                }
                (FieldKind::Int, Value::I64(i)) => d.add_i64(vf.field, *i),
                (FieldKind::Float, Value::F64(x)) => d.add_f64(vf.field, *x),
                (FieldKind::Bool, Value::Bool(b)) => d.add_bool(vf.field, *b),
                (FieldKind::Timestamp, Value::Timestamp(t)) => d.add_date(
                    vf.field,
                    DateTime::from_timestamp_micros(t.timestamp_micros()),
                ),
                (k, v) => {
                    return Err(format!(
                        "field `{}` is a {} field but holds a {} value",
                        vf.name,
                        k.name(),
                        v.type_name()
                    ));
                }
            }
        }
        Ok(d)
    }

    /// Counts writes and commits when `commit_docs` are pending.
    async fn wrote(&self, index: &SearchIndex, idx: &Arc<Idx>, n: usize) -> Result<()> {
        let pending = idx.pending.fetch_add(n, Ordering::SeqCst) + n;
        if pending >= self.inner.cfg.commit_docs {
            self.commit(index, idx).await?;
        }
        Ok(())
    }

    async fn commit(&self, index: &SearchIndex, idx: &Arc<Idx>) -> Result<()> {
        let idx = idx.clone();
        tokio::task::spawn_blocking(move || commit_now(&idx))
            .await
            .map_err(|e| self.err(index, e))?
            .map_err(|e| self.err(index, e))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        index: &SearchIndex,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| self.err(index, e))?
    }
}

/// Commits pending writes and makes them visible to searches.
fn commit_now(idx: &Idx) -> ::tantivy::Result<()> {
    let n = idx.pending.swap(0, Ordering::SeqCst);
    if n == 0 {
        return Ok(());
    }
    let res = idx
        .writer
        .write()
        .commit()
        .and_then(|_| idx.reader.reload());
    if res.is_err() {
        idx.pending.fetch_add(n, Ordering::SeqCst);
    }
    res
}

/// Commits every index with pending writes, every `every`.
async fn commit_loop(inner: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: nothing is pending yet
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let due: Vec<Arc<Idx>> = inner
            .indexes
            .read()
            .values()
            .filter(|i| i.pending.load(Ordering::SeqCst) > 0)
            .cloned()
            .collect();
        let name = inner.name.clone();
        drop(inner);
        for idx in due {
            let res = tokio::task::spawn_blocking(move || commit_now(&idx)).await;
            if let Ok(Err(e)) | Err(e) =
                res.map_err(|e| ::tantivy::TantivyError::InternalError(e.to_string()))
            {
                tracing::warn!(store = %name, "tantivy commit failed (retried next tick): {e}");
            }
        }
    }
}

#[async_trait]
impl SearchStore for TantivyStore {
    async fn ensure_index(&self, index: &SearchIndex) -> Result<()> {
        self.idx(index).map(|_| ())
    }

    async fn index(&self, index: &SearchIndex, docs: &[Record]) -> Result<()> {
        if docs.is_empty() {
            return Ok(());
        }
        let idx = self.idx(index)?;
        let mut built = Vec::with_capacity(docs.len());
        for rec in docs {
            if rec.key.kind() != index.schema.key_kind {
                return Err(Error::invalid_input(
                    &self.inner.name,
                    index.entity(),
                    format!("key {} is not a {:?} key", rec.key, index.schema.key_kind),
                ));
            }
            let d = Self::document(&idx, rec).map_err(|m| {
                Error::invalid_input(
                    &self.inner.name,
                    index.entity(),
                    format!("record {}: {m}", rec.key),
                )
            })?;
            built.push((Term::from_field_text(idx.key, &key_text(&rec.key)), d));
        }
        let n = built.len();
        let i2 = idx.clone();
        let store = self.inner.name.clone();
        let entity = index.entity();
        self.blocking(index, move || {
            let w = i2.writer.read();
            for (key, doc) in built {
                w.delete_term(key);
                w.add_document(doc)
                    .map_err(|e| Error::backend(&store, entity, e))?;
            }
            Ok(())
        })
        .await?;
        self.wrote(index, &idx, n).await
    }

    async fn remove(&self, index: &SearchIndex, keys: &[Key]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let idx = self.idx(index)?;
        {
            let w = idx.writer.read();
            for k in keys {
                w.delete_term(Term::from_field_text(idx.key, &key_text(k)));
            }
        }
        self.wrote(index, &idx, keys.len()).await
    }

    async fn clear(&self, index: &SearchIndex) -> Result<()> {
        let idx = self.idx(index)?;
        idx.writer
            .read()
            .delete_all_documents()
            .map_err(|e| self.err(index, e))?;
        self.wrote(index, &idx, 1).await
    }

    async fn flush(&self, index: &SearchIndex) -> Result<()> {
        let idx = self.idx(index)?;
        idx.pending.fetch_add(1, Ordering::SeqCst);
        self.commit(index, &idx).await
    }

    async fn search(&self, index: &SearchIndex, req: &SearchRequest) -> Result<SearchResults> {
        let idx = self.idx(index)?;
        for f in &req.facets {
            if !index.facets.contains(f) {
                return Err(Error::invalid_input(
                    &self.inner.name,
                    index.entity(),
                    format!(
                        "`{f}` is not a facet of this search index; add it to the entity's `search.facets`"
                    ),
                ));
            }
        }
        let text_fields: Vec<Field> = idx.text.iter().map(|(_, f)| *f).collect();
        let mut analyzer = idx.analyzer.clone();
        let text = query::text_query(&req.text, &text_fields, &mut analyzer);
        let q: Box<dyn Query> = match &req.filter {
            None => text,
            Some(f) => {
                let fq = query::filter_query(f, &idx.values).map_err(|e| match e {
                    FilterError::Unsupported(c) => {
                        Error::unsupported(&self.inner.name, index.entity(), c)
                    }
                    FilterError::Invalid(m) => {
                        Error::invalid_input(&self.inner.name, index.entity(), m)
                    }
                })?;
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, text),
                    (Occur::Must, fq),
                ]))
            }
        };
        let after = req.after.as_ref().map(|c| Ranked {
            score: c.score,
            key: key_text(&c.key),
        });
        let top = TopAfter {
            limit: req.limit,
            after,
        };
        let facets = Facets {
            fields: req.facets.iter().map(|f| format!("f_{f}")).collect(),
        };
        let store = self.inner.name.clone();
        let entity = index.entity();
        let idx2 = idx.clone();
        let (total, hits, counts) = self
            .blocking(index, move || {
                let searcher = idx2.reader.searcher();
                searcher
                    .search(&q, &(Count, top, facets))
                    .map_err(|e| Error::backend(&store, entity, e))
            })
            .await?;
        let key_kind = index.schema.key_kind;
        let hits = hits
            .into_iter()
            .map(|r| {
                let key = key_from_text(&r.key, key_kind).ok_or_else(|| {
                    self.err(
                        index,
                        format!("stored key {:?} is not a {key_kind:?} key", r.key),
                    )
                })?;
                Ok(Hit {
                    key,
                    score: r.score,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let facets = req
            .facets
            .iter()
            .zip(counts)
            .map(|(f, m)| {
                let mut fc = FacetCounts {
                    field: f.clone(),
                    counts: m.into_iter().collect(),
                };
                fc.sort_and_truncate(req.facet_limit);
                fc
            })
            .collect();
        Ok(SearchResults {
            hits,
            total: total as u64,
            facets,
        })
    }

    fn filter_caps(&self) -> FilterCaps {
        FilterCaps {
            prefix: false,
            contains: false,
            ..FilterCaps::all()
        }
    }
}

#[async_trait]
impl Store for TantivyStore {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "tantivy"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    fn location(&self) -> String {
        self.inner.cfg.path.display().to_string()
    }

    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        Err(self.unsupported_records(entity.name()))
    }

    async fn get(&self, entity: &EntityInfo, _: &Key) -> Result<Option<Record>> {
        Err(self.unsupported_records(entity.name()))
    }

    async fn get_many(&self, entity: &EntityInfo, _: &[Key]) -> Result<Vec<Option<Record>>> {
        Err(self.unsupported_records(entity.name()))
    }

    async fn write(
        &self,
        entity: &EntityInfo,
        _: Vec<WriteOp>,
        _: bool,
    ) -> Result<Vec<WriteOutcome>> {
        Err(self.unsupported_records(entity.name()))
    }

    async fn query(&self, entity: &EntityInfo, _: &StoreQuery) -> Result<Vec<Record>> {
        Err(self.unsupported_records(entity.name()))
    }

    async fn count(&self, entity: &EntityInfo, _: Option<&Filter>) -> Result<u64> {
        Err(self.unsupported_records(entity.name()))
    }

    async fn ping(&self) -> Result<()> {
        let p: &Path = &self.inner.cfg.path;
        if p.is_dir() {
            Ok(())
        } else {
            Err(Error::unavailable(
                &self.inner.name,
                "",
                format!("the index directory {} is missing", p.display()),
            ))
        }
    }

    fn as_search(&self) -> Option<&dyn SearchStore> {
        Some(self)
    }
}
