//! The key set tokens are checked against: a JWKS document (RFC 7517) read from a file. Each key
//! verifies the algorithm it was made for (its `alg`, or the usual one for its type: HS256 for
//! `oct`, RS256 for `RSA`, EdDSA for Ed25519 `OKP`); `kid` picks the key, so keys rotate by adding
//! one. Keys that carry their private half (`oct`, and `OKP` with `d`) can also sign: that is how
//! `charla token` and a service's own service credential mint tokens.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

/// Why a key set can't be used.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    #[error("can't read the key set {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("can't write the key set {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the key set {path} is not a JWKS document: {reason}")]
    Invalid { path: String, reason: String },
}

/// A key that verifies tokens.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// A key that signs tokens.
#[derive(Clone)]
pub struct SigningKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: EncodingKey,
}

impl SigningKey {
    /// Signs `claims` into a compact JWT whose header names this key.
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, String> {
        let mut header = jsonwebtoken::Header::new(self.algorithm);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|error| error.to_string())
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The keys of a JWKS file.
#[derive(Clone)]
pub struct KeySet {
    pub(crate) verifying: Vec<VerifyingKey>,
    signing: Option<SigningKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.verifying.iter().map(|key| &key.kid).collect();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

impl KeySet {
    /// Reads and checks the JWKS file at `path`.
    pub fn read(path: &Path) -> Result<Self, KeySetError> {
        let text = std::fs::read(path).map_err(|source| KeySetError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| KeySetError::Invalid {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Reads the JWKS file at `path`, first writing a new key set with one random HS256 key
    /// there if there is no file yet (development mode).
    pub fn read_or_create(path: &Path) -> Result<Self, KeySetError> {
        if !path.exists() {
            let write_error = |source| KeySetError::Write {
                path: path.display().to_string(),
                source,
            };
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(write_error)?;
            }
            publish_once(path, &new_development_jwks()).map_err(write_error)?;
        }
        Self::read(path)
    }

    /// Parses a JWKS document.
    pub fn parse(document: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(document).map_err(|e| format!("not JSON: {e}"))?;
        let keys = value
            .get("keys")
            .and_then(|keys| keys.as_array())
            .ok_or("no `keys` array")?;
        let mut verifying = Vec::new();
        let mut signing = None;
        for (index, raw) in keys.iter().enumerate() {
            let jwk: Jwk = serde_json::from_value(raw.clone())
                .map_err(|e| format!("key {index} is not a JWK: {e}"))?;
            if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                continue;
            }
            let algorithm = algorithm_of(&jwk).map_err(|e| format!("key {index}: {e}"))?;
            let key =
                DecodingKey::from_jwk(&jwk).map_err(|e| format!("key {index} is unusable: {e}"))?;
            let kid = jwk.common.key_id.clone();
            if let Some(key) = signing_key_of(raw, &jwk, algorithm)? {
                // The last key that can sign signs: a new key is added at the end to rotate.
                signing = Some(SigningKey {
                    kid: kid.clone(),
                    algorithm,
                    key,
                });
            }
            verifying.push(VerifyingKey {
                kid,
                algorithm,
                key,
            });
        }
        if verifying.is_empty() {
            return Err("no signature keys".into());
        }
        if verifying.len() > 1 && verifying.iter().any(|key| key.kid.is_none()) {
            return Err("with more than one key, every key needs a `kid`".into());
        }
        Ok(Self { verifying, signing })
    }

    /// The key new tokens are signed with, if the set holds a private key.
    pub fn signing_key(&self) -> Option<&SigningKey> {
        self.signing.as_ref()
    }

    /// The key named `kid`, or the only key when the token names none.
    pub(crate) fn find(&self, kid: Option<&str>) -> Result<&VerifyingKey, String> {
        match kid {
            Some(kid) => self
                .verifying
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid))
                .ok_or_else(|| format!("no key in the key set has kid `{}`", short(kid))),
            None if self.verifying.len() == 1 => Ok(&self.verifying[0]),
            None => Err("the token names no key (`kid`) and the key set has several".into()),
        }
    }
}

/// The algorithm a key verifies: its own `alg`, or the usual one for its type.
fn algorithm_of(jwk: &Jwk) -> Result<Algorithm, String> {
    if let Some(alg) = jwk.common.key_algorithm {
        return match alg {
            KeyAlgorithm::HS256 => Ok(Algorithm::HS256),
            KeyAlgorithm::HS384 => Ok(Algorithm::HS384),
            KeyAlgorithm::HS512 => Ok(Algorithm::HS512),
            KeyAlgorithm::RS256 => Ok(Algorithm::RS256),
            KeyAlgorithm::RS384 => Ok(Algorithm::RS384),
            KeyAlgorithm::RS512 => Ok(Algorithm::RS512),
            KeyAlgorithm::PS256 => Ok(Algorithm::PS256),
            KeyAlgorithm::ES256 => Ok(Algorithm::ES256),
            KeyAlgorithm::ES384 => Ok(Algorithm::ES384),
            KeyAlgorithm::EdDSA => Ok(Algorithm::EdDSA),
            other => Err(format!("algorithm {other:?} is not supported")),
        };
    }
    match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => Ok(Algorithm::HS256),
        AlgorithmParameters::RSA(_) => Ok(Algorithm::RS256),
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Ok(Algorithm::EdDSA)
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Ok(Algorithm::ES256)
        }
        _ => Err("key type not supported (oct, RSA, EC P-256 or OKP Ed25519)".into()),
    }
}

/// The signing half of a key, when the JWK carries it: `oct` keys always, Ed25519 keys with `d`.
fn signing_key_of(
    raw: &serde_json::Value,
    jwk: &Jwk,
    algorithm: Algorithm,
) -> Result<Option<EncodingKey>, String> {
    match &jwk.algorithm {
        AlgorithmParameters::OctetKey(oct) => {
            base64url("k", &oct.value).map(|secret| Some(EncodingKey::from_secret(&secret)))
        }
        AlgorithmParameters::OctetKeyPair(_) if algorithm == Algorithm::EdDSA => {
            let Some(d) = raw.get("d").and_then(|d| d.as_str()) else {
                return Ok(None);
            };
            let seed = base64url("d", d)?;
            if seed.len() != 32 {
                return Err("an Ed25519 key's `d` must be 32 bytes".into());
            }
            Ok(Some(EncodingKey::from_ed_der(&ed25519_pkcs8(&seed))))
        }
        _ => Ok(None),
    }
}

/// A JWK member in base64url (RFC 7515 says without padding; padding is tolerated).
fn base64url(member: &str, text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|e| format!("a key's `{member}` is not base64url: {e}"))
}

/// An Ed25519 private key as PKCS#8 DER (RFC 8410): a fixed header, then the 32-byte seed.
fn ed25519_pkcs8(seed: &[u8]) -> Vec<u8> {
    const HEADER: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = HEADER.to_vec();
    der.extend_from_slice(seed);
    der
}

/// A new key set for development: one random 256-bit HS256 key.
fn new_development_jwks() -> String {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the operating system's random source works");
    let kid = format!("dev-{}", &uuid::Uuid::now_v7().simple().to_string()[..12]);
    serde_json::json!({
        "keys": [{
            "kty": "oct",
            "kid": kid,
            "alg": "HS256",
            "use": "sig",
            "k": URL_SAFE_NO_PAD.encode(secret),
        }]
    })
    .to_string()
}

/// Creates `path` with `contents`, readable by its owner only (it holds a secret), unless it
/// exists already. Several processes starting at once (three services in development mode) all
/// end up with the one file that was published first, never with a half-written one: the file is
/// written aside, then linked into place, which fails if another process got there first.
fn publish_once(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let aside = path.with_extension(format!("{}.tmp", uuid::Uuid::now_v7().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&aside)
        .and_then(|mut file| file.write_all(contents.as_bytes()));
    let published = written.and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    match published {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// A short prefix of a caller-supplied value, for error messages.
pub(crate) fn short(value: &str) -> String {
    const MAX: usize = 40;
    match value.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_development_key_set_signs_and_verifies() {
        let set = KeySet::parse(new_development_jwks().as_bytes()).unwrap();
        assert_eq!(set.verifying.len(), 1);
        assert!(set.signing_key().is_some());
    }

    #[test]
    fn processes_starting_together_share_one_development_key_set() {
        let dir = std::env::temp_dir().join(format!("charla-keys-{}", uuid::Uuid::now_v7()));
        let path = dir.join("jwks.json");
        let kids: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let set = KeySet::read_or_create(&path).expect("a key set");
                    set.verifying[0].kid.clone()
                })
            })
            .map(|thread| thread.join().unwrap())
            .collect();
        assert!(kids.windows(2).all(|pair| pair[0] == pair[1]), "{kids:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn several_keys_need_kids() {
        let doc = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"oct","k":"b3RoZXI"}]}"#;
        assert!(KeySet::parse(doc.as_bytes()).unwrap_err().contains("kid"));
    }

    #[test]
    fn not_a_key_set_says_why() {
        assert!(KeySet::parse(b"{}").unwrap_err().contains("keys"));
        assert!(KeySet::parse(b"nope").unwrap_err().contains("JSON"));
        let unsupported = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"RSA-OAEP"}]}"#;
        assert!(KeySet::parse(unsupported.as_bytes()).is_err());
    }
}
