//! The job manifest: the one typed description of a job.
//!
//! Owns [`JobManifest`] — module digest, datasets with their snapshot digests, parameters,
//! limits, the policy's digest and kind, the application, the seed, the logical clock — and the
//! small validated types it is made of. A manifest is built once, when a job is submitted; the
//! run, the log, the sealed transcript, replay and (later) the server all read the same value.
//! Every field is parsed, not validated later: a [`TableName`] is a lower-case identifier, a
//! [`Seed`] is 32 bytes. It must never hold a data value of the domain, nor a path as identity
//! (datasets are their snapshot digests).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Digest;
use crate::limits::Limits;

/// Why a manifest field was refused. Messages name the field, never a hidden value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// A dataset (table) name.
    #[error(
        "dataset name `{0}` is not a lower-case identifier ([a-z_][a-z0-9_]*, at most 64 bytes)"
    )]
    TableName(String),
    /// An application id.
    #[error(
        "application id `{0}` is not 1-64 characters of [A-Za-z0-9._-] starting with a letter or digit"
    )]
    Application(String),
    /// A job id.
    #[error("a job id is 16 lower-case hexadecimal digits")]
    JobId,
    /// A seed.
    #[error("a seed is 64 lower-case hexadecimal digits")]
    Seed,
    /// A parameter.
    #[error("{0}")]
    Param(String),
    /// The same dataset twice.
    #[error("dataset `{0}` is given twice")]
    DuplicateDataset(String),
}

macro_rules! string_type {
    ($(#[$doc:meta])* $name:ident, $check:expr, $err:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses `s`.
            pub fn new(s: &str) -> Result<Self, ManifestError> {
                let check: fn(&str) -> bool = $check;
                if check(s) {
                    Ok($name(s.to_owned()))
                } else {
                    let err: fn(&str) -> ManifestError = $err;
                    Err(err(s))
                }
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ManifestError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn is_table_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_application(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

string_type!(
    /// A dataset's name as the job's SQL uses it: a lower-case identifier.
    TableName,
    is_table_name,
    |s| ManifestError::TableName(s.escape_debug().to_string())
);

string_type!(
    /// An application (the pseudonym scope and, with governance, the grant a job runs under).
    ApplicationId,
    is_application,
    |s| ManifestError::Application(s.escape_debug().to_string())
);

/// A job's identifier: 8 bytes, shown as 16 hex digits. Unique within a domain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub [u8; 8]);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nib(b[2 * i])? << 4 | nib(b[2 * i + 1])?;
    }
    Some(out)
}

impl FromStr for JobId {
    type Err = ManifestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        hex_bytes::<8>(s).map(JobId).ok_or(ManifestError::JobId)
    }
}

impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The seed of a job's random stream (`enclave_v1.random`): fixed at submission, recorded.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seed(pub [u8; 32]);

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seed({self})")
    }
}

impl FromStr for Seed {
    type Err = ManifestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        hex_bytes::<32>(s).map(Seed).ok_or(ManifestError::Seed)
    }
}

impl Serialize for Seed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A job's noise key (differential privacy): 32 random bytes drawn by the domain when the job
/// starts, sealed in its transcript so that re-derivation reproduces the noise. Never printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NoiseKey(pub [u8; 32]);

impl fmt::Debug for NoiseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoiseKey(..)")
    }
}

impl Serialize for NoiseKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Seed(self.0))
    }
}

impl<'de> Deserialize<'de> for NoiseKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Seed::deserialize(d).map(|s| NoiseKey(s.0))
    }
}

/// Most parameters a job may have.
pub const MAX_PARAMS: usize = 256;
/// Most bytes of all parameter keys and values together.
pub const MAX_PARAM_BYTES: usize = 1 << 20;

/// A job's parameters: at most 256, keys of 1–256 bytes, 1 MiB in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parameters from `pairs`; a key given twice, an empty or oversized key and too many or too
    /// large parameters are refused.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Params, ManifestError> {
        let mut map = BTreeMap::new();
        let mut bytes = 0usize;
        for (k, v) in pairs {
            if k.is_empty() || k.len() > enclave_abi::MAX_PARAM_KEY as usize {
                return Err(ManifestError::Param(format!(
                    "parameter keys are 1-{} bytes",
                    enclave_abi::MAX_PARAM_KEY
                )));
            }
            bytes = bytes.saturating_add(k.len()).saturating_add(v.len());
            if bytes > MAX_PARAM_BYTES {
                return Err(ManifestError::Param(format!(
                    "parameters hold more than {MAX_PARAM_BYTES} bytes"
                )));
            }
            if map.contains_key(&k) {
                return Err(ManifestError::Param(format!(
                    "parameter `{}` is given twice",
                    k.escape_debug()
                )));
            }
            map.insert(k, v);
            if map.len() > MAX_PARAMS {
                return Err(ManifestError::Param(format!(
                    "more than {MAX_PARAMS} parameters"
                )));
            }
        }
        Ok(Params(map))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every parameter, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A canonical, length-prefixed encoding (for digests).
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            out.extend_from_slice(&(k.len() as u64).to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        out
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        Params::new(map).map_err(serde::de::Error::custom)
    }
}

/// A dataset granted to a job: the name its SQL uses and the snapshot it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRef {
    /// Table name in the job's SQL (and the dataset name the policy classifies).
    pub name: TableName,
    /// blake3 of the snapshot's file: its identity in the domain.
    pub snapshot: Digest,
    /// Size of the snapshot's file in bytes.
    pub bytes: u64,
}

/// Which kind of policy a job ran under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// The domain's policy (column rules, threshold, grants).
    Domain,
    /// The explicit open policy of a local run on a developer's own files: every column of the
    /// given files is plaintext. Named as such in the report and the log.
    Open,
}

impl PolicyKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Domain => "domain",
            PolicyKind::Open => "open",
        }
    }
}

/// The policy a job runs under: its kind and the blake3 of its text (the text itself is sealed
/// in the job's transcript).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRef {
    /// Domain policy or the explicit open policy.
    pub kind: PolicyKind,
    /// blake3 of the policy text.
    pub digest: Digest,
}

/// Version of the manifest format.
pub const MANIFEST_VERSION: u32 = 1;

/// Everything that defines a job, fixed when it is submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobManifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// The job's id, unique in its domain.
    pub job: JobId,
    /// blake3 of the module.
    pub module: Digest,
    /// Datasets granted to the job, by snapshot.
    pub datasets: Vec<DatasetRef>,
    /// Parameters the guest may read.
    pub params: Params,
    /// Limits.
    pub limits: Limits,
    /// The policy enforced.
    pub policy: PolicyRef,
    /// The application the job runs under (pseudonym scope).
    pub application: ApplicationId,
    /// Seed of the guest's random stream.
    pub seed: Seed,
    /// The job's logical time (ms since the Unix epoch), returned by `clock` and used for `now()`.
    pub clock_ms: i64,
    /// Query parallelism.
    pub target_partitions: u32,
}

impl JobManifest {
    /// The default seed of a job: derived from its module, parameters and datasets, so the same
    /// job on the same inputs draws the same random stream.
    pub fn default_seed(module: &Digest, params: &Params, datasets: &[DatasetRef]) -> Seed {
        let mut h = blake3::Hasher::new_derive_key("enclave v1 job seed");
        h.update(module.as_bytes());
        h.update(&params.canonical());
        for d in datasets {
            h.update(d.name.as_str().as_bytes()).update(&[0]);
            h.update(d.snapshot.as_bytes());
        }
        Seed(*h.finalize().as_bytes())
    }

    /// Checks what serde cannot: no dataset twice, a supported version.
    pub fn check(&self) -> Result<(), ManifestError> {
        let mut seen = std::collections::BTreeSet::new();
        for d in &self.datasets {
            if !seen.insert(&d.name) {
                return Err(ManifestError::DuplicateDataset(d.name.to_string()));
            }
        }
        if self.version != MANIFEST_VERSION {
            return Err(ManifestError::Param(format!(
                "unsupported manifest version {}",
                self.version
            )));
        }
        Ok(())
    }

    /// blake3 of the manifest's canonical JSON.
    pub fn digest(&self) -> Result<Digest, ManifestError> {
        let json = serde_json::to_vec(self)
            .map_err(|_| ManifestError::Param("the manifest could not be encoded".into()))?;
        Ok(Digest::of(&json))
    }

    /// The dataset named `name`.
    pub fn dataset(&self, name: &str) -> Option<&DatasetRef> {
        self.datasets.iter().find(|d| d.name.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> JobManifest {
        let params = Params::new([("sql".to_owned(), "SELECT 1".to_owned())]).unwrap();
        let datasets = vec![DatasetRef {
            name: TableName::new("residents").unwrap(),
            snapshot: Digest::of(b"file"),
            bytes: 4,
        }];
        let module = Digest::of(b"module");
        JobManifest {
            version: MANIFEST_VERSION,
            job: JobId([1; 8]),
            module,
            seed: JobManifest::default_seed(&module, &params, &datasets),
            datasets,
            params,
            limits: Limits::default(),
            policy: PolicyRef {
                kind: PolicyKind::Open,
                digest: Digest::of(b"policy"),
            },
            application: ApplicationId::new("local").unwrap(),
            clock_ms: 0,
            target_partitions: 2,
        }
    }

    #[test]
    fn manifest_round_trips_and_refuses_bad_fields() {
        let m = manifest();
        let json = serde_json::to_string(&m).unwrap();
        let back: JobManifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.digest().unwrap(), m.digest().unwrap());
        for (from, to) in [
            ("\"residents\"", "\"Residents\""),
            ("\"local\"", "\"-local\""),
            ("\"0101010101010101\"", "\"01010101\""),
            ("\"kind\":\"open\"", "\"kind\":\"wide\""),
            ("\"version\":1", "\"version\":1,\"extra\":1"),
        ] {
            assert!(json.contains(from), "{from}");
            let bad = json.replacen(from, to, 1);
            assert!(serde_json::from_str::<JobManifest>(&bad).is_err(), "{to}");
        }
        let mut twice = m.clone();
        twice.datasets.push(twice.datasets[0].clone());
        assert!(matches!(
            twice.check(),
            Err(ManifestError::DuplicateDataset(_))
        ));
    }

    #[test]
    fn names_ids_seeds_and_params_are_parsed() {
        assert!(TableName::new("hospital_visits").is_ok());
        for bad in ["", "A", "1x", "a-b", "a.b", "a b", &"a".repeat(65)] {
            assert!(TableName::new(bad).is_err(), "{bad}");
        }
        assert!(ApplicationId::new("app-1.v2_x").is_ok());
        for bad in ["", ".a", "-a", "a/b", "a b", "应用"] {
            assert!(ApplicationId::new(bad).is_err(), "{bad}");
        }
        assert_eq!(
            "00ff00ff00ff00ff".parse::<JobId>().unwrap().to_string(),
            "00ff00ff00ff00ff"
        );
        assert!("00FF00FF00FF00FF".parse::<JobId>().is_err());
        assert!("ab".repeat(32).parse::<Seed>().is_ok());
        assert!("zz".repeat(32).parse::<Seed>().is_err());
        assert!(Params::new([("".into(), "v".into())]).is_err());
        assert!(Params::new([("k".into(), "1".into()), ("k".into(), "2".into())]).is_err());
        assert!(Params::new([("k".into(), "x".repeat(MAX_PARAM_BYTES))]).is_err());
        assert!(Params::new((0..=MAX_PARAMS).map(|i| (i.to_string(), String::new()))).is_err());
        let p = Params::new([("a".into(), "b=c".into())]).unwrap();
        assert_eq!(p.get("a"), Some("b=c"));
    }

    #[test]
    fn default_seed_depends_on_every_input() {
        let m = manifest();
        let base = JobManifest::default_seed(&m.module, &m.params, &m.datasets);
        let other_params = Params::new([("sql".into(), "SELECT 2".into())]).unwrap();
        assert_ne!(
            base,
            JobManifest::default_seed(&m.module, &other_params, &m.datasets)
        );
        let mut ds = m.datasets.clone();
        ds[0].snapshot = Digest::of(b"other file");
        assert_ne!(base, JobManifest::default_seed(&m.module, &m.params, &ds));
    }
}
