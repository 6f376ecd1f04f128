//! Compiles the API's protobuf definitions (the daemon's `../driver-tokio/proto/`) with the
//! pure-Rust `protox` (no `protoc` needed) and generates tonic client stubs only.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "../driver-tokio/proto/threads.proto",
        "../driver-tokio/proto/threadsnet.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let files = protox::compile(protos, ["../driver-tokio/proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(files)?;
    Ok(())
}
