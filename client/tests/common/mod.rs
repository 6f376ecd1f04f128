//! An in-process node and API server on 127.0.0.1 (port 0) for the client's tests.
#![allow(dead_code)]

use std::time::Duration;
use threads_driver_tokio::api::ApiServer;
use threads_driver_tokio::{Node, NodeConfig};

/// Longest any single step (a call, a streamed message, a CLI run) may take.
pub const STEP: Duration = Duration::from_secs(60);

/// A node with its API server, and the folder holding its repository.
pub struct Server {
    pub node: Node,
    pub api: ApiServer,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::new(dir.path(), vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
        config.engine.sync_interval_min_ms = 100;
        config.engine.sync_interval_max_ms = 1_000;
        config.engine.pull_timeout_ms = 2_000;
        config.lmdb.map_size = 1 << 30;
        let node = Node::start(config).await.expect("node starts");
        let api = ApiServer::start(node.handle(), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("API starts");
        Server {
            node,
            api,
            _dir: dir,
        }
    }

    /// The API address as a URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.api.local_addr())
    }

    pub async fn stop(self) {
        self.api.shutdown().await;
        self.node.shutdown().await.unwrap();
    }
}
