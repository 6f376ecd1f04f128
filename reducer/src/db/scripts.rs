//! [`Scripts`]: a lazily built JavaScript engine with compiled validators and read filters
//! cached by their source, shared by the fold (validators) and the read side (filters).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::js::{Denied, FunctionKind, JsConfig, JsError, JsRuntime, ReadFilter, Validator};

/// Most compiled bodies of each kind kept before the cache is emptied.
const CACHE_LIMIT: usize = 64;

/// Runs collection validators and read filters, given their bodies.
///
/// The engine is created on first use. Compiled functions are cached by body text; a compiled
/// body depends only on its text, so the cache never changes a verdict. Not `Send` (the engine
/// is single-threaded): make one per thread.
pub struct Scripts {
    config: JsConfig,
    js: Option<JsRuntime>,
    validators: BTreeMap<String, Validator>,
    filters: BTreeMap<String, ReadFilter>,
    filter_failures: u64,
    last_filter_error: Option<JsError>,
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripts")
            .field("config", &self.config)
            .field("started", &self.js.is_some())
            .field("validators", &self.validators.len())
            .field("filters", &self.filters.len())
            .finish()
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}

impl Scripts {
    /// Scripts run with the default [`JsConfig`].
    pub fn new() -> Self {
        Self::with_config(JsConfig::default())
    }

    /// Scripts run with the given limits.
    pub fn with_config(config: JsConfig) -> Self {
        Scripts {
            config,
            js: None,
            validators: BTreeMap::new(),
            filters: BTreeMap::new(),
            filter_failures: 0,
            last_filter_error: None,
        }
    }

    /// The engine, created on first use. Failing to create it is a failure of the machine (the
    /// engine could not allocate its realm), not a verdict on any input.
    fn runtime(&mut self) -> Result<&mut JsRuntime, JsError> {
        if self.js.is_none() {
            self.js = Some(JsRuntime::with_config(self.config)?);
        }
        self.js
            .as_mut()
            .ok_or_else(|| JsError::Engine("the engine is not available".into()))
    }

    /// Checks that `body` compiles as a function body of `kind` ("compiling js func: …").
    pub fn check_syntax(&mut self, body: &str, kind: FunctionKind) -> Result<(), JsError> {
        self.runtime()?.check_syntax(body, kind)
    }

    /// Starts the engine if needed; an error here is a failure of the machine.
    pub fn start(&mut self) -> Result<(), JsError> {
        self.runtime().map(|_| ())
    }

    /// Runs the validator `body` on one event (go-threads' `(writer, event, instance)`).
    /// `Ok(())` only when it returns `true`.
    pub fn validate(
        &mut self,
        body: &str,
        writer: Option<&str>,
        event: &Value,
        instance: Option<&Value>,
    ) -> Result<(), Denied> {
        let handle = match self.validators.get(body) {
            Some(h) => *h,
            None => {
                if self.validators.len() >= CACHE_LIMIT {
                    self.clear_validators();
                }
                let js = self.runtime().map_err(Denied::Error)?;
                let h = js.compile_validator(body).map_err(Denied::Error)?;
                self.validators.insert(body.to_owned(), h);
                h
            }
        };
        let js = self.runtime().map_err(Denied::Error)?;
        js.validate(&handle, writer, event, instance)
    }

    /// Runs the read filter `body` on one instance (go-threads' `(reader, instance)`): the JSON
    /// the reader sees, or `None` when the instance is hidden. Reads fail closed: a filter that
    /// throws, exceeds a limit or returns something else than an object, `null` or `undefined`
    /// hides the instance.
    ///
    /// A failure is not silent: it is counted ([`Scripts::filter_failures`]), kept
    /// ([`Scripts::last_filter_error`]) and logged as a `tracing` warning.
    pub fn filter(&mut self, body: &str, reader: Option<&str>, instance: &Value) -> Option<Value> {
        match self.try_filter(body, reader, instance) {
            Ok(seen) => seen,
            Err(error) => {
                tracing::warn!(%error, "read filter failed; the instance is hidden");
                self.filter_failures += 1;
                self.last_filter_error = Some(error);
                None
            }
        }
    }

    /// Like [`Scripts::filter`], with the filter's error instead of hiding the instance.
    pub fn try_filter(
        &mut self,
        body: &str,
        reader: Option<&str>,
        instance: &Value,
    ) -> Result<Option<Value>, JsError> {
        let handle = match self.filters.get(body) {
            Some(h) => *h,
            None => {
                if self.filters.len() >= CACHE_LIMIT {
                    self.clear_filters();
                }
                let h = self.runtime()?.compile_read_filter(body)?;
                self.filters.insert(body.to_owned(), h);
                h
            }
        };
        self.runtime()?.filter(&handle, reader, instance)
    }

    /// How many read filter calls failed (and hid their instance) so far.
    pub fn filter_failures(&self) -> u64 {
        self.filter_failures
    }

    /// The error of the most recent failed read filter call, if any.
    pub fn last_filter_error(&self) -> Option<&JsError> {
        self.last_filter_error.as_ref()
    }

    fn clear_validators(&mut self) {
        let old = std::mem::take(&mut self.validators);
        if let Some(js) = self.js.as_mut() {
            for h in old.into_values() {
                js.release_validator(h);
            }
        }
    }

    fn clear_filters(&mut self) {
        let old = std::mem::take(&mut self.filters);
        if let Some(js) = self.js.as_mut() {
            for h in old.into_values() {
                js.release_read_filter(h);
            }
        }
    }
}
