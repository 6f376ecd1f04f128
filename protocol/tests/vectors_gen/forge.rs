//! Building the bad inputs of `rejections.json`: records re-sealed, re-signed or assembled
//! around malformed blocks by someone holding the service key or the log key.

use super::rejections::Input;
use super::{Setup, TIME_BASE, open_sealed};
use serde::Serialize;
use threads_protocol::counter::{LamportClock, LogCounter};
use threads_protocol::identity::PrivateKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::wire::{self, EventNode, HeaderNode, SealedNode, SignedRecordNode};
use threads_protocol::record::{
    self, BlockKind, FORMAT_VERSION, RecordBundle, RecordDraft, SIGNING_DOMAIN, block_cid, seal,
};
use threads_protocol::rng::ProtocolRng;

/// The envelope plaintext without its `"p"` member (a non-canonical form of a null `prev`).
#[derive(Serialize)]
pub(super) struct EnvelopeWithoutPrev {
    #[serde(rename = "a", with = "serde_bytes")]
    pub(super) author: Vec<u8>,
    #[serde(rename = "c")]
    pub(super) counter: u64,
    #[serde(rename = "e")]
    pub(super) event: cid::Cid,
    #[serde(rename = "l")]
    pub(super) clock: u64,
    #[serde(rename = "s", with = "serde_bytes")]
    pub(super) signature: Vec<u8>,
    #[serde(rename = "t", with = "serde_bytes")]
    pub(super) thread: Vec<u8>,
    #[serde(rename = "v")]
    pub(super) version: u64,
}

/// The envelope plaintext with an extra member `"x"`.
#[derive(Serialize)]
pub(super) struct EnvelopeWithExtra {
    #[serde(flatten)]
    pub(super) node: SignedRecordNode,
    #[serde(rename = "x")]
    pub(super) extra: u64,
}

/// Builders of tampered records for one thread and log.
pub(super) struct Forge {
    /// The thread and its keys.
    pub(super) setup: Setup,
    /// The key of the log the records are made for.
    pub(super) log_key: PrivateKey,
    /// The identity that authors them.
    pub(super) author: PrivateKey,
    /// Where keys and nonces are drawn from.
    pub(super) rng: ProtocolRng,
}

impl Forge {
    /// The id of the log.
    pub(super) fn log(&self) -> LogId {
        LogId::from_public_key(&self.log_key.public())
    }

    /// A valid record of the log around `body`, its clock equal to its counter.
    pub(super) fn make(
        &mut self,
        counter: u64,
        prev: Option<cid::Cid>,
        body: &[u8],
    ) -> RecordBundle {
        let author = self.author.public();
        let draft = RecordDraft {
            thread: &self.setup.thread,
            author: &author,
            prev,
            counter: LogCounter::new(counter).expect("counters are >= 1"),
            clock: LamportClock(counter),
            time: TIME_BASE,
            body,
        };
        record::create(&draft, &self.log_key, &self.setup.key, &mut self.rng)
            .expect("valid draft")
            .into_record()
            .into_bundle()
    }

    /// `bundle`, to be verified for this thread and log.
    pub(super) fn verify_input(&self, bundle: RecordBundle) -> Input {
        Input::Verify {
            bundle,
            thread: self.setup.thread,
            log: self.log(),
            service: *self.setup.service().as_bytes(),
        }
    }

    /// `bundle`, to be verified for this thread and log and opened with the read key.
    pub(super) fn open_input(&self, bundle: RecordBundle) -> Input {
        Input::Open {
            bundle,
            thread: self.setup.thread,
            log: self.log(),
            service: *self.setup.service().as_bytes(),
            read: self.setup.read_bytes(),
        }
    }

    /// The envelope of `bundle`, decrypted and decoded.
    pub(super) fn envelope(&self, bundle: &RecordBundle) -> SignedRecordNode {
        let plain = open_sealed(
            BlockKind::Record,
            self.setup.service().as_bytes(),
            &bundle.record,
        );
        wire::decode(BlockKind::Record, &plain, usize::MAX).expect("our envelope decodes")
    }

    /// Seals `plaintext` as the envelope of `bundle` (what anyone holding the service key can
    /// do), under the AEAD label of `label`.
    pub(super) fn reseal_raw(
        &mut self,
        bundle: &RecordBundle,
        plaintext: &[u8],
        label: BlockKind,
    ) -> RecordBundle {
        let record = seal::seal(
            label,
            self.setup.service().as_bytes(),
            plaintext,
            &mut self.rng,
        );
        RecordBundle {
            record,
            ..bundle.clone()
        }
    }

    /// Re-seals the envelope after `edit`, keeping the old signature.
    pub(super) fn reseal(
        &mut self,
        bundle: &RecordBundle,
        edit: impl FnOnce(&mut SignedRecordNode),
    ) -> RecordBundle {
        let mut node = self.envelope(bundle);
        edit(&mut node);
        self.reseal_raw(bundle, &wire::encode(&node), BlockKind::Record)
    }

    /// A correctly signed and sealed record around the given body, header and event blocks (what
    /// a buggy writer holding the log key could publish).
    pub(super) fn assemble(
        &mut self,
        counter: u64,
        prev: Option<cid::Cid>,
        body: Vec<u8>,
        header: Vec<u8>,
        event: Vec<u8>,
    ) -> RecordBundle {
        let unsigned = wire::UnsignedRecordNode {
            author: self.author.public().to_protobuf().to_vec(),
            counter,
            event: block_cid(&event),
            clock: counter,
            prev,
            thread: self.setup.thread.as_bytes().to_vec(),
            version: FORMAT_VERSION,
        };
        let mut input = SIGNING_DOMAIN.to_vec();
        input.extend_from_slice(&wire::encode(&unsigned));
        let signed = SignedRecordNode {
            author: unsigned.author,
            counter,
            event: unsigned.event,
            clock: unsigned.clock,
            prev,
            signature: self.log_key.sign(&input).to_vec(),
            thread: unsigned.thread,
            version: FORMAT_VERSION,
        };
        let record = seal::seal(
            BlockKind::Record,
            self.setup.service().as_bytes(),
            &wire::encode(&signed),
            &mut self.rng,
        );
        RecordBundle {
            record,
            event,
            header,
            body,
        }
    }

    /// A first record assembled from a body sealed under `body_label` and the given header.
    pub(super) fn assemble_parts(
        &mut self,
        body_label: BlockKind,
        header_node: &HeaderNode,
        body_key: &[u8; 32],
        event_version: u64,
    ) -> RecordBundle {
        let body = seal::seal(body_label, body_key, b"forged body", &mut self.rng);
        let read = self.setup.read_bytes();
        let header = seal::seal(
            BlockKind::Header,
            &read,
            &wire::encode(header_node),
            &mut self.rng,
        );
        let event = wire::encode(&EventNode {
            body: block_cid(&body),
            header: block_cid(&header),
            version: event_version,
        });
        self.assemble(1, None, body, header, event)
    }
}

/// `bytes` with bit 0 of byte `at` flipped.
pub(super) fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

/// The encoding of a sealed block with the given ciphertext, nonce and version.
pub(super) fn sealed_bytes(ciphertext: Vec<u8>, nonce: Vec<u8>, version: u64) -> Vec<u8> {
    wire::encode(&SealedNode {
        ciphertext,
        nonce,
        version,
    })
}
