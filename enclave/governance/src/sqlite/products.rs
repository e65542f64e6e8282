//! The `products` table (migration 4, with the outputs): the product catalog as rows.
//!
//! Owns the mapping between [`Product`] and its row and the guarded takedown (once). It must
//! never report a row that does not parse as a product.

use rusqlite::{OptionalExtension, params};

use super::{corrupt, store_err};
use crate::GovError;
use crate::model::OrgId;
use crate::output::{NewProduct, OutputNo, Product, ProductKind, ProductNo};

const PRODUCT_COLS: &str =
    "id, output, org, kind, title, description, source, published, taken_down, down_reason";

type ProductRow = (
    i64,
    i64,
    i64,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
);

fn product_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProductRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn product(r: ProductRow) -> Result<Product, GovError> {
    let (id, output, org, kind, title, description, source, published, down, why) = r;
    let taken_down = match (down, why) {
        (Some(at), Some(why)) => Some((at, why)),
        (None, None) => None,
        _ => return Err(corrupt("product")),
    };
    Ok(Product {
        no: ProductNo(id),
        output: OutputNo(output),
        org: OrgId(org),
        kind: ProductKind::parse(&kind).ok_or_else(|| corrupt("product"))?,
        title,
        description,
        source,
        published_at: published,
        taken_down,
    })
}

pub(super) fn insert_product(
    tx: &rusqlite::Transaction<'_>,
    org: OrgId,
    p: &NewProduct,
    at: i64,
) -> Result<ProductNo, GovError> {
    tx.execute(
        "INSERT INTO products (output, org, kind, title, description, source, published)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            p.output.0,
            org.0,
            p.kind.as_str(),
            p.title,
            p.description,
            p.source,
            at
        ],
    )
    .map_err(store_err)?;
    Ok(ProductNo(tx.last_insert_rowid()))
}

pub(super) fn get_product(
    tx: &rusqlite::Transaction<'_>,
    no: ProductNo,
) -> Result<Option<Product>, GovError> {
    tx.query_row(
        &format!("SELECT {PRODUCT_COLS} FROM products WHERE id = ?1"),
        params![no.0],
        product_row,
    )
    .optional()
    .map_err(store_err)?
    .map(product)
    .transpose()
}

/// Products, newest first: of `org` / of `output` when given, live ones only unless `all`.
pub(super) fn list_products(
    tx: &rusqlite::Transaction<'_>,
    org: Option<OrgId>,
    output: Option<OutputNo>,
    all: bool,
    limit: u32,
) -> Result<Vec<Product>, GovError> {
    let mut stmt = tx
        .prepare(&format!(
            "SELECT {PRODUCT_COLS} FROM products
             WHERE (?1 IS NULL OR org = ?1) AND (?2 IS NULL OR output = ?2)
               AND (?3 OR taken_down IS NULL)
             ORDER BY id DESC LIMIT ?4"
        ))
        .map_err(store_err)?;
    let rows = stmt
        .query_map(
            params![org.map(|o| o.0), output.map(|o| o.0), all, limit],
            product_row,
        )
        .map_err(store_err)?;
    rows.map(|r| r.map_err(store_err).and_then(product))
        .collect()
}

pub(super) fn take_down(
    tx: &rusqlite::Transaction<'_>,
    no: ProductNo,
    at: i64,
    reason: &str,
) -> Result<(), GovError> {
    let n = tx
        .execute(
            "UPDATE products SET taken_down = ?2, down_reason = ?3
             WHERE id = ?1 AND taken_down IS NULL",
            params![no.0, at, reason],
        )
        .map_err(store_err)?;
    if n == 1 {
        Ok(())
    } else {
        Err(GovError::Refused(format!("{no} is taken down already")))
    }
}
