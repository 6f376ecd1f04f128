//! `threadsd`'s configuration: go-threads' flags and `THRDS_*` environment names with the same
//! defaults, parsed by clap, plus this daemon's own additions.
//!
//! Go's flag syntax works as deployments write it: `-hostAddr=/ip4/...`, `--hostAddr /ip4/...`,
//! booleans as `-debug` or `-debug=false`, durations as `20s` or `1m30s`. Precedence: command
//! line, then environment, then default. Flags of go-threads that have no meaning here (the
//! badger and MongoDB settings, pubsub, the head-counter migration) are accepted and reported
//! with a warning at start.

use crate::node::NodeConfig;
use clap::Parser;
use clap::builder::BoolishValueParser;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// A duration in Go syntax (`300ms`, `20s`, `1m30s`, `1.5h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

fn parse_duration(s: &str) -> Result<GoDuration, String> {
    let nanos = go_parse_duration::parse_duration(s)
        .map_err(|e| format!("not a duration like 20s or 1m30s: {e:?}"))?;
    u64::try_from(nanos)
        .map(|n| GoDuration(Duration::from_nanos(n)))
        .map_err(|_| "a duration must not be negative".to_owned())
}

fn parse_multiaddr(s: &str) -> Result<Multiaddr, String> {
    s.parse::<Multiaddr>()
        .map_err(|e| format!("not a multiaddr like /ip4/127.0.0.1/tcp/4006: {e}"))
}

/// Flags of `threadsd`. Names, environment names and defaults follow go-threads.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "threadsd",
    version,
    about = "ThreadDB daemon: peer-to-peer, event-sourced document database"
)]
pub struct Args {
    /// Repository folder (LMDB environment, host key, address book).
    #[arg(long = "repo", env = "THRDS_REPO", default_value = ".threads")]
    pub repo: PathBuf,
    /// libp2p listen address (TCP); QUIC listens on the same port number over UDP.
    #[arg(long = "hostAddr", env = "THRDS_HOSTADDR", default_value = "/ip4/0.0.0.0/tcp/4006", value_parser = parse_multiaddr)]
    pub host_addr: Multiaddr,
    /// Address announced to peers instead of the listen addresses (empty: listen addresses).
    #[arg(long = "announceAddr", env = "THRDS_ANNOUNCEADDR", default_value = "")]
    pub announce_addr: String,
    /// gRPC API address (both services).
    #[arg(long = "apiAddr", env = "THRDS_APIADDR", default_value = "/ip4/127.0.0.1/tcp/6006", value_parser = parse_multiaddr)]
    pub api_addr: Multiaddr,
    /// grpc-web and grpc-websockets proxy address.
    #[arg(long = "apiProxyAddr", env = "THRDS_APIPROXYADDR", default_value = "/ip4/127.0.0.1/tcp/6007", value_parser = parse_multiaddr)]
    pub api_proxy_addr: Multiaddr,
    /// Connections kept when the connection manager trims.
    #[arg(
        long = "connLowWater",
        env = "THRDS_CONNLOWWATER",
        default_value_t = 100
    )]
    pub conn_low_water: usize,
    /// Connections above which the connection manager trims.
    #[arg(
        long = "connHighWater",
        env = "THRDS_CONNHIGHWATER",
        default_value_t = 400
    )]
    pub conn_high_water: usize,
    /// Age below which a connection is never trimmed.
    #[arg(long = "connGracePeriod", env = "THRDS_CONNGRACEPERIOD", default_value = "20s", value_parser = parse_duration)]
    pub conn_grace_period: GoDuration,
    /// Keep-alive ping interval (libp2p connections and, later, websockets); at least 1s.
    #[arg(long = "keepAliveInterval", env = "THRDS_KEEPALIVEINTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub keep_alive_interval: GoDuration,
    /// No periodic anti-entropy with peers (writes are still pushed to connected peers).
    #[arg(long = "disableNetPulling", env = "THRDS_DISABLENETPULLING", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub disable_net_pulling: bool,
    /// Most records in one page, served or asked (pulls ask for at most
    /// `Config::pull_page_records`, 512, at a time).
    #[arg(
        long = "netPullingLimit",
        env = "THRDS_NETPULLINGLIMIT",
        default_value_t = 10000
    )]
    pub net_pulling_limit: u32,
    /// Accepted for compatibility; anti-entropy starts one initial interval after start.
    #[arg(long = "netPullingStartAfter", env = "THRDS_NETPULLINGSTARTAFTER", default_value = "1s", value_parser = parse_duration)]
    pub net_pulling_start_after: GoDuration,
    /// Anti-entropy interval right after a thread changed.
    #[arg(long = "netPullingInitialInterval", env = "THRDS_NETPULLINGINITIALINTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub net_pulling_initial_interval: GoDuration,
    /// Longest anti-entropy interval of a quiet thread.
    #[arg(long = "netPullingInterval", env = "THRDS_NETPULLINGINTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub net_pulling_interval: GoDuration,
    /// Accepted for compatibility, no effect (there is no head-counter migration here).
    #[arg(long = "disableExchangeEdgesMigration", env = "THRDS_DISABLEEXCHANGEEDGESMIGRATION", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub disable_exchange_edges_migration: bool,
    /// Accepted for compatibility, no effect (writes are pushed over /threads/sync/1).
    #[arg(long = "enableNetPubsub", env = "THRDS_ENABLENETPUBSUB", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub enable_net_pubsub: bool,
    /// Accepted for compatibility, no effect (the store is LMDB).
    #[arg(long = "mongoUri", env = "THRDS_MONGOURI", default_value = "")]
    pub mongo_uri: String,
    /// Accepted for compatibility, no effect (the store is LMDB).
    #[arg(
        long = "mongoDatabase",
        env = "THRDS_MONGODATABASE",
        default_value = ""
    )]
    pub mongo_database: String,
    /// Accepted for compatibility, no effect (the store is LMDB).
    #[arg(long = "badgerLowMem", env = "THRDS_BADGERLOWMEM", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub badger_low_mem: bool,
    /// Debug logging.
    #[arg(long = "debug", env = "THRDS_DEBUG", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub debug: bool,
    /// Write logs to this file instead of stderr.
    #[arg(long = "logFile", env = "THRDS_LOGFILE", default_value = "")]
    pub log_file: String,
    /// Logs as JSON lines (this daemon's addition).
    #[arg(long = "logJson", env = "THRDS_LOGJSON", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub log_json: bool,
    /// Lifetime of API tokens from GetToken, e.g. 24h; 0 (the default) issues tokens without
    /// expiry, as go-threads does.
    #[arg(long = "tokenTtl", env = "THRDS_TOKENTTL", default_value = "0s", value_parser = parse_duration)]
    pub token_ttl: GoDuration,
    /// Serve Prometheus metrics at `http://<addr>/metrics`, e.g. /ip4/127.0.0.1/tcp/9090 (off when empty).
    #[arg(long = "metricsAddr", env = "THRDS_METRICSADDR", default_value = "")]
    pub metrics_addr: String,
    /// Discover peers on the local network with mDNS (this daemon's addition; off by default).
    #[arg(long = "enableMdns", env = "THRDS_ENABLEMDNS", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub enable_mdns: bool,
    /// Most threads one query may use to look up the instances an index yields (this daemon's
    /// addition): 1 keeps each query on one thread; 0 (the default) uses every core, at most 8.
    #[arg(long = "queryThreads", env = "THRDS_QUERYTHREADS", default_value = "0")]
    pub query_threads: usize,
    /// Do not listen on QUIC (this daemon's addition).
    #[arg(long = "disableQuic", env = "THRDS_DISABLEQUIC", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub disable_quic: bool,
}

/// Rewrites Go-style single-dash long flags (`-hostAddr=x`, `-debug`) to clap's `--` form.
/// Single-letter flags (`-h`, `-V`), values and everything after `--` are left alone.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut rest = false;
    for (i, arg) in args.into_iter().enumerate() {
        let s = arg.to_string_lossy();
        if i == 0 || rest {
            out.push(arg);
            continue;
        }
        if s == "--" {
            rest = true;
            out.push(arg);
            continue;
        }
        let bytes = s.as_bytes();
        let go_long = bytes.len() > 2
            && bytes[0] == b'-'
            && bytes[1].is_ascii_alphabetic()
            && (bytes[2].is_ascii_alphanumeric() || bytes[2] == b'=');
        if go_long {
            let mut fixed = OsString::from("-");
            fixed.push(&arg);
            out.push(fixed);
        } else {
            out.push(arg);
        }
    }
    out
}

/// A configuration error naming the setting at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    /// The flag name.
    pub setting: &'static str,
    /// Why.
    pub reason: String,
}

fn bad(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        reason: reason.into(),
    }
}

/// The QUIC listen address for a TCP host address: same IP, same port number, over UDP.
pub fn quic_for(tcp: &Multiaddr) -> Option<Multiaddr> {
    let mut out = Multiaddr::empty();
    let mut saw_tcp = false;
    for p in tcp.iter() {
        match p {
            Protocol::Tcp(port) => {
                out.push(Protocol::Udp(port));
                out.push(Protocol::QuicV1);
                saw_tcp = true;
            }
            Protocol::P2p(_) => {}
            other => out.push(other),
        }
    }
    saw_tcp.then_some(out)
}

impl Args {
    /// Parses the process arguments (Go-style flags included) and environment.
    pub fn from_env() -> Args {
        Args::parse_from(normalize_args(std::env::args_os()))
    }

    /// Names of given flags that have no effect here, with why.
    pub fn ignored(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if self.enable_net_pubsub {
            out.push((
                "enableNetPubsub",
                "records are pushed to peers over /threads/sync/1",
            ));
        }
        if !self.mongo_uri.is_empty() || !self.mongo_database.is_empty() {
            out.push((
                "mongoUri/mongoDatabase",
                "the repository is an LMDB environment",
            ));
        }
        if self.badger_low_mem {
            out.push(("badgerLowMem", "the repository is an LMDB environment"));
        }
        if self.disable_exchange_edges_migration {
            out.push((
                "disableExchangeEdgesMigration",
                "there is no head-counter migration",
            ));
        }
        if self.net_pulling_start_after.0 != Duration::from_secs(1) {
            out.push((
                "netPullingStartAfter",
                "anti-entropy starts one netPullingInitialInterval after start",
            ));
        }
        out
    }

    /// The node configuration these flags describe.
    pub fn node_config(&self) -> Result<NodeConfig, ConfigError> {
        if self.conn_low_water > self.conn_high_water {
            return Err(bad(
                "connLowWater",
                format!(
                    "{} is above connHighWater {}",
                    self.conn_low_water, self.conn_high_water
                ),
            ));
        }
        if self.keep_alive_interval.0 < Duration::from_secs(1) {
            return Err(bad("keepAliveInterval", "must be at least 1s"));
        }
        if self.net_pulling_limit == 0 {
            return Err(bad("netPullingLimit", "must be above 0"));
        }
        if self.net_pulling_initial_interval.0.is_zero() || self.net_pulling_interval.0.is_zero() {
            return Err(bad(
                "netPullingInterval",
                "pulling intervals must be above 0",
            ));
        }
        if !self
            .host_addr
            .iter()
            .any(|p| matches!(p, Protocol::Tcp(_) | Protocol::QuicV1))
        {
            return Err(bad(
                "hostAddr",
                format!("{} is neither a TCP nor a QUIC address", self.host_addr),
            ));
        }
        let mut listen = vec![self.host_addr.clone()];
        if !self.disable_quic
            && let Some(quic) = quic_for(&self.host_addr)
        {
            listen.push(quic);
        }
        let mut config = NodeConfig::new(&self.repo, listen);
        if !self.announce_addr.is_empty() {
            let addr = parse_multiaddr(&self.announce_addr).map_err(|e| bad("announceAddr", e))?;
            config.net.announce = vec![addr];
        }
        config.net.conn_low_water = self.conn_low_water;
        config.net.conn_high_water = self.conn_high_water;
        config.net.conn_grace = self.conn_grace_period.0;
        config.net.ping_interval = self.keep_alive_interval.0;
        config.net.mdns = self.enable_mdns;
        config.engine.page_max_records = self.net_pulling_limit;
        let ms = |d: Duration| d.as_millis().min(u64::MAX as u128) as u64;
        config.engine.sync_interval_min_ms = ms(self.net_pulling_initial_interval.0);
        config.engine.sync_interval_max_ms =
            ms(self.net_pulling_interval.0).max(config.engine.sync_interval_min_ms);
        if self.disable_net_pulling {
            // A day between digest rounds: in practice only pushes and explicit pulls remain.
            config.engine.sync_interval_min_ms = 86_400_000;
            config.engine.sync_interval_max_ms = 86_400_000;
        }
        Ok(config)
    }

    /// The gRPC API listen address (`apiAddr`) as a socket address.
    pub fn api_socket(&self) -> Result<std::net::SocketAddr, ConfigError> {
        socket_of(&self.api_addr).ok_or_else(|| {
            bad(
                "apiAddr",
                format!("{} is not an /ip4|ip6/.../tcp/PORT address", self.api_addr),
            )
        })
    }

    /// The lifetime of issued API tokens; `None` (no `exp` claim) when `tokenTtl` is 0.
    pub fn token_ttl(&self) -> Option<std::time::Duration> {
        Some(self.token_ttl.0).filter(|d| !d.is_zero())
    }

    /// The grpc-websockets/grpc-web proxy listen address (`apiProxyAddr`) as a socket address.
    pub fn api_proxy_socket(&self) -> Result<std::net::SocketAddr, ConfigError> {
        socket_of(&self.api_proxy_addr).ok_or_else(|| {
            bad(
                "apiProxyAddr",
                format!(
                    "{} is not an /ip4|ip6/.../tcp/PORT address",
                    self.api_proxy_addr
                ),
            )
        })
    }

    /// The metrics listen address, if enabled, as a socket address.
    pub fn metrics_socket(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        if self.metrics_addr.is_empty() {
            return Ok(None);
        }
        let addr = parse_multiaddr(&self.metrics_addr).map_err(|e| bad("metricsAddr", e))?;
        socket_of(&addr).map(Some).ok_or_else(|| {
            bad(
                "metricsAddr",
                format!("{addr} is not an /ip4|ip6/.../tcp/PORT address"),
            )
        })
    }
}

/// The socket address of an `/ip4|ip6/<ip>/tcp/<port>` multiaddr.
pub fn socket_of(addr: &Multiaddr) -> Option<std::net::SocketAddr> {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => return None,
        }
    }
    Some(std::net::SocketAddr::new(ip?, port?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        let args = std::iter::once("threadsd")
            .chain(args.iter().copied())
            .map(OsString::from);
        Args::try_parse_from(normalize_args(args))
    }

    #[test]
    fn go_defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.repo, PathBuf::from(".threads"));
        assert_eq!(a.host_addr.to_string(), "/ip4/0.0.0.0/tcp/4006");
        assert_eq!(a.api_addr.to_string(), "/ip4/127.0.0.1/tcp/6006");
        assert_eq!(a.api_proxy_addr.to_string(), "/ip4/127.0.0.1/tcp/6007");
        assert_eq!((a.conn_low_water, a.conn_high_water), (100, 400));
        assert_eq!(a.conn_grace_period.0, Duration::from_secs(20));
        assert_eq!(a.keep_alive_interval.0, Duration::from_secs(5));
        assert_eq!(a.net_pulling_limit, 10000);
        assert_eq!(a.token_ttl(), None, "go-threads tokens never expire");
        assert_eq!(a.query_threads, 0, "every core");
        assert!(!a.debug && !a.enable_net_pubsub);
        let c = a.node_config().unwrap();
        assert_eq!(c.net.listen.len(), 2);
        assert_eq!(c.net.listen[1].to_string(), "/ip4/0.0.0.0/udp/4006/quic-v1");
        assert_eq!(c.engine.sync_interval_max_ms, 10_000);
    }

    #[test]
    fn go_flag_syntax() {
        let a = parse(&[
            "-hostAddr=/ip4/127.0.0.1/tcp/5000",
            "--repo",
            "r",
            "-debug",
            "-connGracePeriod=1m30s",
            "-badgerLowMem=false",
        ])
        .unwrap();
        assert_eq!(a.host_addr.to_string(), "/ip4/127.0.0.1/tcp/5000");
        assert_eq!(a.repo, PathBuf::from("r"));
        assert!(a.debug);
        assert!(!a.badger_low_mem);
        assert_eq!(a.conn_grace_period.0, Duration::from_secs(90));
        let a = parse(&["-tokenTtl=24h", "-queryThreads=1"]).unwrap();
        assert_eq!(a.token_ttl(), Some(Duration::from_secs(86_400)));
        assert_eq!(a.query_threads, 1);
        let a = parse(&[
            "-debug=false",
            "-enableNetPubsub",
            "-keepAliveInterval",
            "500ms",
        ])
        .unwrap();
        assert!(!a.debug && a.enable_net_pubsub);
        assert_eq!(a.ignored()[0].0, "enableNetPubsub");
        assert_eq!(a.node_config().unwrap_err().setting, "keepAliveInterval");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = parse(&["-hostAddr=nonsense"]).unwrap_err().to_string();
        assert!(
            err.contains("hostAddr") && err.contains("multiaddr"),
            "{err}"
        );
        let err = parse(&["-connGracePeriod=soon"]).unwrap_err().to_string();
        assert!(err.contains("connGracePeriod"), "{err}");
        let err = parse(&["-queryThreads=-1"]).unwrap_err().to_string();
        assert!(err.contains("queryThreads"), "{err}");
        let a = parse(&["-connLowWater=500"]).unwrap();
        assert_eq!(a.node_config().unwrap_err().setting, "connLowWater");
        let a = parse(&["-metricsAddr=/dns4/x/tcp/1"]).unwrap();
        assert_eq!(a.metrics_socket().unwrap_err().setting, "metricsAddr");
        let a = parse(&["-apiAddr=/ip4/127.0.0.1/udp/6006"]).unwrap();
        assert_eq!(a.api_socket().unwrap_err().setting, "apiAddr");
        assert_eq!(parse(&[]).unwrap().api_socket().unwrap().port(), 6006);
        let a = parse(&["-metricsAddr=/ip4/127.0.0.1/tcp/9"]).unwrap();
        assert_eq!(a.metrics_socket().unwrap().unwrap().port(), 9);
    }

    #[test]
    fn quic_address_follows_tcp() {
        let q = quic_for(&"/ip6/::1/tcp/0".parse().unwrap()).unwrap();
        assert_eq!(q.to_string(), "/ip6/::1/udp/0/quic-v1");
        assert!(quic_for(&"/ip4/1.2.3.4/udp/1/quic-v1".parse().unwrap()).is_none());
    }
}
