//! The product catalog: a released output published by its development entity as a data
//! product (dataset, API, model or report, with description and source statement), listed for
//! everyone, and taken down by the operator's admins or reviewers or by the entity itself.
//!
//! Owns who may publish, list and take down. A takedown withdraws the product's output, so its
//! downloads are refused from then on. It must never publish an output that was not released,
//! nor another organization's.

use serde_json::json;

use super::review::{live_org, visible, withdraw_in};
use super::*;
use crate::output::{NewProduct, Product, ProductNo, ReviewState};

impl<S: Store> Governance<S> {
    /// A developer publishes a released output of its own organization as a product.
    pub fn publish_product(
        &mut self,
        actor: &Actor,
        p: &NewProduct,
        now: i64,
    ) -> Result<Product, GovError> {
        actor.require(Action::PublishProduct)?;
        let p = NewProduct {
            output: p.output,
            kind: p.kind,
            title: text("the title", &p.title)?,
            description: text("the description", &p.description)?,
            source: text("the source statement", &p.source)?,
        };
        self.tx(|tx| {
            live_org(tx, actor)?;
            let o = visible(tx, actor, p.output)?;
            if o.state != ReviewState::Released {
                return Err(GovError::Refused(format!(
                    "{} is {}: only a released output becomes a product",
                    o.no, o.state
                )));
            }
            let no = tx.insert_product(o.org, &p, now)?;
            journal(
                tx,
                actor,
                "gov.product.publish",
                &format!("product:{no}"),
                json!({"product": no.to_string(), "output": o.no.to_string(),
                       "kind": p.kind.as_str(), "title": p.title,
                       "description": p.description, "source": p.source}),
                now,
            )?;
            tx.product(no)?
                .ok_or_else(|| GovError::Store(format!("{no} vanished")))
        })
    }

    /// The product catalog: live products (and taken-down ones too when `all`, for record
    /// readers).
    pub fn products(
        &mut self,
        actor: &Actor,
        all: bool,
        limit: u32,
    ) -> Result<Vec<Product>, GovError> {
        actor.require(Action::ReadCatalog)?;
        if all {
            actor.require(Action::ReadRecords)?;
        }
        self.tx(|tx| tx.products(None, None, all, limit))
    }

    /// Takes product `no` down (operator admins and reviewers, or the developer whose product
    /// it is); its output is withdrawn, so downloads are refused from now on.
    pub fn take_down(
        &mut self,
        actor: &Actor,
        no: ProductNo,
        reason: &str,
        now: i64,
    ) -> Result<Product, GovError> {
        let reason = text("the reason", reason)?;
        self.tx(|tx| {
            let p = tx
                .product(no)?
                .ok_or_else(|| GovError::NotFound(format!("product {no}")))?;
            let own = p.org == actor.org.id && permits(actor.role(), Action::PublishProduct);
            if !own {
                actor.require(Action::ManageProducts)?;
            }
            live_org(tx, actor)?;
            if p.taken_down.is_some() {
                return Err(GovError::Refused(format!("{no} is taken down already")));
            }
            let o = tx
                .output(p.output)?
                .ok_or_else(|| GovError::Store(format!("{no}'s output vanished")))?;
            tx.take_down(no, now, &reason)?;
            withdraw_in(tx, &o, &reason, now)?;
            journal(
                tx,
                actor,
                "gov.product.takedown",
                &format!("product:{no}"),
                json!({"product": no.to_string(), "output": o.no.to_string(), "reason": reason}),
                now,
            )?;
            tx.product(no)?
                .ok_or_else(|| GovError::Store(format!("{no} vanished")))
        })
    }
}
