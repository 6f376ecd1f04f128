//! XChaCha20-Poly1305 sealing of blocks, with a per-layer associated-data label so that a block
//! sealed for one layer can never be opened as another.

use super::FORMAT_VERSION;
use super::error::{BlockKind, RecordError};
use super::wire::{self, Node, SealedNode};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;

/// Length of an XChaCha20 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

/// The associated data bound into the AEAD of each sealed layer.
pub fn label(block: BlockKind) -> &'static [u8] {
    match block {
        BlockKind::Record => b"threaddb/v1/record",
        BlockKind::Header => b"threaddb/v1/header",
        BlockKind::Body => b"threaddb/v1/body",
        // Event and bundle blocks are never sealed.
        BlockKind::Event => b"threaddb/v1/event",
        BlockKind::Bundle => b"threaddb/v1/bundle",
    }
}

/// Seals `plaintext` with `key` and a fresh nonce drawn from `rng`, returning the block bytes.
pub fn seal(
    block: BlockKind,
    key: &[u8; 32],
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    seal_with_nonce(block, key, plaintext, nonce)
}

/// Seals with a given nonce (the caller guarantees it is fresh).
pub fn seal_with_nonce(
    block: BlockKind,
    key: &[u8; 32],
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: label(block),
            },
        )
        // Encryption fails only for plaintexts beyond 256 GiB; ours are bounded far below.
        .expect("XChaCha20-Poly1305 encryption of a bounded plaintext cannot fail");
    SealedNode {
        ciphertext,
        nonce: nonce.to_vec(),
        version: FORMAT_VERSION,
    }
    .to_canonical()
}

/// Decodes a sealed block without decrypting it (what a replicator can check alone).
pub fn parse(block: BlockKind, bytes: &[u8], max_len: usize) -> Result<SealedNode, RecordError> {
    let node: SealedNode = wire::decode(block, bytes, max_len)?;
    if node.version != FORMAT_VERSION {
        return Err(RecordError::UnsupportedVersion {
            block,
            version: node.version,
        });
    }
    if node.nonce.len() != NONCE_LEN {
        return Err(RecordError::Malformed {
            block,
            what: "nonce is not 24 bytes",
        });
    }
    if node.ciphertext.len() < TAG_LEN {
        return Err(RecordError::Malformed {
            block,
            what: "ciphertext is shorter than the authentication tag",
        });
    }
    Ok(node)
}

/// Opens a parsed sealed block with `key`.
pub fn open(block: BlockKind, key: &[u8; 32], node: &SealedNode) -> Result<Vec<u8>, RecordError> {
    let nonce: [u8; NONCE_LEN] =
        node.nonce
            .as_slice()
            .try_into()
            .map_err(|_| RecordError::Malformed {
                block,
                what: "nonce is not 24 bytes",
            })?;
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &node.ciphertext,
                aad: label(block),
            },
        )
        .map_err(|_| RecordError::CannotDecrypt { block })
}
