//! The object-store registry of a job session.
//!
//! Owns the mapping from URLs to storage for one job. Unlike DataFusion's default registry it
//! starts empty — no `file://` store for the whole filesystem — and holds only the stores the
//! host registered for the job's granted dataset files. It must never resolve a URL it was not
//! given.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::object_store::ObjectStore;
use url::Url;

/// Key of a store: scheme and authority of the URL.
fn key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.authority())
}

/// A registry that knows only explicitly registered stores.
#[derive(Default)]
pub struct RestrictedStores {
    stores: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl std::fmt::Debug for RestrictedStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = match self.stores.read() {
            Ok(s) => s.keys().cloned().collect(),
            Err(_) => vec![],
        };
        f.debug_struct("RestrictedStores")
            .field("stores", &keys)
            .finish()
    }
}

impl ObjectStoreRegistry for RestrictedStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        match self.stores.write() {
            Ok(mut s) => s.insert(key(url), store),
            Err(_) => None,
        }
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let stores = self
            .stores
            .read()
            .map_err(|_| DataFusionError::Internal("object store registry poisoned".into()))?;
        stores.get(&key(url)).cloned().ok_or_else(|| {
            DataFusionError::Plan(format!(
                "no dataset storage is registered for `{}`",
                key(url)
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::object_store::memory::InMemory;

    #[test]
    fn only_registered_urls_resolve() {
        let r = RestrictedStores::default();
        let file = Url::parse("file:///etc/passwd").unwrap();
        assert!(
            r.get_store(&file).is_err(),
            "file:// must not resolve by default"
        );
        let ds = Url::parse("enclave-data://d0/x.parquet").unwrap();
        r.register_store(&ds, Arc::new(InMemory::new()));
        assert!(r.get_store(&ds).is_ok());
        assert!(
            r.get_store(&Url::parse("enclave-data://d1/x.parquet").unwrap())
                .is_err()
        );
        assert!(r.get_store(&file).is_err());
    }
}
