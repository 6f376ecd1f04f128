//! The libp2p side of the daemon: one task owns the swarm (TCP + noise + yamux and QUIC,
//! identify, ping, the `/threads/sync/1` request-response protocol and connection limits).
//!
//! It carries engine messages as opaque bytes: inbound requests go to the engine task's
//! bounded queue (awaiting room there is the backpressure a fast peer feels), outbound ones
//! come from the engine and are sent to the peer, dialing it from the address book when it is
//! not connected. Each peer has an outbound budget in bytes; messages beyond it are dropped
//! and counted (the engine's anti-entropy repairs anything lost).

mod budget;
pub mod codec;
mod conn_manager;

use crate::addr_book::AddressBook;
use crate::metrics::Metrics;
use budget::Budgets;
use codec::SyncCodec;
use conn_manager::ConnManager;
use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, Swarm, connection_limits, identify, mdns, noise, ping, tcp, yamux};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use threads_protocol::engine::PeerId;
use threads_protocol::log_id::LogId;
use threads_protocol::store::StoreError;
use tokio::sync::{mpsc, oneshot};

/// Settings of the swarm.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Listen addresses (TCP and/or QUIC multiaddrs).
    pub listen: Vec<Multiaddr>,
    /// Addresses to advertise instead of the listen addresses (empty: the listen addresses).
    pub announce: Vec<Multiaddr>,
    /// Connections kept when trimming.
    pub conn_low_water: usize,
    /// Connections above which the oldest idle ones are closed, down to the low water mark.
    pub conn_high_water: usize,
    /// Connections younger than this are never trimmed.
    pub conn_grace: Duration,
    /// Interval of libp2p pings on every connection.
    pub ping_interval: Duration,
    /// How long a connection without open streams stays up.
    pub idle_timeout: Duration,
    /// Largest sync message sent or accepted, in bytes.
    pub max_message_len: usize,
    /// Most sync bytes in flight to one peer (sent but not acknowledged, or waiting for a
    /// connection); further messages to that peer are dropped until it catches up.
    pub max_outbound_bytes_per_peer: usize,
    /// How long a sync message may wait for its acknowledgement.
    pub request_timeout: Duration,
    /// Discover peers on the local network with mDNS (multicast on every interface: off by
    /// default, never in tests).
    pub mdns: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: vec!["/ip4/0.0.0.0/tcp/4006".parse().expect("valid multiaddr")],
            announce: Vec::new(),
            conn_low_water: 100,
            conn_high_water: 400,
            conn_grace: Duration::from_secs(20),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(120),
            max_message_len: 8 << 20,
            max_outbound_bytes_per_peer: 32 << 20,
            request_timeout: Duration::from_secs(30),
            mdns: false,
        }
    }
}

/// From the swarm to the engine task.
pub(crate) enum NetInput {
    /// A sync message from an authenticated peer.
    Message { from: PeerId, bytes: Vec<u8> },
    /// The first connection to a peer came up.
    Connected(PeerId),
    /// The address book changed for a peer: persist the new list, then answer `saved` (when
    /// someone waits for it to be durable).
    Addrs {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        saved: Option<oneshot::Sender<Result<(), StoreError>>>,
    },
    /// A sync message after the verification stage (`node::verify_stage`): checked there, or
    /// left for the engine to check.
    Checked {
        /// Length of the message as received.
        len: usize,
        /// The message, checked or left for the engine.
        inbound: Box<threads_protocol::engine::Inbound>,
    },
}

/// From the engine task to the swarm.
pub(crate) enum NetOutput {
    /// Send a sync message.
    Transmit { to: PeerId, bytes: Vec<u8> },
}

/// Requests from node handles to the swarm task.
pub(crate) enum NetControl {
    /// Remember addresses of a peer (from a thread address or a replicator address); `done`
    /// answers once the peer's row is committed to the repository.
    Learn {
        peer: Box<PeerId>,
        addrs: Vec<Multiaddr>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// The addresses this host can be reached at (announce, else listen addresses).
    Addresses(oneshot::Sender<Vec<Multiaddr>>),
    /// Peers with an open connection.
    ConnectedPeers(oneshot::Sender<Vec<PeerId>>),
}

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

/// An error and its sources on one line (libp2p errors often say little at the top).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        parts.push(s.to_string());
        next = s.source();
    }
    parts.retain(|p| !p.is_empty());
    parts.dedup();
    if parts.is_empty() {
        format!("{e:?}")
    } else {
        parts.join(": ")
    }
}

/// Most inbound sync messages held while the engine's queue is full; beyond it messages are
/// refused (their senders see a failure and sync repairs the loss).
pub const MAX_PENDING_INBOUND: usize = 1024;

/// Input for the engine that waits for room in its queue, with the acknowledgement to send
/// once the engine took it.
struct Pending {
    input: NetInput,
    ack: Option<request_response::ResponseChannel<()>>,
}

/// The engine's peer id as a libp2p peer id (both are the identity multihash of the key).
pub fn to_libp2p(peer: &PeerId) -> libp2p::PeerId {
    libp2p::PeerId::from_bytes(peer.as_bytes()).expect("an Ed25519 log id is a valid peer id")
}

/// A libp2p peer id as the engine's, when it is an Ed25519 key (the only kind hosts use).
pub fn from_libp2p(peer: &libp2p::PeerId) -> Option<PeerId> {
    LogId::from_bytes(&peer.to_bytes()).ok()
}

/// Builds the swarm and starts listening. Errors name the address that failed.
pub(crate) fn build_swarm(
    keypair: libp2p::identity::Keypair,
    config: &NetConfig,
) -> Result<Swarm<Behaviour>, String> {
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(
            (config.conn_high_water as u32).saturating_mul(2).max(4),
        ))
        .with_max_pending_incoming(Some(128))
        .with_max_established_per_peer(Some(4));
    let codec = SyncCodec {
        max_len: config.max_message_len,
    };
    let rr_config = request_response::Config::default()
        .with_request_timeout(config.request_timeout)
        .with_max_concurrent_streams(1024);
    let ping_interval = config.ping_interval;
    let use_mdns = config.mdns;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| format!("setting up TCP: {e}"))?
        .with_quic()
        .with_behaviour(|key| {
            let mdns = if use_mdns {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    key.public().to_peer_id(),
                )?)
            } else {
                None
            };
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                identify: identify::Behaviour::new(
                    identify::Config::new("/threads/1.0.0".into(), key.public())
                        .with_agent_version(format!("threadsd/{}", env!("CARGO_PKG_VERSION"))),
                ),
                ping: ping::Behaviour::new(ping::Config::new().with_interval(ping_interval)),
                sync: request_response::Behaviour::with_codec(
                    codec,
                    [(codec::SYNC_PROTOCOL, ProtocolSupport::Full)],
                    rr_config,
                ),
                mdns: Toggle::from(mdns),
            })
        })
        .map_err(|e| format!("setting up the network behaviour: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| format!("hostAddr {addr}: {}", error_chain(&e)))?;
    }
    for addr in &config.announce {
        swarm.add_external_address(addr.clone());
    }
    Ok(swarm)
}

/// The swarm task's state.
pub(crate) struct NetTask {
    pub swarm: Swarm<Behaviour>,
    pub config: NetConfig,
    pub book: AddressBook,
    pub to_engine: mpsc::Sender<NetInput>,
    pub from_engine: mpsc::Receiver<NetOutput>,
    pub control: mpsc::Receiver<NetControl>,
    pub metrics: Arc<Metrics>,
    pub listen_addrs: Vec<Multiaddr>,
    budgets: Budgets<PeerId, OutboundRequestId>,
    conns: ConnManager,
    pending: VecDeque<Pending>,
}

impl NetTask {
    pub fn new(
        swarm: Swarm<Behaviour>,
        config: NetConfig,
        book: AddressBook,
        to_engine: mpsc::Sender<NetInput>,
        from_engine: mpsc::Receiver<NetOutput>,
        control: mpsc::Receiver<NetControl>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let budgets = Budgets::new(config.max_outbound_bytes_per_peer);
        let conns = ConnManager::new(
            config.conn_low_water,
            config.conn_high_water,
            config.conn_grace,
        );
        NetTask {
            swarm,
            config,
            book,
            to_engine,
            from_engine,
            control,
            metrics,
            listen_addrs: Vec::new(),
            budgets,
            conns,
            pending: VecDeque::new(),
        }
    }

    /// Waits until every listener reports an address (or fails), so that callers can print
    /// where the node listens. Returns the listen addresses.
    pub async fn wait_listening(&mut self) -> Result<Vec<Multiaddr>, String> {
        let wanted = self.config.listen.len();
        let mut ready = std::collections::HashSet::new();
        while ready.len() < wanted {
            match self.swarm.select_next_some().await {
                SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                } => {
                    ready.insert(listener_id);
                    self.listen_addrs.push(address);
                }
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err(format!("a listener closed at start: {reason:?}"));
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(format!("a listener failed at start: {error}"));
                }
                other => self.swarm_event(other).await,
            }
        }
        Ok(self.listen_addrs.clone())
    }

    /// Runs until `stop` fires or the engine goes away.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut trim = tokio::time::interval(Duration::from_secs(5));
        loop {
            // The swarm keeps running while the engine is busy: inputs wait in `pending` and
            // go over as the engine's queue makes room.
            let to_engine = self.to_engine.clone();
            let waiting = !self.pending.is_empty();
            tokio::select! {
                permit = to_engine.reserve(), if waiting => match permit {
                    Ok(permit) => {
                        if let Some(p) = self.pending.pop_front() {
                            permit.send(p.input);
                            if let Some(ack) = p.ack {
                                let _ = self.swarm.behaviour_mut().sync.send_response(ack, ());
                            }
                        }
                    }
                    Err(_) => break,
                },
                event = self.swarm.select_next_some() => self.swarm_event(event).await,
                out = self.from_engine.recv() => match out {
                    Some(NetOutput::Transmit { to, bytes }) => self.transmit(to, bytes),
                    None => break,
                },
                Some(ctl) = self.control.recv() => self.control(ctl),
                _ = trim.tick() => self.trim(),
                _ = stop.changed() => break,
            }
        }
        tracing::info!("network stopped");
    }

    fn control(&mut self, ctl: NetControl) {
        match ctl {
            NetControl::Learn { peer, addrs, done } => {
                // A caller's address must be durable before it is told so (a join acknowledged
                // and then a restart must still reach the peer): the row is saved even when
                // the book already held it, and it waits its turn rather than being dropped.
                self.book.learn(&peer, addrs);
                let input = NetInput::Addrs {
                    peer: *peer,
                    addrs: self.book.get(&peer),
                    saved: Some(done),
                };
                self.hand_to_engine(input, None);
            }
            NetControl::Addresses(reply) => {
                let announced: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
                let addrs = if self.config.announce.is_empty() {
                    self.listen_addrs.clone()
                } else {
                    announced
                };
                let _ = reply.send(addrs);
            }
            NetControl::ConnectedPeers(reply) => {
                let peers = self
                    .swarm
                    .connected_peers()
                    .filter_map(from_libp2p)
                    .collect();
                let _ = reply.send(peers);
            }
        }
    }

    /// Adds addresses to the book and has the engine task persist them when they changed.
    fn learn(&mut self, peer: &PeerId, addrs: Vec<Multiaddr>) {
        if let Some(list) = self.book.learn(peer, addrs) {
            // In line with the other inputs, so rows are saved in the order the book changed.
            let input = NetInput::Addrs {
                peer: *peer,
                addrs: list,
                saved: None,
            };
            self.hand_to_engine(input, None);
        }
    }

    fn transmit(&mut self, to: PeerId, bytes: Vec<u8>) {
        let len = bytes.len();
        if !self.budgets.fits(&to, len) {
            self.metrics.add(&self.metrics.transmits_dropped, 1);
            tracing::debug!(peer = %to, len, used = self.budgets.used(&to), "outbound budget full; message dropped");
            return;
        }
        let addrs = self.book.get(&to);
        let id = self.swarm.behaviour_mut().sync.send_request_with_addresses(
            &to_libp2p(&to),
            bytes,
            addrs,
        );
        self.budgets.charge(to, id, len);
    }

    fn settle(&mut self, id: &OutboundRequestId, delivered: bool) {
        if let Some(len) = self.budgets.settle(id)
            && delivered
        {
            self.metrics.add(&self.metrics.bytes_sent, len as u64);
        }
    }

    /// Hands `input` to the engine now if its queue has room (then acknowledges it), or keeps
    /// it, in order, until it has.
    fn hand_to_engine(
        &mut self,
        input: NetInput,
        ack: Option<request_response::ResponseChannel<()>>,
    ) {
        if self.pending.is_empty() {
            match self.to_engine.try_send(input) {
                Ok(()) => {
                    if let Some(ack) = ack {
                        let _ = self.swarm.behaviour_mut().sync.send_response(ack, ());
                    }
                }
                Err(mpsc::error::TrySendError::Full(input)) => {
                    self.pending.push_back(Pending { input, ack })
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        } else {
            self.pending.push_back(Pending { input, ack });
        }
    }

    fn trim(&mut self) {
        for conn in self.conns.trim_now(std::time::Instant::now()) {
            self.swarm.close_connection(conn);
        }
    }

    async fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.sync_event(event).await,
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if let Some(peer) = from_libp2p(&peer_id) {
                    let addrs = info
                        .listen_addrs
                        .into_iter()
                        .take(crate::addr_book::MAX_ADDRS_PER_PEER);
                    self.learn(&peer, addrs.collect());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer_id, addr) in found {
                    if let Some(peer) = from_libp2p(&peer_id) {
                        self.learn(&peer, vec![addr]);
                    }
                }
            }
            SwarmEvent::Behaviour(_) => {}
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let Some(peer) = from_libp2p(&peer_id) else {
                    tracing::debug!(%peer_id, "closing a connection from a non-Ed25519 peer");
                    self.swarm.close_connection(connection_id);
                    return;
                };
                self.conns.opened(connection_id, std::time::Instant::now());
                self.trim();
                if endpoint.is_dialer() {
                    self.learn(&peer, vec![endpoint.get_remote_address().clone()]);
                }
                if num_established.get() == 1 {
                    self.metrics.add(&self.metrics.connected_peers, 1);
                    tracing::debug!(%peer, "connected");
                    if self
                        .to_engine
                        .send(NetInput::Connected(peer))
                        .await
                        .is_err()
                    {
                        tracing::debug!("engine gone; connection news dropped");
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.conns.closed(connection_id);
                if num_established == 0 && from_libp2p(&peer_id).is_some() {
                    self.metrics
                        .connected_peers
                        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                if !self.listen_addrs.contains(&address) {
                    self.listen_addrs.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| a != &address);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "dial failed");
            }
            _ => {}
        }
    }

    async fn sync_event(&mut self, event: request_response::Event<Vec<u8>, ()>) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let Some(from) = from_libp2p(&peer) else {
                    return;
                };
                let input = NetInput::Message {
                    from,
                    bytes: request,
                };
                if self.pending.len() >= MAX_PENDING_INBOUND {
                    // Dropping the channel tells the sender the message failed.
                    self.metrics.add(&self.metrics.inbound_refused, 1);
                    tracing::debug!(%peer, "engine queue full; inbound sync message refused");
                    return;
                }
                self.hand_to_engine(input, Some(channel));
            }
            Event::Message {
                message: Message::Response { request_id, .. },
                ..
            } => self.settle(&request_id, true),
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, %error, "sync message not delivered");
                self.settle(&request_id, false);
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sync message failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }
}
