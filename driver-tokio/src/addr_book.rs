//! The address book: where each known peer can be dialed, kept in the repository so that a
//! restarted daemon can reach its peers again before anyone dials it.
//!
//! Entries come from thread addresses given on join, from replicator addresses, from the
//! listen addresses peers announce through identify, and from addresses we dialed
//! successfully. Each peer keeps at most [`MAX_ADDRS_PER_PEER`] addresses, newest first.
//!
//! Storage: key `0x10 ‖ peer id (38 bytes)`, value a JSON array of multiaddr strings (without
//! the `/p2p` suffix). Tag `0x10` sits between the engine's tags (`0x01..=0x0f`) and the
//! application's (`0x20..`), see `spec/daemon.md`.

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use std::collections::HashMap;
use threads_protocol::engine::PeerId;
use threads_protocol::log_id::LogId;
use threads_protocol::store::{ReadTxn, StoreError, WriteTxn, scan_prefix_collect};

/// The key-space tag of address book rows.
pub const TAG_ADDR_BOOK: u8 = 0x10;

/// Most addresses remembered per peer.
pub const MAX_ADDRS_PER_PEER: usize = 8;

/// Most peers loaded from the repository at start.
pub const MAX_PEERS: usize = 100_000;

/// Known addresses of peers, newest first.
#[derive(Clone, Debug, Default)]
pub struct AddressBook {
    peers: HashMap<PeerId, Vec<Multiaddr>>,
}

/// The row key of a peer.
pub fn key(peer: &PeerId) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + LogId::LEN);
    k.push(TAG_ADDR_BOOK);
    k.extend_from_slice(peer.as_bytes());
    k
}

/// `addr` without any `/p2p/...` component (the peer id is the row's key).
pub fn strip_peer(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

impl AddressBook {
    /// Loads every row of the repository.
    pub fn load(txn: &dyn ReadTxn) -> Result<Self, StoreError> {
        let mut book = AddressBook::default();
        for (k, v) in scan_prefix_collect(txn, &[TAG_ADDR_BOOK], MAX_PEERS)? {
            let peer = LogId::from_bytes(&k[1..])
                .map_err(|e| StoreError::Corrupt(format!("address book key: {e}")))?;
            let strings: Vec<String> = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("address book row: {e}")))?;
            let addrs = strings.iter().filter_map(|s| s.parse().ok()).collect();
            book.peers.insert(peer, addrs);
        }
        Ok(book)
    }

    /// Writes a peer's row.
    pub fn save(
        txn: &mut dyn WriteTxn,
        peer: &PeerId,
        addrs: &[Multiaddr],
    ) -> Result<(), StoreError> {
        let strings: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        let value = serde_json::to_vec(&strings).expect("strings serialize");
        txn.put(&key(peer), &value)
    }

    /// Addresses of a peer, newest first.
    pub fn get(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.peers.get(peer).cloned().unwrap_or_default()
    }

    /// Number of peers with addresses.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is known.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Remembers addresses of a peer (newest first, deduplicated, at most
    /// [`MAX_ADDRS_PER_PEER`]). Returns the new list when it changed.
    pub fn learn(
        &mut self,
        peer: &PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
    ) -> Option<Vec<Multiaddr>> {
        let entry = self.peers.entry(*peer).or_default();
        let before = entry.clone();
        for addr in addrs {
            let addr = strip_peer(&addr);
            if addr.is_empty() {
                continue;
            }
            entry.retain(|a| a != &addr);
            entry.insert(0, addr);
        }
        entry.truncate(MAX_ADDRS_PER_PEER);
        (*entry != before).then(|| entry.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threads_protocol::identity::PrivateKey;
    use threads_protocol::store::Store;
    use threads_protocol::store::memory::MemoryStore;

    #[test]
    fn learns_newest_first_bounded_and_persists() {
        let peer = PrivateKey::from_seed([7; 32]).public().peer_id();
        let mut book = AddressBook::default();
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let b: Multiaddr = format!("/ip4/127.0.0.1/tcp/2/p2p/{peer}").parse().unwrap();
        assert!(book.learn(&peer, [a.clone()]).is_some());
        assert!(book.learn(&peer, [a.clone()]).is_none(), "no change");
        let list = book.learn(&peer, [b]).unwrap();
        assert_eq!(list[0].to_string(), "/ip4/127.0.0.1/tcp/2");
        assert_eq!(list[1], a);
        for port in 10..30 {
            book.learn(
                &peer,
                [format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()],
            );
        }
        assert_eq!(book.get(&peer).len(), MAX_ADDRS_PER_PEER);

        let store = MemoryStore::new();
        let mut txn = store.write().unwrap();
        AddressBook::save(&mut txn, &peer, &book.get(&peer)).unwrap();
        txn.commit().unwrap();
        let loaded = AddressBook::load(&store.read().unwrap()).unwrap();
        assert_eq!(loaded.get(&peer), book.get(&peer));
        assert_eq!(loaded.len(), 1);
    }
}
