//! Digests as types: 32-byte values, never strings.
//!
//! Owns [`Digest`] (a blake3 content digest of a file, module, output or transcript) and
//! [`KeyedDigest`] (a blake3 digest keyed by the domain, for low-entropy content such as SQL text,
//! parameters and policies, so that nobody holding the log can confirm a guess). Both print and
//! parse as 64 lower-case hex digits; parsing anything else fails. It must never compare a digest
//! with a string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a digest could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a digest is 64 lower-case hexadecimal digits")]
pub struct DigestParseError;

fn parse_hex32(s: &str) -> Result<[u8; 32], DigestParseError> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return Err(DigestParseError);
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(DigestParseError),
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nibble(b[2 * i])? << 4 | nibble(b[2 * i + 1])?;
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8; 32]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// 64 lower-case hex digits.
            pub fn to_hex(&self) -> String {
                self.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                write_hex(f, &self.0)?;
                f.write_str(")")
            }
        }

        impl FromStr for $name {
            type Err = DigestParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32(s).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_type!(
    /// blake3 of content: a file, a module, an output's canonical encoding, a transcript.
    Digest
);

digest_type!(
    /// blake3 keyed by the domain: for low-entropy content (SQL text, parameters, policy text,
    /// names chosen by guest code) that a plain digest would let anyone confirm by guessing.
    KeyedDigest
);

impl Digest {
    /// blake3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }
}

impl From<blake3::Hash> for Digest {
    fn from(h: blake3::Hash) -> Self {
        Digest(*h.as_bytes())
    }
}

/// The domain's key for [`KeyedDigest`]s, derived from the domain secret. Only the domain holds it.
#[derive(Clone)]
pub struct DigestKey([u8; 32]);

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

impl DigestKey {
    /// The key of a domain whose secret is `domain_secret`.
    pub fn derive(domain_secret: &[u8; 32]) -> DigestKey {
        let mut h = blake3::Hasher::new_derive_key("enclave v1 keyed log digest");
        h.update(domain_secret);
        DigestKey(*h.finalize().as_bytes())
    }

    /// The keyed digest of `what` (a domain-separation label) and `bytes`.
    pub fn digest(&self, what: &str, bytes: &[u8]) -> KeyedDigest {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&(what.len() as u64).to_le_bytes());
        h.update(what.as_bytes());
        h.update(bytes);
        KeyedDigest(*h.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_strict_parsing() {
        let d = Digest::of(b"abc");
        // blake3("abc") known answer (BLAKE3 test vectors).
        assert_eq!(
            d.to_hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(d.to_hex().parse::<Digest>().unwrap(), d);
        assert!(d.to_hex().to_uppercase().parse::<Digest>().is_err());
        assert!("ab".parse::<Digest>().is_err());
        assert!(format!("{}g", &d.to_hex()[..63]).parse::<Digest>().is_err());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"00\"").is_err());
    }

    #[test]
    fn keyed_digests_depend_on_key_and_label() {
        let a = DigestKey::derive(&[1; 32]);
        let b = DigestKey::derive(&[2; 32]);
        assert_ne!(a.digest("sql", b"SELECT 1"), b.digest("sql", b"SELECT 1"));
        assert_ne!(a.digest("sql", b"SELECT 1"), a.digest("param", b"SELECT 1"));
        assert_eq!(a.digest("sql", b"SELECT 1"), a.digest("sql", b"SELECT 1"));
        assert_ne!(
            a.digest("sql", b"SELECT 1").0,
            *blake3::hash(b"SELECT 1").as_bytes()
        );
        assert_eq!(format!("{a:?}"), "DigestKey(..)");
    }
}
