//! Compiles the client API's protobuf definitions (`proto/`) with the pure-Rust `protox`
//! (no `protoc` needed) and generates the tonic stubs with `tonic-prost-build`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/threads.proto", "proto/threadsnet.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let files = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(files)?;
    Ok(())
}
