//! Compiled schemas and the search index, kept in memory.
//!
//! A schema is compiled once, when first needed, and replaced when a new one is registered
//! through this process. The search index is rebuilt lazily on the first search after any
//! change to a document or schema. Neither cache ever goes back to what a change replaced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dials_domain::{Document, ServiceName};
use dials_schema::{CompiledSchema, Complexity, SearchIndex, SearchItem};
use serde_json::Value;

use crate::{ApiError, AppState};

/// A service's compiled schema (`None`: it has none) with the clock reading it was stored at.
type Stamped = (u64, Option<Arc<CompiledSchema>>);

/// Compiled schemas by service; `None` remembers that a service has none.
///
/// Like the config cache, it only moves forward: a registration advances a clock, a reader
/// that fills a miss from the store takes the clock's reading first, and its schema is kept
/// only if nothing newer was set meanwhile. The search index carries the generation it was
/// built at and is kept only if no change invalidated it while it was being built.
#[derive(Debug, Default)]
pub struct SchemaCache {
    entries: RwLock<HashMap<ServiceName, Stamped>>,
    clock: AtomicU64,
    search: RwLock<Option<Arc<SearchIndex>>>,
    search_generation: AtomicU64,
}

impl SchemaCache {
    /// Remembers the schema a service now has (just registered).
    pub fn set(&self, service: &ServiceName, schema: Option<Arc<CompiledSchema>>) {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let stamp = self.clock.fetch_add(1, Ordering::AcqRel) + 1;
        map.insert(service.clone(), (stamp, schema));
        drop(map);
        self.invalidate_search();
    }

    /// Forgets every schema (the database was reopened).
    pub fn clear(&self) {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.clock.fetch_add(1, Ordering::AcqRel);
        map.clear();
        drop(map);
        self.invalidate_search();
    }

    /// Drops the search index; the next search rebuilds it.
    pub fn invalidate_search(&self) {
        let mut search = self.search.write().unwrap_or_else(|e| e.into_inner());
        self.search_generation.fetch_add(1, Ordering::AcqRel);
        *search = None;
    }

    /// The hash of the schema cached for `service`: `None` when nothing is cached,
    /// `Some(None)` when it is cached as having none.
    pub fn cached_hash(&self, service: &ServiceName) -> Option<Option<String>> {
        self.get(service)
            .map(|schema| schema.map(|compiled| compiled.hash()))
    }

    fn get(&self, service: &ServiceName) -> Option<Option<Arc<CompiledSchema>>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(service)
            .map(|(_, schema)| schema.clone())
    }

    /// Keeps a schema read from the store after `stamp`, unless one was set since; answers
    /// the schema in force.
    fn fill(
        &self,
        service: &ServiceName,
        schema: Option<Arc<CompiledSchema>>,
        stamp: u64,
    ) -> Option<Arc<CompiledSchema>> {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        match map.get(service) {
            Some((held, newer)) if *held > stamp => newer.clone(),
            _ => {
                map.insert(service.clone(), (stamp, schema.clone()));
                schema
            }
        }
    }

    /// Keeps a search index built from what was read after `generation`, unless something
    /// changed since.
    fn keep_search(&self, index: Arc<SearchIndex>, generation: u64) {
        let mut search = self.search.write().unwrap_or_else(|e| e.into_inner());
        if self.search_generation.load(Ordering::Acquire) == generation {
            *search = Some(index);
        }
    }
}

/// The compiled schema of a service, if it has one.
pub async fn schema_of(
    state: &AppState,
    service: &ServiceName,
) -> Result<Option<Arc<CompiledSchema>>, ApiError> {
    if let Some(known) = state.schemas.get(service) {
        return Ok(known);
    }
    let stamp = state.schemas.clock.load(Ordering::Acquire);
    let compiled = match state.store.schema(service).await? {
        Some(record) => Some(Arc::new(CompiledSchema::compile(&record.schema).map_err(
            // A schema stored before today's limits existed may exceed them: the service
            // cannot be served until a schema within them is registered, and saying so is
            // more use than a bare 500.
            |e| {
                ApiError::Refused(format!(
                    "the stored schema of {service} is no longer accepted ({e}); register a \
                     new schema for it"
                ))
            },
        )?)),
        None => None,
    };
    Ok(state.schemas.fill(service, compiled, stamp))
}

/// The service's document as a read shows it: schema defaults filled in, except for keys taken
/// from `global` that the document does not set (see [`CompiledSchema::service_defaults`]).
pub fn with_defaults(schema: Option<&CompiledSchema>, document: &Document) -> Document {
    match schema {
        Some(schema) => schema.service_defaults(document),
        None => document.clone(),
    }
}

/// The search index over every setting of every live service, built when missing.
pub async fn search_index(state: &AppState) -> Result<Arc<SearchIndex>, ApiError> {
    if let Some(index) = state
        .schemas
        .search
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        return Ok(index);
    }
    let generation = state.schemas.search_generation.load(Ordering::Acquire);
    let services = state.store.services().await?;
    let mut documents: HashMap<ServiceName, Document> = services
        .into_iter()
        .filter(|s| !s.name.is_instance_layer())
        .filter_map(|s| s.document.map(|d| (s.name, d)))
        .collect();
    let mut items = Vec::new();
    for record in state.store.schemas().await? {
        let schema = schema_of(state, &record.service).await?;
        let Some(schema) = schema else { continue };
        let document = documents.remove(&record.service).unwrap_or_default();
        let filled = schema.apply_defaults(&document);
        for setting in schema.settings() {
            let value = filled.get(&setting.key);
            items.push(SearchItem::from_setting(
                record.service.as_str(),
                setting,
                value,
            ));
        }
    }
    // Services without a schema still show their keys, typed by their values.
    for (service, document) in documents {
        for (key, value) in document.leaves() {
            let shown = dials_domain::secret::mask_value(&key, value, &[]);
            items.push(SearchItem {
                service: service.to_string(),
                key,
                title: None,
                description: None,
                type_: json_type(value).to_owned(),
                complexity: Complexity::Advanced,
                secret: false,
                restart_required: false,
                value: Some(shown),
                is_default: false,
            });
        }
    }
    let index = Arc::new(SearchIndex::new(items));
    state.schemas.keep_search(index.clone(), generation);
    Ok(index)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
