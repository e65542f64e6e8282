//! Job authorization: the only way to data.
//!
//! Owns [`Authorization`], the proof that a policy granted a job its datasets. It has no public
//! constructor: [`Policy::authorize`] checks every requested dataset against the policy (it must
//! be classified and granted) and derives the application's pseudonym key; the query host opens
//! a session only for an `Authorization`. Also owns the explicit open policy of a local run
//! ([`open_policy_text`]). It must never authorize a dataset the policy does not classify.

use std::fmt;
use std::sync::Arc;

use enclave_core::{ApplicationId, PolicyKind, TableName};

use crate::Policy;

/// The key of an application's pseudonyms: derived from the domain secret and the application,
/// so pseudonyms are stable within one application and unlinkable across applications.
#[derive(Clone, PartialEq, Eq)]
pub struct PseudonymKey([u8; 32]);

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    /// The key of `application` in the domain whose secret is `domain_secret`.
    pub fn derive(domain_secret: &[u8; 32], application: &ApplicationId) -> PseudonymKey {
        let mut h = blake3::Hasher::new_derive_key("enclave v1 pseudonym key");
        h.update(domain_secret);
        h.update(application.as_str().as_bytes());
        PseudonymKey(*h.finalize().as_bytes())
    }

    /// The key bytes (for the HMAC; never print them).
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The pseudonym of one value: hex of the first 16 bytes of HMAC-SHA-256(key, value).
    pub fn pseudonym(&self, value: &str) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let tag = ring::hmac::sign(&key, value.as_bytes());
        let mut out = String::with_capacity(32);
        for b in &tag.as_ref()[..16] {
            out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        out
    }
}

/// Why a job was not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The policy does not classify the dataset.
    #[error("dataset `{0}` is not classified by the policy: it cannot be granted")]
    Unclassified(String),
    /// The policy classifies the dataset but does not grant it.
    #[error("dataset `{0}` is not granted by the policy")]
    NotGranted(String),
    /// An approval names a column the policy does not classify.
    #[error("column `{0}.{1}` is not classified by the policy")]
    UnknownColumn(String, String),
}

/// A job's authorization: the policy, the datasets it grants, the application's pseudonym key.
/// Only [`Policy::authorize`] makes one.
#[derive(Clone)]
pub struct Authorization {
    policy: Arc<Policy>,
    datasets: Vec<TableName>,
    application: ApplicationId,
    pseudonym_key: PseudonymKey,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("kind", &self.kind())
            .field("datasets", &self.datasets)
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl Authorization {
    /// The policy whose rules the query host enforces.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Domain policy or the explicit open policy.
    pub fn kind(&self) -> PolicyKind {
        if self.policy.open {
            PolicyKind::Open
        } else {
            PolicyKind::Domain
        }
    }

    /// The datasets granted.
    pub fn datasets(&self) -> &[TableName] {
        &self.datasets
    }

    /// Whether `name` is granted.
    pub fn grants(&self, name: &str) -> bool {
        self.datasets.iter().any(|d| d.as_str() == name)
    }

    /// The application.
    pub fn application(&self) -> &ApplicationId {
        &self.application
    }

    /// The application's pseudonym key.
    pub fn pseudonym_key(&self) -> &PseudonymKey {
        &self.pseudonym_key
    }
}

impl Policy {
    /// Authorizes a job of `application` to read `datasets`: each must be classified and
    /// granted by this policy. `domain_secret` keys the application's pseudonyms.
    pub fn authorize(
        self: &Arc<Self>,
        datasets: &[TableName],
        application: &ApplicationId,
        domain_secret: &[u8; 32],
    ) -> Result<Authorization, Refusal> {
        for d in datasets {
            if self.dataset(d.as_str()).is_none() {
                return Err(Refusal::Unclassified(d.to_string()));
            }
            if !self.grants(d.as_str()) {
                return Err(Refusal::NotGranted(d.to_string()));
            }
        }
        Ok(Authorization {
            policy: Arc::clone(self),
            datasets: datasets.to_vec(),
            application: application.clone(),
            pseudonym_key: PseudonymKey::derive(domain_secret, application),
        })
    }
}

impl Policy {
    /// The policy as one approved application sees it: only `approved` datasets are granted,
    /// and in each only the approved columns keep their uses (every other column is denied, its
    /// row-level grant dropped). Refused if a dataset is not classified or an approved column
    /// does not exist in it: an approval never opens what the policy does not know.
    pub fn narrowed(&self, approved: &[(TableName, Vec<String>)]) -> Result<Policy, Refusal> {
        let mut p = self.clone();
        p.grants.clear();
        for (dataset, columns) in approved {
            let rules = p
                .datasets
                .get_mut(dataset.as_str())
                .ok_or_else(|| Refusal::Unclassified(dataset.to_string()))?;
            if let Some(c) = columns
                .iter()
                .find(|c| !rules.columns.contains_key(c.as_str()))
            {
                return Err(Refusal::UnknownColumn(dataset.to_string(), c.clone()));
            }
            for (name, rule) in rules.columns.iter_mut() {
                if !columns.contains(name) {
                    rule.uses.clear();
                }
            }
            p.grants.insert(dataset.to_string());
        }
        p.row_level.retain(|(d, c)| {
            approved
                .iter()
                .any(|(ad, cols)| ad.as_str() == d && cols.contains(c))
        });
        if p.grants.is_empty() {
            // An empty grant set means "all classified" in a policy file; an approval of
            // nothing grants nothing.
            return Err(Refusal::NotGranted("(no dataset approved)".into()));
        }
        Ok(p)
    }
}

/// The `[approval]` section that narrows a domain policy to one approved application's
/// datasets and columns, to append to the policy's text: the job's policy text (recorded in its
/// transcript, digested in the log) then says exactly what the job was allowed.
pub fn approval_text(approved: &[(TableName, Vec<String>)]) -> String {
    let mut s = String::from("\n# The approved application's datasets and columns.\n[approval]\n");
    for (d, cols) in approved {
        let cols: Vec<String> = cols
            .iter()
            .map(|c| toml::Value::String(c.clone()).to_string())
            .collect();
        s.push_str(&format!("{d} = [{}]\n", cols.join(", ")));
    }
    s
}

/// The text of the explicit open policy for a developer's own files: every column of each
/// table is plaintext, and nothing else is classified. A local run without `--policy` runs under
/// it, and the report and the log say so.
pub fn open_policy_text(tables: &[(TableName, Vec<String>)]) -> String {
    let mut s = String::from(
        "# The explicit open policy of a local run on the developer's own files:\n\
         # every column of the files given is plaintext. Domain data never runs under it.\n\
         version = 1\nkind = \"open\"\n\n[levels]\nopen = [\"plaintext\"]\n",
    );
    for (name, columns) in tables {
        s.push_str(&format!("\n[datasets.{name}.columns]\n"));
        for c in columns {
            s.push_str(&toml::Value::String(c.clone()).to_string());
            s.push_str(" = \"open\"\n");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TableName {
        TableName::new(s).unwrap()
    }

    #[test]
    fn authorization_checks_classification_and_grants() {
        let text = "version = 1\n[levels]\nL1 = [\"plaintext\"]\n\
                    [datasets.a.columns]\nx = \"L1\"\n[datasets.b.columns]\ny = \"L1\"\n\
                    [grant]\ndatasets = [\"a\"]\n";
        let p = Arc::new(Policy::parse("p.toml", text).unwrap());
        let app = ApplicationId::new("app").unwrap();
        let a = p.authorize(&[t("a")], &app, &[1; 32]).unwrap();
        assert!(a.grants("a") && !a.grants("b"));
        assert_eq!(a.kind(), PolicyKind::Domain);
        assert_eq!(
            p.authorize(&[t("a"), t("b")], &app, &[1; 32]).unwrap_err(),
            Refusal::NotGranted("b".into())
        );
        assert_eq!(
            p.authorize(&[t("c")], &app, &[1; 32]).unwrap_err(),
            Refusal::Unclassified("c".into())
        );
        assert!(!format!("{a:?}").contains("PseudonymKey(["));
    }

    #[test]
    fn narrowing_keeps_only_approved_columns() {
        let text = "version = 1\n[levels]\nL1 = [\"plaintext\"]\nL3 = [\"aggregate\"]\n\
                    [datasets.a.columns]\nx = \"L1\"\ny = \"L3\"\nz = \"L3\"\n\
                    [datasets.b.columns]\nw = \"L1\"\n";
        let p = Policy::parse("p.toml", text).unwrap();
        let n = p
            .narrowed(&[(t("a"), vec!["x".into(), "y".into()])])
            .unwrap();
        assert!(n.grants("a") && !n.grants("b"));
        let a = n.dataset("a").unwrap();
        assert!(a.columns["x"].is_open());
        assert!(!a.columns["y"].uses.is_empty());
        assert!(
            a.columns["z"].uses.is_empty(),
            "an unapproved column is denied"
        );
        assert_eq!(
            p.narrowed(&[(t("a"), vec!["nope".into()])]).unwrap_err(),
            Refusal::UnknownColumn("a".into(), "nope".into())
        );
        assert_eq!(
            p.narrowed(&[(t("c"), vec!["x".into()])]).unwrap_err(),
            Refusal::Unclassified("c".into())
        );
        assert!(p.narrowed(&[]).is_err());
        // The same narrowing, as policy text (what a job's transcript records).
        let narrowed_text = format!(
            "{text}{}",
            approval_text(&[(t("a"), vec!["x".into(), "y".into()])])
        );
        assert_eq!(Policy::parse("p.toml", &narrowed_text).unwrap(), n);
        let bad = format!("{text}{}", approval_text(&[(t("a"), vec!["nope".into()])]));
        assert!(
            Policy::parse("p.toml", &bad)
                .unwrap_err()
                .message
                .contains("approval: column `a.nope`")
        );
    }

    #[test]
    fn open_policy_is_explicit_and_all_plaintext() {
        let text = open_policy_text(&[(
            t("mine"),
            vec!["id".into(), "weird \"col\"".into(), "收入".into()],
        )]);
        let p = Arc::new(Policy::parse("open", &text).unwrap());
        assert!(p.open);
        let rules = p.dataset("mine").unwrap();
        assert_eq!(rules.columns.len(), 3);
        assert!(rules.columns.values().all(|r| r.is_open()));
        let a = p
            .authorize(
                &[t("mine")],
                &ApplicationId::new("local").unwrap(),
                &[0; 32],
            )
            .unwrap();
        assert_eq!(a.kind(), PolicyKind::Open);
        // An "open" policy that restricts a column is a contradiction, refused.
        let bad = text.replace("open = [\"plaintext\"]", "open = [\"aggregate\"]");
        assert!(Policy::parse("open", &bad).is_err());
    }

    #[test]
    fn pseudonyms_are_keyed_stable_and_opaque() {
        let a = PseudonymKey::derive(&[7; 32], &ApplicationId::new("app-a").unwrap());
        let b = PseudonymKey::derive(&[7; 32], &ApplicationId::new("app-b").unwrap());
        let c = PseudonymKey::derive(&[8; 32], &ApplicationId::new("app-a").unwrap());
        let id = "32090219800101001X";
        assert_eq!(
            a.pseudonym(id),
            a.pseudonym(id),
            "stable within an application"
        );
        assert_ne!(
            a.pseudonym(id),
            b.pseudonym(id),
            "different across applications"
        );
        assert_ne!(a.pseudonym(id), c.pseudonym(id), "different across domains");
        assert_eq!(a.pseudonym(id).len(), 32);
        assert_eq!(format!("{a:?}"), "PseudonymKey(..)");
    }

    #[test]
    fn hmac_sha256_known_answer() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let tag = ring::hmac::sign(&key, b"what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
