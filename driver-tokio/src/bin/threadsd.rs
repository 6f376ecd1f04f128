//! `threadsd`: the ThreadDB daemon. See `threadsd --help` and the README.

/// The daemon allocates and frees many small buffers (records, store keys and values, parsed
/// documents); mimalloc keeps that fast as the heap grows, where glibc's malloc spent about
/// half of a million-instance load in `malloc`/`free` (measured by `documents`, whose
/// binaries use the same allocator). It is built without transparent huge pages (feature
/// `no_thp`): first touches of fresh heap then fault in 4 KiB, not 2 MiB to zero.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::process::ExitCode;
use threads_driver_tokio::Node;
use threads_driver_tokio::api::{ApiOptions, ApiServer};
use threads_driver_tokio::cli::Args;
use tracing_subscriber::EnvFilter;

fn init_logging(args: &Args) -> Result<(), String> {
    let level = if args.debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("THRDS_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},libp2p=warn,libp2p_swarm=warn")));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let result = match (args.log_file.is_empty(), args.log_json) {
        (true, false) => builder.with_writer(std::io::stderr).try_init(),
        (true, true) => builder.json().with_writer(std::io::stderr).try_init(),
        (false, json) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&args.log_file)
                .map_err(|e| {
                    format!(
                        "invalid setting logFile: cannot open {}: {e}",
                        args.log_file
                    )
                })?;
            let writer = std::sync::Mutex::new(file);
            if json {
                builder
                    .json()
                    .with_ansi(false)
                    .with_writer(writer)
                    .try_init()
            } else {
                builder.with_ansi(false).with_writer(writer).try_init()
            }
        }
    };
    result.map_err(|e| format!("logging: {e}"))
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn main() -> ExitCode {
    let args = Args::from_env();
    if let Err(e) = init_logging(&args) {
        eprintln!("threadsd: {e}");
        return ExitCode::FAILURE;
    }
    for (flag, why) in args.ignored() {
        tracing::warn!("flag {flag} has no effect in this daemon: {why}");
    }
    let config = match args.node_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("threadsd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let api_addr = match args.api_socket() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("threadsd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let proxy_addr = match args.api_proxy_socket() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("threadsd: {e}");
            return ExitCode::FAILURE;
        }
    };
    threads_reducer::db::lookup::set_query_threads(args.query_threads);
    let metrics_addr = match args.metrics_socket() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("threadsd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("threadsd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let node = match Node::start(config).await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("threadsd: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(addr) = metrics_addr {
            match threads_driver_tokio::metrics_http::serve(addr, node.handle().metrics().clone())
                .await
            {
                Ok(_) => tracing::info!(%addr, "metrics at http://{addr}/metrics"),
                Err(e) => {
                    eprintln!(
                        "threadsd: invalid setting metricsAddr: cannot listen on {addr}: {e}"
                    );
                    let _ = node.shutdown().await;
                    return ExitCode::FAILURE;
                }
            }
        }
        let options = ApiOptions {
            proxy: Some(proxy_addr),
            token_ttl: args.token_ttl(),
        };
        let api = match ApiServer::start_with_options(node.handle(), api_addr, options).await {
            Ok(api) => {
                tracing::info!(addr = %api.local_addr(), "gRPC API (threads.pb.API)");
                if let Some(addr) = api.proxy_addr() {
                    tracing::info!(%addr, "grpc-websockets and grpc-web proxy");
                }
                api
            }
            Err(e) => {
                eprintln!("threadsd: {e}");
                let _ = node.shutdown().await;
                return ExitCode::FAILURE;
            }
        };
        for addr in node.listen_addrs() {
            tracing::info!(%addr, "listening for peers");
        }
        // Scripts wait for exactly these two lines.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "Welcome to Threads!");
        let _ = writeln!(out, "Your peer ID is {}", node.peer_id());
        let _ = out.flush();
        drop(out);
        let signal = wait_for_signal().await;
        tracing::info!("{signal}: gracefully stopping");
        // The API stops first, so no call reaches a node that is going away.
        api.shutdown().await;
        match node.shutdown().await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("threadsd: stopping: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
