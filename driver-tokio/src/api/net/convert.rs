//! Net API wire bytes to node types and back, and node errors to statuses with go-threads'
//! texts (COMPAT §g).

use crate::NodeError;
use crate::api::proto::net as pb;
use crate::node::LogKey;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use threads_protocol::Cid;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::engine::{EngineError, PeerId, ThreadInfo};
use threads_protocol::identity::{PrivateKey, PublicKey};
use threads_protocol::key::ThreadKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::{MAX_BODY_LEN, RecordBundle};
use threads_reducer::docs::DocsError;
use tonic::Status;

/// Length of `LogInfo.counter`: an 8-byte buffer (COMPAT §g).
pub const COUNTER_LEN: usize = 8;

/// `LogInfo.counter` for a log of `height` records: the height as a signed zig-zag varint at
/// offset 0 of an 8-byte zero-padded buffer (longer only for heights that need more than 8
/// varint bytes, which no real log reaches).
pub fn counter(height: u64) -> Vec<u8> {
    let signed = i64::try_from(height).unwrap_or(i64::MAX);
    let mut v = ((signed << 1) ^ (signed >> 63)) as u64;
    let mut out = Vec::with_capacity(COUNTER_LEN);
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    if out.len() < COUNTER_LEN {
        out.resize(COUNTER_LEN, 0);
    }
    out
}

/// An optional thread key (`Keys.threadKey`): empty for none, else 32 or 64 bytes.
pub fn thread_key(bytes: &[u8]) -> Result<Option<ThreadKey>, Status> {
    if bytes.is_empty() {
        return Ok(None);
    }
    ThreadKey::from_bytes(bytes)
        .map(Some)
        .map_err(|_| Status::invalid_argument("invalid thread-key: invalid key"))
}

/// An optional log key (`Keys.logKey`): empty for none, else a libp2p private or public key.
pub fn log_key(bytes: &[u8]) -> Result<Option<LogKey>, Status> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if let Ok(k) = PrivateKey::from_protobuf(bytes) {
        return Ok(Some(LogKey::Private(k)));
    }
    PublicKey::from_protobuf(bytes)
        .map(|k| Some(LogKey::Public(k)))
        .map_err(|_| Status::invalid_argument("invalid log-key"))
}

/// A binary thread address (`<host>/p2p/<peer>/thread/<id>`).
pub fn thread_addr(bytes: &[u8]) -> Result<ThreadAddr, Status> {
    let addr = ThreadAddr::from_bytes(bytes)
        .map_err(|e| Status::invalid_argument(format!("invalid addr: {e}")))?;
    if addr.peer().is_none() {
        return Err(Status::invalid_argument(
            "invalid addr: it names no /p2p/<peer id>",
        ));
    }
    Ok(addr)
}

/// A binary multiaddr (`AddReplicatorRequest.addr`).
pub fn multiaddr(bytes: &[u8]) -> Result<Multiaddr, Status> {
    Multiaddr::try_from(bytes.to_vec())
        .map_err(|e| Status::invalid_argument(format!("invalid addr: {e}")))
}

/// A binary log id (peer id multihash).
pub fn log_id(bytes: &[u8]) -> Result<LogId, Status> {
    LogId::from_bytes(bytes).map_err(|e| Status::invalid_argument(format!("invalid log id: {e}")))
}

/// A binary record CID.
pub fn cid(bytes: &[u8]) -> Result<Cid, Status> {
    Cid::try_from(bytes).map_err(|e| Status::invalid_argument(format!("invalid record id: {e}")))
}

/// A record body: DAG-CBOR of at most [`MAX_BODY_LEN`] bytes.
pub fn body(bytes: &[u8]) -> Result<(), Status> {
    if bytes.len() > MAX_BODY_LEN {
        return Err(Status::invalid_argument(format!(
            "invalid body: {} bytes is more than the limit of {MAX_BODY_LEN}",
            bytes.len()
        )));
    }
    serde_ipld_dagcbor::from_slice::<ipld_core::ipld::Ipld>(bytes)
        .map(|_| ())
        .map_err(|e| Status::invalid_argument(format!("invalid body: not dag-cbor: {e}")))
}

/// A wire record as the node's bundle.
pub fn record(r: Option<pb::Record>) -> Result<RecordBundle, Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("record is required"))?;
    Ok(RecordBundle {
        record: r.record_node,
        event: r.event_node,
        header: r.header_node,
        body: r.body_node,
    })
}

/// A bundle for the wire.
pub fn to_record(b: &RecordBundle) -> pb::Record {
    pb::Record {
        record_node: b.record.clone(),
        event_node: b.event.clone(),
        header_node: b.header.clone(),
        body_node: b.body.clone(),
    }
}

/// The binary `/p2p/<peer>` of a host.
fn p2p(peer: &PeerId) -> Vec<u8> {
    Multiaddr::empty()
        .with(Protocol::P2p(crate::net::to_libp2p(peer)))
        .to_vec()
}

/// `ThreadInfoReply` of a thread held by `me`, reachable at `addrs`. Every log lists the
/// hosts that serve it: this host and the thread's known peers.
pub fn thread_reply(info: &ThreadInfo, me: &PeerId, addrs: &[ThreadAddr]) -> pb::ThreadInfoReply {
    let hosts: Vec<Vec<u8>> = std::iter::once(me)
        .chain(info.peers.iter().filter(|p| *p != me))
        .map(p2p)
        .collect();
    pb::ThreadInfoReply {
        thread_id: info.id.to_vec(),
        thread_key: info.key.to_bytes(),
        logs: info
            .logs
            .iter()
            .map(|l| pb::LogInfo {
                id: l.id.as_bytes().to_vec(),
                pub_key: l.id.public_key().to_protobuf().to_vec(),
                priv_key: l.key.as_ref().map(|k| k.to_protobuf()).unwrap_or_default(),
                addrs: hosts.clone(),
                head: l.head.map(|c| c.to_bytes()).unwrap_or_default(),
                counter: counter(l.height.0),
            })
            .collect(),
        addrs: addrs.iter().map(ThreadAddr::to_bytes).collect(),
    }
}

/// The status of a node error, with the Net API's texts.
pub fn status(e: NodeError) -> Status {
    let engine = match e {
        NodeError::Engine(e) | NodeError::Docs(DocsError::Engine(e)) => e,
        NodeError::NotFound(m) => return Status::not_found(m),
        NodeError::InUse(m) => return Status::failed_precondition(m),
        other => return crate::api::convert::status(other),
    };
    match engine {
        EngineError::ThreadNotFound | EngineError::LogNotFound => {
            Status::not_found(engine.to_string())
        }
        EngineError::ThreadExists | EngineError::LogExists => {
            Status::already_exists(engine.to_string())
        }
        EngineError::NotNext { .. }
        | EngineError::PrevNotHead
        | EngineError::Record(_)
        | EngineError::NoPeerInAddress => Status::invalid_argument(engine.to_string()),
        EngineError::NoReadKey(_) | EngineError::NotLogOwner(_) => {
            Status::failed_precondition(engine.to_string())
        }
        EngineError::Limit(_) => Status::resource_exhausted(engine.to_string()),
        other => crate::api::convert::status(NodeError::Engine(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_examples_of_compat() {
        for (height, hex) in [
            (0, "0000000000000000"),
            (1, "0200000000000000"),
            (2, "0400000000000000"),
            (5, "0a00000000000000"),
            (64, "8001000000000000"),
            (100, "c801000000000000"),
            (1000, "d00f000000000000"),
        ] {
            let got: String = counter(height).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, hex, "height {height}");
        }
        // Never truncated: a height needing 9 varint bytes keeps all of them.
        assert_eq!(counter(1 << 60).len(), 9);
    }

    #[test]
    fn keys_and_bodies() {
        assert!(thread_key(&[]).unwrap().is_none());
        assert_eq!(thread_key(&[1; 32]).unwrap().unwrap().to_bytes().len(), 32);
        assert_eq!(
            thread_key(&[1; 33]).unwrap_err().message(),
            "invalid thread-key: invalid key"
        );
        assert_eq!(
            log_key(&[1, 2, 3]).unwrap_err().message(),
            "invalid log-key"
        );
        let k = PrivateKey::from_seed([7; 32]);
        assert!(matches!(
            log_key(&k.to_protobuf()).unwrap(),
            Some(LogKey::Private(_))
        ));
        assert!(matches!(
            log_key(&k.public().to_protobuf()).unwrap(),
            Some(LogKey::Public(_))
        ));
        // {"a": 1} in DAG-CBOR; then nothing, trailing bytes, junk.
        assert!(body(&[0xa1, 0x61, 0x61, 0x01]).is_ok());
        assert!(body(&[]).is_err());
        assert!(body(&[0xa1, 0x61, 0x61, 0x01, 0x00]).is_err());
        assert!(body(&[0xff]).is_err());
        assert!(body(&[0x1c]).is_err());
        // Tags other than 42 (CIDs) are not DAG-CBOR.
        assert!(body(&[0xc1, 0x00]).is_err());
    }
}
