//! The Net API (`threads.net.pb.API`): the host's peer id, thread info, replicators, pulls.

use crate::Client;
use crate::error::{Error, Result};
use crate::proto::net as npb;
use multiaddr::Multiaddr;
use serde::Serialize;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::id::ThreadId;
use threads_protocol::key::ThreadKey;
use threads_protocol::log_id::LogId;

/// One log of a thread, as the Net API reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogInfo {
    /// The log id (the peer id of its key), base58.
    pub id: String,
    /// Addresses the log is served at.
    pub addrs: Vec<String>,
    /// The head record's CID, if the log has records.
    pub head: Option<String>,
    /// The number of records in the log, as the server reports it.
    pub counter: i64,
}

/// go-threads' counter form: a zig-zag signed varint at the start of the bytes (empty is 0).
pub(crate) fn decode_counter(bytes: &[u8]) -> Result<i64> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        if i >= 10 {
            break;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    if bytes.is_empty() {
        Ok(0)
    } else {
        Err(Error::invalid("log counter", "unterminated varint"))
    }
}

/// A thread as the Net API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadInfo {
    /// The thread id.
    pub id: ThreadId,
    /// The thread key (without read key on a replicator); `None` if not sent.
    pub key: Option<ThreadKey>,
    /// The logs.
    pub logs: Vec<LogInfo>,
    /// The thread's addresses.
    pub addrs: Vec<String>,
}

/// A multiaddr in text form from its bytes: a thread address when it ends in `/thread/…`.
pub(crate) fn addr_string(bytes: &[u8]) -> Result<String> {
    if let Ok(a) = ThreadAddr::from_bytes(bytes) {
        return Ok(a.to_string());
    }
    Multiaddr::try_from(bytes.to_vec())
        .map(|a| a.to_string())
        .map_err(|e| Error::invalid("address", e))
}

impl ThreadInfo {
    pub(crate) fn from_pb(r: npb::ThreadInfoReply) -> Result<ThreadInfo> {
        let id = ThreadId::from_bytes(&r.thread_id).map_err(|e| Error::invalid("thread id", e))?;
        let key = if r.thread_key.is_empty() {
            None
        } else {
            Some(ThreadKey::from_bytes(&r.thread_key).map_err(|e| Error::invalid("key", e))?)
        };
        let logs = r
            .logs
            .into_iter()
            .map(|l| {
                let id = LogId::from_bytes(&l.id).map_err(|e| Error::invalid("log id", e))?;
                let head = if l.head.is_empty() {
                    None
                } else {
                    let c = cid::Cid::try_from(l.head.as_slice())
                        .map_err(|e| Error::invalid("head", e))?;
                    Some(c.to_string())
                };
                Ok(LogInfo {
                    id: id.to_string(),
                    addrs: l
                        .addrs
                        .iter()
                        .map(|a| addr_string(a))
                        .collect::<Result<_>>()?,
                    head,
                    counter: decode_counter(&l.counter)?,
                })
            })
            .collect::<Result<_>>()?;
        let addrs = r
            .addrs
            .iter()
            .map(|a| addr_string(a))
            .collect::<Result<_>>()?;
        Ok(ThreadInfo {
            id,
            key,
            logs,
            addrs,
        })
    }
}

impl Client {
    /// The server host's peer id.
    pub async fn host_id(&self) -> Result<LogId> {
        let r = self
            .net_api()
            .get_host_id(self.req(npb::GetHostIdRequest {})?)
            .await?
            .into_inner();
        LogId::from_bytes(&r.peer_id).map_err(|e| Error::invalid("peer id", e))
    }

    /// The thread `id`: key, logs and addresses.
    pub async fn thread_info(&self, id: ThreadId) -> Result<ThreadInfo> {
        let r = npb::GetThreadRequest {
            thread_id: id.to_vec(),
        };
        let r = self.net_api().get_thread(self.req(r)?).await?.into_inner();
        ThreadInfo::from_pb(r)
    }

    /// Adds the peer at `addr` (a multiaddr naming `/p2p/<peer>`) as a replicator of thread
    /// `id`; returns the replicator's peer id.
    pub async fn add_replicator(&self, id: ThreadId, addr: &Multiaddr) -> Result<LogId> {
        let r = npb::AddReplicatorRequest {
            thread_id: id.to_vec(),
            addr: addr.to_vec(),
        };
        let r = self
            .net_api()
            .add_replicator(self.req(r)?)
            .await?
            .into_inner();
        LogId::from_bytes(&r.peer_id).map_err(|e| Error::invalid("peer id", e))
    }

    /// Asks the server to pull thread `id` from its peers now.
    pub async fn pull_thread(&self, id: ThreadId) -> Result<()> {
        let r = npb::PullThreadRequest {
            thread_id: id.to_vec(),
        };
        self.net_api().pull_thread(self.req(r)?).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_info_decodes() {
        let mut rng = threads_protocol::rng::seeded(3);
        let id = ThreadId::random(threads_protocol::id::Variant::Raw, &mut rng);
        let key = ThreadKey::random(&mut rng, false);
        let peer = threads_protocol::identity::PrivateKey::from_seed([1; 32])
            .public()
            .peer_id();
        let host: Multiaddr = format!("/ip4/127.0.0.1/tcp/4006/p2p/{peer}")
            .parse()
            .unwrap();
        let taddr = ThreadAddr::new(host.clone(), id);
        let info = ThreadInfo::from_pb(npb::ThreadInfoReply {
            thread_id: id.to_vec(),
            thread_key: key.to_bytes(),
            logs: vec![npb::LogInfo {
                id: peer.as_ref().to_vec(),
                addrs: vec![host.to_vec()],
                ..Default::default()
            }],
            addrs: vec![taddr.to_bytes()],
        })
        .unwrap();
        assert_eq!(info.id, id);
        assert_eq!(info.key, Some(key));
        assert_eq!(info.logs[0].id, peer.to_string());
        assert_eq!(info.logs[0].addrs, vec![host.to_string()]);
        assert_eq!(info.logs[0].head, None);
        assert_eq!(info.addrs, vec![taddr.to_string()]);
        assert_eq!(info.logs[0].counter, 0);
        assert!(addr_string(&[0xff, 0xff]).is_err());
        // COMPAT's examples of the counter bytes.
        assert_eq!(decode_counter(&[0; 8]).unwrap(), 0);
        assert_eq!(decode_counter(&[2, 0, 0, 0, 0, 0, 0, 0]).unwrap(), 1);
        assert_eq!(decode_counter(&[0xc8, 1, 0, 0, 0, 0, 0, 0]).unwrap(), 100);
        assert_eq!(decode_counter(&[1]).unwrap(), -1);
        assert_eq!(decode_counter(&[]).unwrap(), 0);
        assert!(decode_counter(&[0x80]).is_err());
    }
}
