//! How a granted dataset becomes a table of a job's session: its Parquet file behind an object
//! store of its own (rooted at the file's directory, under a scheme only this session knows), and
//! its pseudonymized columns replaced by keyed pseudonyms in a view.
//!
//! Owns these two steps. It must never register a store that reaches beyond the dataset's
//! directory, nor let a pseudonymized column reach a plan in the clear.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::DataFusionError;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::object_store::local::LocalFileSystem;
use datafusion::prelude::SessionContext;
use enclave_policy::{Authorization, DatasetRules};

use crate::functions::Pseudonym;
use crate::guard::root_message;
use crate::{Dataset, QueryError};

/// Replaces pseudonymized columns of `table` by their keyed pseudonyms, as a view.
pub(crate) fn pseudonymized(
    name: &str,
    table: Arc<dyn TableProvider>,
    rules: &DatasetRules,
    auth: &Authorization,
) -> Result<Arc<dyn TableProvider>, QueryError> {
    let schema = table.schema();
    let pseudo = |f: &str| rules.columns.get(f).is_some_and(|r| r.is_pseudonymized());
    if !schema.fields().iter().any(|f| pseudo(f.name())) {
        return Ok(table);
    }
    let udf = Arc::new(Pseudonym::udf(auth.pseudonym_key()));
    let exprs: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| {
            let c = datafusion::logical_expr::col(datafusion::common::Column::new(
                Some(name),
                f.name(),
            ));
            if pseudo(f.name()) {
                udf.call(vec![c]).alias(f.name())
            } else {
                c
            }
        })
        .collect();
    let internal = |e: DataFusionError| QueryError::Internal(e.to_string());
    let plan = LogicalPlanBuilder::scan(name, provider_as_source(table), None)
        .and_then(|b| b.project(exprs))
        .and_then(|b| b.build())
        .map_err(internal)?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

pub(crate) async fn open_parquet(
    ctx: &SessionContext,
    index: usize,
    ds: &Dataset,
) -> Result<Arc<dyn TableProvider>, QueryError> {
    let bad = |e: &dyn std::fmt::Display| {
        QueryError::Input(format!(
            "dataset `{}` cannot be opened as Parquet: {e}",
            ds.name
        ))
    };
    let canonical = std::fs::canonicalize(&ds.path).map_err(|e| bad(&e))?;
    let dir = canonical
        .parent()
        .ok_or_else(|| bad(&"no parent directory"))?;
    let file = canonical
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or_else(|| bad(&"file name is not UTF-8"))?;
    // One store per dataset, rooted at the file's directory, under a scheme only this session knows.
    let base = format!("enclave-data://d{index}/");
    let base_url = url::Url::parse(&base).map_err(|e| QueryError::Internal(e.to_string()))?;
    let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(&e))?;
    ctx.runtime_env()
        .register_object_store(&base_url, Arc::new(store));
    let encoded: String = url::form_urlencoded::byte_serialize(file.as_bytes()).collect();
    let table_url = ListingTableUrl::parse(format!("{base}{encoded}")).map_err(|e| bad(&e))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
    // A schema known from the snapshot spares reading the file's footer before a query scans it.
    let schema = match &ds.schema {
        Some(s) => Arc::clone(s),
        None => options
            .infer_schema(&ctx.state(), &table_url)
            .await
            .map_err(|e| bad(&root_message(&e)))?,
    };
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|e| bad(&e))?;
    Ok(Arc::new(table))
}
