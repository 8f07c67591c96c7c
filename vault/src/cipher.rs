//! AES-256-GCM with random 96-bit nonces: one data key seals at most 2³² values before a
//! nonce may repeat, far above what one data subject's streams hold.
//!
//! A sealed value is `nonce ‖ ciphertext ‖ tag` (28 bytes more than the plaintext), bound to
//! its context by the additional data: a value moved to another tenant, subject, event type
//! or field does not open.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use crate::VaultError;

/// The length of a key's material.
pub const KEY_LEN: usize = 32;

/// An AES-256-GCM key: a data subject's, a tenant's or the local root key.
pub struct Key(RandomizedNonceKey);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from its material (which the caller zeroizes).
    pub fn from_bytes(material: &[u8]) -> Result<Self, VaultError> {
        if material.len() != KEY_LEN {
            return Err(VaultError::Damaged(format!(
                "a key is {KEY_LEN} bytes, not {}",
                material.len()
            )));
        }
        RandomizedNonceKey::new(&AES_256_GCM, material)
            .map(Self)
            .map_err(|_| VaultError::Damaged("the key material was refused".to_owned()))
    }

    /// Fresh key material from the operating system's generator.
    pub fn generate_material() -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let mut material = Zeroizing::new(vec![0; KEY_LEN]);
        aws_lc_rs::rand::fill(&mut material)
            .map_err(|_| VaultError::Damaged("no randomness for a new key".to_owned()))?;
        Ok(material)
    }

    /// Seals `plaintext`, bound to `context`.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(context), &mut in_out)
            .map_err(|_| VaultError::Damaged("sealing failed".to_owned()))?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens what [`Self::seal`] sealed under the same context.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if sealed.len() < NONCE_LEN {
            return Err(VaultError::Damaged(
                "a sealed value is too short".to_owned(),
            ));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| VaultError::Damaged("a sealed value's nonce is malformed".to_owned()))?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plaintext_len = self
            .0
            .open_in_place(nonce, Aad::from(context), &mut in_out)
            .map_err(|_| {
                VaultError::Damaged(
                    "a sealed value does not open: altered, or moved from another context"
                        .to_owned(),
                )
            })?
            .len();
        in_out.truncate(plaintext_len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::from_bytes(&Key::generate_material().expect("material")).expect("a key")
    }

    #[test]
    fn a_value_opens_under_its_own_context_only() {
        let key = key();
        let sealed = key
            .seal(b"tenant/subject/QuerySubmitted//text", b"my lease")
            .expect("seals");
        assert_eq!(sealed.len(), b"my lease".len() + 28);
        assert_eq!(
            &key.open(b"tenant/subject/QuerySubmitted//text", &sealed)
                .expect("opens")[..],
            b"my lease"
        );
        assert!(key
            .open(b"tenant/other/QuerySubmitted//text", &sealed)
            .is_err());
    }

    #[test]
    fn another_key_or_an_altered_value_does_not_open() {
        let (one, other) = (key(), key());
        let mut sealed = one.seal(b"c", b"plaintext").expect("seals");
        assert!(other.open(b"c", &sealed).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(one.open(b"c", &sealed).is_err());
    }

    #[test]
    fn sealing_twice_gives_two_ciphertexts() {
        let key = key();
        assert_ne!(
            key.seal(b"c", b"same").expect("seals"),
            key.seal(b"c", b"same").expect("seals")
        );
    }
}
